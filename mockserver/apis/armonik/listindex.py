"""Indexes that answer the common ArmoniK list requests without looking at every entity.

A list request is filtered, stably sorted (ties keep id order) and paged
(:mod:`.listing`).  Done by a scan, a page costs O(N) in the number of stored
entities.  Clients mostly ask the same few things, so each repository keeps,
for every *scope* -- all entities, those of one status, those of one session,
those of one session and one status -- its ids in id order and its
``(created_at, id)`` keys in time order.  Then, for a filter that is empty or
an AND of ``session_id == X`` and/or ``status == Y``, and a sort on the id,
``created_at`` or the status (either direction):

- the total is the size of the scope (kept, never counted);
- the page is a slice of one ordered container (the status sort concatenates
  the scope's per-status containers), so a page costs O(log N + page size),
  deep offsets included.

Small scopes are plain sorted lists; past :data:`_SMALL` entries they become a
``SortedList`` (O(log N) inserts and positional access).  Every other filter or
sort takes the scan of :mod:`.listing` (correct for anything, slower).

Orders match the scan exactly: by id, ``sorted`` on the id string; by
``created_at``, ascending ``(created_at, id)``, and descending walks the time
groups from the latest while each group of equal ``created_at`` keeps id order
(the scan's stable sort); by status, the statuses in numeric order (reversed
when descending), each group in id order (times are kept as integer
microseconds, the datetimes' own resolution).  ``created_at`` and the session
of an entity never change; its status does, and the repository calls
:meth:`update` on every ``save``: the change is noted, and filed (moved between
the status scopes) before the next query that depends on statuses, or once
:data:`_SETTLE_AT` wait.  The engine changes statuses far more often than
clients list them, and a task that goes through five statuses between two
lists moves once; the cost of a status change is then a dict write.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sortedcontainers import SortedList

_SMALL = 256  # entries a scope keeps in a plain list before it becomes a SortedList
_SETTLE_AT = 10_000  # status changes noted before they are filed even without a query
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _stamp(created_at: datetime) -> int:
    """Microseconds since the epoch: integers compare faster than datetimes, in the same order."""
    return (created_at - _EPOCH) // _MICROSECOND


Scope = tuple[str | None, int | None]  # (session id or None, status or None)
Ordered = list[Any] | SortedList


def _insert(container: Ordered | None, value: Any) -> Ordered:
    if container is None:
        return [value]
    if type(container) is list:
        if len(container) < _SMALL:
            bisect.insort(container, value)
            return container
        container = SortedList(container)
    container.add(value)
    return container


def _remove(container: Ordered, value: Any) -> None:
    if type(container) is list:
        index = bisect.bisect_left(container, value)
        if index < len(container) and container[index] == value:
            del container[index]
    else:
        container.discard(value)


def _bisect_left(container: Ordered, value: Any) -> int:
    if type(container) is list:
        return bisect.bisect_left(container, value)
    return container.bisect_left(value)


def _slice(container: Ordered, start: int, stop: int) -> list[Any]:
    if type(container) is list:
        return container[start:stop]
    return list(container.islice(start, stop))


class ListIndex:
    """Ordered ids of one entity kind per scope; see the module docstring."""

    def __init__(self, key_attr: str, by_session: bool) -> None:
        self.key_attr = key_attr
        self.by_session = by_session
        self._by_id: dict[Scope, Ordered] = {}
        self._by_time: dict[Scope, Ordered] = {}
        self._statuses: dict[str | None, set[int]] = {}  # session (None: all) -> statuses present
        self._filed: dict[str, int] = {}  # id -> the status it is filed under
        self._moved: dict[str, Any] = {}  # id -> entity saved since its status may have changed

    def _owners(self, session_id: str | None) -> tuple[str | None, ...]:
        return (None, session_id) if self.by_session else (None,)

    def _put(self, scope: Scope, key: str, stamp: tuple[int, str]) -> None:
        self._by_id[scope] = _insert(self._by_id.get(scope), key)
        self._by_time[scope] = _insert(self._by_time.get(scope), stamp)

    def _take(self, scope: Scope, key: str, stamp: tuple[int, str]) -> None:
        for table, value in ((self._by_id, key), (self._by_time, stamp)):
            container = table.get(scope)
            if container is not None:
                _remove(container, value)
                if not container:
                    del table[scope]

    def _file_status(self, key: str, stamp: tuple[int, str], session_id: str | None, status: int) -> None:
        for owner in self._owners(session_id):
            self._put((owner, status), key, stamp)
            self._statuses.setdefault(owner, set()).add(status)
        self._filed[key] = status

    def _unfile_status(self, key: str, stamp: tuple[int, str], session_id: str | None, status: int) -> None:
        for owner in self._owners(session_id):
            self._take((owner, status), key, stamp)
            if (owner, status) not in self._by_id:
                present = self._statuses.get(owner)
                if present is not None:
                    present.discard(status)
                    if not present:
                        del self._statuses[owner]

    def _session_of(self, item: Any) -> str | None:
        return item.session_id if self.by_session else None

    def _settle(self) -> None:
        """File the entities whose status changed under their new status (before a status query).

        Status changes are only noted when saved (an engine changes statuses far more often than
        clients list them, and a task going through five statuses between two lists moves once)."""
        moved, self._moved = self._moved, {}
        for key, item in moved.items():
            filed = self._filed.get(key)
            if filed is not None and filed != item.status:
                stamp = (_stamp(item.created_at), key)
                session_id = self._session_of(item)
                self._unfile_status(key, stamp, session_id, filed)
                self._file_status(key, stamp, session_id, item.status)

    # -- upkeep (called by the repository) ----------------------------------------------
    def build(self, items: Iterable[Any]) -> None:
        """File many entities into an empty index at once (a load): one sort per scope."""
        by_id: dict[Scope, list[Any]] = {}
        by_time: dict[Scope, list[Any]] = {}
        for item in items:
            key = getattr(item, self.key_attr)
            stamp = (_stamp(item.created_at), key)
            status = item.status
            for owner in self._owners(self._session_of(item)):
                for scope in ((owner, None), (owner, status)):
                    by_id.setdefault(scope, []).append(key)
                    by_time.setdefault(scope, []).append(stamp)
                self._statuses.setdefault(owner, set()).add(status)
            self._filed[key] = status
        for found, table in ((by_id, self._by_id), (by_time, self._by_time)):
            for scope, values in found.items():
                values.sort()
                table[scope] = values if len(values) <= _SMALL else SortedList(values)

    def add(self, item: Any) -> None:
        key = getattr(item, self.key_attr)
        if key in self._filed:
            self.remove(item)
        stamp = (_stamp(item.created_at), key)
        session_id = self._session_of(item)
        for owner in self._owners(session_id):
            self._put((owner, None), key, stamp)
        self._file_status(key, stamp, session_id, item.status)

    def update(self, item: Any) -> None:
        key = getattr(item, self.key_attr)
        if key in self._filed:
            self._moved[key] = item
            if len(self._moved) >= _SETTLE_AT:  # bounded: settled now and then without a query
                self._settle()

    def remove(self, item: Any) -> None:
        key = getattr(item, self.key_attr)
        filed = self._filed.pop(key, None)
        self._moved.pop(key, None)
        if filed is None:
            return
        stamp = (_stamp(item.created_at), key)
        session_id = self._session_of(item)
        self._unfile_status(key, stamp, session_id, filed)
        for owner in self._owners(session_id):
            self._take((owner, None), key, stamp)

    # -- queries ------------------------------------------------------------------------
    def count(self, scope: Scope) -> int:
        if scope[1] is not None and self._moved:
            self._settle()
        container = self._by_id.get(scope)
        return len(container) if container is not None else 0

    def status_counts(self, session_id: str | None, status: int | None = None) -> dict[int, int]:
        """Entities per status (of one session; of one status), only those present."""
        if self._moved:
            self._settle()
        statuses = [status] if status is not None else self._statuses.get(session_id, ())
        counts = {each: self.count((session_id, each)) for each in statuses}
        return {each: n for each, n in counts.items() if n}

    def page(self, scope: Scope, order: str, descending: bool, start: int, stop: int) -> list[str]:
        """Ids at positions [start, stop) of the scope sorted on ``order`` (id | created_at | status)."""
        if stop <= start:
            return []
        if self._moved and (scope[1] is not None or order == "status"):
            self._settle()
        if order == "id":
            return self._id_page(self._by_id.get(scope), descending, start, stop)
        if order == "created_at":
            return self._time_page(self._by_time.get(scope), descending, start, stop)
        return self._status_page(scope, descending, start, stop)

    @staticmethod
    def _id_page(container: Ordered | None, descending: bool, start: int, stop: int) -> list[str]:
        if container is None:
            return []
        if not descending:
            return _slice(container, start, stop)
        size = len(container)
        found = _slice(container, max(0, size - stop), max(0, size - start))
        found.reverse()
        return found

    @staticmethod
    def _time_page(container: Ordered | None, descending: bool, start: int, stop: int) -> list[str]:
        if container is None:
            return []
        if not descending:
            return [key for _, key in _slice(container, start, stop)]
        # Descending: time groups from the latest, each group in ascending id order.  The group
        # holding position p of that order spans the same positions as in the ascending order,
        # mirrored, so find it from the ascending entry at the mirrored position.
        size = len(container)
        found: list[str] = []
        position = start
        while position < stop and position < size:
            stamp = container[size - 1 - position][0]
            low = _bisect_left(container, (stamp,))
            high = _bisect_left(container, (stamp + 1,))
            group_start = size - high  # where the group begins in the descending order
            first = low + (position - group_start)
            take = min(high - first, stop - position)
            found.extend(key for _, key in _slice(container, first, first + take))
            position += take
        return found

    def _status_page(self, scope: Scope, descending: bool, start: int, stop: int) -> list[str]:
        session_id, status = scope
        statuses = [status] if status is not None else sorted(self._statuses.get(session_id, ()))
        if descending:
            statuses.reverse()
        found: list[str] = []
        offset = 0  # position of the current status group in the whole order
        for each in statuses:
            container = self._by_id.get((session_id, each))
            if container is None:
                continue
            size = len(container)
            if offset + size > start:
                first = max(0, start - offset)
                found.extend(_slice(container, first, min(size, stop - offset)))
            offset += size
            if offset >= stop:
                break
        return found

    def ids(self, scope: Scope) -> Iterator[Hashable]:
        """Every id of the scope in id order (tests compare it with the repository)."""
        if scope[1] is not None and self._moved:
            self._settle()
        return iter(self._by_id.get(scope, ()))
