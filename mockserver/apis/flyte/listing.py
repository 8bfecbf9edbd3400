"""flyteadmin's list mechanics: its filter grammar, sort keys and offset page tokens.

The grammar, the entities a listing may join and the columns of every model are
data in ``specs/flyte/lists.yaml`` (``filters`` and ``models``); this module
evaluates them over the records of :mod:`.state`.  A filter is
``func(field,value)``, several joined by ``+``; a field may name another entity
(``launch_plan.name`` on executions); ``value_in``/``value_not_in`` take values
separated by ``;``.  A token is the decimal offset of the page; the next token is
offset + page length, given only when the page is full.

A listing reads the scope's indexes (:mod:`.indexes`) rather than scanning it,
builds its records lazily (a page needs only the records up to its end), and
is cached per query until a write reaches the scope, so paging through a large
listing does the work once.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from protoconform.mockserver.apis.flyte import indexes
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.state import TABLES, State, Table

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
        scoped: tuple[str, ...] = (),
    ) -> None:
        self.primary = primary
        self.getters = getters
        self.joins = joins or {}
        self.scoped = scoped  # the columns a scope's parts are, in order: equal for every record in it

    def implied(self, flt: Filter, scope: Hashable | None) -> bool:
        """True when every record of ``scope`` passes ``flt`` (an equality on a column of the scope)."""
        if flt.entity != self.primary or flt.function != "eq" or flt.column not in self.scoped:
            return False
        parts = scope if isinstance(scope, tuple) else ()
        return len(parts) == len(self.scoped) and flt.values == (parts[self.scoped.index(flt.column)],)

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


class Selection:
    """A listing's records in order, produced only as far as the pages asked for so far need.

    ``source`` yields records, or keys that ``fetch`` turns into records for the pages only.
    """

    def __init__(self, source: Iterator[Any], fetch: Callable[[Any], Any] | None = None) -> None:
        self._source = source
        self._fetch = fetch
        self._produced: list[Any] = []

    def _fill(self, stop: int | None) -> None:
        if stop is None:
            self._produced.extend(self._source)
        elif stop > len(self._produced):
            self._produced.extend(itertools.islice(self._source, stop - len(self._produced)))

    def __getitem__(self, index: slice) -> list[Any]:
        self._fill(None if index.stop is None or index.stop < 0 or index.step else index.stop)
        chosen = self._produced[index]
        return chosen if self._fetch is None else [self._fetch(item) for item in chosen]

    def __len__(self) -> int:
        self._fill(None)
        return len(self._produced)

    def __iter__(self) -> Iterator[Any]:
        return iter(self[:])


class _Cache:
    """The last selections by query, each with the versions it was made at."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.entries: OrderedDict[Hashable, tuple[Hashable, Selection | list[Any]]] = OrderedDict()

    def get(self, key: Hashable, versions: Hashable) -> Selection | list[Any] | None:
        found = self.entries.get(key)
        if found is None or found[0] != versions:
            return None
        self.entries.move_to_end(key)
        return found[1]

    def put(self, key: Hashable, versions: Hashable, value: Selection | list[Any]) -> None:
        self.entries[key] = (versions, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


INDEXED_KINDS = ("text", "int")  # columns worth a value index: small, hashable values
RANGES = ("gt", "gte", "lt", "lte")  # checked per record: on ids or times a value index is one key per value
_PLACE = operator.itemgetter(3)  # the scan position in an entry of indexes.Sorted
SMALL = 32  # candidates fewer than 1/SMALL of the scope are sorted; more are picked from the scope's order


def select(
    state: State,
    table: str,
    scope: Hashable | None,
    model: Model,
    filters: list[Filter],
    sort: Sort | None,
    where: Callable[[Any], bool] | None = None,
    where_key: Hashable = None,
) -> Selection | list[Any]:
    """The records of ``table`` in ``scope`` matching ``filters`` (and ``where``), sorted.

    Filters on the listing's own columns use the scope's value indexes and the sort its
    sorted index (:mod:`.indexes`); joined filters and ``where`` are checked record by
    record.  Selections are cached until a write reaches the scope (or, for joined
    filters and ``where``, any table).
    """
    primary = model.primary
    if where is not None or any(f.entity != primary for f in filters):
        versions: tuple[int, ...] = tuple(state.table(name).version() for name in TABLES)
    else:
        versions = (state.table(table).version(scope),)
    cacheable = where is None or where_key is not None
    cache_key = (table, scope, tuple(filters), sort, where_key)
    cache: _Cache = state.caches.setdefault("selections", _Cache())
    found = cache.get(cache_key, versions) if cacheable else None
    if found is not None:
        return found
    store = state.table(table)
    index = _indexes(state).of(table, store, scope)
    kinds = contract_of(state).columns(primary)
    chosen: list[Collection[int]] = []  # per selective filter, the positions it lets through
    rest: list[Filter] = []  # checked record by record
    for flt in filters:
        if model.implied(flt, scope):
            continue
        values = None
        if flt.entity == primary and kinds.get(flt.column) in INDEXED_KINDS and flt.function not in RANGES:
            values = index.values(flt.column, model.getters[primary][flt.column])
        if values is None:
            rest.append(flt)
            continue
        if flt.function in ("eq", "value_in"):
            held = [values.holding(v) for v in flt.values]
        else:  # one check per distinct value instead of one per record
            held = [places for value, places in values.distinct() if flt.holds(value)]
        if any(places is index.key_at for places in held):
            continue  # every record passes
        if 2 * sum(len(places) for places in held) > len(index):
            rest.append(flt)  # most records pass: checking the few needed for a page is cheaper
            continue
        chosen.append(held[0] if len(held) == 1 else set(itertools.chain.from_iterable(held)))
    candidates: Collection[int] | None = None
    for places in sorted(chosen, key=len):
        candidates = places if candidates is None else set(filter(places.__contains__, candidates))
    places = _ordered(index, model, sort, candidates)
    if places is None:  # values of mixed types: the slow path orders them as text
        result: Selection | list[Any] = scanned(store, scope, model, filters, sort, where)
    else:
        keys = map(index.key_at.__getitem__, places)
        if rest or where is not None:
            records = (record for key in keys if (record := store.get(key)) is not None)
            result = Selection(r for r in records if model.matches(r, rest) and (where is None or where(r)))
        else:
            result = Selection(keys, store.get)
    if cacheable:
        cache.put(cache_key, versions, result)
    return result


def _ordered(
    index: indexes.ScopeIndex, model: Model, sort: Sort | None, candidates: Collection[int] | None
) -> Iterator[int] | None:
    """The positions of the scope (or ``candidates``) in the listing's order; None if it cannot be had.

    Built of ``map`` and ``filter`` so that walking a large scope for a deep page runs at C speed.
    """
    if sort is None:
        if candidates is None:
            return iter(index.key_at)
        if len(candidates) * SMALL < len(index):
            return iter(sorted(candidates))
        return filter(candidates.__contains__, index.key_at)
    order = index.sorted(sort.column, model.getters[model.primary][sort.column])
    if order is None:
        return None
    if candidates is not None and len(candidates) * SMALL < len(index):
        return map(_PLACE, sorted(map(order.entry_of.__getitem__, candidates), reverse=sort.descending))
    places = map(_PLACE, reversed(order.entries) if sort.descending else order.entries)
    return places if candidates is None else filter(candidates.__contains__, places)


def scanned(
    store: Table,
    scope: Hashable | None,
    model: Model,
    filters: list[Filter],
    sort: Sort | None,
    where: Callable[[Any], bool] | None,
) -> list[Any]:
    """The selection by a full scan of the scope: what the indexed one must equal."""
    records = [r for r in store.scan(scope) if model.matches(r, filters) and (where is None or where(r))]
    if sort is not None:
        try:
            records.sort(key=_sort_key(model, sort), reverse=sort.descending)
        except TypeError:  # values of mixed types: order them as text
            records.sort(key=lambda r: (str(model.value(r, sort.column)), r.row), reverse=sort.descending)
    return records


class Kept(NamedTuple):
    """What a large table keeps indexed at write time: the entity, its value indexes and its orders."""

    entity: str
    values: tuple[str, ...]
    orders: tuple[str, ...]


# The columns clients list these tables by (flytekit, the console): names, versions, phases, and the
# usual sorts.  Every index is a structure the garbage collector walks, so the rest are built at their
# first listing (and kept up to date from then on) as for the other tables.
KEPT = {
    "tasks": Kept("t", ("name", "version"), ("created_at", "name", "version")),
    "workflows": Kept("w", ("name", "version"), ("created_at", "name", "version")),
    "launch_plans": Kept("l", ("name", "version", "state"), ("created_at", "name", "version")),
    "executions": Kept("e", ("phase",), ("created_at", "execution_created_at")),
}


def keep_indexes(state: State, models: dict[str, Model]) -> None:
    """Index the tables of KEPT at write time (``models``: the listing model of each), so that the
    first page of their usual listings builds nothing."""
    found = _indexes(state)
    for table, model in models.items():
        getters = model.getters[model.primary]
        kept = KEPT[table]
        values = {column: getters[column] for column in kept.values}
        orders = {column: getters[column] for column in kept.orders}
        found.keep(table, state.table(table), values, orders)


def _indexes(state: State) -> indexes.Indexes:
    found = state.caches.get("indexes")
    if found is None:
        found = state.caches["indexes"] = indexes.Indexes()
    return found


def contract_of(state: State) -> Contract:
    found = state.caches.get("contract")
    if found is None:
        found = state.caches["contract"] = Contract(state)
    return found
