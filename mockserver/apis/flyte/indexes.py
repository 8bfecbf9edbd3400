"""Per-scope indexes that spare a listing the full scan of its scope.

For one scope of one table (the tasks of a project and domain, the nodes of an
execution...) a :class:`ScopeIndex` numbers the keys in the table's scan order
(positions), and on demand, per column, keeps the positions holding each value
(:class:`Values`) and the positions sorted by the column (:class:`Sorted`).
Positions are small ints, so unions, intersections and walks stay cheap.

It is derived data: built from ``Table.items`` once, then brought up to date
key by key from the table's change log, and rebuilt when the log no longer
reaches back to it.

The large tables (tasks, workflows, launch plans, executions) have their scope
indexes kept at write time instead (:meth:`Indexes.keep`): every scope's index,
with the value indexes and orders of the columns clients list them by
(``listing.KEPT``), follows each write as it happens, so the first page of such
a listing builds nothing; other columns are indexed at their first listing.
Orders are sorted lists of sublists (``sortedcontainers``): a write costs
O(log n) per column, not a shift of the whole order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable
from typing import Any

from protoconform.mockserver.apis.flyte.state import Change, Table
from sortedcontainers import SortedList

Getter = Callable[[Any], Any]
SCOPES_KEPT = 64  # scope indexes kept, least recently used dropped first


class Values:
    """The positions of the scope holding each value of a column (hashable values only).

    While every record of the scope holds the same value only that value is kept:
    the positions are the scope's.
    """

    def __init__(self, getter: Getter, scope: ScopeIndex) -> None:
        self.getter = getter
        self._scope = scope
        self._only: list[Any] = []  # the one value, while there is one
        self._at: dict[Any, set[int]] | None = None  # value -> positions, once values differ
        self._value_of: dict[int, Any] = {}

    def holding(self, value: Any) -> Collection[int]:
        """The positions whose record holds ``value`` (do not change it)."""
        if self._at is None:
            return self._scope.key_at if self._only and self._only[0] == value else ()
        return self._at.get(value, ())

    def distinct(self) -> list[tuple[Any, Collection[int]]]:
        """Each value held, with the positions holding it."""
        if self._at is None:
            return [(self._only[0], self._scope.key_at)] if self._only and self._scope.key_at else []
        return list(self._at.items())

    def build(self) -> None:
        """From every placed record of the scope as it is now; raises TypeError on unhashable values.

        Records the index has not placed yet (inserts still waiting in the change log while a sync
        applies the earlier ones) are left to their own change."""
        at: dict[Any, set[int]] = {}
        value_of: dict[int, Any] = {}
        position = self._scope.position
        for key, record in self._scope.table.items(self._scope.scope):
            place = position.get(key)
            if place is None:
                continue
            value = value_of[place] = self.getter(record)
            at.setdefault(value, set()).add(place)
        if len(at) > 1:
            self._at, self._value_of = at, value_of
        else:
            self._at, self._value_of, self._only = None, {}, list(at)

    def add(self, place: int, record: Any) -> None:
        value = self.getter(record)
        if self._at is None:
            if not self._only:
                self._only.append(value)
            if value == self._only[0]:
                return
            self._split()
        assert self._at is not None
        self._at.setdefault(value, set()).add(place)
        self._value_of[place] = value

    def remove(self, place: int) -> None:
        if place not in self._value_of:
            return
        value = self._value_of.pop(place)
        holders = self._at[value]  # type: ignore[index]
        holders.discard(place)
        if not holders:
            del self._at[value]  # type: ignore[union-attr]

    def _split(self) -> None:
        """From one value to a value per position."""
        self.build()
        if self._at is None:  # the record that differed is not in the table any more
            self._at = {value: set(self._scope.key_at) for value in self._only}
            self._value_of = dict.fromkeys(self._scope.key_at, self._only[0]) if self._only else {}


class Sorted:
    """The scope's positions ascending by a column, as the listings order them.

    An entry is ``(value is None, value, row, position)``: PostgreSQL puts NULLs
    last ascending and first descending, ties go by row id, and the position
    makes every entry unique, so descending is exactly ascending reversed.
    Made of plain values only, entries stay out of the garbage collector's scans.
    """

    def __init__(self, getter: Getter) -> None:
        self.getter = getter
        self.entries: SortedList = SortedList()
        self.entry_of: dict[int, tuple[Any, ...]] = {}

    def entry(self, place: int, record: Any) -> tuple[Any, ...]:
        value = self.getter(record)
        return (value is None, value if value is not None else 0, record.row, place)

    def build(self, placed: list[tuple[int, Any]]) -> None:
        """Raises TypeError when the column's values cannot be ordered together."""
        getter = self.getter  # inlined entry(): this runs once per record of the scope
        self.entry_of = {
            place: ((value := getter(record)) is None, value if value is not None else 0, record.row, place)
            for place, record in placed
        }
        self.entries = SortedList(self.entry_of.values())

    def add(self, place: int, record: Any) -> None:
        entry = self.entry(place, record)
        self.entries.add(entry)  # TypeError as in build
        self.entry_of[place] = entry

    def remove(self, place: int) -> None:
        entry = self.entry_of.pop(place, None)
        if entry is not None:
            self.entries.remove(entry)


class ScopeIndex:
    def __init__(self, table: Table, scope: Hashable | None) -> None:
        self.table = table
        self.scope = scope  # None: the whole table
        self.seen = -1  # the table version the index reflects
        self.position: dict[Hashable, int] = {}  # key -> position
        self.key_at: dict[int, Hashable] = {}  # position -> key, in scan order
        self._next = 0
        self._values: dict[str, Values] = {}
        self._sorted: dict[str, Sorted | None] = {}  # None: values that cannot be ordered together

    def __len__(self) -> int:
        return len(self.key_at)

    def sync(self) -> None:
        current = self.table.version()
        if current == self.seen:
            return
        if self.seen >= 0 and self.table.version(self.scope) <= self.seen:
            self.seen = current  # writes elsewhere only
            return
        changes = self.table.changes(self.seen) if self.seen >= 0 else None
        if changes is None:
            self._rebuild()
        else:
            for change in changes:
                if self.scope is None or change.scope == self.scope:
                    self._apply(change)
        self.seen = current

    def values(self, column: str, getter: Getter) -> Values | None:
        """The value index of ``column``; None when its values are not hashable."""
        found = self._values.get(column)
        if found is None:
            found = Values(getter, self)
            try:
                found.build()
            except TypeError:
                return None
            self._values[column] = found
        return found

    def sorted(self, column: str, getter: Getter) -> Sorted | None:
        """The order by ``column``; None when its values cannot be ordered together."""
        if column not in self._sorted:
            found: Sorted | None = Sorted(getter)
            position = self.position
            placed = [(position[key], r) for key, r in self.table.items(self.scope) if key in position]
            try:
                found.build(placed)  # type: ignore[union-attr]
            except TypeError:
                found = None
            self._sorted[column] = found
        return self._sorted[column]

    def _rebuild(self) -> None:
        keys = [key for key, _ in self.table.items(self.scope)]
        self.key_at = dict(enumerate(keys))
        self.position = dict(zip(keys, range(len(keys)), strict=True))
        self._next = len(keys)
        values, self._values = self._values, {}
        for column, index in values.items():
            self.values(column, index.getter)
        ordered, self._sorted = self._sorted, {}
        for column, order in ordered.items():
            if order is not None:
                self.sorted(column, order.getter)

    def follow(self, change: Change) -> None:
        """Apply a write to the scope as it happens (the index has followed every earlier one)."""
        self._apply(change)
        self.seen = self.table.version()

    def _place(self, key: Hashable) -> int:
        place = self.position[key] = self._next
        self.key_at[place] = key
        self._next += 1
        return place

    def _forget(self, key: Hashable) -> None:
        """Drops ``key`` from the column indexes and the scan order."""
        place = self.position.pop(key, None)
        if place is None:
            return
        del self.key_at[place]
        for index in self._values.values():
            index.remove(place)
        for order in self._sorted.values():
            if order is not None:
                order.remove(place)

    def _apply(self, change: Change) -> None:
        key = change.key
        if change.kind == "delete":
            self._forget(key)
            return
        record = self.table.get(key)
        if record is None:
            return  # deleted since: the log holds that delete too
        if change.kind == "insert":
            self._forget(key)  # a key inserted again goes to the end of the scan order, as in the table
            place = self._place(key)
        elif key in self.position:
            place = self.position[key]
            for index in self._values.values():
                index.remove(place)
            for order in self._sorted.values():
                if order is not None:
                    order.remove(place)
        else:
            return  # an update of a key the scope does not hold
        for index in self._values.values():
            index.add(place, record)
        for column, order in self._sorted.items():
            if order is not None:
                try:
                    order.add(place, record)
                except TypeError:
                    self._sorted[column] = None


class Indexes:
    """The scope indexes of a state: those of kept tables always, others least recently used dropped first."""

    def __init__(self, size: int = SCOPES_KEPT) -> None:
        self.size = size
        self._scopes: OrderedDict[tuple[str, Hashable], ScopeIndex] = OrderedDict()
        self._kept: dict[tuple[str, Hashable], ScopeIndex] = {}

    def keep(self, name: str, table: Table, values: dict[str, Getter], orders: dict[str, Getter]) -> None:
        """Keep the index of every scope of ``table`` at write time, with the value index of each of
        ``values`` and the order of each of ``orders`` (a scope's index is made at its first insert)."""

        def made(scope: Hashable) -> None:
            index = self._kept[(name, scope)] = ScopeIndex(table, scope)
            index.sync()
            for column, getter in values.items():
                index.values(column, getter)
            for column, getter in orders.items():
                index.sorted(column, getter)

        def written(change: Change) -> None:
            index = self._kept.get((name, change.scope))
            if index is not None:
                index.follow(change)
            elif change.kind == "insert":
                made(change.scope)

        for scope in table.scopes():
            made(scope)
        table.watch(written)

    def of(self, name: str, table: Table, scope: Hashable | None) -> ScopeIndex:
        """The index of ``scope`` in table ``name``, up to date."""
        kept = self._kept.get((name, scope))
        if kept is not None and kept.table is table:
            kept.sync()  # nothing to do but note writes elsewhere
            return kept
        found = self._scopes.get((name, scope))
        if found is None or found.table is not table:
            found = self._scopes[(name, scope)] = ScopeIndex(table, scope)
        self._scopes.move_to_end((name, scope))
        while len(self._scopes) > self.size:
            self._scopes.popitem(last=False)
        found.sync()
        return found
