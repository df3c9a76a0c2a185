"""`harness pr --dry-run`: the plan written to files instead of sent to GitHub, and, inside Actions, the job summary
and `::error` annotations.

Files written to the output directory:

- `comment.md`: exactly the comment body the API would post;
- `labels.json`: `{"labels": [{"name", "color", "description"}, ...]}`, sorted by name: the bot-owned labels the
  pull request should carry (any other bot-owned label would be removed; labels outside the bot's namespaces are
  never touched);
- `status.json`: the commit status, as `Status.as_dict()` (state, description, context, target_url).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from harness.bot.escape import workflow_data, workflow_property
from harness.bot.plan import Annotation, BotPlan

COMMENT = "comment.md"
LABELS = "labels.json"
STATUS = "status.json"


def labels_document(plan: BotPlan) -> dict[str, Any]:
    """labels.json's content: each label with its color and description, sorted by name."""
    specs = sorted(plan.labels, key=lambda spec: spec.name)
    return {"labels": [{"name": s.name, "color": s.color, "description": s.description} for s in specs]}


def write_dry_run(plan: BotPlan, out_dir: Path) -> list[Path]:
    """Write comment.md, labels.json and status.json into `out_dir` (created if missing); the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        COMMENT: plan.body,
        LABELS: json.dumps(labels_document(plan), indent=1) + "\n",
        STATUS: json.dumps(plan.status.as_dict(), indent=1) + "\n",
    }
    paths = []
    for name, text in written.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8", newline="")
        paths.append(path)
    return paths


def annotation_line(annotation: Annotation) -> str:
    """`::error file=PATH,title=TITLE::MESSAGE`, each part encoded as the Actions runner decodes it."""
    file, title = workflow_property(annotation.path), workflow_property(annotation.title)
    return f"::error file={file},title={title}::{workflow_data(annotation.message)}"


def write_actions_outputs(plan: BotPlan, env: Mapping[str, str], stdout: TextIO | None = None) -> None:
    """In Actions: append the summary to the file GITHUB_STEP_SUMMARY names (when set), and print one `::error`
    line per annotation when GITHUB_ACTIONS is "true"."""
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(plan.summary_markdown.rstrip("\n") + "\n")
    if env.get("GITHUB_ACTIONS") == "true":
        for annotation in plan.annotations:
            print(annotation_line(annotation), file=stdout)  # None: sys.stdout
