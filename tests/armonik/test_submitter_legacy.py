"""The legacy Submitter service, answered from the same state as Sessions/Results/Tasks.

Every check crosses services: what the Submitter creates is seen through the new
services and the other way round.  The clock is manual, so waiting calls are
started as futures and released by stepping the clock.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from akutil import (
    Stubs,
    advance,
    create_data,
    create_metadata,
    create_session,
    download,
    result_status,
    rpc_error,
    submit,
    task_options,
    task_status,
)
from armonik.protogen.client.submitter_service_pb2_grpc import SubmitterStub
from armonik.protogen.common import objects_pb2 as ob
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import submitter_common_pb2 as sm
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common.result_status_pb2 import ResultStatus as RS
from armonik.protogen.common.session_status_pb2 import SessionStatus as SS
from armonik.protogen.common.task_status_pb2 import TaskStatus as TS
from protoconform.mockserver.launcher import ThreadedServer

CHUNK = 4


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    return {"data_chunk_max_size": CHUNK}


@pytest.fixture
def stubs(fresh_channel: grpc.Channel) -> tuple[Stubs, SubmitterStub]:
    return Stubs(fresh_channel), SubmitterStub(fresh_channel)


def small_request(session_id: str, *tasks: tuple[bytes, list[str], list[str]], **option_fields: Any) -> Any:
    return sm.CreateSmallTaskRequest(
        session_id=session_id,
        task_options=task_options(**option_fields),
        task_requests=[
            ob.TaskRequest(payload=payload, expected_output_keys=outputs, data_dependencies=deps)
            for payload, outputs, deps in tasks
        ],
    )


def session_filter(session_id: str, **statuses: list[int]) -> sm.TaskFilter:
    task_filter = sm.TaskFilter(session=sm.TaskFilter.IdsRequest(ids=[session_id]))
    for case, values in statuses.items():
        getattr(task_filter, case).statuses.extend(values)
    return task_filter


def counts(reply: ob.Count) -> dict[int, int]:
    return {c.status: c.count for c in reply.values}


def inventory(stubs: Stubs) -> tuple[int, int]:
    """(tasks, results) stored, to show a refused request changed nothing."""
    tasks = sum(c.count for c in stubs.tasks.CountTasksByStatus(tc.CountTasksByStatusRequest()).status)
    request = rc.ListResultsRequest(page_size=0)
    request.filters.SetInParent()
    request.sort.field.result_raw_field.field = 7  # result id
    request.sort.direction = 1
    return tasks, stubs.results.ListResults(request).total


def test_configuration_and_sessions(stubs: tuple[Stubs, SubmitterStub]) -> None:
    new, legacy = stubs
    assert legacy.GetServiceConfiguration(ob.Empty()).data_chunk_max_size == CHUNK
    assert new.results.GetServiceConfiguration(ob.Empty()).data_chunk_max_size == CHUNK

    sid = legacy.CreateSession(sm.CreateSessionRequest(default_task_option=task_options())).session_id
    session = new.sessions.GetSession(sc.GetSessionRequest(session_id=sid)).session
    assert session.status == SS.SESSION_STATUS_RUNNING and list(session.partition_ids) == ["default"]
    error = rpc_error(
        legacy.CreateSession, sm.CreateSessionRequest(default_task_option=task_options(priority=0))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("default_task_option.priority:")

    running = sm.SessionFilter(
        included=sm.SessionFilter.StatusesRequest(statuses=[SS.SESSION_STATUS_RUNNING])
    )
    assert sid in legacy.ListSessions(running).session_ids
    assert list(legacy.ListSessions(sm.SessionFilter(sessions=[sid])).session_ids) == [sid]

    legacy.CancelSession(ob.Session(id=sid))
    assert (
        new.sessions.GetSession(sc.GetSessionRequest(session_id=sid)).session.status
        == SS.SESSION_STATUS_CANCELLED
    )
    assert sid not in legacy.ListSessions(running).session_ids
    error = rpc_error(legacy.CancelSession, ob.Session(id=sid))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "CANCELLED" in error.details()
    error = rpc_error(legacy.CancelSession, ob.Session(id="no-such-session"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith("id:")
    error = rpc_error(legacy.ListSessions, sm.SessionFilter(included=sm.SessionFilter.StatusesRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith(
        "included.statuses:"
    )


def test_small_tasks_run_and_their_results_stream(
    server: ThreadedServer, stubs: tuple[Stubs, SubmitterStub]
) -> None:
    new, legacy = stubs
    sid = create_session(new)
    outs = create_metadata(new, sid, "first", "second")
    reply = legacy.CreateSmallTasks(
        small_request(sid, (b"hello ", [outs["first"]], []), (b"world", [outs["second"]], [outs["first"]]))
    )
    infos = [s.task_info for s in reply.creation_status_list.creation_statuses]
    first, second = (i.task_id for i in infos)
    assert [list(i.expected_output_keys) for i in infos] == [[outs["first"]], [outs["second"]]]
    # The payloads are COMPLETED results of the session, readable through Results.
    assert download(new, sid, infos[0].payload_id) == b"hello "
    assert result_status(new, infos[1].payload_id) == RS.RESULT_STATUS_COMPLETED

    assert set(legacy.ListTasks(session_filter(sid)).task_ids) == {first, second}
    assert counts(legacy.CountTasks(session_filter(sid))) == {
        TS.TASK_STATUS_SUBMITTED: 1,
        TS.TASK_STATUS_PENDING: 1,
    }
    assert list(legacy.ListTasks(session_filter(sid, included=[TS.TASK_STATUS_PENDING])).task_ids) == [second]
    assert list(legacy.ListTasks(session_filter(sid, excluded=[TS.TASK_STATUS_PENDING])).task_ids) == [first]
    statuses = legacy.GetTaskStatus(sm.GetTaskStatusRequest(task_ids=[first, "unknown"])).id_statuses
    assert [(s.task_id, s.status) for s in statuses] == [(first, TS.TASK_STATUS_SUBMITTED)]
    not_ready = list(legacy.TryGetResultStream(ob.ResultRequest(session=sid, result_id=outs["second"])))
    assert [r.not_completed_task for r in not_ready] == [second]

    waiting = legacy.WaitForCompletion.future(sm.WaitRequest(filter=session_filter(sid)))
    availability = legacy.WaitForAvailability.future(ob.ResultRequest(session=sid, result_id=outs["second"]))
    time.sleep(0.2)
    assert not waiting.done() and not availability.done()
    advance(server, 6.0)
    assert counts(waiting.result(timeout=10)) == {TS.TASK_STATUS_COMPLETED: 2}
    assert availability.result(timeout=10).WhichOneof("type") == "ok"

    replies = list(legacy.TryGetResultStream(ob.ResultRequest(session=sid, result_id=outs["second"])))
    assert all(r.WhichOneof("type") == "result" for r in replies)
    assert replies[-1].result.data_complete
    chunks = [r.result.data for r in replies[:-1]]
    assert b"".join(chunks) == b"worldhello " and max(len(c) for c in chunks) == CHUNK
    statuses = legacy.GetResultStatus(
        sm.GetResultStatusRequest(session_id=sid, result_ids=[outs["first"], "x"])
    )
    assert [(s.result_id, s.status) for s in statuses.id_statuses] == [
        (outs["first"], RS.RESULT_STATUS_COMPLETED)
    ]
    assert (
        legacy.TryGetTaskOutput(ob.TaskOutputRequest(session=sid, task_id=second)).WhichOneof("type") == "ok"
    )


def test_failed_task_through_the_legacy_reads(
    server: ThreadedServer, stubs: tuple[Stubs, SubmitterStub]
) -> None:
    new, legacy = stubs
    sid = create_session(new)
    payload = create_data(new, sid, payload=b"p")["payload"]
    out = create_metadata(new, sid, "out")["out"]
    tid = submit(new, sid, payload, [out], options=task_options(options={"mock.fail": "error"}))
    availability = legacy.WaitForAvailability.future(ob.ResultRequest(session=sid, result_id=out))
    advance(server, 3.0)
    assert task_status(new, tid) == TS.TASK_STATUS_ERROR

    reply = availability.result(timeout=10)
    assert reply.error.task_id == tid
    assert reply.error.errors[0].task_status == TS.TASK_STATUS_ERROR
    assert "mock.fail=error" in reply.error.errors[0].detail
    [streamed] = list(legacy.TryGetResultStream(ob.ResultRequest(session=sid, result_id=out)))
    assert streamed.error.task_id == tid
    output = legacy.TryGetTaskOutput(ob.TaskOutputRequest(session=sid, task_id=tid))
    assert "mock.fail=error" in output.error.details
    error = rpc_error(legacy.TryGetTaskOutput, ob.TaskOutputRequest(session=sid, task_id="nope"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith("task_id:")

    # A result nobody produces, one of another session, an unknown one.
    orphan = create_metadata(new, sid, "orphan")["orphan"]
    error = rpc_error(legacy.TryGetResultStream, ob.ResultRequest(session=sid, result_id=orphan))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and error.details().startswith("result_id:")
    other = create_session(new)
    error = rpc_error(legacy.WaitForAvailability, ob.ResultRequest(session=other, result_id=out))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("result_id:")
    error = rpc_error(legacy.WaitForAvailability, ob.ResultRequest(session=sid, result_id="unknown"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def large_stream(
    session_id: str, *tasks: tuple[list[str], list[bytes]]
) -> Iterator[sm.CreateLargeTaskRequest]:
    yield sm.CreateLargeTaskRequest(
        init_request=sm.CreateLargeTaskRequest.InitRequest(
            session_id=session_id, task_options=task_options(priority=3)
        )
    )
    for outputs, chunks in tasks:
        header = sm.CreateLargeTaskRequest()
        header.init_task.header.expected_output_keys.extend(outputs)
        yield header
        for chunk in chunks:
            yield sm.CreateLargeTaskRequest(task_payload=ob.DataChunk(data=chunk))
        yield sm.CreateLargeTaskRequest(task_payload=ob.DataChunk(data_complete=True))
    last = sm.CreateLargeTaskRequest()
    last.init_task.last_task = True
    yield last


def test_large_tasks_stream(server: ThreadedServer, stubs: tuple[Stubs, SubmitterStub]) -> None:
    new, legacy = stubs
    sid = create_session(new)
    outs = create_metadata(new, sid, "a", "b")
    reply = legacy.CreateLargeTasks(
        large_stream(sid, ([outs["a"]], [b"big ", b"payload"]), ([outs["b"]], [b"x"]))
    )
    infos = [s.task_info for s in reply.creation_status_list.creation_statuses]
    assert len(infos) == 2
    assert download(new, sid, infos[0].payload_id) == b"big payload"
    task = new.tasks.GetTask(tc.GetTaskRequest(task_id=infos[0].task_id)).task
    assert task.options.priority == 3 and task.status == TS.TASK_STATUS_SUBMITTED
    advance(server, 3.0)
    assert download(new, sid, outs["a"]) == b"big payload"

    before = inventory(new)
    first = next(large_stream(sid))
    header_only = list(large_stream(sid, ([outs["a"]], [])))[:2]
    cases = {
        "empty": [],
        "no init_request": list(large_stream(sid, ([outs["a"]], [b"x"])))[1:],
        "no session": [sm.CreateLargeTaskRequest(init_request=sm.CreateLargeTaskRequest.InitRequest())],
        "truncated": header_only,
        "disordered": [first, *list(large_stream(sid, ([outs["a"]], [b"x"])))[2:]],
        "header without outputs": list(large_stream(sid, ([], [b"x"]))),
        "unknown output": list(large_stream(sid, (["no-such-result"], [b"x"]))),
        "unknown session": list(large_stream("no-such-session", ([outs["a"]], [b"x"]))),
    }
    expected = {"unknown output": grpc.StatusCode.NOT_FOUND, "unknown session": grpc.StatusCode.NOT_FOUND}
    for name, messages in cases.items():
        error = rpc_error(legacy.CreateLargeTasks, iter(messages))
        assert error.code() == expected.get(name, grpc.StatusCode.INVALID_ARGUMENT), name
        assert error.details().split(":")[0] in (
            "init_request",
            "init_request.session_id",
            "init_task",
            "init_task.header.expected_output_keys",
            "init_task[0].expected_output_keys[0]",
            "session_id",
        ), (name, error.details())
    assert inventory(new) == before


def test_small_tasks_bad_input_changes_nothing(stubs: tuple[Stubs, SubmitterStub]) -> None:
    new, legacy = stubs
    sid = create_session(new)
    out = create_metadata(new, sid, "out")["out"]
    other = create_session(new)
    foreign = create_data(new, other, data=b"d")["data"]
    before = inventory(new)
    no_options = small_request(sid, (b"p", [out], []))
    no_options.ClearField("task_options")
    cases = [
        (small_request("no-such-session", (b"p", [out], [])), grpc.StatusCode.NOT_FOUND, "session_id"),
        (no_options, grpc.StatusCode.INVALID_ARGUMENT, "task_options"),
        (
            small_request(sid, (b"p", [out], []), max_retries=0),
            grpc.StatusCode.INVALID_ARGUMENT,
            "task_options",
        ),
        (small_request(sid), grpc.StatusCode.INVALID_ARGUMENT, "task_requests"),
        (small_request(sid, (b"", [out], [])), grpc.StatusCode.INVALID_ARGUMENT, "task_requests.payload"),
        (small_request(sid, (b"p", ["nope"], [])), grpc.StatusCode.NOT_FOUND, "task_requests[0]"),
        (small_request(sid, (b"p", [out], [foreign])), grpc.StatusCode.INVALID_ARGUMENT, "task_requests[0]"),
    ]
    for request, code, field in cases:
        error = rpc_error(legacy.CreateSmallTasks, request)
        assert error.code() == code, (field, error.details())
        assert error.details().startswith(field), (field, error.details())
    assert inventory(new) == before

    new.sessions.CloseSession(sc.CloseSessionRequest(session_id=sid))
    error = rpc_error(legacy.CreateSmallTasks, small_request(sid, (b"p", [out], [])))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and error.details().startswith("session_id:")
    assert inventory(new) == before


def test_cancel_tasks_and_wait_flags(server: ThreadedServer, stubs: tuple[Stubs, SubmitterStub]) -> None:
    new, legacy = stubs
    sid = create_session(new)
    outs = create_metadata(new, sid, "a", "b")
    reply = legacy.CreateSmallTasks(small_request(sid, (b"a", [outs["a"]], []), (b"b", [outs["b"]], [])))
    first, second = (s.task_info.task_id for s in reply.creation_status_list.creation_statuses)
    legacy.CancelTasks(sm.TaskFilter(task=sm.TaskFilter.IdsRequest(ids=[first])))
    assert task_status(new, first) == TS.TASK_STATUS_CANCELLING
    assert task_status(new, second) == TS.TASK_STATUS_SUBMITTED
    stopped = legacy.WaitForCompletion(
        sm.WaitRequest(filter=session_filter(sid), stop_on_first_task_cancellation=True)
    )
    assert counts(stopped) == {TS.TASK_STATUS_SUBMITTED: 1, TS.TASK_STATUS_CANCELLING: 1}
    assert result_status(new, outs["a"]) == RS.RESULT_STATUS_ABORTED

    for bad, field in (
        (sm.TaskFilter(), "session"),
        (sm.TaskFilter(task=sm.TaskFilter.IdsRequest()), "task.ids"),
        (session_filter(sid, included=[]), "included.statuses"),
    ):
        if field == "included.statuses":
            bad.included.SetInParent()
        for call in (legacy.ListTasks, legacy.CountTasks, legacy.CancelTasks):
            error = rpc_error(call, bad)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith(field)
    error = rpc_error(legacy.WaitForCompletion, sm.WaitRequest())
    assert error.details().startswith("filter.session:")
    assert task_status(new, second) == TS.TASK_STATUS_SUBMITTED


def test_watch_results(server: ThreadedServer, stubs: tuple[Stubs, SubmitterStub]) -> None:
    new, legacy = stubs
    sid = create_session(new)
    done = create_data(new, sid, done=b"d")["done"]
    payload = create_data(new, sid, payload=b"p")["payload"]
    out = create_metadata(new, sid, "out")["out"]
    requests: queue.Queue[Any] = queue.Queue()

    def feed() -> Iterator[sm.WatchResultRequest]:
        while (item := requests.get()) is not None:
            yield item

    stream = legacy.WatchResults(feed())
    requests.put(sm.WatchResultRequest(result_ids=[done, out, "unknown"]))
    first = {next(stream).status: None for _ in range(3)}
    assert set(first) == {RS.RESULT_STATUS_COMPLETED, RS.RESULT_STATUS_CREATED, RS.RESULT_STATUS_NOTFOUND}
    submit(new, sid, payload, [out])
    advance(server, 3.0)
    update = next(stream)
    assert (update.status, list(update.result_ids)) == (RS.RESULT_STATUS_COMPLETED, [out])
    stream.cancel()
    requests.put(None)
