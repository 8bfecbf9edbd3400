"""Format 1: reStructuredText with ``csv-table`` blocks, as protoc-gen-doc writes it."""

from __future__ import annotations

import csv
import re

from protoconform.specs.extract.model import (
    Doc,
    DocEnum,
    DocEnumValue,
    DocField,
    DocMessage,
    DocMethod,
    DocService,
    clean_text,
    split_stream,
)

_RST_ANCHOR = re.compile(r"^\.\. _ref_(?P<target>[^:\s]+):\s*$")
_RST_REF = re.compile(r":ref:`ref_([^`]+)`")
_RST_END = re.compile(r"^\s+end (messages|enums|HasExtensions|services)\s*$")
_RST_NEXT_SECTION = {"messages": "enums", "enums": "extensions", "HasExtensions": "services", "services": ""}


def _rst_type(cell: str) -> str:
    return _RST_REF.sub(r"\1", cell).strip()


def _rst_description(cell: str) -> str:
    return clean_text(_RST_REF.sub(r"\1", cell))


def _rst_rows(body: list[str]) -> list[list[str]]:
    """The rows of the csv-table in ``body`` (the lines after an anchor).

    Not read with :mod:`csv`: the generator does not escape quotes inside cells
    (a description quotes ``"Retrieve a signal, ..."``), so a row is split on the
    ``", "`` separators of its leading columns and the last column takes the rest."""
    start = next((i for i, line in enumerate(body) if line.startswith(".. csv-table::")), None)
    if start is None:
        return []
    columns = 0
    records: list[str] = []
    for line in body[start + 1 :]:
        option = line.strip()
        if not records and option.startswith(":header:"):
            columns = len(next(csv.reader([option.removeprefix(":header:")], skipinitialspace=True)))
        elif line.startswith('   "'):
            records.append(option)
        elif records:
            records[-1] += "\n" + line  # a cell spanning lines
    rows = []
    for record in records:
        record = record.strip()
        if not (record.startswith('"') and record.endswith('"')):
            raise ValueError(f"unreadable csv-table row: {record[:80]!r}")
        rows.append(record[1:-1].split('", "', columns - 1))
    return rows


def parse_rst(text: str, source: str) -> Doc:
    """Parse protoc-gen-doc reStructuredText: every declaration has an anchor
    ``.. _ref_<full name>:``; its kind follows from the ``end messages`` /
    ``end enums`` / ``end services`` markers that close each group."""
    doc = Doc(source)
    lines = text.splitlines()
    section = "messages"
    i = 0
    while i < len(lines):
        anchor = _RST_ANCHOR.match(lines[i])
        end = _RST_END.match(lines[i])
        i += 1
        if end:
            section = _RST_NEXT_SECTION[end.group(1)]
            continue
        if not anchor:
            continue
        target = anchor.group("target")
        if target.endswith(".proto"):  # a file heading: a new group of messages begins
            section = "messages"
            continue
        body_end = i
        while body_end < len(lines) and not (
            lines[body_end].startswith(".. _ref_") or lines[body_end].rstrip() == ".."
        ):
            body_end += 1
        body, i = lines[i:body_end], body_end
        rows = _rst_rows(body)
        if section == "messages":
            fields = [DocField(r[0], _rst_type(r[1]), r[2], _rst_description(r[3])) for r in rows]
            doc.messages.append(DocMessage(target, fields))
        elif section == "enums":
            values = [DocEnumValue(r[0], int(r[1]), _rst_description(r[2])) for r in rows]
            doc.enums.append(DocEnum(target, values))
        elif section == "services":
            methods = []
            for name, request, response, description in rows:
                req, cs = split_stream(_rst_type(request))
                resp, ss = split_stream(_rst_type(response))
                methods.append(DocMethod(name, req, resp, cs, ss, _rst_description(description)))
            doc.services.append(DocService(target, methods))
        else:
            doc.notes.append(f"{source}: anchor {target} outside any messages/enums/services group, ignored")
    return doc
