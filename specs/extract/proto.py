"""Format 2: a ``.proto`` file, possibly flattened onto one line with its comments."""

from __future__ import annotations

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
