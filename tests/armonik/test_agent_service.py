"""The Agent service, seen from a worker the test scripts call by call.

The server runs on a manual clock with an attached worker implemented here: each
``Process`` call is handed to the test, which makes Agent calls with the task's
communication token and then decides the reply.  That shows the token checks,
results and subtasks created from inside a task, data landing only when the
task succeeds, and what a failed, crashed or timed-out task leaves behind.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    servicer_port,
    submit,
    task_options,
    task_status,
)
from armonik.protogen.common import agent_common_pb2 as ag
from armonik.protogen.common import objects_pb2
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common.result_status_pb2 import ResultStatus as RS
from armonik.protogen.common.task_status_pb2 import TaskStatus as TS
from armonik.protogen.common.worker_common_pb2 import HealthCheckReply, ProcessReply, ProcessRequest
from armonik.protogen.worker.agent_service_pb2_grpc import AgentStub
from armonik.protogen.worker.worker_service_pb2_grpc import WorkerServicer, add_WorkerServicer_to_server
from protoconform.mockserver.launcher import ThreadedServer

OK = ProcessReply(output=objects_pb2.Output(ok=objects_pb2.Empty()))
CRASH = "crash"


def error_reply(details: str) -> ProcessReply:
    return ProcessReply(output=objects_pb2.Output(error=objects_pb2.Output.Error(details=details)))


class ScriptedWorker(WorkerServicer):
    """Hands every Process call to the test and answers what the test decides."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[ProcessRequest, queue.Queue[Any]]] = queue.Queue()

    def Process(self, request: ProcessRequest, context: grpc.ServicerContext) -> ProcessReply:
        decision: queue.Queue[Any] = queue.Queue()
        self.calls.put((request, decision))
        reply = decision.get(timeout=30)
        if reply == CRASH:
            context.abort(grpc.StatusCode.INTERNAL, "the worker crashed")
        return reply

    def HealthCheck(self, request: objects_pb2.Empty, context: grpc.ServicerContext) -> HealthCheckReply:
        return HealthCheckReply(status=HealthCheckReply.SERVING)


@dataclass
class Call:
    """One Process call in progress."""

    request: ProcessRequest
    decision: queue.Queue[Any]

    @property
    def token(self) -> str:
        return self.request.communication_token

    def reply(self, reply: Any) -> None:
        self.decision.put(reply)


@dataclass
class Harness:
    server: ThreadedServer
    worker: ScriptedWorker
    stubs: Stubs
    agent: AgentStub

    def next_call(self) -> Call:
        request, decision = self.worker.calls.get(timeout=15)
        return Call(request, decision)

    def start(self, task_id: str) -> Call:
        """Step the clock until ``task_id`` is sent to the worker."""
        advance(self.server, 2.0)  # SUBMITTED -> DISPATCHED -> PROCESSING
        call = self.next_call()
        assert call.request.task_id == task_id
        return call


@pytest.fixture(scope="module")
def worker() -> Iterator[tuple[ScriptedWorker, int]]:
    servicer = ScriptedWorker()
    with servicer_port(add_WorkerServicer_to_server, servicer, max_workers=8) as port:
        yield servicer, port


@pytest.fixture(scope="module")
def server_options(
    worker: tuple[ScriptedWorker, int], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    folder = str(tmp_path_factory.mktemp("agent-data"))
    return {"worker_address": f"127.0.0.1:{worker[1]}", "data_root": folder}


@pytest.fixture
def harness(
    server: ThreadedServer, worker: tuple[ScriptedWorker, int], fresh_channel: grpc.Channel
) -> Iterator[Harness]:
    yield Harness(server, worker[0], Stubs(fresh_channel), AgentStub(fresh_channel))
    while not worker[0].calls.empty():  # release anything a failed test left waiting
        worker[0].calls.get()[1].put(OK)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def get_result(stubs: Stubs, result_id: str) -> Any:
    return stubs.results.GetResult(rc.GetResultRequest(result_id=result_id)).result


def get_task(stubs: Stubs, task_id: str) -> Any:
    return stubs.tasks.GetTask(tc.GetTaskRequest(task_id=task_id)).task


def count_results(stubs: Stubs) -> int:
    request = rc.ListResultsRequest(page_size=0)
    request.filters.SetInParent()
    request.sort.field.result_raw_field.field = 7  # RESULT_RAW_ENUM_FIELD_RESULT_ID
    request.sort.direction = 1  # ascending
    return stubs.results.ListResults(request).total


def one_task(h: Harness, payload: bytes = b"payload", **option_fields: Any) -> tuple[str, str, str, str]:
    """(session, payload id, output id, task id) of a fresh submitted task."""
    sid = create_session(h.stubs, **option_fields)
    payload_id = create_data(h.stubs, sid, payload=payload)["payload"]
    out = create_metadata(h.stubs, sid, "out")["out"]
    return sid, payload_id, out, submit(h.stubs, sid, payload_id, [out])


TOKEN_METHODS: list[tuple[str, Callable[[str], Any]]] = [
    ("CreateResultsMetaData", lambda t: ag.CreateResultsMetaDataRequest(communication_token=t)),
    ("CreateResults", lambda t: ag.CreateResultsRequest(communication_token=t)),
    ("NotifyResultData", lambda t: ag.NotifyResultDataRequest(communication_token=t)),
    ("SubmitTasks", lambda t: ag.SubmitTasksRequest(communication_token=t)),
    ("GetResourceData", lambda t: ag.DataRequest(communication_token=t, result_id="r")),
    ("GetCommonData", lambda t: ag.DataRequest(communication_token=t, result_id="r")),
    ("GetDirectData", lambda t: ag.DataRequest(communication_token=t, result_id="r")),
]


def test_without_a_task_being_processed(harness: Harness) -> None:
    for method, build in TOKEN_METHODS:
        error = rpc_error(getattr(harness.agent, method), build("some-token"))
        assert error.code() == grpc.StatusCode.UNAVAILABLE, method
        assert "communication_token" in error.details()
        error = rpc_error(getattr(harness.agent, method), build(""))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        assert error.details().startswith("communication_token:")
    reply = harness.agent.CreateTask(iter([ag.CreateTaskRequest(communication_token="t")]))
    assert reply.error == "No task is accepting request"


def test_process_request_and_agent_calls_during_a_task(harness: Harness) -> None:
    h = harness
    sid, payload_id, out, tid = one_task(h, b"the payload", options={"k": "v"})
    call = h.start(tid)
    request = call.request

    # What the worker is given: a fresh token, the task, its inputs in the data folder.
    assert request.communication_token and request.session_id == sid
    assert list(request.expected_output_keys) == [out] and request.payload_id == payload_id
    assert request.task_options.options["k"] == "v" and request.task_options.max_retries == 1
    assert request.configuration.data_chunk_max_size == 2 * 1024 * 1024
    assert os.path.basename(request.data_folder) == call.token
    with open(os.path.join(request.data_folder, payload_id), "rb") as handle:
        assert handle.read() == b"the payload"
    assert task_status(h.stubs, tid) == TS.TASK_STATUS_PROCESSING

    # Tokens and sessions are checked.
    error = rpc_error(
        h.agent.CreateResultsMetaData, ag.CreateResultsMetaDataRequest(communication_token="bogus")
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "wrong communication token" in error.details()
    error = rpc_error(
        h.agent.CreateResultsMetaData,
        ag.CreateResultsMetaDataRequest(communication_token=call.token, session_id="another-session"),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("session_id:")

    # Results created from inside the task exist at once, CREATED, created by the task.
    meta = h.agent.CreateResultsMetaData(
        ag.CreateResultsMetaDataRequest(
            communication_token=call.token,
            session_id=sid,
            results=[ag.CreateResultsMetaDataRequest.ResultCreate(name="sub-out")],
        )
    ).results
    assert [(r.name, r.status, r.session_id) for r in meta] == [("sub-out", RS.RESULT_STATUS_CREATED, sid)]
    assert meta[0].created_at.seconds > 0
    sub_out = meta[0].result_id
    assert get_result(h.stubs, sub_out).created_by == tid and get_result(h.stubs, sub_out).owner_task_id == ""
    inline = h.agent.CreateResults(
        ag.CreateResultsRequest(
            communication_token=call.token,
            session_id=sid,
            results=[ag.CreateResultsRequest.ResultCreate(name="sub-payload", data=b"abc")],
        )
    ).results
    sub_payload = inline[0].result_id
    assert inline[0].status == RS.RESULT_STATUS_CREATED  # its data lands when the task completes

    # GetResourceData writes a result's data into the folder; no data or no result is NOT_FOUND.
    os.remove(os.path.join(request.data_folder, payload_id))
    data = h.agent.GetResourceData(ag.DataRequest(communication_token=call.token, result_id=payload_id))
    assert data.result_id == payload_id
    with open(os.path.join(request.data_folder, payload_id), "rb") as handle:
        assert handle.read() == b"the payload"
    for missing in (sub_payload, "no-such-result"):
        error = rpc_error(
            h.agent.GetResourceData, ag.DataRequest(communication_token=call.token, result_id=missing)
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith("result_id:")
    common = h.agent.GetCommonData(ag.DataRequest(communication_token=call.token, result_id=payload_id))
    assert common.result_id == payload_id

    # NotifyResultData needs the file first; a refused call keeps nothing.
    notify = ag.NotifyResultDataRequest(
        communication_token=call.token,
        ids=[ag.NotifyResultDataRequest.ResultIdentifier(session_id=sid, result_id=out)],
    )
    error = rpc_error(h.agent.NotifyResultData, notify)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and error.details().startswith(
        "ids[0].result_id:"
    )
    unknown = ag.NotifyResultDataRequest(
        communication_token=call.token, ids=[ag.NotifyResultDataRequest.ResultIdentifier(result_id="nope")]
    )
    assert rpc_error(h.agent.NotifyResultData, unknown).code() == grpc.StatusCode.NOT_FOUND
    with open(os.path.join(request.data_folder, out), "wb") as handle:
        handle.write(b"computed output")
    assert list(h.agent.NotifyResultData(notify).result_ids) == [out]

    # A subtask, from inside the task: CREATING until its parent completes.
    submitted = h.agent.SubmitTasks(
        ag.SubmitTasksRequest(
            communication_token=call.token,
            session_id=sid,
            task_creations=[
                ag.SubmitTasksRequest.TaskCreation(payload_id=sub_payload, expected_output_keys=[sub_out])
            ],
        )
    )
    assert submitted.communication_token == call.token
    child = submitted.task_infos[0].task_id
    assert list(submitted.task_infos[0].expected_output_ids) == [sub_out]
    child_task = get_task(h.stubs, child)
    assert child_task.status == TS.TASK_STATUS_CREATING
    assert child_task.created_by == tid and list(child_task.parent_task_ids) == [tid]
    assert result_status(h.stubs, out) == RS.RESULT_STATUS_CREATED

    call.reply(OK)
    wait_for(lambda: task_status(h.stubs, tid) == TS.TASK_STATUS_COMPLETED, "the task to complete")
    assert download(h.stubs, sid, out) == b"computed output"
    assert download(h.stubs, sid, sub_payload) == b"abc"
    assert task_status(h.stubs, child) == TS.TASK_STATUS_SUBMITTED
    assert get_result(h.stubs, sub_out).owner_task_id == child  # handed over on completion
    assert not os.path.exists(request.data_folder)  # the task's folder is cleaned up

    # The ended task's token is useless; with no task running the Agent is UNAVAILABLE.
    assert rpc_error(h.agent.SubmitTasks, ag.SubmitTasksRequest(communication_token=call.token)).code() == (
        grpc.StatusCode.UNAVAILABLE
    )
    # The subtask runs next; while it does, the parent's token is a wrong one.
    child_call = h.start(child)
    assert child_call.token != call.token and child_call.request.payload_id == sub_payload
    error = rpc_error(h.agent.SubmitTasks, ag.SubmitTasksRequest(communication_token=call.token))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    # An Output error fails the subtask without retry and aborts its output.
    child_call.reply(error_reply("cannot compute"))
    wait_for(lambda: task_status(h.stubs, child) == TS.TASK_STATUS_ERROR, "the subtask to fail")
    assert get_task(h.stubs, child).output.error == "cannot compute"
    assert result_status(h.stubs, sub_out) == RS.RESULT_STATUS_ABORTED


def test_a_crash_discards_what_the_task_produced_and_retries(harness: Harness) -> None:
    h = harness
    sid, _, out, tid = one_task(h)
    call = h.start(tid)
    made = h.agent.CreateResults(
        ag.CreateResultsRequest(
            communication_token=call.token,
            session_id=sid,
            results=[ag.CreateResultsRequest.ResultCreate(name="p", data=b"x")],
        )
    ).results[0]
    child = (
        h.agent.SubmitTasks(
            ag.SubmitTasksRequest(
                communication_token=call.token,
                task_creations=[
                    ag.SubmitTasksRequest.TaskCreation(payload_id=made.result_id, expected_output_keys=[out])
                ],
            )
        )
        .task_infos[0]
        .task_id
    )
    # The output is handed to the subtask only when this task completes, so the retry takes it over.
    assert get_result(h.stubs, out).owner_task_id == tid

    call.reply(CRASH)
    wait_for(lambda: task_status(h.stubs, tid) == TS.TASK_STATUS_RETRIED, "the retry")
    assert result_status(h.stubs, made.result_id) == RS.RESULT_STATUS_ABORTED
    assert task_status(h.stubs, child) in (TS.TASK_STATUS_CANCELLING, TS.TASK_STATUS_CANCELLED)
    retry = f"{tid}###1"
    assert "the worker crashed" in get_task(h.stubs, tid).status_message
    # The output goes back to the retry, which is processed again.
    second = h.start(retry)
    assert second.request.expected_output_keys == [out]
    with open(os.path.join(second.request.data_folder, out), "wb") as handle:
        handle.write(b"second time lucky")
    h.agent.NotifyResultData(
        ag.NotifyResultDataRequest(
            communication_token=second.token, ids=[ag.NotifyResultDataRequest.ResultIdentifier(result_id=out)]
        )
    )
    second.reply(OK)
    wait_for(lambda: task_status(h.stubs, retry) == TS.TASK_STATUS_COMPLETED, "the retry to complete")
    assert download(h.stubs, sid, out) == b"second time lucky"


def test_max_duration_times_the_task_out(harness: Harness) -> None:
    h = harness
    sid = create_session(h.stubs)
    payload_id = create_data(h.stubs, sid, payload=b"slow")["payload"]
    out = create_metadata(h.stubs, sid, "out")["out"]
    tid = submit(h.stubs, sid, payload_id, [out], options=task_options(seconds=5))
    call = h.start(tid)
    advance(h.server, 6.0)
    wait_for(lambda: task_status(h.stubs, tid) == TS.TASK_STATUS_TIMEOUT, "the timeout")
    assert result_status(h.stubs, out) == RS.RESULT_STATUS_ABORTED
    error = rpc_error(h.agent.CreateResults, ag.CreateResultsRequest(communication_token=call.token))
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # the run is over
    call.reply(OK)  # the worker's late answer changes nothing
    time.sleep(0.2)
    assert task_status(h.stubs, tid) == TS.TASK_STATUS_TIMEOUT


def test_worker_submission_closed(harness: Harness) -> None:
    h = harness
    sid, payload_id, out, tid = one_task(h)
    call = h.start(tid)
    h.stubs.sessions.StopSubmission(sc.StopSubmissionRequest(session_id=sid, worker=True))
    request = ag.SubmitTasksRequest(
        communication_token=call.token,
        task_creations=[
            ag.SubmitTasksRequest.TaskCreation(payload_id=payload_id, expected_output_keys=[out])
        ],
    )
    error = rpc_error(h.agent.SubmitTasks, request)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and error.details().startswith("session_id:")
    total = h.stubs.tasks.CountTasksByStatus(tc.CountTasksByStatusRequest()).status
    assert sum(c.count for c in total) == 1  # nothing was created
    call.reply(OK)


def _stream(token: str, *messages: ag.CreateTaskRequest) -> Iterator[ag.CreateTaskRequest]:
    first = ag.CreateTaskRequest(communication_token=token)
    first.init_request.task_options.CopyFrom(task_options(priority=2))
    yield first
    yield from messages


def _header(outputs: list[str], deps: list[str] | None = None) -> ag.CreateTaskRequest:
    message = ag.CreateTaskRequest()
    message.init_task.header.expected_output_keys.extend(outputs)
    message.init_task.header.data_dependencies.extend(deps or [])
    return message


def _chunk(data: bytes | None) -> ag.CreateTaskRequest:
    message = ag.CreateTaskRequest()
    if data is None:
        message.task_payload.data_complete = True
    else:
        message.task_payload.data = data
    return message


def _last() -> ag.CreateTaskRequest:
    message = ag.CreateTaskRequest()
    message.init_task.last_task = True
    return message


def test_legacy_create_task_stream(harness: Harness) -> None:
    h = harness
    sid, _, out, tid = one_task(h)
    call = h.start(tid)
    extra = create_metadata(h.stubs, sid, "extra")["extra"]

    assert h.agent.CreateTask(iter([])).error == "Empty request"
    assert h.agent.CreateTask(_stream("")).error == "Missing communication token"
    assert h.agent.CreateTask(_stream("bogus")).error == "Wrong communication token"
    truncated = h.agent.CreateTask(_stream(call.token, _header([out]), _chunk(b"ab")))
    assert truncated.error == "Missing message in request"
    error = rpc_error(h.agent.CreateTask, _stream(call.token, _header([out]), _last()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("init_task:")
    before = count_results(h.stubs)

    reply = h.agent.CreateTask(
        _stream(
            call.token,
            _header([out]),
            _chunk(b"first "),
            _chunk(b"payload"),
            _chunk(None),
            _header([extra], [out]),
            _chunk(b"second"),
            _chunk(None),
            _last(),
        )
    )
    assert reply.WhichOneof("Response") == "creation_status_list"
    infos = [s.task_info for s in reply.creation_status_list.creation_statuses]
    assert [list(i.expected_output_keys) for i in infos] == [[out], [extra]]
    assert list(infos[1].data_dependencies) == [out]
    for info in infos:
        task = get_task(h.stubs, info.task_id)
        assert task.status == TS.TASK_STATUS_CREATING and task.created_by == tid
        assert task.options.priority == 2
    # Each payload became a result created by the task; its data lands when the task completes.
    after = count_results(h.stubs)
    assert after == before + 2
    call.reply(OK)
    wait_for(lambda: task_status(h.stubs, tid) == TS.TASK_STATUS_COMPLETED, "the task to complete")
    assert download(h.stubs, sid, infos[0].payload_id) == b"first payload"
    assert task_status(h.stubs, infos[0].task_id) == TS.TASK_STATUS_SUBMITTED
    assert task_status(h.stubs, infos[1].task_id) == TS.TASK_STATUS_PENDING
