"""The shared shape of ArmoniK list RPCs: filter, stable sort, page.

``page`` and ``page_size`` select items ``[page*page_size, (page+1)*page_size)``;
``total`` counts every match; ``page_size == 0`` answers the total only
(rule ``armonik.lists.pagination``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.protobuf import message
from protoconform.mockserver.apis.armonik import defects
from protoconform.mockserver.apis.armonik import filters as flt
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.rpc import CallContext

SKIPS_ITEM = defects.LIST_SKIPS_ITEM


def paginate(
    items: Sequence[Any], page: int, page_size: int, skip_first_of_later_pages: bool = False
) -> list[Any]:
    if page_size <= 0:
        return []
    start = page * page_size
    if skip_first_of_later_pages and page > 0:
        start += 1  # deliberate defect: the first item of every later page is lost
    return list(items[start : (page + 1) * page_size])


def sort_keys(
    state: ArmonikState, kind: str, sort: message.Message, multi: bool = False
) -> list[tuple[flt.FieldRef, bool]]:
    descending = sort.direction == 2  # SORT_DIRECTION_DESC
    fields = list(sort.fields) if multi else [sort.field]
    return [
        (
            flt.resolve_field(
                state, kind, field, "armonik.lists.sort-field-unknown", f"sort.field{'s' if multi else ''}"
            ),
            descending,
        )
        for field in fields
    ]


def run_list(
    ctx: CallContext,
    request: message.Message,
    kind: str,
    items: Iterable[Any],
    id_of: Callable[[Any], Any],
    *,
    multi_sort: bool = False,
    ignore_filters: bool = False,
) -> tuple[list[Any], int]:
    """Validate ``request`` (rules of ``ctx.method``), then filter, sort and page ``items``."""
    state: ArmonikState = ctx.state
    keys = sort_keys(state, kind, request.sort, multi_sort)
    predicate = flt.compile_filters(state, kind, request.filters)
    if ignore_filters:
        predicate = lambda item: True  # noqa: E731 - deliberate defect: filters are dropped
    matched = [item for item in items if predicate(item)]
    ordered = flt.sort_items(matched, keys, id_of)
    page = paginate(ordered, request.page, request.page_size, ctx.defect(SKIPS_ITEM))
    return page, len(matched)
