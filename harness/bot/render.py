"""From a results directory to a `BotPlan`: the comment, the labels, the commit status and the annotations.

Pure: reads files (and the results store, for ranks) and returns data; the API side (harness/bot/github.py) and the
dry run (harness/bot/dry_run.py) carry the plan out. Every string from the results directory is untrusted: it is
escaped where it is shown (harness/bot/escape.py) and never becomes a label name, a path or a URL unchecked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bot.comment import Comment, render_comment
from harness.bot.escape import MESSAGE_CAP, NAME_CAP, REASON_CAP, flatten, md
from harness.bot.facts import ModuleFacts, module_facts
from harness.bot.inputs import ChangedFile, ChangeSet, Inputs, ResultsUnusable, load_inputs
from harness.bot.labels import GATES_PASSED, ChangeKinds, choose_labels
from harness.bot.paths import file_url, module_paths, safe_url
from harness.bot.plan import MARKER, STATUS_DESCRIPTION_LIMIT, Annotation, BotPlan, RenderContext, Status, StatusState
from harness.bot.ranks import board_ranks

__all__ = ["ResultsUnusable", "plan_from_results"]

NAMES_SHOWN = 10  # module names listed per line of the change summary
NOT_COUNTING = (
    "The verdict that counts comes from the base branch's harness; a maintainer must approve the change to the "
    "harness before these results can count."
)


@dataclass(frozen=True)
class Authority:
    """Whether the results count, and if not, why (trusted sentences; `notes` are the documents' own, untrusted)."""

    authoritative: bool
    reasons: tuple[str, ...]
    notes: tuple[str, ...]


def plan_from_results(results_dir: Path, context: RenderContext) -> BotPlan:
    """The plan for one pull request from its results directory; ResultsUnusable when a file cannot be used."""
    inputs = load_inputs(results_dir)
    documents = [d for d in (inputs.results, inputs.gpu) if d is not None]
    modules = sorted((f for d in documents for f in module_facts(d)), key=lambda f: (f.importance, f.name, f.device))
    authority = authority_of(documents, inputs.changes, context)
    pending = gpu_pending(inputs)
    notes = [*authority.reasons]
    labels = choose_labels(
        [m.verdict for m in modules], [m.perf for m in modules], _kinds(inputs, modules), _change_kinds(inputs), pending
    )
    paths = _paths(documents, inputs.changes)
    comment = Comment(
        headline=headline(modules, authority),
        preamble=preamble(documents, inputs.changes, authority, pending),
        modules=modules,
        ranks=board_ranks(context.store, modules, notes),
        links=_links(paths, context),
        run_url=safe_url(context.run_url),
    )
    body, truncated = render_comment(comment)
    mergeable = GATES_PASSED in labels and authority.authoritative and not pending and bool(modules)
    return BotPlan(
        body=body,
        labels=labels,
        status=status_of(modules, authority, pending, context.run_url),
        annotations=annotations_of(modules, paths),
        summary_markdown=body.removeprefix(MARKER + "\n"),
        auto_merge_eligible=context.auto_merge_setting and mergeable,
        truncated=truncated,
        notes=tuple(notes),
    )


def _paths(documents: Sequence[Mapping[str, Any]], changes: ChangeSet | None) -> dict[tuple[str, str], str]:
    """(module, device) -> the module file's repository-relative path, where it is safely known."""
    found = {}
    for document in documents:
        device = str(document["config"]["device"])
        found.update({(name, device): path for name, path in module_paths(document, changes).items()})
    return found


def _links(paths: Mapping[tuple[str, str], str], context: RenderContext) -> dict[tuple[str, str], str]:
    """(module, device) -> the URL of the module file at the head commit, when the repository is known."""
    urls = {key: file_url(context.repository, context.head_sha, path, context.run_url) for key, path in paths.items()}
    return {key: url for key, url in urls.items() if url is not None}


# ---------------------------------------------------------------------------------------------------------------
# What the results mean


def authority_of(
    documents: Sequence[Mapping[str, Any]], changes: ChangeSet | None, context: RenderContext
) -> Authority:
    """Not authoritative when the change touches the harness and no maintainer approved, or a run says so itself."""
    reasons = []
    if changes is not None and changes.harness_changed and not context.harness_change_approved:
        reasons.append(
            "This pull request changes the harness itself. It was judged by the base branch's harness, and its "
            "results count once a maintainer approves the change (label harness-change-approved)."
        )
    notes = tuple(
        str(d["config"].get("authority_note", "")) for d in documents if d["config"].get("authoritative") is False
    )
    if notes:
        reasons.append("The run marked its own results as not authoritative.")
    return Authority(not reasons, tuple(reasons), tuple(n for n in notes if n))


def gpu_pending(inputs: Inputs) -> bool:
    """The change adds or modifies a module and no GPU results document covers all of them."""
    if inputs.changes is None:
        return False
    wanted = {f.name for f in inputs.changes.added + inputs.changes.modified}
    judged = {m["name"] for m in inputs.gpu["modules"]} if inputs.gpu is not None else set()
    return bool(wanted - judged)


def _kinds(inputs: Inputs, modules: Iterable[ModuleFacts]) -> list[str | None]:
    """Kinds the change touches (changes.json), else the kinds of the judged modules; labels.py filters them."""
    if inputs.changes is not None:
        return [f.kind for f in inputs.changes.added + inputs.changes.modified + inputs.changes.removed]
    return [m.kind for m in modules]


def _change_kinds(inputs: Inputs) -> ChangeKinds | None:
    c = inputs.changes
    if c is None:
        return None
    kinds = frozenset(f.kind for f in c.added + c.modified + c.removed)
    return ChangeKinds(bool(c.added), bool(c.modified or c.removed), c.harness_changed, kinds)


# ---------------------------------------------------------------------------------------------------------------
# The comment's top


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def headline(modules: Sequence[ModuleFacts], authority: Authority) -> str:
    """The overall verdict in one heading: every module passed, N failed, or no module changed."""
    names = {m.name for m in modules}
    failed = {m.name for m in modules if not m.passing}
    if not names:
        text = "💤 Module harness: no module changed, nothing was judged"
    elif failed:
        text = f"❌ Module harness: {len(failed)} of {_count(len(names), 'module')} failed"
    else:
        text = f"✅ Module harness: every module passed ({len(names)} judged)"
    return f"## {text}" + ("" if authority.authoritative else " (not authoritative)")


def preamble(
    documents: Sequence[Mapping[str, Any]], changes: ChangeSet | None, authority: Authority, gpu_pending: bool
) -> list[str]:
    """Lines between the headline and the tables: the authority warning, GPU notice, change, provenance."""
    lines: list[str] = []
    if not authority.authoritative:
        lines += [
            "> [!WARNING]",
            f"> **These results are NOT authoritative.** {' '.join(authority.reasons)} {NOT_COUNTING}",
        ]
        lines += [f"> Note from the run: {md(note, REASON_CAP)}" for note in authority.notes]
        lines.append("")
    if gpu_pending:
        lines += ["> [!NOTE]", "> The GPU gates have not run for the modules this change adds or modifies.", ""]
    if changes is not None:
        lines += [change_line(changes), ""]
    return lines + [line for d in documents for line in (provenance_line(d), "")][:-1]


def change_line(changes: ChangeSet) -> str:
    """ "Change: 1 added (name), 2 modified (a, b), 0 removed", and whether the harness changed."""
    parts = [
        f"{len(files)} {what}" + (f" ({_names(files)})" if files else "")
        for what, files in (("added", changes.added), ("modified", changes.modified), ("removed", changes.removed))
    ]
    harness = "; **the harness itself changed**" if changes.harness_changed else ""
    return f"Change: {', '.join(parts)}{harness}."


def _names(files: Sequence[ChangedFile]) -> str:
    shown = ", ".join(md(f.name, NAME_CAP) for f in files[:NAMES_SHOWN])
    return shown + (f" and {len(files) - NAMES_SHOWN} more" if len(files) > NAMES_SHOWN else "")


def provenance_line(document: Mapping[str, Any]) -> str:
    """Where one document's figures come from: device, machine, dtypes, commits, torch and harness, date."""
    env, config = document["environment"], document["config"]
    dirty = " (dirty)" if env["git_dirty"] else ""
    parts = [
        f"{env['cpu_model']}, {_count(env['threads'], 'thread')}",
        f"dtypes {', '.join(env['dtypes'])}",
        f"commit {str(env['git_commit'])[:12]}{dirty}",
        f"torch {env['torch_version']}",
        f"harness {env['harness_version']}",
        str(env["date"]),
    ]
    for key, label in (("base_ref", "base"), ("base_commit", "base commit"), ("judge_commit", "judge commit")):
        if isinstance(config.get(key), str):
            parts.append(f"{label} {config[key][:40]}")
    if isinstance(config.get("modules_commit"), str):
        parts.append(f"modules commit {config['modules_commit'][:12]}")
    return f"Judged on **{md(config['device'], 12)}**: {md(' · '.join(parts), 600)}."


# ---------------------------------------------------------------------------------------------------------------
# Status and annotations


def status_of(modules: Sequence[ModuleFacts], authority: Authority, gpu_pending: bool, run_url: str | None) -> Status:
    """failure when a module failed; pending when everything passed but the results do not count yet; else success.
    The description is one line of at most 140 characters."""
    names = list(dict.fromkeys(m.name for m in modules))
    failed = list(dict.fromkeys(f"{m.name} ({m.verdict})" for m in modules if not m.passing))
    state = StatusState.FAILURE if failed else StatusState.SUCCESS
    if failed:
        text = f"{len(failed)} of {_count(len(names), 'module')} failed: {', '.join(failed)}"
    elif names:
        text = f"All {_count(len(names), 'module')} passed every gate"
    else:
        text = "No module changed: nothing to judge"
    if not authority.authoritative:
        text = f"Not authoritative{'' if failed else ' until a maintainer approves'}: {text}"
        state = state if failed else StatusState.PENDING
    if gpu_pending:
        text = f"{text}; GPU run pending"
    return Status(state, flatten(text, STATUS_DESCRIPTION_LIMIT), target_url=run_url)


def annotations_of(modules: Sequence[ModuleFacts], paths: Mapping[tuple[str, str], str]) -> tuple[Annotation, ...]:
    """One `::error` per failing module whose file path is safely known; plain text, encoded when printed."""
    found = []
    for m in modules:
        path = paths.get((m.name, m.device))
        if m.passing or path is None:
            continue
        title = flatten(f"{m.name} ({m.device}): {m.verdict}", NAME_CAP + 40)
        first = m.failures[0] if m.failures else None
        detail = (
            f" First failing case {first.case} ({first.dtype}): {first.messages[0]}" if first and first.messages else ""
        )
        found.append(Annotation(path, title, flatten(f"{m.reason}.{detail}", MESSAGE_CAP)))
    return tuple(found)
