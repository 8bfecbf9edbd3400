"""Each deliberate ArmoniK defect is off by default and, switched on, bends exactly its behaviour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from akutil import (
    Stubs,
    advance,
    create_data,
    create_metadata,
    create_session,
    rpc_error,
    submit,
)
from armonik.common import Task
from armonik.protogen.common import events_common_pb2 as ec
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common.task_status_pb2 import TaskStatus
from protoconform.mockserver.apis.armonik.defects import DEFECTS
from protoconform.mockserver.launcher import ThreadedServer


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    return {"data_chunk_max_size": 4}


def both_ways(server: ThreadedServer, name: str, observe: Callable[[], Any]) -> tuple[Any, Any]:
    """What ``observe`` sees without, then with, the defect."""
    server.server.dispatcher.defects.discard(name)
    normal = observe()
    server.server.dispatcher.defects.add(name)
    try:
        return normal, observe()
    finally:
        server.server.dispatcher.defects.discard(name)


def test_the_defect_list() -> None:
    assert set(DEFECTS) == {
        "armonik.get-session-wrong-status-for-missing",
        "armonik.illegal-transition-accepted",
        "armonik.list-skips-item",
        "armonik.filter-ignored",
        "armonik.download-drops-last-chunk",
        "armonik.events-end-early",
        "armonik.result-missing-created-at",
        "armonik.task-status-out-of-domain",
    }
    assert all(defect.description.endswith(".") for defect in DEFECTS.values())


def test_get_session_wrong_status(server: ThreadedServer, stubs: Stubs) -> None:
    def code() -> grpc.StatusCode:
        return rpc_error(stubs.sessions.GetSession, sc.GetSessionRequest(session_id="nope")).code()

    assert both_ways(server, "armonik.get-session-wrong-status-for-missing", code) == (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INTERNAL,
    )


def test_illegal_transition_accepted(server: ThreadedServer, stubs: Stubs) -> None:
    def pause_cancelled() -> Any:
        sid = create_session(stubs)
        stubs.sessions.CancelSession(sc.CancelSessionRequest(session_id=sid))
        try:
            return stubs.sessions.PauseSession(sc.PauseSessionRequest(session_id=sid)).session.status
        except grpc.RpcError as error:
            return error.code()

    assert both_ways(server, "armonik.illegal-transition-accepted", pause_cancelled) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        3,  # SESSION_STATUS_PAUSED
    )


def _task_ids(stubs: Stubs, page: int, page_size: int, filters: Any = None) -> list[str]:
    request = tc.ListTasksRequest(page=page, page_size=page_size)
    request.filters.SetInParent()
    if filters is not None:
        request.filters.CopyFrom(filters)
    request.sort.field.CopyFrom(Task.id.field)
    request.sort.direction = 1
    return [t.id for t in stubs.tasks.ListTasks(request).tasks]


def _tasks(stubs: Stubs, count: int) -> list[str]:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    outs = create_metadata(stubs, sid, *[f"o{i}" for i in range(count)])
    return sorted(submit(stubs, sid, payload, [outs[f"o{i}"]]) for i in range(count))


def test_list_skips_item(server: ThreadedServer, stubs: Stubs) -> None:
    ids = _tasks(stubs, 6)
    normal, bent = both_ways(server, "armonik.list-skips-item", lambda: _task_ids(stubs, 1, 3))
    assert normal == ids[3:6] and bent == ids[4:6]
    assert both_ways(server, "armonik.list-skips-item", lambda: _task_ids(stubs, 0, 3)) == (ids[:3], ids[:3])


def test_filter_ignored(server: ThreadedServer, stubs: Stubs) -> None:
    ids = _tasks(stubs, 3)
    only_first = (Task.id == ids[0]).to_disjunction().to_message()
    normal, bent = both_ways(server, "armonik.filter-ignored", lambda: _task_ids(stubs, 0, 10, only_first))
    assert normal == ids[:1] and bent == ids


def test_download_drops_last_chunk(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    rid = create_data(stubs, sid, d=b"0123456789")["d"]
    request = rc.DownloadResultDataRequest(session_id=sid, result_id=rid)

    def data() -> bytes:
        return b"".join(c.data_chunk for c in stubs.results.DownloadResultData(request))

    assert both_ways(server, "armonik.download-drops-last-chunk", data) == (b"0123456789", b"01234567")


def test_events_end_early(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    create_data(stubs, sid, d=b"x")
    request = ec.EventSubscriptionRequest(session_id=sid, returned_events=[ec.EVENTS_ENUM_NEW_RESULT])

    def outcome() -> Any:
        messages = []
        try:
            for message in stubs.events.GetEvents(request, timeout=0.5):
                messages.append(message)
        except grpc.RpcError as error:
            return len(messages), error.code()
        return len(messages), "ended"

    assert both_ways(server, "armonik.events-end-early", outcome) == (
        (1, grpc.StatusCode.DEADLINE_EXCEEDED),
        (1, "ended"),
    )


def test_result_missing_created_at(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    rid = create_data(stubs, sid, d=b"x")["d"]

    def has_created_at() -> bool:
        return stubs.results.GetResult(rc.GetResultRequest(result_id=rid)).result.HasField("created_at")

    assert both_ways(server, "armonik.result-missing-created-at", has_created_at) == (True, False)


def test_task_status_out_of_domain(server: ThreadedServer, stubs: Stubs) -> None:
    (tid,) = _tasks(stubs, 1)
    advance(server, 3.0)

    def status() -> int:
        return stubs.tasks.GetTask(tc.GetTaskRequest(task_id=tid)).task.status

    normal, bent = both_ways(server, "armonik.task-status-out-of-domain", status)
    assert normal == TaskStatus.TASK_STATUS_COMPLETED and bent not in TaskStatus.values()
