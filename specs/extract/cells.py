"""Format 3: plain text tables with one cell per line and empty cells dropped,
as copied from rendered HTML pages."""

from __future__ import annotations

import re
from collections.abc import Callable

from protoconform.specs.extract.model import (
    LABELS,
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
