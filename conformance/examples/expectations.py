"""What a reply must hold: the ``reply:`` entries of examples.yaml (steps and counter-examples).

Each entry names a dotted ``field`` of the reply (protojson with proto field names, list
items by index, a string holding JSON walked into) and one or more checks::

    {field: run.status, in: [Succeeded, Failed]}     the value, as text, is one of these
    {field: run.status, not_in: ["", Pending]}       it is none of these (a missing field fails)
    {field: run.error, absent: true}                 unset: missing, or its zero value
    {field: run.metrics, count: 2}                   a list of exactly N items (unset: 0)
    {field: task_ids, contains: ["${a.task_id}"]}    a list holding each of these values
    {field: task_ids, excludes: ["${a.task_id}"]}    a list holding none of them
    {field: total_size, at_least: 3}                 a number >= N (protojson int64 strings too)
    {field: total_size, at_most: 200}                a number <= N
    {field: session.session_id, equals: "${s.session_id}"}   exactly this value (as text)
    {field: task_ids, sequence: ["${a.id}", "${b.id}"]}      a list of exactly these values, in order
    {field: ok, present: true}                       the field is there, even as an empty message
    {field: core, matches: "[0-9]+[.][0-9]+.*"}     the value, as text, matches the regex whole
    {field: data, tgz_files: [out.txt]}              bytes (base64 in protojson) of a gzipped tar
                                                     holding these files (the archive may hold more)

A ``*`` in a field path stands for every item of a list: ``services.*.name`` is the list of
the items' names (items without the rest of the path are left out).

Values (not field paths) may hold placeholders, resolved against the bindings of the step
before the check (``${reply...}`` in ``then:`` steps is the case's own reply).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import io
import json
import re
import tarfile
import zlib
from typing import Any

CHECKS = (
    "in",
    "not_in",
    "absent",
    "count",
    "contains",
    "excludes",
    "at_least",
    "at_most",
    "equals",
    "sequence",
    "present",
    "matches",
    "tgz_files",
)
ZERO_VALUES = (None, "", 0, "0", False, [], {}, "1970-01-01T00:00:00Z")


def lookup(bindings: Any, dotted: str) -> Any:
    """The value at ``dotted`` (KeyError naming the missing part when there is none)."""
    parts = dotted.split(".")
    value: Any = bindings
    for i, part in enumerate(parts):
        if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
            with contextlib.suppress(ValueError):  # a string holding JSON (a workflow manifest): walk in
                value = json.loads(value)
        if part == "*" and isinstance(value, list):  # every item: the list of what each one holds
            rest = ".".join(parts[i + 1 :])
            found = [lookup_or_none(item, rest) if rest else item for item in value]
            return [item for item in found if item is not None]
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            where = ".".join(parts[:i]) or parts[0]
            raise KeyError(f"${{{dotted}}}: {where} has no {part!r}")
    return value


def lookup_or_none(data: Any, dotted: str) -> Any:
    try:
        return lookup(data, dotted)
    except KeyError:
        return None


def malformed(entry: Any) -> str:
    """Why an entry cannot be used ('' when it can): parse-time check of examples.yaml."""
    if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
        return "each entry is a mapping with a `field:` path"
    checks = [k for k in entry if k != "field"]
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        return f"unknown check(s) {unknown}; known: {', '.join(CHECKS)}"
    if not checks:
        return f"entry for {entry['field']!r} has no check ({', '.join(CHECKS)})"
    for key in ("in", "not_in", "contains", "excludes", "sequence", "tgz_files"):
        if key in entry and not isinstance(entry[key], list):
            return f"{key}: wants a list"
    if "matches" in entry:
        try:
            re.compile(str(entry["matches"]))
        except re.error as exc:
            return f"matches: not a regex ({exc})"
    return ""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()  # protojson booleans, as YAML writes them
    return str(value)


def tgz_members(value: Any) -> list[str] | None:
    """Names of the files in a gzipped tar given as protojson bytes (standard base64); None when
    the value is not one."""
    try:
        data = base64.b64decode(str(value), validate=True)
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as archive:
            return [member.name.removeprefix("./") for member in archive.getmembers() if member.isfile()]
    except (binascii.Error, OSError, EOFError, zlib.error, tarfile.TarError, ValueError):
        return None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def field_mismatch(data: Any, wanted: dict[str, Any]) -> tuple[str, str] | None:
    """``(expected, actual)`` when ``data`` breaks the entry ``wanted``, else None.

    Values compare as text (enum names, protojson numbers and timestamps), except the
    numeric bounds; a missing field satisfies no check but ``absent`` and ``count: 0``."""
    path = str(wanted["field"])
    value = lookup_or_none(data, path)
    if value is None:
        shown = "nothing"
    else:
        shown = (json.dumps(value) if isinstance(value, list | dict) else _text(value)) or "''"
    if "in" in wanted:
        accepted = [_text(v) for v in wanted["in"]]
        if value is None or _text(value) not in accepted:
            return f"{path} in {accepted}", shown
    if "not_in" in wanted:
        refused = [_text(v) for v in wanted["not_in"]]
        if value is None or _text(value) in refused:
            return f"{path} not in {refused}", shown
    if "equals" in wanted and (value is None or _text(value) != _text(wanted["equals"])):
        return f"{path} = {_text(wanted['equals'])!r}", shown
    if "absent" in wanted:
        unset = value in ZERO_VALUES
        if bool(wanted["absent"]) != unset:
            return (f"{path} unset" if wanted["absent"] else f"{path} set"), shown
    items = value if isinstance(value, list) else ([] if value is None else None)
    if "count" in wanted and (items is None or len(items) != int(wanted["count"])):
        actual = shown if items is None else f"{len(items)}: {shown}"
        return f"{path}: {int(wanted['count'])} item(s)", actual
    if "contains" in wanted:
        held = {_text(v) for v in items or []}
        missing = [_text(v) for v in wanted["contains"] if _text(v) not in held]
        if items is None or missing:
            return f"{path} holding {missing or wanted['contains']}", shown
    if "excludes" in wanted:
        held = {_text(v) for v in items or []}
        present = [_text(v) for v in wanted["excludes"] if _text(v) in held]
        if items is None or present:
            return f"{path} without {present or wanted['excludes']}", shown
    if "sequence" in wanted:
        expected_items = [_text(v) for v in wanted["sequence"]]
        if items is None or [_text(v) for v in items] != expected_items:
            return f"{path} = {expected_items}", shown
    if "present" in wanted and bool(wanted["present"]) != (value is not None):
        return (f"{path} present" if wanted["present"] else f"{path} missing"), shown
    if "matches" in wanted and (value is None or not re.fullmatch(str(wanted["matches"]), _text(value))):
        return f"{path} matching {wanted['matches']!r}", shown
    if "tgz_files" in wanted:
        members = tgz_members(value) if value is not None else None
        missing = [_text(v) for v in wanted["tgz_files"] if members is None or _text(v) not in members]
        if missing:
            held = "not a gzipped tar" if members is None else f"a gzipped tar of {members}"
            return f"{path}: a gzipped tar holding {missing}", held
    for key, ok in (("at_least", lambda n, b: n >= b), ("at_most", lambda n, b: n <= b)):
        if key in wanted:
            number, bound = _number(value), _number(wanted[key])
            if number is None or bound is None or not ok(number, bound):
                return f"{path} {'>=' if key == 'at_least' else '<='} {wanted[key]}", shown
    return None
