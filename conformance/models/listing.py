"""List methods as a model sees them: pages, sort orders and filters, and their invariants.

A family describes each list method it can populate with a :class:`ListDialect`
(how to ask for a page, a sort, a filter; how to read an item; how to evaluate
a filter on an item).  The invariants here are the same for every family:

- pagination partitions the listing: walking pages of any size gives every
  item of the one-page listing once, in the same order; ``total`` counts them;
- what was created is listed;
- a sort orders the items by the sort field in the asked direction;
- a filter lists exactly the items of the unfiltered listing for which the
  model's evaluation of the filter holds.

Each check scopes its listing to what the run created (a filter on ids or
names) so other data on the target does not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import Env, expect_codes, fail

MAX_PAGES = 500
BIG_PAGE = 1000


@dataclass
class Population:
    """What a dialect created for its checks."""

    keys: list[str]  # ids of the created items, in creation order
    scope: Any  # whatever the dialect needs to restrict a listing to them
    cleanup: list[Callable[[], Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Sort:
    name: str  # how reports and failure lines name it
    spec: Any  # dialect-specific
    descending: bool = False


@dataclass
class Listing:
    items: list[Any]
    totals: list[int]
    replies: list[Reply]


class ListDialect:
    METHOD = ""  # "Service.Method"
    PAGINATION_RULE = ""
    TOTAL_RULE = ""
    SORT_RULE = ""
    FILTER_RULE = ""
    CONTAINS_RULE = ""

    def __init__(self, env: Env, method: str = "") -> None:
        self.env = env
        self.METHOD = method or self.METHOD

    # -- family hooks ---------------------------------------------------------------
    def populate(self) -> Population:
        raise NotImplementedError

    def page(
        self, population: Population, size: int, cursor: Any, sort: Sort | None, where: Any
    ) -> tuple[Reply, list[Any], Any, int]:
        """One page: the reply, its items, the cursor of the next page (None at the end), the total."""
        raise NotImplementedError

    def key(self, item: Any) -> str:
        raise NotImplementedError

    def sorts(self, items: list[Any]) -> list[Sort]:
        """Sorts worth checking on these items (fields set on all of them)."""
        raise NotImplementedError

    def stable_sort(self) -> Sort | None:
        """A sort without ties, for walking pages."""
        return None

    def sort_value(self, item: Any, sort: Sort) -> Any:
        """The comparable value ``sort`` orders ``item`` by (None when unset)."""
        raise NotImplementedError

    def filters(self, items: list[Any]) -> st.SearchStrategy[Any]:
        """Filters worth trying on these items (values drawn from them, so some match)."""
        raise NotImplementedError

    def evaluate(self, where: Any, item: Any) -> bool:
        raise NotImplementedError

    def describe(self, where: Any) -> str:
        return repr(where)

    # -- walking -----------------------------------------------------------------------
    def walk(self, population: Population, size: int, sort: Sort | None = None, where: Any = None) -> Listing:
        listing = Listing([], [], [])
        cursor: Any = None
        for _ in range(MAX_PAGES):
            reply, items, cursor, total = self.page(population, size, cursor, sort, where)
            expect_codes(reply, {"OK"}, self.PAGINATION_RULE, "listing with a valid request")
            listing.replies.append(reply)
            listing.items.extend(items)
            listing.totals.append(total)
            if cursor is None or not items:
                break
        return listing


# -- invariants -----------------------------------------------------------------------------


def check_pagination(dialect: ListDialect, population: Population, size: int) -> None:
    sort = dialect.stable_sort()
    whole = dialect.walk(population, BIG_PAGE, sort)
    paged = dialect.walk(population, size, sort)
    whole_keys = [dialect.key(i) for i in whole.items]
    paged_keys = [dialect.key(i) for i in paged.items]
    last = paged.replies[-1]
    seen: set[str] = set()
    for key in paged_keys:
        if key in seen:
            raise fail(dialect.PAGINATION_RULE, last, f"each item once in pages of {size}", f"{key} twice")
        seen.add(key)
    missing = [k for k in whole_keys if k not in seen]
    if missing:
        raise fail(
            dialect.PAGINATION_RULE,
            last,
            f"pages of {size} covering all {len(whole_keys)} items",
            f"{len(missing)} missing (first: {missing[0]})",
        )
    extra = [k for k in paged_keys if k not in set(whole_keys)]
    if extra:
        raise fail(
            dialect.PAGINATION_RULE, last, f"only the {len(whole_keys)} listed items", f"also {extra[0]}"
        )
    if paged_keys != whole_keys:
        raise fail(dialect.PAGINATION_RULE, last, "pages in the order of the whole listing", "another order")
    for reply, total in zip(paged.replies, paged.totals, strict=True):
        if total != len(whole_keys) and total >= 0:
            raise fail(dialect.TOTAL_RULE, reply, f"total {len(whole_keys)}", total)


def check_contains(dialect: ListDialect, population: Population) -> None:
    whole = dialect.walk(population, BIG_PAGE, dialect.stable_sort())
    listed = {dialect.key(i) for i in whole.items}
    missing = [k for k in population.keys if k not in listed]
    if missing:
        raise fail(
            dialect.CONTAINS_RULE,
            whole.replies[-1],
            f"the {len(population.keys)} created items listed",
            f"{len(missing)} missing (first: {missing[0]})",
        )


def ordered(values: Sequence[Any], descending: bool) -> int:
    """Index of the first value out of order (-1 when sorted); unset values are not compared."""
    previous = None
    for index, value in enumerate(values):
        if value is None:
            continue
        if previous is not None and (value > previous if descending else value < previous):
            return index
        previous = value
    return -1


def check_sort(dialect: ListDialect, population: Population, sort: Sort) -> None:
    whole = dialect.walk(population, BIG_PAGE, sort)
    values = [dialect.sort_value(i, sort) for i in whole.items]
    index = ordered(values, sort.descending)
    if index >= 0:
        direction = "descending" if sort.descending else "ascending"
        raise fail(
            dialect.SORT_RULE,
            whole.replies[-1],
            f"items by {sort.name} {direction}",
            f"{values[index - 1]!r} before {values[index]!r}",
        )


def check_filter(dialect: ListDialect, population: Population, where: Any) -> None:
    sort = dialect.stable_sort()
    whole = dialect.walk(population, BIG_PAGE, sort)
    filtered = dialect.walk(population, BIG_PAGE, sort, where)
    reply = filtered.replies[-1]
    for item in filtered.items:
        if not dialect.evaluate(where, item):
            raise fail(
                dialect.FILTER_RULE,
                reply,
                f"only items where {dialect.describe(where)}",
                f"also {dialect.key(item)}",
            )
    got = {dialect.key(i) for i in filtered.items}
    wanted = [dialect.key(i) for i in whole.items if dialect.evaluate(where, i)]
    missing = [k for k in wanted if k not in got]
    if missing:
        raise fail(
            dialect.FILTER_RULE,
            reply,
            f"every item where {dialect.describe(where)} ({len(wanted)})",
            f"{len(missing)} missing (first: {missing[0]})",
        )
    if filtered.totals and filtered.totals[0] >= 0 and filtered.totals[0] != len(filtered.items):
        raise fail(dialect.TOTAL_RULE, reply, f"total {len(filtered.items)}", filtered.totals[0])
