"""Event fan-out: keyed publishing, bounded buffers for slow consumers, streams ended at shutdown."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from akutil import Stubs, create_data, create_metadata, create_session, state, submit
from armonik.protogen.common import events_common_pb2 as ec
from armonik.protogen.common import results_common_pb2 as rc
from protoconform.mockserver import pubsub
from protoconform.mockserver.apis.armonik import end_streams
from protoconform.mockserver.launcher import ServerProcess, ThreadedServer
from protoconform.mockserver.pubsub import Overflowed, ShuttingDown, Topic
from test_armonik_events import Reader

LIMIT = 200  # small, so a stalled stream falls behind quickly; above one batch of BATCH results
BATCH = 100
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)]


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    return {"event_buffer": LIMIT}  # --armonik-event-buffer


# -- Topic ---------------------------------------------------------------------------------------
def test_publish_visits_only_the_items_keys() -> None:
    topic: Topic[str] = Topic()
    visited: list[str] = []

    def recorder(name: str) -> Any:
        return lambda item: visited.append(name) or True

    subs = {f"s{i}": topic.subscribe(recorder(f"s{i}"), keys=[f"s{i}"]) for i in range(1000)}
    anything = topic.subscribe(recorder("all"))
    both = topic.subscribe(recorder("both"), keys=["s1", "r1"])
    topic.publish("x", "s1", "r1")
    assert sorted(visited) == ["all", "both", "s1"]  # a subscription under two of the keys gets it once
    assert subs["s1"].get_nowait() == "x" and subs["s2"].get_nowait() is None
    visited.clear()
    topic.publish("y")  # no key: key-less subscriptions only
    assert visited == ["all"] and anything.pending == 2 and both.pending == 1


def test_overflow_ends_the_subscription_and_frees_its_buffer() -> None:
    async def scenario() -> None:
        topic: Topic[int] = Topic(limit=3)
        slow = topic.subscribe(keys=["k"])
        fast = topic.subscribe(keys=["k"])
        for i in range(3):
            topic.publish(i, "k")
            assert await fast.get() == i
        topic.publish(3, "k")  # the 4th waiting item: over the limit
        assert slow.pending == 0 and topic.subscriber_count == 1 and topic.overflows == 1
        with pytest.raises(Overflowed) as ended:
            await slow.get()
        assert (ended.value.limit, ended.value.delivered) == (3, 0)
        assert await fast.get() == 3

    asyncio.run(scenario())


def test_notify_only_keeps_one_item_and_outlives_close_all() -> None:
    async def scenario() -> None:
        topic: Topic[int] = Topic(limit=3)
        waiter = topic.subscribe(keys=["k"], notify_only=True)
        stream = topic.subscribe(keys=["k"], limit=100)
        blocked = asyncio.ensure_future(stream.get())
        await asyncio.sleep(0)
        for i in range(10):
            topic.publish(i, "k")
        assert waiter.pending == 1 and not waiter.closed
        topic.close_all()  # before the blocked get() ran: what was buffered is dropped
        with pytest.raises(ShuttingDown):
            await blocked
        with pytest.raises(ShuttingDown):
            await topic.subscribe(keys=["k"]).get()  # refused after close_all
        assert await waiter.get() == 0 and not waiter.closed

    asyncio.run(scenario())


# -- end to end ----------------------------------------------------------------------------------
def _create_batch(stubs: Stubs, session_id: str) -> None:
    stubs.results.CreateResultsMetaData(
        rc.CreateResultsMetaDataRequest(
            session_id=session_id,
            results=[rc.CreateResultsMetaDataRequest.ResultCreate(name=f"r{i}") for i in range(BATCH)],
        )
    )


def test_stalled_stream_is_ended_others_keep_receiving(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    request = ec.EventSubscriptionRequest(session_id=sid, returned_events=[ec.EVENTS_ENUM_NEW_RESULT])
    # Never read until the end, on a connection whose window does not grow: the transport holds
    # little, the rest has to wait on the server.
    slow_channel = grpc.insecure_channel(server.grpc_address, options=SMALL_WINDOW)
    stalled = Stubs(slow_channel).events.GetEvents(request)
    healthy = Reader(stubs.events.GetEvents(request))
    topic = state(server).events
    assert topic.limit == LIMIT
    assert _wait_for(lambda: server.run(lambda: topic.subscriber_count) == 2)
    received = 0
    for _ in range(200):  # the transport absorbs some messages before the server has to buffer
        _create_batch(stubs, sid)
        for item in healthy.take(BATCH):
            assert not isinstance(item, grpc.RpcError), item
        received += BATCH
        assert server.run(lambda: topic.pending) <= LIMIT * topic.subscriber_count  # memory stays bounded
        if server.run(lambda: topic.overflows):
            break
    assert server.run(lambda: (topic.overflows, topic.subscriber_count)) == (1, 1)
    _create_batch(stubs, sid)  # the healthy stream still follows
    assert len(healthy.take(BATCH)) == BATCH and healthy.quiet(0.1)
    healthy.close()

    count = 0
    with pytest.raises(grpc.RpcError) as ended:
        for _ in stalled:  # what the transport already held, then the status
            count += 1
    assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "fell behind" in ended.value.details() and f"limit {LIMIT}" in ended.value.details()
    assert count < received
    slow_channel.close()


def test_publish_visits_only_the_session_streams(
    server: ThreadedServer, stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched = create_session(stubs)
    others = [create_session(stubs) for _ in range(20)]
    readers = [Reader(stubs.events.GetEvents(ec.EventSubscriptionRequest(session_id=s))) for s in others]
    mine = Reader(stubs.events.GetEvents(ec.EventSubscriptionRequest(session_id=watched)))
    topic = state(server).events
    assert _wait_for(lambda: server.run(lambda: topic.subscriber_count) == 21)
    visited: list[set[Any]] = []
    offer = pubsub.Subscription.offer
    monkeypatch.setattr(
        pubsub.Subscription, "offer", lambda s, item: (visited.append(s.keys), offer(s, item))
    )
    payload = create_data(stubs, watched, p=b"x")["p"]
    submit(stubs, watched, payload, [create_metadata(stubs, watched, "out")["out"]])
    assert len(mine.take(4)) == 4  # NewResult p, NewResult out, NewTask, ResultOwnerUpdate out
    assert visited and all(keys == {watched} for keys in visited)
    for reader in [*readers, mine]:
        reader.close()


def _watch(stubs: Stubs, result_id: str) -> Reader:
    def feed() -> Iterator[rc.WatchResultRequest]:
        yield rc.WatchResultRequest(result_ids=[result_id])
        time.sleep(60)  # keep the request side open

    return Reader(stubs.results.WatchResults(feed()))


def test_end_streams_ends_open_streams(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    out = create_metadata(stubs, sid, "out")["out"]
    events = Reader(stubs.events.GetEvents(ec.EventSubscriptionRequest(session_id=sid)))
    watch = _watch(stubs, out)
    assert events.take(1) and watch.take(1)  # snapshot / current status: both streams are live
    server.run(lambda: end_streams(state(server)))
    for reader in (events, watch):
        assert reader.ended.wait(5)
        error = reader.items.get(timeout=1)
        assert error.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in error.details()
    late = Reader(stubs.events.GetEvents(ec.EventSubscriptionRequest(session_id=sid)))
    assert late.ended.wait(5) and late.items.get(timeout=1).code() == grpc.StatusCode.UNAVAILABLE


def test_sigterm_ends_open_streams_promptly() -> None:
    process = ServerProcess(["--api", "armonik"]).start()
    try:
        with grpc.insecure_channel(process.grpc_address) as channel:
            stubs = Stubs(channel)
            sid = create_session(stubs)
            out = create_metadata(stubs, sid, "out")["out"]
            readers = [
                Reader(stubs.events.GetEvents(ec.EventSubscriptionRequest(session_id=sid))) for _ in range(3)
            ]
            readers += [_watch(stubs, out) for _ in range(2)]
            for reader in readers:
                assert reader.take(1)  # open and live
            started = time.monotonic()
            process.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            code = process.process.wait(15)  # type: ignore[union-attr]
            elapsed = time.monotonic() - started
            assert all(reader.ended.wait(5) for reader in readers)
        assert code == 0 and elapsed < 3.0, f"exit {code} after {elapsed:.1f}s (grace period: 5 s)"
    finally:
        process.stop()


def _wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_buffer_bound_is_a_serve_option_whose_default_the_rule_states() -> None:
    from protoconform.mockserver.apis.armonik import options_from_args
    from protoconform.mockserver.apis.armonik.options import ArmonikOptions
    from protoconform.mockserver.cli import build_parser
    from protoconform.specs import rules

    rule = rules.load("armonik").rule("armonik.events.slow-consumer")
    assert ArmonikOptions().event_buffer == pubsub.DEFAULT_LIMIT == int(rule.params["default_limit"])
    args = build_parser().parse_args(["serve", "--armonik-event-buffer", "50"])
    assert options_from_args(args)["event_buffer"] == 50
