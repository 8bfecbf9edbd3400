"""Extract the documented API inventory from the seed documents.

The seeds come in three formats, each with its own parser that turns one
document into a :class:`Doc` (names of declarations already qualified, type
references kept *as written* together with the scope they appear in):

- reStructuredText with ``csv-table`` blocks (:func:`parse_rst`);
- a ``.proto`` file flattened onto one line, comments included (:func:`parse_proto`);
- plain text tables with one cell per line and empty cells dropped
  (:func:`parse_cells`), as copied from rendered HTML pages.

:func:`normalise` then merges every document of one family (earlier seed
files win; later ones fill gaps; disagreements are recorded as notes), resolves
type references to full names with protobuf's scoping rules and writes the
stable JSON shape read by :func:`protoconform.specs.load_inventory`.

Run ``python -m protoconform.specs.extract --seeds DIR --out DIR``; running it
twice on the same seeds gives byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import pkgutil
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

SCALARS = frozenset(
    {"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64"}
    | {"fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes"}
)
LABELS = frozenset({"repeated", "optional", "required"})

# Declarations kept in each family's inventory: the family's own packages only.
# Well-known types documented alongside (google.protobuf.*) still help resolve names.
FAMILY_PREFIXES: dict[str, tuple[str, ...]] = {
    "flyte": ("flyteidl.",),
    "kfp": ("api.",),
    "armonik": ("armonik.",),
}
# Package roots that make a dotted reference fully qualified even when the docs
# declare nothing under them.
EXTERNAL_ROOTS = ("google.",)


# -- document model ------------------------------------------------------------


@dataclass
class DocField:
    name: str
    type: str  # as written: scalar, short, relative or fully qualified
    label: str = ""
    description: str = ""
    number: int | None = None


@dataclass
class DocMessage:
    name: str  # full name
    fields: list[DocField] = field(default_factory=list)


@dataclass
class DocEnumValue:
    name: str
    number: int
    description: str = ""


@dataclass
class DocEnum:
    name: str
    values: list[DocEnumValue] = field(default_factory=list)


@dataclass
class DocMethod:
    name: str
    request: str  # as written
    response: str
    client_streaming: bool = False
    server_streaming: bool = False
    description: str = ""


@dataclass
class DocService:
    name: str  # full name
    methods: list[DocMethod] = field(default_factory=list)


@dataclass
class Doc:
    """One seed document, parsed."""

    source: str
    messages: list[DocMessage] = field(default_factory=list)
    enums: list[DocEnum] = field(default_factory=list)
    services: list[DocService] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def clean_text(text: str) -> str:
    """Collapse whitespace; descriptions are compared and stored in this form."""
    return " ".join(text.split())


def split_stream(written: str) -> tuple[str, bool]:
    """``stream X`` or ``X stream`` -> (``X``, True)."""
    words = written.split()
    streaming = "stream" in words
    rest = [word for word in words if word != "stream"]
    if len(rest) != 1:
        raise ValueError(f"cannot read a type from {written!r}")
    return rest[0], streaming


# -- format 1: reStructuredText (protoc-gen-doc) ------------------------------

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


# -- format 2: a flattened .proto file -----------------------------------------

# A .proto whose line breaks were lost: a `//` comment has no end, so the scanner
# looks for the next *statement* and takes whatever it skipped as comment text.
# Each scope has its own statement grammar, so comment words are never read as
# e.g. an enum value inside a message.
_P_OPTION = r"(?P<option>\boption\s+(?:\([\w.]+\)|\w+)(?:\.[\w.]+)?\s*=\s*)"
_P_CLOSE = r"(?P<close>\})"
_P_OPEN = r"(?P<open>\b(?P<kind>message|enum|service|oneof)\s+(?P<name>\w+)\s*\{)"
_P_FIELD = (
    r"(?P<field>(?:\b(?P<label>repeated|optional|required)\s+)?"
    r"(?P<ftype>map\s*<\s*[\w.]+\s*,\s*\.?[\w.]+\s*>|\.?[A-Za-z_][\w.]*)\s+"
    r"(?P<fname>[A-Za-z_]\w*)\s*=\s*(?P<fnum>\d+)\s*(?:\[[^\]]*\]\s*)?;)"
)
_P_RESERVED = r"(?P<reserved>\b(?:reserved|extensions)\b[^;]*;)"
_P_VALUE = r"(?P<value>\b(?P<vname>[A-Za-z_]\w*)\s*=\s*(?P<vnum>-?\d+)\s*(?:\[[^\]]*\]\s*)?;)"
_P_RPC = (
    r"(?P<rpc>\brpc\s+(?P<rname>\w+)\s*\(\s*(?P<req>(?:stream\s+)?\.?[\w.]+)\s*\)\s*"
    r"returns\s*\(\s*(?P<resp>(?:stream\s+)?\.?[\w.]+)\s*\)\s*(?P<rend>[;{]))"
)
_P_HEADER = (
    r"(?P<header>\b(?:(?:syntax|edition)\s*=\s*\"[^\"]*\"|import\s+(?:public\s+|weak\s+)?\"[^\"]*\""
    r"|package\s+(?P<package>[\w.]+))\s*;)"
)
_PROTO_GRAMMAR = {
    "file": re.compile("|".join([_P_HEADER, _P_OPTION, _P_OPEN])),
    "message": re.compile("|".join([_P_OPEN, _P_OPTION, _P_RESERVED, _P_FIELD, _P_CLOSE])),
    "oneof": re.compile("|".join([_P_OPTION, _P_FIELD, _P_CLOSE])),
    "enum": re.compile("|".join([_P_OPTION, _P_RESERVED, _P_VALUE, _P_CLOSE])),
    "service": re.compile("|".join([_P_OPTION, _P_RPC, _P_CLOSE])),
}


def _skip_option_value(text: str, pos: int) -> int:
    """Skip an option value (a scalar up to ``;`` or a ``{...}`` aggregate)."""
    depth = 0
    while pos < len(text):
        char = text[pos]
        if char == '"':  # a string literal: braces and semicolons inside do not count
            end = text.find(char, pos + 1)
            pos = len(text) if end < 0 else end + 1
            continue
        pos += 1
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                break
        elif char == ";" and depth == 0:
            return pos
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos + 1 if pos < len(text) and text[pos] == ";" else pos


def _comment(skipped: str) -> str:
    return clean_text(skipped.replace("//", " ")) if "//" in skipped else ""


def parse_proto(text: str, source: str) -> Doc:
    """Parse a .proto source, with or without its line breaks."""
    doc = Doc(source)
    package = ""
    # (kind, full name, the DocMessage/DocEnum/DocService it fills)
    stack: list[tuple[str, str, object]] = [("file", "", None)]
    pos = 0
    while True:
        kind, scope, target = stack[-1]
        match = _PROTO_GRAMMAR[kind].search(text, pos)
        if match is None:
            break
        comment = _comment(text[pos : match.start()])
        pos = match.end()
        group = match.lastgroup
        if group == "header":
            package = match.group("package") or package
        elif group == "option":
            pos = _skip_option_value(text, pos)
        elif group == "reserved":
            pass  # reserved numbers and names declare nothing
        elif group == "value":
            target.values.append(DocEnumValue(match["vname"], int(match["vnum"]), comment))
        elif group == "open":
            name = match.group("name")
            if match.group("kind") == "oneof":
                stack.append(("oneof", scope, target))
                continue
            full = ".".join(part for part in ((scope if kind != "file" else package), name) if part)
            new: object = {
                "message": DocMessage(full),
                "enum": DocEnum(full),
                "service": DocService(full),
            }[match.group("kind")]
            getattr(doc, match.group("kind") + "s").append(new)
            stack.append((match.group("kind"), full, new))
        elif group == "field":
            ftype, label = re.sub(r"\s+", "", match["ftype"]), match["label"] or ""
            if ftype.startswith("map<"):
                label = "map"
            target.fields.append(DocField(match["fname"], ftype, label, comment, int(match["fnum"])))
        elif group == "rpc":
            req, cs = split_stream(match["req"])
            resp, ss = split_stream(match["resp"])
            target.methods.append(DocMethod(match["rname"], req, resp, cs, ss, comment))
            if match["rend"] == "{":
                pos = _skip_option_value(text, match.start("rend"))
        elif group == "close":
            stack.pop()
            if not stack:
                doc.notes.append(f"{source}: unbalanced '}}' at offset {match.start()}")
                break
    if len(stack) != 1:
        doc.notes.append(f"{source}: {len(stack) - 1} unclosed block(s) at end of file")
    return doc


# -- format 3: plain text tables, one cell per line -----------------------------

_CELL_HEADERS: dict[tuple[str, ...], str] = {
    ("Field", "Type", "Label", "Description"): "message",
    ("Name", "Number", "Description"): "enum",
    ("Method Name", "Request Type", "Response Type", "Description"): "service",
}
_PROTO_FILE = re.compile(r"^[\w./-]+\.proto$")
_CAPTION = re.compile(r"^(?:\S+ (?:type fields|service methods)|Enum \S+ values)$")
_BLOCK_NAME = re.compile(r"^(?=.*[a-z])[A-Z][A-Za-z0-9]*(?:\.[A-Z][A-Za-z0-9]*)*$")  # Message, Message.Nested
_IDENT = re.compile(r"^\.?[A-Za-z_][\w.]*$")
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_TYPE_CELL = re.compile(r"^(?:stream\s+)?\.?[A-Za-z_][\w.]*(?:\s+stream)?$")
_INT = re.compile(r"^-?\d+$")
_END_OF_DOC = "Scalar Value Types"


class _Cells:
    """Cursor over the non-empty cell lines of one ``.proto`` section.

    Empty cells are dropped by the rendering, so where a row ends is inferred
    from the shape of the lines: a field row is ``name`` (snake case) and a
    ``type``, an optional label and an optional free-text description; a new
    declaration is a CamelCase name followed by description lines and a table
    header.  A declaration without a table (an empty message) looks just like
    a one-word description (``Is``, ``Equal``) followed by the next declaration;
    it is taken as a declaration only when the document uses the name as a type
    (``referenced``; ``None`` accepts every such name)."""

    def __init__(self, lines: list[str], referenced: set[str] | None) -> None:
        self.lines = lines
        self.referenced = referenced

    def at(self, i: int) -> str:
        return self.lines[i] if i < len(self.lines) else ""

    def header(self, i: int) -> tuple[str, int] | None:
        for cells, kind in _CELL_HEADERS.items():
            if tuple(self.lines[i : i + len(cells)]) == cells:
                return kind, len(cells)
        return None

    def is_text(self, i: int) -> bool:
        """A free-text line (description), as opposed to a name, type or header."""
        return i < len(self.lines) and not self.header(i) and not _IDENT.match(self.lines[i])

    def is_used_as_type(self, name: str) -> bool:
        return self.referenced is None or any(
            ref == name or ref.endswith("." + name) for ref in self.referenced
        )

    def is_block(self, i: int) -> bool:
        while i < len(self.lines) and _BLOCK_NAME.match(self.lines[i]):
            j = i + 1
            while self.is_text(j):
                j += 1
            if self.header(j):
                return True
            if not self.is_used_as_type(self.lines[i]):
                return False
            if j >= len(self.lines):
                return True
            i = j
        return False

    def is_row(self, kind: str, i: int) -> bool:
        line, nxt = self.at(i), self.at(i + 1)
        if kind == "message":
            return bool(_FIELD_NAME.match(line) and _IDENT.match(nxt))
        if kind == "enum":
            return bool(_IDENT.match(line) and _INT.match(nxt))
        return bool(_IDENT.match(line) and _TYPE_CELL.match(nxt) and _TYPE_CELL.match(self.at(i + 2)))

    def text_until_row(self, kind: str, i: int) -> tuple[str, int]:
        parts = []
        while (
            i < len(self.lines) and not self.is_row(kind, i) and not self.is_block(i) and not self.header(i)
        ):
            parts.append(self.lines[i])
            i += 1
        return clean_text(" ".join(parts)), i


def _split_pipes(description: str) -> tuple[str, list[list[str]]]:
    """Markdown table rows that leaked into a description cell.

    ``text | | name | type | label | desc |`` is the end of one cell followed by a
    whole row whose line breaks were lost; return the text and the rows."""
    if "|" not in description:
        return description, []
    head, *rest = (part.strip() for part in description.split("|"))
    rows = []
    while len(rest) >= 5 and rest[0] == "":
        rows.append(rest[1:5])
        rest = rest[5:]
    return head, rows


def parse_cells(text: str, source: str, package_for: Callable[[str], str]) -> Doc:
    """Parse one-cell-per-line tables; ``package_for(file name)`` gives each
    section's package, which the text itself does not state."""
    doc = Doc(source)
    sections: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip().removesuffix("#").strip()
        if line == _END_OF_DOC:
            break
        if not line or line == "Top" or _CAPTION.match(line):
            continue
        if _PROTO_FILE.match(line):
            sections.append((line, []))
        elif sections:
            sections[-1][1].append(line)
    # Pass 1 learns which names the document uses as types (the type cells do
    # not depend on where descriptions end); pass 2 uses that to tell empty
    # declarations from one-word descriptions.
    packages = {file_name: package_for(file_name) for file_name, _ in sections}
    first = Doc(source)
    for file_name, lines in sections:
        _parse_cell_section(first, _Cells(lines, None), file_name, packages[file_name])
    referenced = {f.type.lstrip(".") for m in first.messages for f in m.fields}
    referenced |= {t.lstrip(".") for s in first.services for m in s.methods for t in (m.request, m.response)}
    for file_name, lines in sections:
        _parse_cell_section(doc, _Cells(lines, referenced), file_name, packages[file_name])
    return doc


def _parse_cell_section(doc: Doc, cells: _Cells, file_name: str, package: str) -> None:
    i = 0
    while i < len(cells.lines) and not cells.is_block(i):
        i += 1  # the file's own description
    while i < len(cells.lines):
        if not cells.is_block(i):
            doc.notes.append(f"{doc.source}: {file_name}: skipped unexpected line {cells.lines[i]!r}")
            i += 1
            continue
        full = f"{package}.{cells.lines[i]}"
        i += 1
        while cells.is_text(i):
            i += 1  # the declaration's description
        header = cells.header(i)
        if header is None:  # a declaration without a table: a message with no fields
            doc.messages.append(DocMessage(full))
            continue
        kind, width = header
        i += width
        if kind == "message":
            message = DocMessage(full)
            while cells.is_row("message", i):
                name, ftype = cells.lines[i : i + 2]
                i += 2
                label = cells.lines[i] if cells.at(i) in LABELS else ""
                i += bool(label)
                description, i = cells.text_until_row("message", i)
                description, leaked = _split_pipes(description)
                message.fields.append(DocField(name, ftype, label, description))
                for lname, ltype, llabel, ldesc in leaked:
                    doc.notes.append(
                        f"{doc.source}: {full}.{lname} recovered from a table row run into "
                        f"the description of {name}"
                    )
                    message.fields.append(DocField(lname, ltype, llabel, ldesc))
            doc.messages.append(message)
        elif kind == "enum":
            enum = DocEnum(full)
            while cells.is_row("enum", i):
                name, number = cells.lines[i : i + 2]
                description, i = cells.text_until_row("enum", i + 2)
                enum.values.append(DocEnumValue(name, int(number), _split_pipes(description)[0]))
            doc.enums.append(enum)
        else:
            service = DocService(full)
            while cells.is_row("service", i):
                name, request, response = cells.lines[i : i + 3]
                description, i = cells.text_until_row("service", i + 3)
                req, cs = split_stream(request)
                resp, ss = split_stream(response)
                service.methods.append(DocMethod(name, req, resp, cs, ss, _split_pipes(description)[0]))
            doc.services.append(service)


# -- packages of files named only by their file name ---------------------------


def flyte_package(file_name: str) -> str:
    """Flyte lays out files by package: ``flyteidl/service/admin.proto`` -> ``flyteidl.service``."""
    return file_name.rpartition("/")[0].replace("/", ".")


def armonik_package_map() -> dict[str, str]:
    """File name -> package, as declared by the files in the armonik wheel."""
    try:
        root = importlib.import_module("armonik.protogen")
    except ImportError:
        return {}
    packages = {}
    for info in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
        if info.name.endswith("_pb2"):
            file = importlib.import_module(info.name).DESCRIPTOR
            packages[file.name.rpartition("/")[2]] = file.package
    return packages


def armonik_package_by_convention(file_name: str) -> str:
    """``sessions_service.proto`` -> ``armonik.api.grpc.v1.sessions``; a status
    file (``task_status.proto``) is its own package."""
    stem = file_name.rpartition("/")[2].removesuffix(".proto")
    stem = re.sub(r"_(common|fields|filters|service)$", "", stem)
    return f"armonik.api.grpc.v1.{stem}"


def armonik_package_resolver(notes: list[str]) -> Callable[[str], str]:
    # The docs give bare file names and short type names.  Which package a file
    # declares is a fact about the .proto sources, which the wheel carries; the
    # naming convention is only a fallback (it misses objects.proto and
    # filters_common.proto, which sit in armonik.api.grpc.v1 itself).
    declared = armonik_package_map()

    def resolve(file_name: str) -> str:
        base = file_name.rpartition("/")[2]
        if base in declared:
            return declared[base]
        guess = armonik_package_by_convention(base)
        notes.append(f"package of {base} not found in the armonik wheel; assumed {guess}")
        return guess

    return resolve


# -- detection ---------------------------------------------------------------


def detect_format(text: str) -> str:
    if ".. csv-table::" in text:
        return "rst"
    if re.search(r'\bsyntax\s*=\s*"proto[23]"', text) and re.search(r"\b(message|service)\s+\w+\s*\{", text):
        return "proto"
    return "cells"


def detect_family(text: str) -> str:
    if "flyteidl" in text:
        return "flyte"
    if "armonik" in text:
        return "armonik"
    if re.search(r"\bpackage\s+api\s*;", text):
        return "kfp"
    raise ValueError("cannot tell which API family this document describes")


def parse_document(text: str, source: str, family: str, notes: list[str]) -> Doc:
    fmt = detect_format(text)
    if fmt == "rst":
        return parse_rst(text, source)
    if fmt == "proto":
        return parse_proto(text, source)
    package_for = armonik_package_resolver(notes) if family == "armonik" else flyte_package
    return parse_cells(text, source, package_for)


# -- normalisation: merge documents, resolve names -----------------------------


def _compatible(a: str, b: str) -> bool:
    """The same type written more or less qualified (``Task`` vs ``flyteidl.admin.Task``)."""
    a, b = a.lstrip("."), b.lstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _longer(a: str, b: str) -> str:
    return a if len(a.lstrip(".")) >= len(b.lstrip(".")) else b


class _Merger:
    """Fold several documents of one family into one; the first mention wins."""

    def __init__(self) -> None:
        self.messages: dict[str, DocMessage] = {}
        self.enums: dict[str, DocEnum] = {}
        self.services: dict[str, DocService] = {}
        self.notes: list[str] = []

    def add(self, doc: Doc) -> None:
        for message in doc.messages:
            self._merge_message(doc.source, message)
        for enum in doc.enums:
            self._merge_enum(doc.source, enum)
        for service in doc.services:
            self._merge_service(doc.source, service)

    def _conflict(self, source: str, subject: str, what: str, kept: object, other: object) -> None:
        self.notes.append(f"{source}: {subject}: {what} {other!r} conflicts with {kept!r} (kept)")

    def _merge_message(self, source: str, message: DocMessage) -> None:
        kept = self.messages.setdefault(message.name, message)
        if kept is message:
            return
        by_name = {f.name: f for f in kept.fields}
        for new in message.fields:
            old = by_name.get(new.name)
            subject = f"{message.name}.{new.name}"
            if old is None:
                self.notes.append(f"{source}: {subject} documented only here")
                kept.fields.append(new)
                continue
            if not _compatible(old.type, new.type):
                self._conflict(source, subject, "type", old.type, new.type)
            else:
                old.type = _longer(old.type, new.type)
            if old.label != new.label:
                self._conflict(source, subject, "label", old.label, new.label)
            if old.number is None:
                old.number = new.number
            elif new.number is not None and new.number != old.number:
                self._conflict(source, subject, "number", old.number, new.number)
            old.description = old.description or new.description

    def _merge_enum(self, source: str, enum: DocEnum) -> None:
        kept = self.enums.setdefault(enum.name, enum)
        if kept is enum:
            return
        by_name = {v.name: v for v in kept.values}
        for new in enum.values:
            old = by_name.get(new.name)
            if old is None:
                self.notes.append(f"{source}: {enum.name}.{new.name} documented only here")
                kept.values.append(new)
            elif old.number != new.number:
                self._conflict(source, f"{enum.name}.{new.name}", "number", old.number, new.number)

    def _merge_service(self, source: str, service: DocService) -> None:
        kept = self.services.setdefault(service.name, service)
        if kept is service:
            return
        by_name = {m.name: m for m in kept.methods}
        for new in service.methods:
            old = by_name.get(new.name)
            subject = f"{service.name}.{new.name}"
            if old is None:
                self.notes.append(f"{source}: {subject} documented only here")
                kept.methods.append(new)
                continue
            for attr in ("request", "response"):
                mine, theirs = getattr(old, attr), getattr(new, attr)
                if _compatible(mine, theirs):
                    setattr(old, attr, _longer(mine, theirs))
                else:
                    self._conflict(source, subject, attr, mine, theirs)
            for attr in ("client_streaming", "server_streaming"):
                if getattr(old, attr) != getattr(new, attr):
                    self._conflict(source, subject, attr, getattr(old, attr), getattr(new, attr))
            old.description = old.description or new.description


def _coverage_note(source: str, doc: Doc, merger: _Merger) -> str | None:
    """Summarise what an overlapping later document leaves out (an older revision)."""
    lacking = []
    for service in doc.services:
        names = {m.name for m in service.methods}
        lacking += [
            f"{service.name}.{m.name}" for m in merger.services[service.name].methods if m.name not in names
        ]
    for message in doc.messages:
        names = {f.name for f in message.fields}
        lacking += [
            f"{message.name}.{f.name}" for f in merger.messages[message.name].fields if f.name not in names
        ]
    if not lacking:
        return None
    return f"{source}: lacks {len(lacking)} method(s)/field(s) the other documents give: {', '.join(lacking)}"


class _Resolver:
    """Resolve type references with protobuf's scoping rules."""

    def __init__(self, known: Iterable[str]) -> None:
        self.known = set(known)
        self.roots = {name.split(".")[0] + "." for name in self.known} | set(EXTERNAL_ROOTS)
        self.notes: list[str] = []

    def __call__(self, written: str, scope: str, where: str) -> str:
        if written.startswith("map<"):
            key, value = written[4:-1].split(",")
            return f"map<{self(key, scope, where)},{self(value, scope, where)}>"
        name = written.lstrip(".")
        if name in SCALARS or written.startswith("."):
            return name
        parts = scope.split(".") if scope else []
        for depth in range(len(parts), -1, -1):  # innermost scope first
            candidate = ".".join([*parts[:depth], name])
            if candidate in self.known:
                return candidate
        if "." in name and any(name.startswith(root) for root in self.roots):
            return name  # fully qualified, declared outside these documents
        package = scope.split(".")
        while package and package[-1][:1].isupper():  # drop enclosing message names
            package.pop()
        assumed = ".".join([*package, name])
        self.notes.append(f"{where}: type {written!r} is not declared in the documents; assumed {assumed}")
        return assumed


def normalise(family: str, docs: list[Doc], extra_notes: Iterable[str] = ()) -> dict:
    """Merge a family's documents into the inventory JSON shape."""
    merger = _Merger()
    notes = list(extra_notes)
    for doc in docs:
        notes += doc.notes
        overlapping = any(s.name in merger.services for s in doc.services) or any(
            m.name in merger.messages for m in doc.messages
        )
        merger.add(doc)
        if overlapping and (note := _coverage_note(doc.source, doc, merger)):
            notes.append(note)
    notes += merger.notes

    resolve = _Resolver([*merger.messages, *merger.enums])
    ours = FAMILY_PREFIXES[family]

    def own(name: str) -> bool:
        return name.startswith(ours)

    services = []
    for service in sorted(merger.services.values(), key=lambda s: s.name):
        if not own(service.name):
            continue
        package = service.name.rpartition(".")[0]
        methods = [
            {
                "name": m.name,
                "request": resolve(m.request, package, f"{service.name}.{m.name}"),
                "response": resolve(m.response, package, f"{service.name}.{m.name}"),
                "client_streaming": m.client_streaming,
                "server_streaming": m.server_streaming,
                "description": m.description,
            }
            for m in service.methods
        ]
        services.append({"name": service.name, "methods": methods})
    messages = []
    for message in sorted(merger.messages.values(), key=lambda m: m.name):
        if not own(message.name):
            continue
        fields = [
            {
                "name": f.name,
                "type": resolve(f.type, message.name, f"{message.name}.{f.name}"),
                "label": f.label,
                "number": f.number,
                "description": f.description,
            }
            for f in message.fields
        ]
        messages.append({"name": message.name, "fields": fields})
    enums = [
        {
            "name": enum.name,
            "values": [
                {"name": v.name, "number": v.number, "description": v.description} for v in enum.values
            ],
        }
        for enum in sorted(merger.enums.values(), key=lambda e: e.name)
        if own(enum.name)
    ]
    return {
        "family": family,
        "sources": [doc.source for doc in docs],
        "services": services,
        "messages": messages,
        "enums": enums,
        "notes": notes + resolve.notes,
    }


# -- driver ------------------------------------------------------------------


def extract(seeds: Path) -> dict[str, dict]:
    """Parse every seed document and return each family's inventory."""
    by_family: dict[str, list[Doc]] = {}
    notes: dict[str, list[str]] = {}
    for path in sorted(p for p in seeds.iterdir() if p.is_file()):
        text = path.read_text(encoding="utf-8")
        family = detect_family(text)
        family_notes = notes.setdefault(family, [])
        by_family.setdefault(family, []).append(parse_document(text, path.name, family, family_notes))
    return {family: normalise(family, docs, notes[family]) for family, docs in sorted(by_family.items())}


def dumps(inventory: dict) -> str:
    return json.dumps(inventory, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def summary(inventory: dict) -> str:
    methods = sum(len(s["methods"]) for s in inventory["services"])
    return (
        f"{inventory['family']}: {len(inventory['services'])} services, {methods} methods, "
        f"{len(inventory['messages'])} messages, {len(inventory['enums'])} enums, "
        f"{len(inventory['notes'])} notes"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=Path, required=True, help="folder of seed documents")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "inventory",
        help="folder for <family>.json (default: the packaged specs/inventory)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the per-family summary")


def run(args: argparse.Namespace) -> int:
    inventories = extract(args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    for family, inventory in inventories.items():
        (args.out / f"{family}.json").write_text(dumps(inventory), encoding="utf-8")
        print(summary(inventory))
        if not args.quiet:
            for note in inventory["notes"]:
                print(f"  note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="protoconform specs extract", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
