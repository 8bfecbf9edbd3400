"""The simulated task engine, stepped on a manual clock: lifecycle, dependencies, failures,
retries, timeouts, pause/resume, cancellation, priorities and options inheritance."""

from __future__ import annotations

import grpc
from akutil import (
    Stubs,
    advance,
    create_data,
    create_metadata,
    create_session,
    download,
    manual_server,
    result_status,
    rpc_error,
    state,
    submit,
    task_options,
    task_status,
)
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common.result_status_pb2 import ResultStatus as RS
from armonik.protogen.common.task_status_pb2 import TaskStatus as TS
from protoconform.mockserver.launcher import ThreadedServer


def test_lifecycle_steps_through_every_status(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, payload=b"abc")["payload"]
    out = create_metadata(stubs, sid, "out")["out"]
    tid = submit(stubs, sid, payload, [out])
    assert task_status(stubs, tid) == TS.TASK_STATUS_SUBMITTED
    seen = []
    for _ in range(3):
        advance(server, 1.0)
        seen.append(task_status(stubs, tid))
    assert seen == [TS.TASK_STATUS_DISPATCHED, TS.TASK_STATUS_PROCESSING, TS.TASK_STATUS_COMPLETED]
    assert result_status(stubs, out) == RS.RESULT_STATUS_COMPLETED
    assert download(stubs, sid, out) == b"abc"
    task = stubs.tasks.GetTask(tc.GetTaskRequest(task_id=tid)).task
    assert task.output.success and task.initial_task_id == tid
    assert task.ended_at.ToDatetime() > task.started_at.ToDatetime() > task.created_at.ToDatetime()
    assert task.processing_to_end_duration.seconds == 1
    assert task.creation_to_end_duration.seconds == 3


def test_dependencies_hold_a_task_pending_and_feed_its_output(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    data = create_data(stubs, sid, pa=b"A", pb=b"B")
    outs = create_metadata(stubs, sid, "a", "b")
    second = submit(stubs, sid, data["pb"], [outs["b"]], deps=[outs["a"]])
    assert task_status(stubs, second) == TS.TASK_STATUS_PENDING
    first = submit(stubs, sid, data["pa"], [outs["a"]])
    advance(server, 3.0)
    assert task_status(stubs, first) == TS.TASK_STATUS_COMPLETED
    assert task_status(stubs, second) == TS.TASK_STATUS_SUBMITTED
    advance(server, 3.0)
    assert task_status(stubs, second) == TS.TASK_STATUS_COMPLETED
    assert download(stubs, sid, outs["b"]) == b"BA"  # payload, then each dependency's data


def test_output_modes(server: ThreadedServer, stubs: Stubs) -> None:
    import hashlib

    sid = create_session(stubs)
    data = create_data(stubs, sid, p=b"p", d=b"d")
    outs = create_metadata(stubs, sid, "payload", "sha")
    submit(
        stubs,
        sid,
        data["p"],
        [outs["payload"]],
        [data["d"]],
        task_options(options={"mock.output": "payload"}),
    )
    submit(stubs, sid, data["p"], [outs["sha"]], [data["d"]], task_options(options={"mock.output": "sha256"}))
    advance(server, 3.0)
    assert download(stubs, sid, outs["payload"]) == b"p"
    assert download(stubs, sid, outs["sha"]) == hashlib.sha256(b"pd").hexdigest().encode()


def test_error_aborts_outputs_and_cancels_dependents(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    outs = create_metadata(stubs, sid, "a", "b")
    failing = submit(stubs, sid, payload, [outs["a"]], options=task_options(options={"mock.fail": "error"}))
    dependent = submit(stubs, sid, payload, [outs["b"]], deps=[outs["a"]])
    advance(server, 3.0)
    task = stubs.tasks.GetTask(tc.GetTaskRequest(task_id=failing)).task
    assert task.status == TS.TASK_STATUS_ERROR
    assert "mock.fail=error" in task.output.error and not task.output.success
    assert result_status(stubs, outs["a"]) == RS.RESULT_STATUS_ABORTED
    assert task_status(stubs, dependent) == TS.TASK_STATUS_CANCELLING
    assert result_status(stubs, outs["b"]) == RS.RESULT_STATUS_ABORTED
    advance(server, 1.0)
    assert task_status(stubs, dependent) == TS.TASK_STATUS_CANCELLED
    # no retry for an Output error
    listed = stubs.tasks.ListTasks(_list_request(sid))
    assert listed.total == 2
    assert {t.error for t in listed.tasks} == {""}  # errors only when asked for
    request = _list_request(sid)
    request.with_errors = True
    errors = {t.id: t.error for t in stubs.tasks.ListTasks(request).tasks}
    assert "mock.fail=error" in errors[failing] and errors[dependent] == ""


def _list_request(session_id: str) -> tc.ListTasksRequest:
    from armonik.common import Task

    return tc.ListTasksRequest(
        page_size=100,
        filters=(Task.session_id == session_id).to_disjunction().to_message(),
        sort=tc.ListTasksRequest.Sort(field=Task.created_at.field, direction=1),
    )


def test_crash_is_retried_and_the_retry_takes_over_outputs(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"again")["p"]
    out = create_metadata(stubs, sid, "out")["out"]
    flaky = task_options(max_retries=2, options={"mock.fail": "crash", "mock.fail_attempts": "1"})
    tid = submit(stubs, sid, payload, [out], options=flaky)
    advance(server, 3.0)
    assert task_status(stubs, tid) == TS.TASK_STATUS_RETRIED
    retry_id = f"{tid}###1"
    retry = stubs.tasks.GetTask(tc.GetTaskRequest(task_id=retry_id)).task
    assert list(retry.retry_of_ids) == [tid] and retry.initial_task_id == tid
    owner = stubs.results.GetResult(_get_result(out)).result.owner_task_id
    assert owner == retry_id
    advance(server, 3.0)
    assert task_status(stubs, retry_id) == TS.TASK_STATUS_COMPLETED
    assert download(stubs, sid, out) == b"again"


def _get_result(result_id: str):
    from armonik.protogen.common import results_common_pb2

    return results_common_pb2.GetResultRequest(result_id=result_id)


def test_crash_without_retries_left_is_an_error(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    out = create_metadata(stubs, sid, "out")["out"]
    tid = submit(
        stubs, sid, payload, [out], options=task_options(max_retries=1, options={"mock.fail": "crash"})
    )
    advance(server, 3.0)
    advance(server, 3.0)
    assert task_status(stubs, tid) == TS.TASK_STATUS_RETRIED
    assert task_status(stubs, f"{tid}###1") == TS.TASK_STATUS_ERROR
    assert result_status(stubs, out) == RS.RESULT_STATUS_ABORTED


def test_max_duration_gives_timeout(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    out = create_metadata(stubs, sid, "out")["out"]
    slow = task_options(seconds=5, options={"mock.duration": "30"})
    tid = submit(stubs, sid, payload, [out], options=slow)
    advance(server, 2.0 + 4.9)
    assert task_status(stubs, tid) == TS.TASK_STATUS_PROCESSING
    advance(server, 0.2)
    assert task_status(stubs, tid) == TS.TASK_STATUS_TIMEOUT
    assert result_status(stubs, out) == RS.RESULT_STATUS_ABORTED


def test_paused_session_queues_without_running(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    outs = create_metadata(stubs, sid, "a", "b")
    running = submit(stubs, sid, payload, [outs["a"]], options=task_options(options={"mock.duration": "5"}))
    advance(server, 2.0)
    assert task_status(stubs, running) == TS.TASK_STATUS_PROCESSING
    stubs.sessions.PauseSession(sc.PauseSessionRequest(session_id=sid))
    queued = submit(stubs, sid, payload, [outs["b"]])
    assert task_status(stubs, queued) == TS.TASK_STATUS_PAUSED
    advance(server, 10.0)
    assert task_status(stubs, running) == TS.TASK_STATUS_COMPLETED  # already running: goes on
    assert task_status(stubs, queued) == TS.TASK_STATUS_PAUSED
    stubs.sessions.ResumeSession(sc.ResumeSessionRequest(session_id=sid))
    assert task_status(stubs, queued) == TS.TASK_STATUS_SUBMITTED
    advance(server, 3.0)
    assert task_status(stubs, queued) == TS.TASK_STATUS_COMPLETED


def test_cancelled_session_cancels_tasks_aborts_results_refuses_submission(
    server: ThreadedServer, stubs: Stubs
) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    outs = create_metadata(stubs, sid, "a", "b", "spare")
    running = submit(stubs, sid, payload, [outs["a"]], options=task_options(options={"mock.duration": "5"}))
    pending = submit(stubs, sid, payload, [outs["b"]], deps=[outs["a"]])
    advance(server, 2.0)
    session = stubs.sessions.CancelSession(sc.CancelSessionRequest(session_id=sid)).session
    assert session.status == 2 and session.cancelled_at.seconds > 0  # SESSION_STATUS_CANCELLED
    assert not session.client_submission and not session.worker_submission
    assert task_status(stubs, running) == TS.TASK_STATUS_CANCELLING
    assert task_status(stubs, pending) == TS.TASK_STATUS_CANCELLING
    assert {result_status(stubs, outs[n]) for n in outs} == {RS.RESULT_STATUS_ABORTED}
    advance(server, 10.0)
    assert task_status(stubs, running) == TS.TASK_STATUS_CANCELLED
    assert task_status(stubs, pending) == TS.TASK_STATUS_CANCELLED
    error = rpc_error(submit, stubs, sid, payload, [])
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details().startswith("session_id:")


def test_cancel_tasks_ignores_unknown_and_final_tasks(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    outs = create_metadata(stubs, sid, "a", "b")
    done = submit(stubs, sid, payload, [outs["a"]])
    advance(server, 3.0)
    waiting = submit(stubs, sid, payload, [outs["b"]], options=task_options(options={"mock.duration": "9"}))
    reply = stubs.tasks.CancelTasks(tc.CancelTasksRequest(task_ids=[done, waiting, "no-such-task"]))
    assert [t.id for t in reply.tasks] == [done, waiting]
    assert [t.status for t in reply.tasks] == [TS.TASK_STATUS_COMPLETED, TS.TASK_STATUS_CANCELLING]
    assert result_status(stubs, outs["a"]) == RS.RESULT_STATUS_COMPLETED
    assert result_status(stubs, outs["b"]) == RS.RESULT_STATUS_ABORTED


def test_priority_orders_dispatch(stubs: Stubs) -> None:
    with manual_server(max_parallel=1) as server, grpc.insecure_channel(server.grpc_address) as channel:
        s = Stubs(channel)
        sid = create_session(s, priority=1)
        payload = create_data(s, sid, p=b"x")["p"]
        outs = create_metadata(s, sid, "low", "high")
        low = submit(s, sid, payload, [outs["low"]], options=task_options(priority=1))
        high = submit(s, sid, payload, [outs["high"]], options=task_options(priority=9))
        advance(server, 1.0)
        assert task_status(s, high) == TS.TASK_STATUS_DISPATCHED
        assert task_status(s, low) == TS.TASK_STATUS_SUBMITTED  # one slot only
        advance(server, 3.0)
        assert task_status(s, high) == TS.TASK_STATUS_COMPLETED
        assert task_status(s, low) == TS.TASK_STATUS_DISPATCHED


def test_options_inheritance_session_submit_task(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(
        stubs, max_retries=3, priority=2, seconds=60, application_name="app", options={"a": "s", "b": "s"}
    )
    payload = create_data(stubs, sid, p=b"x")["p"]
    out = create_metadata(stubs, sid, "out")["out"]
    request = tc.SubmitTasksRequest(
        session_id=sid,
        task_options=task_options(
            max_retries=0, priority=4, seconds=0, application_version="1.0", options={"b": "r"}
        ),
        task_creations=[
            tc.SubmitTasksRequest.TaskCreation(
                payload_id=payload,
                expected_output_keys=[out],
                task_options=task_options(max_retries=0, priority=7, seconds=30, options={"c": "t"}),
            )
        ],
    )
    tid = stubs.tasks.SubmitTasks(request).task_infos[0].task_id
    options = stubs.tasks.GetTask(tc.GetTaskRequest(task_id=tid)).task.options
    assert options.max_retries == 3  # unset at both levels: the session's
    assert options.priority == 7  # the task's, as given
    assert options.max_duration.seconds == 30  # the task's
    assert options.application_name == "app" and options.application_version == "1.0"
    assert options.partition_id == "default"
    assert dict(options.options) == {"a": "s", "b": "r", "c": "t"}


def test_purge_drops_data_and_delete_drops_everything(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    out = create_metadata(stubs, sid, "out")["out"]
    tid = submit(stubs, sid, payload, [out])
    advance(server, 3.0)
    stubs.sessions.CloseSession(sc.CloseSessionRequest(session_id=sid))
    purged = stubs.sessions.PurgeSession(sc.PurgeSessionRequest(session_id=sid)).session
    assert purged.status == 5 and purged.purged_at.seconds > 0  # SESSION_STATUS_PURGED
    assert {result_status(stubs, r) for r in (payload, out)} == {RS.RESULT_STATUS_DELETED}
    error = rpc_error(download, stubs, sid, out)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "result_id" in error.details()
    deleted = stubs.sessions.DeleteSession(sc.DeleteSessionRequest(session_id=sid)).session
    assert deleted.status == 6 and deleted.deleted_at.seconds > 0  # SESSION_STATUS_DELETED
    for call, request in (
        (stubs.sessions.GetSession, sc.GetSessionRequest(session_id=sid)),
        (stubs.tasks.GetTask, tc.GetTaskRequest(task_id=tid)),
        (stubs.results.GetResult, _get_result(out)),
    ):
        assert rpc_error(call, request).code() == grpc.StatusCode.NOT_FOUND
    assert len(state(server).objects._objects) == 0
