"""The command-line reference (docs/cli.md), generated from the `harness` parser itself so it cannot drift.

    python -m harness.cli.reference            # the Markdown on standard output
    python -m harness.cli.reference --write    # rewrite docs/cli.md of this checkout

Every subcommand with its usage, description and options (help text, choices, default). argparse has no public
way to list a parser's actions, so this reads `_actions` and the subparsers' `_choices_actions`, as Sphinx's
argparse extensions do. Machine-specific text (the user's home directory in a default path, or an overriding
$HARNESS_STORE) is written in its portable form, so the file is the same on every machine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from harness.cli.main import _parser as harness_parser  # the parser `harness` itself parses with
from harness.store.db import default_store

DOCS_FILE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
REGENERATE = "python -m harness.cli.reference --write"
USAGE_WIDTH = 100  # usage lines are wrapped here, whatever the terminal
PORTABLE_STORE = "~/.local/share/module-harness/store.sqlite"  # default_store() without $HARNESS_STORE, home as ~


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole reference as Markdown."""
    parser = parser or harness_parser()
    lines = [
        "# Command-line reference",
        "",
        f"Generated from the parser in `harness/cli/` by `{REGENERATE}`; do not edit by hand",
        "(`tests/test_docs.py` fails when this file differs from what the command writes).",
        "",
        _portable(parser.description or "").strip(),
        "",
    ]
    commands = list(_commands(parser))
    lines += ["| command | what it does |", "|---|---|"]
    lines += [f"| [`{prog}`](#{_anchor(prog)}) | {_cell(summary)} |" for prog, summary, _ in commands]
    for prog, summary, sub in commands:
        lines += ["", f"## {prog}", ""]
        text = sub.description or summary
        if text:
            lines += [_portable(text).strip(), ""]
        lines += ["```", *_usage(prog, sub), "```", ""]
        rows = [_row(action, prog) for action in sub._actions if not isinstance(action, argparse._HelpAction)]
        if rows:
            lines += ["| argument | meaning | default |", "|---|---|---|", *rows]
    return "\n".join(lines) + "\n"


def _commands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(prog, one-line help, parser) of every subcommand, depth first, in the order the parser lists them."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            yield sub.prog, summaries.get(name, ""), sub
            yield from _commands(sub)


def _usage(prog: str, parser: argparse.ArgumentParser) -> list[str]:
    """The usage line built from the actions (not argparse's formatter, whose wrapping varies by version)."""
    grouped = {id(a): group for group in parser._mutually_exclusive_groups for a in group._group_actions}
    parts: list[str] = []
    done: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or id(action) in done:
            continue
        group = grouped.get(id(action))
        if group is not None:
            done.update(id(a) for a in group._group_actions)
            inner = " | ".join(_invocation(a) for a in group._group_actions)
            parts.append(f"({inner})" if group.required else f"[{inner}]")
        elif action.option_strings and not action.required:
            parts.append(f"[{_invocation(action)}]")
        else:
            parts.append(_invocation(action))
    lines = [prog]
    for part in parts:  # wrapped between arguments, never inside one
        if len(lines[-1]) + 1 + len(part) > USAGE_WIDTH and lines[-1].strip():
            lines.append(" " * len(prog))
        lines[-1] += f" {part}"
    return lines


def _invocation(action: argparse.Action) -> str:
    """How one argument is written: `--out OUT`, `--json`, `NAME [NAME ...]`, `{cpu,cuda}`."""
    name = _metavar(action)
    if not action.option_strings:
        return _with_nargs(name, action.nargs)
    flag = max(action.option_strings, key=len)
    if action.nargs == 0:
        return flag
    return f"{flag} {_with_nargs(name, action.nargs)}"


def _metavar(action: argparse.Action) -> str:
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices is not None:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest if not action.option_strings else action.dest.upper()


def _with_nargs(name: str, nargs: int | str | None) -> str:
    if nargs == "+":
        return f"{name} [{name} ...]"
    if nargs == "*":
        return f"[{name} ...]"
    if nargs == "?":
        return f"[{name}]"
    if isinstance(nargs, int):
        return " ".join([name] * nargs)
    return name


def _row(action: argparse.Action, prog: str) -> str:
    """One table row: the argument, its help (with choices and whether it is required), its default."""
    help_text = _expand_help(action, prog)
    notes = []
    if action.choices is not None and not isinstance(action.metavar, str):
        notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.option_strings and action.required:
        notes.append("required")
    meaning = "; ".join(part for part in [help_text, *notes] if part)
    return f"| `{_invocation(action)}` | {_cell(meaning)} | {_cell(_default(action, help_text))} |"


def _expand_help(action: argparse.Action, prog: str) -> str:
    """The help text with argparse's %(default)s-style specifiers filled in, as `--help` shows it."""
    text = action.help or ""
    if text == argparse.SUPPRESS:
        return ""
    if "%" in text:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        params["prog"] = prog
        if action.choices is not None:
            params["choices"] = ", ".join(map(str, action.choices))
        text = text % params
    return _portable(text)


def _default(action: argparse.Action, help_text: str) -> str:
    """The default, unless the help already states it (it then says it better, e.g. one that depends on the machine),
    or there is none to show (a flag that is off, an option that is absent)."""
    if "default" in help_text.lower() or action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
        return ""
    return f"`{_portable(str(action.default))}`"


def _portable(text: str) -> str:
    """`text` without this machine's store path or home directory."""
    text = text.replace(str(default_store()), PORTABLE_STORE)
    home = str(Path.home())
    return text.replace(home, "~") if len(home) > 1 else text


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, spaces to hyphens, punctuation other than - and _ dropped."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.cli.reference", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {DOCS_FILE.name} into docs/ instead of printing")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOCS_FILE.write_text(text)
        print(f"wrote {DOCS_FILE}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
