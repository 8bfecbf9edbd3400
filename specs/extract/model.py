"""What a parsed seed document holds, whatever its format.

Names of declarations are already qualified; type references are kept *as
written*, to be resolved once every document of the family is merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCALARS = frozenset(
    {"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64"}
    | {"fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes"}
)
LABELS = frozenset({"repeated", "optional", "required"})


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
