"""List methods as a model sees them: pages, sort orders and filters, and their invariants.

A family describes each list method it can populate with a :class:`ListDialect`
(how to ask for a page, a sort, a filter; how to read an item; how to evaluate
a filter on an item).  The invariants here are the same for every family:

- pagination partitions the listing: walking pages of any size gives every
  item of the one-page listing once, in the same order; ``total`` counts them;
  under each sort and filter the dialect pages with (:meth:`ListDialect.paging_sorts`,
  :meth:`ListDialect.paging_filters`), and, where the model knows the order of
  what it created (:meth:`ListDialect.expected`), in that order;
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
    trailing_token: bool = False  # a page with items gave a cursor to an empty page


class ListDialect:
    METHOD = ""  # "Service.Method"
    PAGINATION_RULE = ""
    TOTAL_RULE = ""
    SORT_RULE = ""
    FILTER_RULE = ""
    CONTAINS_RULE = ""
    SCOPE = ""  # names the dialect in case ids when a method has several (each scoping differently)
    LAST_PAGE_TOKENLESS = False  # the rule says the last page has no cursor (some APIs end on an empty page)

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

    def unusable(self, population: Population) -> str:
        """Why the population cannot be listed in small pages here (empty: it can)."""
        return ""

    def paging_sorts(self) -> list[Sort | None]:
        """The sorts the pagination check walks pages under (None: the method's default sort)."""
        return [self.stable_sort()]

    def paging_filters(self) -> list[Any]:
        """The filters the pagination check walks pages under (None: no filter)."""
        return [None]

    def expected(self, population: Population, sort: Sort | None, where: Any) -> list[str] | None:
        """The keys of the population's own items a listing under ``sort`` and ``where`` must show,
        in order (None: the model does not know the order)."""
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
            if not items and len(listing.replies) > 1:
                listing.trailing_token = True
            if cursor is None or not items:
                break
        return listing


# -- invariants -----------------------------------------------------------------------------


def check_pagination(
    dialect: ListDialect, population: Population, size: int, sort: Any = "stable", where: Any = None
) -> None:
    """Pages of ``size`` under ``sort`` (the dialect's stable sort unless given) and ``where``."""
    sort = dialect.stable_sort() if sort == "stable" else sort
    whole = dialect.walk(population, BIG_PAGE, sort, where)
    paged = dialect.walk(population, size, sort, where)
    whole_keys = [dialect.key(i) for i in whole.items]
    paged_keys = [dialect.key(i) for i in paged.items]
    last = paged.replies[-1]
    how = _how(dialect, size, sort, where)
    seen: set[str] = set()
    for key in paged_keys:
        if key in seen:
            raise fail(dialect.PAGINATION_RULE, last, f"each item once in {how}", f"{key} twice")
        seen.add(key)
    missing = [k for k in whole_keys if k not in seen]
    if missing:
        raise fail(
            dialect.PAGINATION_RULE,
            last,
            f"{how} covering all {len(whole_keys)} items",
            f"{len(missing)} missing (first: {missing[0]})",
        )
    extra = [k for k in paged_keys if k not in set(whole_keys)]
    if extra:
        raise fail(
            dialect.PAGINATION_RULE, last, f"only the {len(whole_keys)} listed items", f"also {extra[0]}"
        )
    if paged_keys != whole_keys:
        raise fail(dialect.PAGINATION_RULE, last, f"{how} in the order of the whole listing", "another order")
    if dialect.LAST_PAGE_TOKENLESS and paged.trailing_token:
        raise fail(dialect.PAGINATION_RULE, paged.replies[-2], f"no cursor on the last page of {how}", "one")
    for reply, total in zip(paged.replies, paged.totals, strict=True):
        if total != len(whole_keys) and total >= 0:
            raise fail(dialect.TOTAL_RULE, reply, f"total {len(whole_keys)} in {how}", total)
    wanted = dialect.expected(population, sort, where)
    if wanted is not None:
        _expect_own(dialect, population, wanted, paged_keys, last, how)


def _how(dialect: ListDialect, size: int, sort: Sort | None, where: Any) -> str:
    order = "the default sort" if sort is None else f"{sort.name}{' desc' if sort.descending else ''}"
    scope = "" if where is None else f" where {dialect.describe(where)}"
    return f"pages of {size} by {order}{scope}"


def _expect_own(
    dialect: ListDialect, population: Population, wanted: list[str], keys: list[str], reply: Reply, how: str
) -> None:
    """The population's own items in the listing are the ones the model expects, in its order."""
    own = set(population.keys)
    shown = [k for k in keys if k in own]
    extra = [k for k in shown if k not in set(wanted)]
    if extra:
        raise fail(
            dialect.FILTER_RULE,
            reply,
            f"only the {len(wanted)} created items the model expects in {how}",
            f"also {extra[0]}",
        )
    missing = [k for k in wanted if k not in set(shown)]
    if missing:
        raise fail(
            dialect.PAGINATION_RULE,
            reply,
            f"the {len(wanted)} created items the model expects in {how}",
            f"{len(missing)} missing (first: {missing[0]})",
        )
    if shown != wanted:
        at = next(i for i, (a, b) in enumerate(zip(shown, wanted, strict=True)) if a != b)
        raise fail(
            dialect.SORT_RULE,
            reply,
            f"{wanted[at]} at position {at} of the created items in {how}",
            shown[at],
        )


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
