"""Tell a seed document's format and family, and parse it with the matching parser."""

from __future__ import annotations

import re

from protoconform.specs.extract.cells import parse_cells
from protoconform.specs.extract.model import Doc
from protoconform.specs.extract.packages import armonik_package_resolver, flyte_package
from protoconform.specs.extract.proto import parse_proto
from protoconform.specs.extract.rst import parse_rst


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
