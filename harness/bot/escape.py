"""Untrusted text (module names, reasons, failure messages, paths) made inert before it reaches GitHub.

Everything a results document or changes.json says is untrusted once it leaves the judge. Rendered into a comment it
must not open HTML, links, images, tables, headings or code; mention a user or team (`@name`); reference an issue
(`#123`, `GH-123`); or become an autolink (`https://`, `www.`). Each function here flattens the text to one line,
drops invisible and control characters (bidirectional overrides included), caps its length (an ellipsis marks a cut)
and escapes for one context: Markdown inline text (`md`), the inside of an HTML block such as `<summary>` (`html`),
or the workflow-command syntax of GitHub Actions (`workflow_data`, `workflow_property`).
"""

from __future__ import annotations

import re

NAME_CAP = 80  # characters of a module name, case name or path shown
REASON_CAP = 300  # characters of a verdict's reason or a note
MESSAGE_CAP = 400  # characters of one failure message
ZWSP = "&#8203;"  # a zero-width space as an entity: breaks a mention, reference or autolink, invisible when shown

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
# Backslash-escaped in Markdown (CommonMark allows a backslash before any ASCII punctuation): emphasis, code,
# links and images, tables, strikethrough, math, and the escape character itself.
_MD_PUNCT = frozenset("\\`*_[](){}!~|$")
# Inside an HTML block Markdown is not read, but a renderer that reads it anyway must find nothing to act on: the
# Markdown punctuation is written as numeric character references there.
_HTML_PUNCT = {ch: f"&#{ord(ch)};" for ch in _MD_PUNCT}
_REFERENCES = {"@": "@" + ZWSP, "#": "#" + ZWSP}  # a mention or an issue reference needs the character next to it
_INERT = re.compile(r"(?i)(?<=:)(?=//)|(?<=\bwww)(?=\.)|(?<=\bgh-)(?=\d)")  # autolinks and GH-123 references
_ORDERED = re.compile(r"^(\d+)([.)])")  # an ordered list marker at the start of a line


def flatten(text: object, cap: int) -> str:
    """One line of printable characters, at most `cap` of them; whitespace runs become one space."""
    if cap < 1:
        return ""
    raw = str(text)
    window = raw[: 2 * cap + 64]  # bounds the work; enough unless most of it is whitespace or invisible
    flat = "".join(ch for ch in " ".join(window.split()) if ch.isprintable())
    if len(flat) > cap or len(raw) > len(window):
        return flat[: cap - 1] + "…"
    return flat


def md(text: object, cap: int = REASON_CAP) -> str:
    """Untrusted text for Markdown inline content: a table cell, a list item, a link's text, a paragraph."""
    flat = flatten(text, cap)
    escaped = "".join(_HTML.get(ch) or _REFERENCES.get(ch) or ("\\" + ch if ch in _MD_PUNCT else ch) for ch in flat)
    ordered = _ORDERED.match(flat)
    if flat[:1] in ("-", "+", "="):  # a list item or a setext underline when the text starts a line
        escaped = "\\" + escaped
    elif ordered is not None and ordered.group(2) == ".":  # an ordered list item ("1)" is escaped already)
        digits = len(ordered.group(1))
        escaped = escaped[:digits] + "\\" + escaped[digits:]
    return _INERT.sub(ZWSP, escaped)


def html(text: object, cap: int = REASON_CAP) -> str:
    """Untrusted text inside a raw HTML block (e.g. `<summary>`), where Markdown is not read and a backslash shows."""
    flat = flatten(text, cap)
    escaped = "".join(_HTML.get(ch) or _REFERENCES.get(ch) or _HTML_PUNCT.get(ch) or ch for ch in flat)
    return _INERT.sub(ZWSP, escaped)


def workflow_data(text: object, cap: int = MESSAGE_CAP) -> str:
    """The message of an Actions workflow command (`::error ...::MESSAGE`), encoded as GitHub's runner decodes it."""
    kept = "".join(ch for ch in str(text) if ch.isprintable() or ch in "\n\r")
    capped = kept if len(kept) <= cap else kept[: cap - 1] + "…"
    return capped.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(text: object, cap: int = REASON_CAP) -> str:
    """A property value of a workflow command (`file=`, `title=`): also ':' and ',' encoded, which end a property."""
    return workflow_data(text, cap).replace(":", "%3A").replace(",", "%2C")
