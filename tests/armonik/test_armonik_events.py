"""Events.GetEvents (snapshot, live events, types, filters, never ending) and Results.WatchResults."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
from akutil import (
    Stubs,
    advance,
    create_data,
    create_metadata,
    create_session,
    rpc_error,
    submit,
)
from armonik.client import ArmoniKEvents
from armonik.common import EventTypes, NewResultEvent, Result
from armonik.protogen.common import events_common_pb2 as ec
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common.result_status_pb2 import ResultStatus as RS
from armonik.protogen.common.task_status_pb2 import TaskStatus as TS
from protoconform.mockserver.launcher import ThreadedServer


class Reader:
    """Reads a response stream on a thread so the test can wait with a timeout."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.items: queue.Queue[Any] = queue.Queue()
        self.ended = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        try:
            for item in self.call:
                self.items.put(item)
        except grpc.RpcError as error:
            self.items.put(error)
        self.ended.set()

    def take(self, n: int, timeout: float = 5.0) -> list[Any]:
        return [self.items.get(timeout=timeout) for _ in range(n)]

    def quiet(self, seconds: float = 0.3) -> bool:
        try:
            item = self.items.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message {item}")

    def close(self) -> None:
        self.call.cancel()


def _describe(message: ec.EventSubscriptionResponse) -> tuple[str, str, int]:
    kind = message.WhichOneof("update")
    body = getattr(message, kind)
    ident = getattr(body, "task_id", "") or getattr(body, "result_id", "")
    return kind, ident, getattr(body, "status", 0)


def _subscribe(stubs: Stubs, session_id: str, *types: int, **filters: Any) -> Reader:
    request = ec.EventSubscriptionRequest(session_id=session_id, returned_events=list(types), **filters)
    return Reader(stubs.events.GetEvents(request))


def test_snapshot_then_live_events(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    other = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    out = create_metadata(stubs, sid, "out")["out"]
    first = submit(stubs, sid, payload, [out])
    create_data(stubs, other, q=b"y")  # another session's changes never show up
    reader = _subscribe(stubs, sid)
    try:
        snapshot = [_describe(m) for m in reader.take(3)]
        assert snapshot == [
            ("new_task", first, TS.TASK_STATUS_SUBMITTED),
            ("new_result", payload, RS.RESULT_STATUS_COMPLETED),
            ("new_result", out, RS.RESULT_STATUS_CREATED),
        ]
        advance(server, 3.0)
        live = [_describe(m) for m in reader.take(4)]
        assert live == [
            ("task_status_update", first, TS.TASK_STATUS_DISPATCHED),
            ("task_status_update", first, TS.TASK_STATUS_PROCESSING),
            ("result_status_update", out, RS.RESULT_STATUS_COMPLETED),
            ("task_status_update", first, TS.TASK_STATUS_COMPLETED),
        ]
        out2 = create_metadata(stubs, sid, "out2")["out2"]
        second = submit(stubs, sid, payload, [out2])
        messages = reader.take(4)
        assert [_describe(m) for m in messages] == [
            ("new_result", out2, RS.RESULT_STATUS_CREATED),
            ("new_task", second, TS.TASK_STATUS_CREATING),
            ("result_owner_update", out2, 0),
            ("task_status_update", second, TS.TASK_STATUS_SUBMITTED),
        ]
        new_task = messages[1].new_task
        assert list(new_task.expected_output_keys) == [out2] and new_task.payload_id == payload
        owner = messages[2].result_owner_update
        assert (owner.previous_owner_id, owner.current_owner_id) == ("", second)
        assert all(m.session_id == sid for m in messages)
        assert reader.quiet() and not reader.ended.is_set()  # the server never ends the stream
    finally:
        reader.close()


def test_returned_event_types_and_filters(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    outs = create_metadata(stubs, sid, "a", "b")
    only_b = (Result.result_id == outs["b"]).to_disjunction().to_message()
    reader = _subscribe(stubs, sid, ec.EVENTS_ENUM_RESULT_STATUS_UPDATE, results_filters=only_b)
    try:
        submit(stubs, sid, payload, [outs["a"]])
        submit(stubs, sid, payload, [outs["b"]])
        advance(server, 3.0)
        assert [_describe(m) for m in reader.take(1)] == [
            ("result_status_update", outs["b"], RS.RESULT_STATUS_COMPLETED)
        ]
        assert reader.quiet()
    finally:
        reader.close()


def test_filters_on_changing_fields_are_refused(stubs: Stubs) -> None:
    sid = create_session(stubs)
    status_filter = (Result.status == RS.RESULT_STATUS_COMPLETED).to_disjunction().to_message()
    request = ec.EventSubscriptionRequest(session_id=sid, results_filters=status_filter)
    error = rpc_error(stubs.events.GetEvents, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("results_filters.or[0].and[0].field: RESULT_RAW_ENUM_FIELD_STATUS")


def test_official_client_handlers(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    out = create_metadata(stubs, sid, "out")["out"]
    seen: list[Any] = []

    def handler(session_id: str, event_type: Any, event: Any) -> bool:
        seen.append((session_id, event_type, event))
        return isinstance(event, NewResultEvent)

    ArmoniKEvents(stubs.channel).get_events(sid, [EventTypes.NEW_RESULT], [handler])
    assert len(seen) == 1 and seen[0][2].result_id == out and seen[0][2].status == RS.RESULT_STATUS_CREATED


def _watch(stubs: Stubs, requests: queue.Queue[Any]) -> Reader:
    def feed() -> Iterator[Any]:
        while (item := requests.get()) is not None:
            yield item

    return Reader(stubs.results.WatchResults(feed()))


def test_watch_results(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    done = create_data(stubs, sid, done=b"x")["done"]
    outs = create_metadata(stubs, sid, "a", "b")
    requests: queue.Queue[Any] = queue.Queue()
    reader = _watch(stubs, requests)
    try:
        requests.put(rc.WatchResultRequest(result_ids=[outs["a"], done, "nope", outs["b"]]))
        replies = {(r.status, tuple(r.result_ids)) for r in reader.take(3)}
        assert replies == {
            (RS.RESULT_STATUS_CREATED, (outs["a"], outs["b"])),
            (RS.RESULT_STATUS_COMPLETED, (done,)),
            (RS.RESULT_STATUS_NOTFOUND, ("nope",)),
        }
        submit(stubs, sid, done, [outs["a"]])
        advance(server, 3.0)
        (update,) = reader.take(1)
        assert (update.status, list(update.result_ids)) == (RS.RESULT_STATUS_COMPLETED, [outs["a"]])
        # a second request narrows what it fetches and watches
        requests.put(
            rc.WatchResultRequest(
                result_ids=[outs["b"], done],
                fetch_statuses=[RS.RESULT_STATUS_COMPLETED],
                watch_statuses=[RS.RESULT_STATUS_DELETED],
            )
        )
        (fetched,) = reader.take(1)
        assert (fetched.status, list(fetched.result_ids)) == (RS.RESULT_STATUS_COMPLETED, [done])
        submit(stubs, sid, done, [outs["b"]])
        advance(server, 3.0)
        assert reader.quiet()  # b completed, but only DELETED is watched now
        stubs.results.DeleteResultsData(rc.DeleteResultsDataRequest(session_id=sid, result_id=[outs["b"]]))
        (deleted,) = reader.take(1)
        assert (deleted.status, list(deleted.result_ids)) == (RS.RESULT_STATUS_DELETED, [outs["b"]])
    finally:
        requests.put(None)
        reader.close()
