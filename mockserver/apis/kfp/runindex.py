"""Sorted indexes of runs, so a ListRuns page costs about the same at a thousand runs and at a million.

Each run is indexed under three scopes (every run; its experiment; its
namespace) and, within a scope, under its ``(storage_state, status)`` (the
partition), in one sorted list per indexed sort field (``created_at`` and
``name``) of ``(value, run id)`` keys: the order and tie-breaker ListRuns uses.
A filter whose predicates are all on ``storage_state`` and ``status`` selects
whole partitions.  A page
is a keyset continuation: each selected partition is read from the token's
key onwards (``irange``, O(log n)) and the partitions are merged, so only
``page_size + 1`` keys are touched.  ``total_size`` is the sum of the selected
partitions' lengths, kept as runs come, go and move between partitions.

Everything else (other sort fields, metric sorts, filters on other keys, JOB
and PIPELINE_VERSION scopes) is scanned by :mod:`.runs` as before; both paths
give the same pages (tests/kfp/test_kfp_list_index.py compares them).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from google.protobuf import message
from protoconform.mockserver.apis.kfp import listing
from sortedcontainers import SortedList

INDEXED_SORTS = ("created_at", "name")
PARTITION_KEYS = ("storage_state", "status")  # the filter keys a partition answers
Partition = tuple[str, str]  # storage state name, status
ALL = ("", "")  # the scope of every run
Scope = tuple[str, str]  # ("", ""), ("EXPERIMENT", id) or ("NAMESPACE", name)


def _partition(run: message.Message) -> Partition:
    return listing.field_value(run, "storage_state"), run.status


def _scopes(experiment_id: str, namespace: str) -> tuple[Scope, Scope, Scope]:
    return ALL, ("EXPERIMENT", experiment_id), ("NAMESPACE", namespace)


class RunIndex:
    """Per scope and partition, the runs' ``(value, id)`` keys in sort order, one list per field."""

    def __init__(self) -> None:
        # scope -> partition -> field -> keys in order
        self._lists: dict[Scope, dict[Partition, dict[str, SortedList]]] = {}
        # run id -> (experiment id, namespace, partition, keys by field): how to find it again
        self._entries: dict[str, tuple[str, str, Partition, tuple[Any, ...]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _enter(
        self, run_id: str, run: message.Message, experiment_id: str, namespace: str
    ) -> tuple[Partition, Any]:
        self.remove(run_id)
        partition = _partition(run)
        keys = tuple((listing.field_value(run, f), run_id) for f in INDEXED_SORTS)
        self._entries[run_id] = (experiment_id, namespace, partition, keys)
        return partition, keys

    def add_many(self, runs: Iterable[tuple[str, message.Message, str, str]]) -> None:
        """Index many (run id, run, experiment id, namespace) at once (a load): each list is sorted
        once, rather than kept sorted run by run."""
        gathered: dict[tuple[Scope, Partition], list[list[tuple[Any, str]]]] = {}
        for run_id, run, experiment_id, namespace in runs:
            partition, keys = self._enter(run_id, run, experiment_id, namespace)
            for scope in _scopes(experiment_id, namespace):
                lists = gathered.get((scope, partition))
                if lists is None:
                    lists = gathered[(scope, partition)] = [[] for _ in INDEXED_SORTS]
                for found, key in zip(lists, keys, strict=True):
                    found.append(key)
        for (scope, partition), lists in gathered.items():
            fields = self._lists.setdefault(scope, {}).get(partition)
            if fields is None:
                fields = self._lists[scope][partition] = {f: SortedList() for f in INDEXED_SORTS}
            for field, keys in zip(INDEXED_SORTS, lists, strict=True):
                fields[field].update(keys)

    def add(self, run_id: str, run: message.Message, experiment_id: str, namespace: str) -> None:
        partition, keys = self._enter(run_id, run, experiment_id, namespace)
        for scope in _scopes(experiment_id, namespace):
            fields = self._lists.setdefault(scope, {}).get(partition)
            if fields is None:
                fields = self._lists[scope][partition] = {f: SortedList() for f in INDEXED_SORTS}
            for field, key in zip(INDEXED_SORTS, keys, strict=True):
                fields[field].add(key)

    def remove(self, run_id: str) -> None:
        entry = self._entries.pop(run_id, None)
        if entry is None:
            return
        experiment_id, namespace, partition, keys = entry
        for scope in _scopes(experiment_id, namespace):
            partitions = self._lists[scope]
            fields = partitions[partition]
            for field, key in zip(INDEXED_SORTS, keys, strict=True):
                fields[field].remove(key)
            if not fields[INDEXED_SORTS[0]]:
                del partitions[partition]
                if not partitions:
                    del self._lists[scope]

    def update(self, run_id: str, run: message.Message, experiment_id: str, namespace: str) -> None:
        """Re-index a changed run; only a new partition moves it (name and creation never change)."""
        entry = self._entries.get(run_id)
        if entry is not None and entry[2] == _partition(run):
            return
        self.remove(run_id)
        self.add(run_id, run, experiment_id, namespace)

    # -- reading ------------------------------------------------------------------------
    def select(self, scope: Scope, keep: Callable[[Partition], bool], field: str) -> list[SortedList]:
        """The lists of ``field`` of the partitions of ``scope`` that ``keep`` admits."""
        partitions = self._lists.get(scope, {})
        return [fields[field] for partition, fields in partitions.items() if keep(partition)]

    @staticmethod
    def page(lists: list[SortedList], desc: bool, start: tuple[Any, str] | None, limit: int) -> list[str]:
        """Up to ``limit`` run ids from ``start`` on (inclusive; None = from the first), in order.

        ``start``'s value must be of the field's type (the caller checks a token's)."""
        ranges: list[Iterator[tuple[Any, str]]]
        if not lists:
            return []
        if desc:
            ranges = [keys.irange(maximum=start, reverse=True) for keys in lists]
        else:
            ranges = [keys.irange(minimum=start) for keys in lists]
        merged = ranges[0] if len(ranges) == 1 else heapq.merge(*ranges, reverse=desc)
        return [run_id for _, run_id in islice(merged, limit)]

    @staticmethod
    def count(lists: list[SortedList]) -> int:
        return sum(len(keys) for keys in lists)
