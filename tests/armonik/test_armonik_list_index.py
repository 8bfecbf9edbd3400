"""The list index answers exactly what the full scan answers (random entities, changes and requests).

Entities share creation times (ties are ordered by id), change status and are deleted; each request
(no filter, session and/or status equality, sort on the id, created_at or status, either direction,
any page) is answered twice by :func:`listing.run_list`: from the index, and by the scan."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from armonik.protogen.common import filters_common_pb2 as fc
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import results_fields_pb2 as rf
from armonik.protogen.common import results_filters_pb2 as rfl
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import sessions_fields_pb2 as sf
from armonik.protogen.common import sessions_filters_pb2 as sfl
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from armonik.protogen.common import tasks_filters_pb2 as tfl
from armonik.protogen.common.objects_pb2 import TaskOptions
from hypothesis import given, settings
from hypothesis import strategies as st
from protoconform.mockserver.apis.armonik import listindex, listing, tasks
from protoconform.mockserver.apis.armonik.filters import compile_filters
from protoconform.mockserver.apis.armonik.listindex import _SMALL
from protoconform.mockserver.apis.armonik.options import parse
from protoconform.mockserver.apis.armonik.state import ArmonikState, Result, Session, Task
from protoconform.mockserver.clock import Clock

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SESSIONS = ["s-a", "s-b", "s-c"]
IDS = st.text(alphabet="0123456789abcdef", min_size=1, max_size=3)

# kind -> (request class, sort class, field module, filters module, {role: field message})
KINDS: dict[str, Any] = {
    "session": (
        sc.ListSessionsRequest,
        sfl,
        {
            "id": sf.SessionField(
                session_raw_field=sf.SessionRawField(field=sf.SESSION_RAW_ENUM_FIELD_SESSION_ID)
            ),
            "created_at": sf.SessionField(
                session_raw_field=sf.SessionRawField(field=sf.SESSION_RAW_ENUM_FIELD_CREATED_AT)
            ),
            "status": sf.SessionField(
                session_raw_field=sf.SessionRawField(field=sf.SESSION_RAW_ENUM_FIELD_STATUS)
            ),
            "other": sf.SessionField(
                session_raw_field=sf.SessionRawField(field=sf.SESSION_RAW_ENUM_FIELD_CLOSED_AT)
            ),
        },
    ),
    "task": (
        tc.ListTasksRequest,
        tfl,
        {
            "id": tf.TaskField(
                task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_TASK_ID)
            ),
            "created_at": tf.TaskField(
                task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_CREATED_AT)
            ),
            "status": tf.TaskField(
                task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_STATUS)
            ),
            "session": tf.TaskField(
                task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_SESSION_ID)
            ),
            "other": tf.TaskField(
                task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_ENDED_AT)
            ),
        },
    ),
    "result": (
        rc.ListResultsRequest,
        rfl,
        {
            "id": rf.ResultField(
                result_raw_field=rf.ResultRawField(field=rf.RESULT_RAW_ENUM_FIELD_RESULT_ID)
            ),
            "created_at": rf.ResultField(
                result_raw_field=rf.ResultRawField(field=rf.RESULT_RAW_ENUM_FIELD_CREATED_AT)
            ),
            "status": rf.ResultField(
                result_raw_field=rf.ResultRawField(field=rf.RESULT_RAW_ENUM_FIELD_STATUS)
            ),
            "session": rf.ResultField(
                result_raw_field=rf.ResultRawField(field=rf.RESULT_RAW_ENUM_FIELD_SESSION_ID)
            ),
            "other": rf.ResultField(result_raw_field=rf.ResultRawField(field=rf.RESULT_RAW_ENUM_FIELD_NAME)),
        },
    ),
}


def _state() -> ArmonikState:
    return ArmonikState(parse({}), Clock(0), None)


def _entity(kind: str, key: str, session: str, minute: int, status: int) -> Any:
    created = EPOCH + timedelta(minutes=minute)
    if kind == "session":
        return Session(key, ["default"], TaskOptions(), created, status=status)
    if kind == "task":
        return Task(key, session, TaskOptions(), "p", created, status=status)
    return Result(key, session, f"n-{key}", created, status=status)


def _repo(state: ArmonikState, kind: str) -> Any:
    return {"session": state.sessions, "task": state.tasks, "result": state.results}[kind]


def _condition(kind: str, role: str, value: Any, equal: bool = True) -> Any:
    _, filters, fields = KINDS[kind]
    if role == "session":
        op = fc.FILTER_STRING_OPERATOR_EQUAL if equal else fc.FILTER_STRING_OPERATOR_NOT_EQUAL
        return filters.FilterField(
            field=fields["session"], filter_string=fc.FilterString(value=value, operator=op)
        )
    op = fc.FILTER_STATUS_OPERATOR_EQUAL if equal else fc.FILTER_STATUS_OPERATOR_NOT_EQUAL
    return filters.FilterField(
        field=fields["status"], filter_status=filters.FilterStatus(value=value, operator=op)
    )


entities = st.lists(
    st.tuples(IDS, st.sampled_from(SESSIONS), st.integers(0, 4), st.integers(1, 8)), max_size=40
)
changes = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8), st.booleans()), max_size=15)
requests = st.tuples(
    st.sampled_from(["id", "created_at", "status", "other"]),
    st.sampled_from([1, 2]),
    st.integers(0, 6),  # page
    st.integers(0, 9),  # page size
    st.lists(st.tuples(st.sampled_from(["session", "status"]), st.integers(0, 8), st.booleans()), max_size=3),
    st.booleans(),  # two OR branches
    st.booleans(),  # the list-skips-item defect
)


def _check(kind: str, items: list[Any], edits: list[Any], request_spec: Any, rebuilt: bool = False) -> None:
    state = _state()
    repo = _repo(state, kind)
    for key, session, minute, status in items:
        repo.add(_entity(kind, key, session, minute, status))
    keys = [getattr(item, repo.key_attr) for item in repo.all()]
    for index, status, delete in edits:  # status changes and deletions, saved as the state does
        if not keys:
            break
        key = keys[index % len(keys)]
        item = repo.get(key)
        if item is None:
            continue
        if delete and kind != "session" and index % 5 == 0:
            repo.delete_session(item.session_id)
        elif delete:
            repo.delete(key)
        else:
            item.status = status
            repo.save(item)
    order, direction, page, page_size, conditions, two_branches, skips = request_spec
    if rebuilt:  # the index a restart builds at once from the loaded entities
        repo.index = listindex.ListIndex(repo.key_attr, repo.session_scoped)
        repo.index.build(repo.all())
    request_class, filters, fields = KINDS[kind]
    conjunction = [
        _condition(kind, role, SESSIONS[value % 3] if role == "session" else value, equal)
        for role, value, equal in conditions
        if not (role == "session" and kind == "session")
    ]
    branches = [filters.FiltersAnd(**{"and": conjunction})] if conjunction or two_branches else []
    if two_branches:
        branches.append(filters.FiltersAnd(**{"and": conjunction[:1]}))
    request = request_class(
        page=page,
        page_size=page_size,
        filters=filters.Filters(**{"or": branches}),
        sort=request_class.Sort(field=fields[order], direction=direction),
    )
    ctx = SimpleNamespace(state=state, defect=lambda name: skips and name == listing.SKIPS_ITEM)
    id_of = lambda item: getattr(item, repo.key_attr)  # noqa: E731
    fast = listing.run_list(ctx, request, kind, repo.all, id_of, repo=repo)  # type: ignore[arg-type]
    scan = listing.run_list(ctx, request, kind, repo.all, id_of)  # type: ignore[arg-type]
    assert [id_of(i) for i in fast[0]] == [id_of(i) for i in scan[0]] and fast[1] == scan[1]
    if kind == "task":  # CountTasksByStatus: kept counts or a scan, the same answer
        counted = tasks.count_by_status(tc.CountTasksByStatusRequest(filters=request.filters), ctx)
        predicate = compile_filters(state, "task", request.filters)
        expected = Counter(t.status for t in repo.all() if predicate(t))
        assert {c.status: c.count for c in counted.status} == dict(expected)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["session", "task", "result"]), entities, changes, requests, st.booleans())
def test_the_index_answers_like_the_scan(
    kind: str, items: list[Any], edits: list[Any], request: Any, rebuilt: bool
) -> None:
    _check(kind, items, edits, request, rebuilt)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["task", "result"]), changes, requests, st.booleans())
def test_large_scopes_answer_like_the_scan(kind: str, edits: list[Any], request: Any, rebuilt: bool) -> None:
    """Past the small-list size the scopes are SortedLists: same answers."""
    count = _SMALL * 2 + 7
    items = [(f"{i * 7919 % count:04x}", SESSIONS[i % 2], i // 100, 1 + i % 3) for i in range(count)]
    order, direction, page, page_size, conditions, two, skips = request
    _check(kind, items, edits, (order, direction, page * 40, page_size * 11, conditions, two, skips), rebuilt)


def test_counts_follow_status_changes_and_deletions() -> None:
    state = _state()
    for i in range(5):
        state.tasks.add(_entity("task", f"t{i}", SESSIONS[i % 2], i, 1))
    index = state.tasks.index
    assert index is not None and index.count(("s-a", 1)) == 3 and index.count((None, None)) == 5
    task = state.tasks.get("t0")
    state.set_task_status(task, 4)
    assert index.count(("s-a", 1)) == 2 and index.count(("s-a", 4)) == 1 and index.count((None, 4)) == 1
    state.tasks.delete_session("s-a")
    assert index.count((None, None)) == 2 and index.count(("s-a", None)) == 0 and index.count((None, 4)) == 0
    assert list(index.ids((None, None))) == ["t1", "t3"]


def test_status_changes_are_filed_in_bounded_batches(monkeypatch: Any) -> None:
    """Saved status changes wait to be filed until a status query, or until enough are waiting."""
    monkeypatch.setattr(listindex, "_SETTLE_AT", 3)
    state = _state()
    for i in range(4):
        state.tasks.add(_entity("task", f"t{i}", "s-a", i, 1))
    index = state.tasks.index
    assert index is not None
    for i, status in ((0, 2), (1, 2)):
        state.set_task_status(state.tasks.get(f"t{i}"), status)
    assert len(index._moved) == 2 and index.count(("s-a", None)) == 4  # no status asked: not filed yet
    assert index.count((None, 2)) == 2 and not index._moved  # a status query files them
    for i in range(3):
        state.set_task_status(state.tasks.get(f"t{i}"), 4)
    assert not index._moved  # the third change reached the bound: filed without a query
    assert index.status_counts("s-a") == {1: 1, 4: 3}
