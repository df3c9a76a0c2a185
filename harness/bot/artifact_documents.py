"""The documents inside a results artifact, checked before the bot reads them: every results.json against the results
schema, every modules/<name>.json against the schema's module entry, changes.json for the shape that
`harness changed --json` prints."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

import jsonschema

from harness.results.document import load_schema, validate
from harness.store.ingest import TooDeep, load_json

MODULE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,99}")
_MESSAGE_LIMIT = 300


class DocumentProblem(Exception):
    """A document is not what the harness writes; the message says where and what."""


def _no_constant(name: str) -> Any:
    raise DocumentProblem(f"it is not strict JSON: {name} is not a number JSON allows")


def _parse(data: bytes) -> Any:
    try:
        return load_json(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocumentProblem(f"it is not UTF-8 JSON ({exc})") from None
    except TooDeep as exc:
        raise DocumentProblem(f"it is not a document the harness writes: {exc}") from None


def _schema_problem(exc: jsonschema.ValidationError, what: str) -> DocumentProblem:
    message = exc.message if len(exc.message) <= _MESSAGE_LIMIT else exc.message[:_MESSAGE_LIMIT] + "..."
    return DocumentProblem(f"it does not match the {what} schema at {exc.json_path}: {message}")


def _results(doc: Any) -> None:
    try:
        validate(doc)
    except jsonschema.ValidationError as exc:
        raise _schema_problem(exc, "results") from None


def _module(doc: Any, stem: str) -> None:
    schema = load_schema()
    entry = {"$schema": schema.get("$schema"), "$defs": schema["$defs"], "$ref": "#/$defs/module"}
    try:
        jsonschema.validate(doc, entry)
    except jsonschema.ValidationError as exc:
        raise _schema_problem(exc, "module result") from None
    if doc["name"] != stem:
        raise DocumentProblem(f"it holds the result of module {doc['name']!r}, not of {stem!r}")


def _expect(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        raise DocumentProblem(f"{where} is {type(value).__name__}, expected {kind.__name__}")


def _name(value: Any, where: str) -> None:
    _expect(value, str, where)
    if not MODULE_NAME.fullmatch(value):
        raise DocumentProblem(f"{where} is {value[:100]!r}, not a module name (a lower-case identifier)")


def _changes(doc: Any) -> None:
    """The keys `harness changed --json` prints and the bot reads; other keys are left alone."""
    _expect(doc, dict, "$")
    for key in ("added", "modified", "removed", "support", "harness", "judge", "harness_changed"):
        if key not in doc:
            raise DocumentProblem(f"$.{key} is missing")
    for key in ("base", "head", "merge_base"):
        if key in doc:
            _expect(doc[key], str, f"$.{key}")
    _expect(doc["harness_changed"], bool, "$.harness_changed")
    for key in ("added", "modified", "removed"):
        _expect(doc[key], list, f"$.{key}")
        for i, item in enumerate(doc[key]):
            _expect(item, dict, f"$.{key}[{i}]")
            _name(item.get("name"), f"$.{key}[{i}].name")
            _name(item.get("kind"), f"$.{key}[{i}].kind")
            _expect(item.get("path"), str, f"$.{key}[{i}].path")
    for key in ("support", "harness"):
        _expect(doc[key], list, f"$.{key}")
        for i, path in enumerate(doc[key]):
            _expect(path, str, f"$.{key}[{i}]")
    _expect(doc["judge"], list, "$.judge")
    for i, name in enumerate(doc["judge"]):
        _name(name, f"$.judge[{i}]")


def check_document(name: str, data: bytes) -> None:
    """Raise DocumentProblem unless `data` is a valid document for the member `name` (an allowed layout)."""
    doc = _parse(data)
    path = PurePosixPath(name)
    if path.name == "results.json":
        _results(doc)
    elif path.name == "changes.json":
        _changes(doc)
    elif path.parent.name == "modules":
        _module(doc, path.stem)
    else:
        raise DocumentProblem("no check is known for a document with this name")
