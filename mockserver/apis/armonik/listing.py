"""The shared shape of ArmoniK list RPCs: filter, stable sort, page.

``page`` and ``page_size`` select items ``[page*page_size, (page+1)*page_size)``;
``total`` counts every match; ``page_size == 0`` answers the total only
(rule ``armonik.lists.pagination``).

Sessions, tasks and results keep a :class:`.listindex.ListIndex`: a filter that
is empty or an AND of ``session_id`` / ``status`` equalities, sorted on the id,
``created_at`` or the status, is answered from it (a page costs about the same
at 1k and 1M entities); any other request scans and sorts every entity.  Both
give the same answer (``tests/armonik/test_armonik_list_index.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from google.protobuf import message
from protoconform.mockserver.apis.armonik import defects
from protoconform.mockserver.apis.armonik import filters as flt
from protoconform.mockserver.apis.armonik.listindex import ListIndex, Scope
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.rpc import CallContext

SKIPS_ITEM = defects.LIST_SKIPS_ITEM

# Sort fields the index answers: field name -> its order in the index.
INDEXED_ORDERS: dict[str, dict[str, str]] = {
    "session": {
        "SESSION_RAW_ENUM_FIELD_SESSION_ID": "id",
        "SESSION_RAW_ENUM_FIELD_CREATED_AT": "created_at",
        "SESSION_RAW_ENUM_FIELD_STATUS": "status",
    },
    "task": {
        "TASK_SUMMARY_ENUM_FIELD_TASK_ID": "id",
        "TASK_SUMMARY_ENUM_FIELD_CREATED_AT": "created_at",
        "TASK_SUMMARY_ENUM_FIELD_STATUS": "status",
    },
    "result": {
        "RESULT_RAW_ENUM_FIELD_RESULT_ID": "id",
        "RESULT_RAW_ENUM_FIELD_CREATED_AT": "created_at",
        "RESULT_RAW_ENUM_FIELD_STATUS": "status",
    },
}
# Filter fields that select a scope of the index (with their equality operator).
_SCOPE_FIELDS: dict[str, dict[str, str]] = {
    "session": {"SESSION_RAW_ENUM_FIELD_STATUS": "status"},
    "task": {"TASK_SUMMARY_ENUM_FIELD_SESSION_ID": "session", "TASK_SUMMARY_ENUM_FIELD_STATUS": "status"},
    "result": {"RESULT_RAW_ENUM_FIELD_SESSION_ID": "session", "RESULT_RAW_ENUM_FIELD_STATUS": "status"},
}
_EQUALS = {"session": "FILTER_STRING_OPERATOR_EQUAL", "status": "FILTER_STATUS_OPERATOR_EQUAL"}
_CONDITIONS = {"session": "filter_string", "status": "filter_status"}


class IndexedRepository(Protocol):
    index: ListIndex | None

    def get(self, key: str) -> Any: ...


def index_scope(kind: str, filters: message.Message | None) -> Scope | None:
    """The index scope ``filters`` select (already validated), or None when the index cannot tell."""
    if filters is None:
        return (None, None)
    disjunction = list(getattr(filters, "or"))
    if not disjunction:
        return (None, None)
    if len(disjunction) != 1:
        return None
    found: dict[str, Any] = {}
    for field_filter in getattr(disjunction[0], "and"):
        member = field_filter.field.WhichOneof("field")
        if member is None:
            return None
        sub = getattr(field_filter.field, member)
        enum = sub.DESCRIPTOR.fields_by_name["field"].enum_type
        value = enum.values_by_number.get(sub.field) if enum is not None else None
        role = _SCOPE_FIELDS[kind].get(value.name) if value is not None else None
        if role is None or field_filter.WhichOneof("value_condition") != _CONDITIONS[role]:
            return None
        condition = getattr(field_filter, _CONDITIONS[role])
        operator = condition.DESCRIPTOR.fields_by_name["operator"].enum_type.values_by_number.get(
            condition.operator
        )
        if operator is None or operator.name != _EQUALS[role]:
            return None
        if role in found and found[role] != condition.value:
            return None  # two different values: nothing matches, the scan says so
        found[role] = condition.value
    return (found.get("session"), found.get("status"))


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


def _indexed_page(
    ctx: CallContext,
    request: message.Message,
    kind: str,
    keys: list[tuple[flt.FieldRef, bool]],
    repo: IndexedRepository,
    ignore_filters: bool,
) -> tuple[list[Any], int] | None:
    """The page and total from the repository's index, or None when the request needs a scan."""
    index = repo.index
    if index is None or len(keys) != 1:
        return None
    field, descending = keys[0]
    order = INDEXED_ORDERS.get(kind, {}).get(field.name)
    scope = (None, None) if ignore_filters else index_scope(kind, request.filters)
    if order is None or scope is None or request.page < 0:
        return None
    total = index.count(scope)
    if request.page_size <= 0:
        return [], total
    start = request.page * request.page_size
    if ctx.defect(SKIPS_ITEM) and request.page > 0:
        start += 1  # deliberate defect: the first item of every later page is lost
    ids = index.page(scope, order, descending, start, (request.page + 1) * request.page_size)
    return [repo.get(key) for key in ids], total


def run_list(
    ctx: CallContext,
    request: message.Message,
    kind: str,
    items: Iterable[Any] | Callable[[], Iterable[Any]],
    id_of: Callable[[Any], Any],
    *,
    multi_sort: bool = False,
    ignore_filters: bool = False,
    repo: IndexedRepository | None = None,
) -> tuple[list[Any], int]:
    """Validate ``request`` (rules of ``ctx.method``), then filter, sort and page ``items``
    (a callable is called only when the page is not answered from ``repo``'s index)."""
    state: ArmonikState = ctx.state
    keys = sort_keys(state, kind, request.sort, multi_sort)
    predicate = flt.compile_filters(state, kind, request.filters)
    if repo is not None:
        found = _indexed_page(ctx, request, kind, keys, repo, ignore_filters)
        if found is not None:
            return found
    if ignore_filters:
        predicate = lambda item: True  # noqa: E731 - deliberate defect: filters are dropped
    if callable(items):
        items = items()
    matched = [item for item in items if predicate(item)]
    ordered = flt.sort_items(matched, keys, id_of)
    page = paginate(ordered, request.page, request.page_size, ctx.defect(SKIPS_ITEM))
    return page, len(matched)
