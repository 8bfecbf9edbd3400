"""What ArmoniK's event stream owes a subscriber: the snapshot of what exists (for the types and
filters asked), nothing for a session that does not exist, and an end with RESOURCE_EXHAUSTED
for a client that falls too far behind."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.armonik.requests import (
    COMPLETED,
    CREATED,
    RESULT_ENUM,
    TASK_ENUM,
    b64,
    stream_session,
)
from protoconform.conformance.models.base import Env, expect_codes, fail
from protoconform.conformance.models.streams import StreamEnded, StreamReader
from protoconform.conformance.target import CHANNEL_OPTIONS

NEW_TASK, NEW_RESULT = "new_task", "new_result"
SNAPSHOT_WAIT = 3.0  # seconds for a snapshot to arrive
QUIET = 0.3  # seconds without anything more once everything expected came
# A client that does not read: no window growth, a small look-ahead, so the server has to buffer.
STALLED = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)]


def subscribe(env: Env, request: dict[str, Any]) -> StreamReader:
    call = env.rpc.open("Events.GetEvents", request, timeout=60)
    return StreamReader(call, env.rpc.history[-1])


def describe(env: Env, event: Any) -> tuple[str, str, str]:
    """(kind, id, status name) of an event."""
    kind = event.WhichOneof("update")
    body = getattr(event, kind)
    ident = getattr(body, "task_id", "") or getattr(body, "result_id", "")
    enum = TASK_ENUM if kind in (NEW_TASK, "task_status_update") else RESULT_ENUM
    status = getattr(body, "status", None)
    return kind, ident, "" if status is None else status_name(env, enum, status)


def status_name(env: Env, enum: str, number: int) -> str:
    value = env.rpc.registry.enum(enum).values_by_number.get(number)
    return value.name if value is not None else str(number)


def collect(
    env: Env, reader: StreamReader, wanted: set[tuple[str, str, str]], rule: str
) -> list[tuple[str, str, str]]:
    """Read until every wanted event came, then a quiet moment; everything received."""
    seen: list[tuple[str, str, str]] = []
    deadline = time.monotonic() + SNAPSHOT_WAIT
    try:
        while not wanted <= set(seen) and time.monotonic() < deadline:
            event = reader.next(deadline - time.monotonic())
            if event is not None:
                seen.append(describe(env, event))
        seen += [describe(env, e) for e in reader.quiet(QUIET)]
    except StreamEnded as ended:
        raise fail(
            rule, reader.reply, "the stream open", f"ended with {ended.code.name} after {seen}"
        ) from None
    return seen


def check_snapshot(env: Env, run: Callable[..., None]) -> None:
    """On subscription, a NewTask for every existing task and a NewResult for every existing
    result of the session, with their current status; only the types and entities asked for."""
    rule = "armonik.events.snapshot"
    session = stream_session(env, "snapshot")
    elsewhere = stream_session(env, "snapshot elsewhere")
    stored = env.rpc(
        "Results.CreateResults",
        {"session_id": session, "results": [{"name": env.unique("payload"), "data": b64(b"p")}]},
    )
    names = [env.unique("dep"), env.unique("out")]
    created = env.rpc(
        "Results.CreateResultsMetaData", {"session_id": session, "results": [{"name": n} for n in names]}
    )
    other = env.rpc("Results.CreateResultsMetaData", {"session_id": elsewhere, "results": [{"name": "x"}]})
    for reply in (stored, created, other):
        expect_codes(reply, {"OK"}, "armonik.results.create.effects", "results for the snapshot")
    payload = stored.response.results[0].result_id
    dep, out = (r.result_id for r in created.response.results)
    submitted = env.rpc(
        "Tasks.SubmitTasks",
        {
            "session_id": session,
            "task_creations": [
                {"payload_id": payload, "data_dependencies": [dep], "expected_output_keys": [out]}
            ],
        },
    )
    expect_codes(submitted, {"OK"}, "armonik.tasks.submit.reply-order", "a task for the snapshot")
    task = submitted.response.task_infos[0].task_id
    pending = "TASK_STATUS_PENDING"
    deadline = time.monotonic() + 10
    while True:  # the task waits for dep: PENDING from then on
        read = env.rpc("Tasks.GetTask", {"task_id": task})
        expect_codes(read, {"OK"}, "armonik.tasks.lifecycle", "reading the task")
        if status_name(env, TASK_ENUM, read.response.task.status) == pending:
            break
        if time.monotonic() > deadline:
            raise fail(
                "armonik.tasks.lifecycle",
                read,
                pending,
                status_name(env, TASK_ENUM, read.response.task.status),
            )
        env.wait(0.5)
    results = {(NEW_RESULT, payload, COMPLETED), (NEW_RESULT, dep, CREATED), (NEW_RESULT, out, CREATED)}
    tasks = {(NEW_TASK, task, pending)}
    name_filter = {
        "or": [
            {
                "and": [
                    {
                        "field": {"result_raw_field": {"field": "RESULT_RAW_ENUM_FIELD_NAME"}},
                        "filter_string": {"value": names[0], "operator": "FILTER_STRING_OPERATOR_EQUAL"},
                    }
                ]
            }
        ]
    }
    subscriptions = [  # opened together, read one after the other
        ("every type", {"session_id": session}, results | tasks),
        ("NewTask only", {"session_id": session, "returned_events": ["EVENTS_ENUM_NEW_TASK"]}, tasks),
        (
            "NewResult named like dep",
            {
                "session_id": session,
                "returned_events": ["EVENTS_ENUM_NEW_RESULT"],
                "results_filters": name_filter,
            },
            {(NEW_RESULT, dep, CREATED)},
        ),
    ]
    readers = [subscribe(env, request) for _, request, _ in subscriptions]
    try:
        for (what, _, wanted), reader in zip(subscriptions, readers, strict=True):
            seen = collect(env, reader, wanted, rule)
            missing = wanted - set(seen)
            extra = [e for e in seen if e[0] in (NEW_TASK, NEW_RESULT) and e not in wanted]
            if missing or extra:
                raise fail(
                    rule,
                    reader.reply,
                    f"{what}: {sorted(wanted)}",
                    "; ".join(
                        filter(None, [missing and f"missing {sorted(missing)}", extra and f"also {extra}"])
                    ),
                )
    finally:
        for reader in readers:
            reader.cancel()
    env.covered(rule)


def check_no_session(env: Env, run: Callable[..., None]) -> None:
    """A subscription to a session that does not exist is accepted, and yields nothing."""
    rule = "armonik.events.no-session-check"
    unknown = env.unique("no-such-session")
    reader = subscribe(env, {"session_id": unknown})
    try:
        busy = stream_session(env, "activity elsewhere")  # events of another session must not leak in
        env.rpc("Results.CreateResultsMetaData", {"session_id": busy, "results": [{"name": "x"}]})
        got = reader.quiet(2 * QUIET)
    except StreamEnded as ended:
        raise fail(
            rule, reader.reply, "the stream open, without events", f"{ended.code.name}: {ended.details}"
        ) from None
    finally:
        reader.cancel()
    if got:
        raise fail(rule, reader.reply, "no events", f"{len(got)} events (first: {describe(env, got[0])})")
    env.covered(rule)


def first_message(call: Any, timeout: float) -> bool:
    """Whether the stream sent a message within ``timeout`` (read on a thread, and only that one)."""
    got: list[Any] = []

    def read() -> None:
        with contextlib.suppress(grpc.RpcError, StopIteration):  # ended: no message
            got.append(next(call))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return bool(got)


def stalled_channel(env: Env) -> grpc.Channel:
    """A channel to the target like the run's, on which a stream is not read."""
    target = env.rpc.target
    options = [*CHANNEL_OPTIONS, *STALLED]
    if target.server_name:
        options.append(("grpc.ssl_target_name_override", target.server_name))
    if target.tls:
        return grpc.secure_channel(target.address, target.credentials(), options)
    return grpc.insecure_channel(target.address, options)


def check_slow_consumer(env: Env, run: Callable[..., None]) -> None:
    """A subscriber that stops reading is ended with RESOURCE_EXHAUSTED once more events wait for
    it than a stream buffers (the rule's ``default_limit``), instead of the server buffering on."""
    rule = env.rule("armonik.events.slow-consumer")
    limit = int(rule.params["default_limit"])
    batch = 500
    generated = limit + max(batch, limit // 4)  # beyond the limit, and what the transport may hold
    session = stream_session(env, "slow consumer")
    first = env.rpc("Results.CreateResultsMetaData", {"session_id": session, "results": [{"name": "first"}]})
    expect_codes(first, {"OK"}, "armonik.results.create.effects", "a result for the snapshot")
    method = env.rpc.resolve("Events.GetEvents")
    channel = stalled_channel(env)
    try:
        stub = channel.unary_stream(
            method.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=env.rpc.registry.message_class(method.response_type).FromString,
        )
        request = env.rpc.build(
            method, {"session_id": session, "returned_events": ["EVENTS_ENUM_NEW_RESULT"]}
        )
        env.rpc.history.append(Reply(method, grpc.StatusCode.OK, "", [request]))  # for the reproducer
        call = stub(request, timeout=120, metadata=env.rpc.target.metadata() or None)
        if not first_message(call, SNAPSHOT_WAIT):  # the snapshot: live; from now on nothing is read
            call.cancel()
            raise fail(
                "armonik.events.snapshot", env.rpc.history[-1], "NewResult of the existing result", "none"
            )
        made = 0
        while made < generated:
            reply = env.rpc(
                "Results.CreateResultsMetaData",
                {"session_id": session, "results": [{"name": f"e{made + i}"} for i in range(batch)]},
            )
            expect_codes(reply, {"OK"}, "armonik.results.create.effects", "results making events")
            made += batch
        reader = StreamReader(call, env.rpc.history[-1])
        try:
            while True:
                if reader.next(2.0) is None:
                    break  # quiet: it delivered what it had and stays open
        except StreamEnded as ended:
            if ended.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise fail(
                    rule, reader.reply, "RESOURCE_EXHAUSTED", f"{ended.code.name}: {ended.details}"
                ) from None
            env.covered(rule.id)
            return
        finally:
            reader.cancel()
        if "OK" in env.accepted(rule):  # lenient: the real server may hold the stream open
            env.covered(rule.id)
            return
        raise fail(
            rule,
            reader.reply,
            f"RESOURCE_EXHAUSTED once more than {limit} events wait",
            f"still open after {made} unread events ({len(reader.received) + 1} delivered when read)",
        )
    finally:
        channel.close()
