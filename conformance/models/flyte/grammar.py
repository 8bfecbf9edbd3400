"""flyteadmin's filter grammar as a client writes and a model evaluates it (specs/flyte lists.yaml).

A filter is expressions ``func(field,value)`` joined by the ``separator``; repeated functions take
values joined by the ``list_separator``; a field names another entity with its ``prefixes`` key.
Which functions exist and how many values each takes is read from specs; what each one means is
the SQL flyteadmin runs (the rule ``flyte.lists.filter-applied``): comparisons, ``IN``, and ``LIKE``
(``contains`` is ``LIKE '%v%'``, ``not_like`` is ``NOT LIKE v``), case-sensitive, NULL never matching.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protoconform.specs.rules import FamilyRules

# What each function means in SQL (the specs name them and their arity; the meaning is the database's).
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
LIKE = {"contains": True, "not_like": False}  # function -> whether a match keeps the row
MEMBERSHIP = {"value_in": True, "value_not_in": False}
ORDERED_KINDS = ("text", "int", "timestamp")  # column kinds a model reads and compares


@dataclass(frozen=True)
class Expression:
    function: str
    entity: str  # the short code of the entity the field belongs to
    field: str  # as written in the filter (prefixed when it names a joined entity)
    column: str
    values: tuple[Any, ...]  # typed as the column (timestamps in nanoseconds)
    texts: tuple[str, ...]  # as written

    def holds(self, actual: Any) -> bool:
        if actual is None:  # SQL: a comparison with NULL is never true
            return False
        if self.function in MEMBERSHIP:
            return (actual in self.values) == MEMBERSHIP[self.function]
        wanted = self.values[0]
        if self.function in LIKE:
            pattern = f"%{wanted}%" if self.function == "contains" else str(wanted)
            return like(pattern, str(actual)) == LIKE[self.function]
        return COMPARISONS[self.function](actual, wanted)


@functools.lru_cache(maxsize=512)
def _like_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.DOTALL
    )


def like(pattern: str, text: str) -> bool:
    """SQL LIKE, case-sensitive: ``%`` any run of characters, ``_`` exactly one."""
    return _like_pattern(pattern).fullmatch(text) is not None


class Grammar:
    """The filter grammar and the models' columns of one family's specs."""

    def __init__(self, rules: FamilyRules) -> None:
        spec = rules.extra["filters"]
        self.separator: str = spec["separator"]
        self.list_separator: str = spec["list_separator"]
        self.expression = re.compile(spec["expression"])
        self.arity: dict[str, str] = dict(spec["functions"])
        self.prefixes: dict[str, str] = dict(spec["prefixes"])  # prefix -> entity code
        self.models: dict[str, Any] = rules.extra["models"]
        unknown = set(self.arity) - set(COMPARISONS) - set(LIKE) - set(MEMBERSHIP)
        if unknown:
            raise KeyError(f"filter functions the model cannot evaluate: {sorted(unknown)}")

    def columns(self, entity: str) -> dict[str, str]:
        return dict(self.models[entity]["columns"])

    def joins(self, entity: str) -> list[str]:
        return list(self.models[entity]["joins"])

    def field(self, primary: str, entity: str, column: str) -> str:
        """How a filter on ``primary``'s listing names ``column`` of ``entity``."""
        if entity == primary:
            return column
        prefix = next(p for p, code in self.prefixes.items() if code == entity)
        return f"{prefix}.{column}"

    def functions(self, kind: str) -> list[str]:
        """The functions that apply to a column of ``kind`` (LIKE only to text)."""
        return sorted(f for f in self.arity if kind == "text" or f not in LIKE)

    def repeated(self, function: str) -> bool:
        return self.arity[function] == "repeated"

    def text(self, expressions: list[Expression]) -> str:
        return self.separator.join(
            f"{e.function}({e.field},{self.list_separator.join(e.texts)})" for e in expressions
        )

    def parse(self, text: str, primary: str) -> list[Expression]:
        """Expressions of ``text`` on ``primary``'s listing (filters specs write, e.g. ``implicit``)."""
        found = []
        for part in text.split(self.separator):
            match = self.expression.fullmatch(part)
            if match is None:
                raise ValueError(f"not a filter expression: {part!r}")
            function, field, raw = match.groups()
            entity, column = primary, field
            for prefix, code in self.prefixes.items():
                if field.startswith(prefix + "."):
                    entity, column = code, field[len(prefix) + 1 :]
            kind = self.columns(entity)[column]
            texts = tuple(raw.split(self.list_separator))
            values = tuple(int(t) if kind == "int" else t for t in texts)
            found.append(Expression(function, entity, field, column, values, texts))
        return found
