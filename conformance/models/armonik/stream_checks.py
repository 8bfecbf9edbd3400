"""ArmoniK's stream checks: upload and download chunking against ``data_chunk_max_size``, the
event stream's live events, a subscription that lasts until the client cancels it or its deadline
passes, WatchResults (and the legacy one) answering at once; with those of :mod:`.event_checks`
(snapshot, unknown session, slow consumer) and :mod:`.task_checks` (a task's lifecycle on the event
stream, the legacy calls that wait)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import grpc
from hypothesis import strategies as st
from protoconform.conformance.models.armonik.event_checks import (
    check_no_session,
    check_slow_consumer,
    check_snapshot,
)
from protoconform.conformance.models.armonik.requests import (
    COMPLETED,
    CREATED,
    RESULT_ENUM,
    download,
    new_result,
    stream_session,
    upload_requests,
)
from protoconform.conformance.models.armonik.task_checks import (
    check_lifecycle,
    check_wait_availability,
    check_wait_completion,
)
from protoconform.conformance.models.base import Env, expect_codes, expect_rule, fail
from protoconform.conformance.models.streams import StreamCheck, StreamEnded, StreamReader

RESULT_NEW = "new_result"
RESULT_UPDATE = "result_status_update"


def check_chunking(env: Env, run: Callable[..., None]) -> None:
    """Upload any data in any cut, download it: the chunks respect data_chunk_max_size and
    their concatenation is the data (rule armonik.results.download.chunking)."""
    rule = "armonik.results.download.chunking"
    config = env.rpc("Results.GetServiceConfiguration", {})
    expect_codes(config, {"OK"}, rule, "the chunk size the downloads must respect")
    limit = config.response.data_chunk_max_size
    if limit <= 0:
        raise fail(rule, config, "data_chunk_max_size > 0", limit)
    session = stream_session(env, "chunking")
    sizes = st.one_of(
        st.sampled_from([0, 1, limit - 1, limit, limit + 1, 2 * limit + 3]), st.integers(0, 4096)
    )

    def trip(size: int, seed: int, cut: int) -> None:
        data = random.Random(seed).randbytes(size)
        cut = max(min(cut, limit), -(-size // 64), 1)  # at most 64 chunks up, each within the limit
        result_id = new_result(env, session, env.unique("chunks"))
        uploaded = env.rpc(
            "Results.UploadResultData",
            requests=upload_requests(session, result_id, data, list(range(cut, size, cut))),
        )
        expect_codes(uploaded, {"OK"}, "armonik.results.upload.effects", f"uploading {size} bytes")
        if uploaded.response.result.size != size:
            raise fail(
                "armonik.results.upload.effects",
                uploaded,
                f"result.size {size}",
                uploaded.response.result.size,
            )
        reply, got = download(env, session, result_id)
        expect_codes(reply, {"OK"}, rule, f"downloading {size} bytes")
        largest = max((len(r.data_chunk) for r in reply.responses), default=0)
        if largest > limit:
            raise fail(rule, reply, f"chunks of at most {limit} bytes", f"a chunk of {largest}")
        if got != data:
            detail = f"{len(reply.responses)} chunks"
            raise fail(
                rule,
                reply,
                f"the {size} bytes uploaded",
                f"{len(got)} bytes{' (different)' * (len(got) == size)}",
                detail,
            )

    run(trip, size=sizes, seed=st.integers(0, 2**32 - 1), cut=st.integers(1, max(1, limit)))


def check_events(env: Env, run: Callable[..., None]) -> None:
    """A subscription gets the snapshot, then live events, and lasts until cancelled."""
    session = stream_session(env, "events")
    before = new_result(env, session, env.unique("before"))
    call = env.rpc.open("Events.GetEvents", {"session_id": session}, timeout=60)
    reader = StreamReader(call, env.rpc.history[-1])
    try:
        expect_event(
            reader,
            "armonik.events.snapshot",
            "NewResult of the existing result",
            3.0,
            lambda e: e.WhichOneof("update") == RESULT_NEW and e.new_result.result_id == before,
        )
        after = new_result(env, session, env.unique("after"))
        expect_event(
            reader,
            "armonik.events.live",
            "NewResult of a result created later",
            3.0,
            lambda e: e.WhichOneof("update") == RESULT_NEW and e.new_result.result_id == after,
        )
        uploaded = env.rpc("Results.UploadResultData", requests=upload_requests(session, after, b"done", []))
        expect_codes(uploaded, {"OK"}, "armonik.results.upload.effects")
        completed = env.rpc.registry.enum(RESULT_ENUM).values_by_name[COMPLETED].number
        expect_event(
            reader,
            "armonik.events.live",
            "ResultStatusUpdate to COMPLETED",
            3.0,
            lambda e: (
                e.WhichOneof("update") == RESULT_UPDATE
                and e.result_status_update.result_id == after
                and e.result_status_update.status == completed
            ),
        )
        try:
            reader.quiet(0.3)
        except StreamEnded as ended:
            raise fail(
                "armonik.events.never-ends",
                reader.reply,
                "the stream open until cancelled",
                f"closed with {ended.code.name}",
            ) from None
    finally:
        reader.cancel()
    if not reader.ended(5.0) or reader.code != grpc.StatusCode.CANCELLED:
        raise fail(
            "armonik.events.never-ends",
            reader.reply,
            "the stream cancelled when the client cancels",
            reader.code.name if reader.code else "still open",
        )


def expect_event(
    reader: StreamReader, rule: str, what: str, timeout: float, predicate: Callable[[Any], bool]
) -> None:
    try:
        event = reader.wait_for(predicate, timeout)
    except StreamEnded as ended:
        raise fail(
            "armonik.events.never-ends",
            reader.reply,
            f"the stream open (waiting for {what})",
            f"closed with {ended.code.name} after {len(reader.received)} events",
        ) from None
    if event is None:
        raise fail(
            rule, reader.reply, what, f"nothing within {timeout:g}s ({len(reader.received)} other events)"
        )


def check_deadline(env: Env, run: Callable[..., None]) -> None:
    """A subscription with a deadline lasts until the deadline: the server does not end it first."""
    session = stream_session(env, "deadline")
    new_result(env, session, env.unique("seen"))
    deadline = 0.8
    started = time.monotonic()
    reply = env.rpc("Events.GetEvents", {"session_id": session}, timeout=deadline)
    elapsed = time.monotonic() - started
    if reply.code != grpc.StatusCode.DEADLINE_EXCEEDED or elapsed < deadline * 0.9:
        raise fail(
            "armonik.events.never-ends",
            reply,
            f"DEADLINE_EXCEEDED after {deadline:g}s",
            f"{reply.code.name} after {elapsed:.2f}s ({len(reply.responses)} events)",
        )


def check_watch(env: Env, run: Callable[..., None], method: str = "Results.WatchResults") -> None:
    """WatchResults answers the current status of watched ids at once."""
    rule = env.rule(
        "armonik.results.watch" if method == "Results.WatchResults" else "armonik.submitter.watch-results"
    )
    session = stream_session(env, "watch")
    result_id = new_result(env, session, env.unique("watched"))
    request = {"fetch_statuses": [CREATED], "watch_statuses": [COMPLETED], "result_ids": [result_id]}
    reply = env.rpc(method, requests=[request], window=1.0, max_responses=1)
    if reply.code.name != "OK":
        expect_rule(env, reply, rule)  # a documented real-server answer (UNIMPLEMENTED) passes when lenient
        return
    if not reply.responses:
        raise fail(rule, reply, f"the status of {result_id}", "no answer")
    first = reply.responses[0]
    created = env.rpc.registry.enum(RESULT_ENUM).values_by_name[CREATED].number
    if first.status != created or list(first.result_ids) != [result_id]:
        raise fail(
            rule, reply, f"{CREATED} for [{result_id}]", f"{first.status} for {list(first.result_ids)}"
        )
    env.covered(rule.id)


def check_submitter_watch(env: Env, run: Callable[..., None]) -> None:
    """The legacy WatchResults holds the same conversation, with WatchResultStream replies."""
    check_watch(env, run, "Submitter.WatchResults")


def stream_checks() -> list[StreamCheck]:
    return [
        StreamCheck(
            "chunking", "Results.DownloadResultData", "armonik.results.download.chunking", check_chunking
        ),
        StreamCheck("events", "Events.GetEvents", "armonik.events.live", check_events),
        StreamCheck("deadline", "Events.GetEvents", "armonik.events.never-ends", check_deadline),
        StreamCheck("watch", "Results.WatchResults", "armonik.results.watch", check_watch),
        StreamCheck(
            "watch", "Submitter.WatchResults", "armonik.submitter.watch-results", check_submitter_watch
        ),
        StreamCheck("snapshot", "Events.GetEvents", "armonik.events.snapshot", check_snapshot),
        StreamCheck("no-session", "Events.GetEvents", "armonik.events.no-session-check", check_no_session),
        StreamCheck("slow-consumer", "Events.GetEvents", "armonik.events.slow-consumer", check_slow_consumer),
        StreamCheck("lifecycle", "Events.GetEvents", "armonik.tasks.lifecycle", check_lifecycle),
        StreamCheck(
            "waits",
            "Submitter.WaitForAvailability",
            "armonik.submitter.wait-for-availability",
            check_wait_availability,
        ),
        StreamCheck(
            "waits",
            "Submitter.WaitForCompletion",
            "armonik.submitter.wait-for-completion",
            check_wait_completion,
        ),
    ]
