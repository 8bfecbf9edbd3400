"""flyteadmin's list mechanics: its filter grammar, sort keys and offset page tokens.

The grammar, the entities a listing may join and the columns of every model are
data in ``specs/flyte/lists.yaml`` (``filters`` and ``models``); this module
evaluates them over the records of :mod:`.state`.  A filter is
``func(field,value)``, several joined by ``+``; a field may name another entity
(``launch_plan.name`` on executions); ``value_in``/``value_not_in`` take values
separated by ``;``.  A token is the decimal offset of the page; the next token is
offset + page length, given only when the page is full.

Selections are cached per query and store version, so paging through a large
listing sorts it once.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.state import TABLES, State

FILTER_FORMAT = "flyte.lists.filter-format"
FILTER_ENTITY = "flyte.lists.filter-entity"
FILTER_FIELD = "flyte.lists.filter-field"
FILTER_FUNCTION = "flyte.lists.filter-function"
FILTER_VALUE = "flyte.lists.filter-value"
FILTER_DURATION = "flyte.lists.filter-duration"
SORT_KEY = "flyte.lists.sort-key"
SORT_ORDER = "flyte.lists.sort-order"
SORT_UNGROUPED = "flyte.lists.sort-ungrouped"
TOKEN = "flyte.lists.token"

_INT = re.compile(r"[+-]?[0-9]+")
_GO_DURATION = re.compile(r"([+-]?)((?:[0-9]*\.?[0-9]+(?:ns|us|µs|ms|s|m|h))+)")
_GO_UNIT = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_TOKEN = 2**63 - 1


@dataclass(frozen=True)
class Filter:
    entity: str  # short code of the entity the field belongs to ("t", "e", "l"...)
    function: str
    column: str
    values: tuple[Any, ...]  # typed for the column; one value for single-value functions

    def holds(self, actual: Any) -> bool:
        if actual is None:  # SQL: a comparison with NULL is never true
            return False
        fn = self.function
        if fn == "value_in":
            return actual in self.values
        if fn == "value_not_in":
            return actual not in self.values
        wanted = self.values[0]
        if fn == "contains":
            return _like(f"%{wanted}%", actual)
        if fn == "not_like":
            return not _like(str(wanted), actual)
        comparisons: dict[str, Callable[[Any, Any], bool]] = {
            "eq": lambda a, b: a == b,
            "ne": lambda a, b: a != b,
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }
        return comparisons[fn](actual, wanted)


@lru_cache(maxsize=256)
def _like_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.DOTALL
    )


def _like(pattern: str, actual: Any) -> bool:
    """SQL LIKE, case-sensitive: ``%`` any run, ``_`` one character."""
    return _like_pattern(pattern).fullmatch(str(actual)) is not None


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool


class Contract:
    """The grammar and the models of ``specs/flyte/lists.yaml``."""

    def __init__(self, state: State) -> None:
        grammar = state.rules.extra["filters"]
        self.expression = re.compile(grammar["expression"])
        self.separator: str = grammar["separator"]
        self.list_separator: str = grammar["list_separator"]
        self.functions: dict[str, str] = dict(grammar["functions"])
        self.prefixes: dict[str, str] = dict(grammar["prefixes"])
        self.models: dict[str, dict[str, Any]] = state.rules.extra["models"]

    def columns(self, entity: str) -> dict[str, str]:
        return self.models[entity]["columns"]


# Column values of each entity's records, for filters and sort keys (see :mod:`.columns`).
Getter = Callable[[Any], Any]


def _parse_time(text: str) -> datetime:
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_go_duration(text: str) -> float:
    """Seconds of a float (seconds) or a Go duration such as ``1m30s``; ValueError otherwise."""
    try:
        number = float(text)
        if math.isfinite(number):
            return number
    except ValueError:
        pass
    match = _GO_DURATION.fullmatch(text)
    if match is None:
        if text in ("0", "+0", "-0"):
            return 0.0
        raise ValueError(text)
    total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _GO_UNIT.findall(match[2]))
    return -total if match[1] == "-" else total


def _typed(kind: str, text: str, entity: str, column: str) -> Any:
    try:
        if kind == "int":
            if not _INT.fullmatch(text):
                raise ValueError(text)
            return int(text)
        if kind == "timestamp":
            return _parse_time(text)
        if kind == "duration":
            try:
                return parse_go_duration(text)
            except ValueError:
                raise Violation(FILTER_DURATION, value=text) from None
        if kind == "bytes":
            return text.encode()
        return text
    except (ValueError, OverflowError):
        raise Violation(FILTER_VALUE, value=text, column=f"{entity}.{column}", kind=kind) from None


def parse_filters(state: State, text: str, primary: str) -> list[Filter]:
    """``ParseFilters``: every expression of ``text`` checked against the listing's primary entity."""
    contract = contract_of(state)
    found: list[Filter] = []
    allowed = contract.models[primary]["joins"]
    for expression in text.split(contract.separator):
        match = contract.expression.search(expression)
        if match is None:
            raise Violation(FILTER_FORMAT)
        function, field, raw = match.group(1), match.group(2), match.group(3)
        entity, column = primary, field
        for prefix, code in contract.prefixes.items():
            if field.startswith(prefix + "."):
                entity, column = code, field[len(prefix) + 1 :]
                break
        if entity not in allowed:
            raise Violation(FILTER_ENTITY, entity=entity)
        columns = contract.columns(entity)
        if column not in columns:
            raise Violation(FILTER_FIELD, entity=entity, column=column)
        # flyteadmin parses durations, then looks the function up; the database refuses other values last
        kind = columns[column]
        parts = raw.split(contract.list_separator)
        if kind == "duration":
            for part in parts:
                _typed(kind, part, entity, column)
        if function not in contract.functions:
            raise Violation(FILTER_FUNCTION, function=function)
        if contract.functions[function] == "single" and len(parts) > 1:
            # flyteadmin hands the database a list where one value goes: the query fails there
            raise Violation(FILTER_VALUE, value=raw, column=f"{entity}.{column}", kind="a single value")
        if function in ("contains", "not_like") and kind != "text":
            raise Violation(FILTER_VALUE, value=raw, column=f"{entity}.{column}", kind="text for LIKE")
        values = tuple(_typed(kind, part, entity, column) for part in parts)
        found.append(Filter(entity, function, column, values))
    return found


def equality(entity: str, column: str, value: Any) -> Filter:
    return Filter(entity, "eq", column, (value,))


def parse_sort(state: State, sort_by: Any, primary: str, has_sort: bool) -> Sort | None:
    """``NewSortParameter``: no sort -> None (no ORDER BY); the key must be a column of the model."""
    if not has_sort:
        return None
    if sort_by.key not in contract_of(state).columns(primary):
        raise Violation(SORT_KEY, key=sort_by.key)
    direction = state.wire.name_of("admin.Sort.Direction", sort_by.direction)
    if direction not in ("DESCENDING", "ASCENDING"):
        raise Violation(SORT_ORDER, sort=f'key:"{sort_by.key}" direction:{sort_by.direction}')
    return Sort(sort_by.key, direction == "DESCENDING")


def parse_token(token: str, operation: str) -> int:
    """A decimal offset; "" is 0; anything else, or a negative one, is refused."""
    if token == "":
        return 0
    if not _INT.fullmatch(token) or int(token) < 0 or int(token) > MAX_TOKEN:
        raise Violation(TOKEN, token=token, suffix=f" for {operation}" if operation else "")
    return int(token)


def page(items: list[Any], offset: int, limit: int) -> tuple[list[Any], str]:
    """One page and the next token (offset + length, only when the page is full)."""
    chosen = items[offset : offset + limit] if limit else items[offset:]
    token = str(offset + len(chosen)) if len(chosen) == limit else ""
    return chosen, token


# -- evaluation ---------------------------------------------------------------------------------


class Model:
    """How one listing reads its records: column getters per entity and the joins from the primary."""

    def __init__(
        self,
        primary: str,
        getters: dict[str, dict[str, Getter]],
        joins: dict[str, Callable[[Any], Iterable[Any]]] | None = None,
    ) -> None:
        self.primary = primary
        self.getters = getters
        self.joins = joins or {}

    def value(self, record: Any, column: str) -> Any:
        return self.getters[self.primary][column](record)

    def matches(self, record: Any, filters: list[Filter]) -> bool:
        for flt in filters:
            if flt.entity == self.primary:
                if not flt.holds(self.getters[flt.entity][flt.column](record)):
                    return False
                continue
            getter = self.getters[flt.entity][flt.column]
            if not any(flt.holds(getter(joined)) for joined in self.joins[flt.entity](record)):
                return False
        return True


def _sort_key(model: Model, sort: Sort) -> Callable[[Any], Any]:
    def key(record: Any) -> Any:
        value = model.value(record, sort.column)
        # PostgreSQL puts NULLs last ascending and first descending: reversing keeps that.
        return (value is None, value if value is not None else 0, record.row)

    return key


class _Cache:
    """The last selections, keyed by the query and the store's version."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.entries: OrderedDict[Hashable, list[Any]] = OrderedDict()

    def get(self, key: Hashable) -> list[Any] | None:
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def put(self, key: Hashable, value: list[Any]) -> None:
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


def select(
    state: State,
    table: str,
    scope: Hashable | None,
    model: Model,
    filters: list[Filter],
    sort: Sort | None,
    where: Callable[[Any], bool] | None = None,
    where_key: Hashable = None,
) -> list[Any]:
    """The records of ``table`` in ``scope`` matching ``filters`` (and ``where``), sorted."""
    version = tuple(state.table(name).version for name in TABLES)
    cache_key = (table, scope, version, tuple(filters), sort, where_key)
    cache: _Cache = state.caches.setdefault("selections", _Cache())
    found = cache.get(cache_key) if where is None or where_key is not None else None
    if found is not None:
        return found
    records = [
        r for r in state.table(table).scan(scope) if model.matches(r, filters) and (where is None or where(r))
    ]
    if sort is not None:
        try:
            records.sort(key=_sort_key(model, sort), reverse=sort.descending)
        except TypeError:  # values of mixed types: order them as text
            records.sort(key=lambda r: (str(model.value(r, sort.column)), r.row), reverse=sort.descending)
    if where is None or where_key is not None:
        cache.put(cache_key, records)
    return records


def contract_of(state: State) -> Contract:
    found = state.caches.get("contract")
    if found is None:
        found = state.caches["contract"] = Contract(state)
    return found
