"""A task's whole lifecycle, followed on the event stream, and the legacy calls that wait for tasks
and results.  Each waits in real time, bounded; with the mock's control API the mock's clock is
moved along instead."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.armonik import tasks as tk
from protoconform.conformance.models.armonik.event_checks import describe, status_name, subscribe
from protoconform.conformance.models.armonik.requests import (
    COMPLETED,
    TASK_ENUM,
    b64,
    stream_session,
    upload_requests,
)
from protoconform.conformance.models.base import Env, expect_codes, fail
from protoconform.conformance.models.streams import StreamEnded

WAITING = 0.5  # seconds a call must still be waiting (or a task still parked) to count as waiting
STEP = 1.0  # server seconds moved per round with --control


def waiting_task(env: Env, session: str, what: str) -> tuple[str, str, str]:
    """(task, its data dependency without data, its output): a task that waits in PENDING."""
    stored = env.rpc(
        "Results.CreateResults",
        {"session_id": session, "results": [{"name": env.unique(f"{what}-payload"), "data": b64(b"p")}]},
    )
    created = env.rpc(
        "Results.CreateResultsMetaData",
        {
            "session_id": session,
            "results": [{"name": env.unique(f"{what}-dep")}, {"name": env.unique(f"{what}-out")}],
        },
    )
    for reply in (stored, created):
        expect_codes(reply, {"OK"}, "armonik.results.create.effects", f"results for {what}")
    dep, out = (r.result_id for r in created.response.results)
    submitted = env.rpc(
        "Tasks.SubmitTasks",
        {
            "session_id": session,
            "task_creations": [
                {
                    "payload_id": stored.response.results[0].result_id,
                    "data_dependencies": [dep],
                    "expected_output_keys": [out],
                }
            ],
        },
    )
    expect_codes(submitted, {"OK"}, "armonik.tasks.submit.reply-order", f"a task for {what}")
    return submitted.response.task_infos[0].task_id, dep, out


def task_status(env: Env, task: str, rule: str) -> tuple[Reply, str]:
    reply = env.rpc("Tasks.GetTask", {"task_id": task})
    expect_codes(reply, {"OK"}, rule, "reading a task")
    return reply, status_name(env, TASK_ENUM, reply.response.task.status)


def upload(env: Env, session: str, result: str, data: bytes = b"d") -> None:
    reply = env.rpc("Results.UploadResultData", requests=upload_requests(session, result, data, []))
    expect_codes(reply, {"OK"}, "armonik.results.upload.effects", "giving a dependency its data")


def check_lifecycle(env: Env, run: Callable[..., None]) -> None:
    """A task waits in PENDING while its dependency has no data, then moves along
    CREATING -> PENDING -> SUBMITTED -> DISPATCHED -> PROCESSING -> COMPLETED (as the event stream
    tells, status by status) and completes its output."""
    rule = tk.LIFECYCLE_RULE
    session = stream_session(env, "lifecycle")
    marker = env.rpc(
        "Results.CreateResultsMetaData", {"session_id": session, "results": [{"name": "marker"}]}
    )
    expect_codes(marker, {"OK"}, "armonik.results.create.effects", "a result that tells the stream is live")
    kinds = ["NEW_TASK", "TASK_STATUS_UPDATE", "NEW_RESULT", "RESULT_STATUS_UPDATE"]
    reader = subscribe(env, {"session_id": session, "returned_events": [f"EVENTS_ENUM_{k}" for k in kinds]})
    try:
        # Its snapshot came: the stream follows every change from now on (no task seen twice over).
        marker_id = marker.response.results[0].result_id
        if reader.wait_for(lambda e: describe(env, e)[1] == marker_id, 3.0) is None:
            raise fail("armonik.events.snapshot", reader.reply, f"NewResult of {marker_id}", "nothing in 3s")
        task, dep, out = waiting_task(env, session, "lifecycle")
        statuses: list[str] = []
        output_done = False

        def take(timeout: float) -> None:
            nonlocal output_done
            event = reader.next(timeout)
            if event is None:
                return
            kind, ident, status = describe(env, event)
            if ident == task and kind in ("new_task", "task_status_update"):
                statuses.append(status)
            elif ident == out and status == COMPLETED:
                output_done = True

        deadline = time.monotonic() + env.settle_timeout
        while tk.PENDING not in statuses:  # PENDING, whether told as the new task's status or a change
            if time.monotonic() > deadline or set(statuses) - {tk.CREATING}:
                raise fail(rule, reader.reply, f"{tk.PENDING} for task {task}", f"statuses {statuses}")
            take(0.2)
        env.wait(5 * STEP)  # the dependency has no data: the task must not move on
        parked = time.monotonic() + WAITING
        while time.monotonic() < parked:
            take(parked - time.monotonic())
        _, now = task_status(env, task, rule)
        if statuses[-1] != tk.PENDING or now != tk.PENDING:
            raise fail(
                rule, reader.reply, "PENDING while the dependency has no data", f"{statuses}, now {now}"
            )
        upload(env, session, dep)
        deadline = time.monotonic() + env.settle_timeout
        while not (statuses[-1] in tk.FINAL and output_done) and time.monotonic() < deadline:
            take(0.2)
            if env.control is not None:
                env.wait(STEP)
        problem = tk.path_problem(statuses)
        if problem or statuses[-1] != tk.COMPLETED:
            raise fail(rule, reader.reply, f"statuses along {' -> '.join(tk.PATH)}", problem or f"{statuses}")
        if not output_done:
            raise fail(rule, reader.reply, f"output {out} COMPLETED with its task", "no such status change")
    except StreamEnded as ended:
        raise fail("armonik.events.never-ends", reader.reply, "the stream open", ended.code.name) from None
    finally:
        reader.cancel()
    env.covered(rule)


def in_background(
    env: Env, method: str, request: dict[str, Any], timeout: float
) -> tuple[ThreadPoolExecutor, Future[Reply]]:
    pool = ThreadPoolExecutor(1)
    return pool, pool.submit(env.rpc, method, request, timeout=timeout)


def expect_waiting(env: Env, rule: str, method: str, request: dict[str, Any], what: str) -> None:
    """The call does not answer while ``what`` holds: its deadline passes first."""
    reply = env.rpc(method, request, timeout=WAITING)
    if reply.code != grpc.StatusCode.DEADLINE_EXCEEDED:
        raise fail(rule, reply, f"still waiting after {WAITING:g}s ({what})", reply.status())


def finished(env: Env, future: Future[Reply], rule: str, what: str) -> Reply:
    """The background call's reply, moving the mock's clock along while it waits."""
    deadline = time.monotonic() + env.settle_timeout
    while not future.done() and time.monotonic() < deadline:
        if env.control is not None:
            env.wait(STEP)
        time.sleep(0.05)
    if not future.done():
        raise fail(rule, None, f"an answer once {what}", f"still waiting after {env.settle_timeout:g}s")
    reply = future.result()
    expect_codes(reply, {"OK"}, rule, what)
    return reply


def check_wait_availability(env: Env, run: Callable[..., None]) -> None:
    """WaitForAvailability waits while the result is CREATED and answers ok once it is COMPLETED."""
    rule = "armonik.submitter.wait-for-availability"
    session = stream_session(env, "availability")
    _, dep, _ = waiting_task(env, session, "availability")
    request = {"session": session, "result_id": dep}
    expect_waiting(env, rule, "Submitter.WaitForAvailability", request, "the result is CREATED")
    pool, future = in_background(env, "Submitter.WaitForAvailability", request, env.settle_timeout + 5)
    try:
        time.sleep(0.2)  # let the call start waiting
        upload(env, session, dep)
        reply = finished(env, future, rule, "the result is COMPLETED")
    finally:
        pool.shutdown(wait=False)
    if reply.response.WhichOneof("type") != "ok":
        raise fail(rule, reply, "ok", reply.response.WhichOneof("type") or "an empty reply")
    env.covered(rule)


def check_wait_completion(env: Env, run: Callable[..., None]) -> None:
    """WaitForCompletion waits while a selected task can still change, then answers the counts."""
    rule = "armonik.submitter.wait-for-completion"
    session = stream_session(env, "completion")
    task, dep, _ = waiting_task(env, session, "completion")
    request = {"filter": {"task": {"ids": [task]}}}
    if not env.lenient:  # the real server refuses to wait for a PENDING task (see the rule)
        expect_waiting(env, rule, "Submitter.WaitForCompletion", request, "the task is PENDING")
        pool, future = in_background(env, "Submitter.WaitForCompletion", request, env.settle_timeout + 5)
        time.sleep(0.2)
        upload(env, session, dep)
    else:
        upload(env, session, dep)
        pool, future = in_background(env, "Submitter.WaitForCompletion", request, env.settle_timeout + 5)
    try:
        reply = finished(env, future, rule, "the task is finished")
    finally:
        pool.shutdown(wait=False)
    counts = {status_name(env, TASK_ENUM, v.status): v.count for v in reply.response.values}
    if counts != {tk.COMPLETED: 1}:
        _, now = task_status(env, task, rule)
        raise fail(rule, reply, f"{{{tk.COMPLETED}: 1}}", f"{counts} (the task is {now})")
    env.covered(rule)
