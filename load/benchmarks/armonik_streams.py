"""Unary latency of the ArmoniK mock while 500 event/watch streams stay open.

Starts ``protoconform serve --api armonik``, measures the latency of a mix of
unary calls (GetSession, GetResult, ListTasks, CountTasksByStatus) with no
stream open (the baseline), then opens N streams -- half ``Events.GetEvents``
spread over several sessions, half ``Results.WatchResults`` watching those
sessions' outputs -- keeps tasks flowing through those sessions so the streams
carry events, and measures the same calls again.  Prints p50/p95/p99/max and
how many stream messages arrived.  Target: p99 under 50 ms with 500 streams.

    python -m protoconform.load.benchmarks.armonik_streams [--streams N] [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import grpc
from armonik.protogen.client import (
    events_service_pb2_grpc,
    results_service_pb2_grpc,
    sessions_service_pb2_grpc,
    tasks_service_pb2_grpc,
)
from armonik.protogen.common import events_common_pb2 as ec
from armonik.protogen.common import objects_pb2
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from armonik.protogen.common import tasks_filters_pb2 as tflt
from google.protobuf.duration_pb2 import Duration
from protoconform.mockserver.launcher import ServerProcess

TARGET_P99_MS = 50.0
SESSIONS = 50


class Client:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.sessions = sessions_service_pb2_grpc.SessionsStub(channel)
        self.results = results_service_pb2_grpc.ResultsStub(channel)
        self.tasks = tasks_service_pb2_grpc.TasksStub(channel)
        self.events = events_service_pb2_grpc.EventsStub(channel)


async def make_session(client: Client) -> tuple[str, str]:
    options = objects_pb2.TaskOptions(max_duration=Duration(seconds=60), max_retries=1, priority=1)
    session_id = (
        await client.sessions.CreateSession(sc.CreateSessionRequest(default_task_option=options))
    ).session_id
    created = await client.results.CreateResults(
        rc.CreateResultsRequest(
            session_id=session_id, results=[rc.CreateResultsRequest.ResultCreate(name="p", data=b"x")]
        )
    )
    return session_id, created.results[0].result_id


async def submit_one(client: Client, session_id: str, payload: str) -> str:
    meta = await client.results.CreateResultsMetaData(
        rc.CreateResultsMetaDataRequest(
            session_id=session_id, results=[rc.CreateResultsMetaDataRequest.ResultCreate(name="o")]
        )
    )
    output = meta.results[0].result_id
    creation = tc.SubmitTasksRequest.TaskCreation(payload_id=payload, expected_output_keys=[output])
    await client.tasks.SubmitTasks(tc.SubmitTasksRequest(session_id=session_id, task_creations=[creation]))
    return output


def list_request(session_id: str) -> tc.ListTasksRequest:
    field = tf.TaskField(task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_SESSION_ID))
    condition = tflt.FilterField(field=field)
    condition.filter_string.value = session_id
    filters = tflt.Filters(**{"or": [tflt.FiltersAnd(**{"and": [condition]})]})
    sort_field = tf.TaskField(
        task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_CREATED_AT)
    )
    return tc.ListTasksRequest(
        page_size=10, filters=filters, sort=tc.ListTasksRequest.Sort(field=sort_field, direction=2)
    )


async def measure(client: Client, sessions: list[tuple[str, str]], calls: int) -> list[float]:
    latencies = []
    for i in range(calls):
        session_id, payload = sessions[i % len(sessions)]
        kind = i % 4
        start = time.perf_counter()
        if kind == 0:
            await client.sessions.GetSession(sc.GetSessionRequest(session_id=session_id))
        elif kind == 1:
            await client.results.GetResult(rc.GetResultRequest(result_id=payload))
        elif kind == 2:
            await client.tasks.ListTasks(list_request(session_id))
        else:
            await client.tasks.CountTasksByStatus(
                tc.CountTasksByStatusRequest(filters=list_request(session_id).filters)
            )
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def summary(name: str, latencies: list[float]) -> float:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    print(
        f"{name:<28} n={len(ordered)} p50={statistics.median(ordered):.1f} ms p95={pct(0.95):.1f} ms "
        f"p99={pct(0.99):.1f} ms max={ordered[-1]:.1f} ms"
    )
    return pct(0.99)


async def run(address: str, streams: int, calls: int) -> int:
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, streams // 100))]
    measured_channel = grpc.aio.insecure_channel(address)
    clients = [Client(c) for c in channels]
    measured = Client(measured_channel)
    sessions = [await make_session(measured) for _ in range(SESSIONS)]
    for session_id, payload in sessions:
        await submit_one(measured, session_id, payload)

    baseline = summary("unary, no stream open", await measure(measured, sessions, calls))

    received = 0
    opened = 0
    open_calls: list[Any] = []
    ready = asyncio.Event()

    async def consume(call: Any) -> None:
        nonlocal received, opened
        opened += 1
        if opened == streams:
            ready.set()
        try:
            async for _ in call:
                received += 1
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                raise

    watch_queues: list[asyncio.Queue[Any]] = []

    async def watch_requests(queue: asyncio.Queue[Any]) -> Any:
        while True:
            yield await queue.get()

    consumers = []
    for i in range(streams):
        client = clients[i % len(clients)]
        session_id, payload = sessions[i % len(sessions)]
        if i % 2 == 0:
            request = ec.EventSubscriptionRequest(session_id=session_id)
            call = client.events.GetEvents(request)
        else:
            queue: asyncio.Queue[Any] = asyncio.Queue()
            queue.put_nowait(rc.WatchResultRequest(result_ids=[payload]))
            watch_queues.append(queue)
            call = client.results.WatchResults(watch_requests(queue))
        open_calls.append(call)
        consumers.append(asyncio.ensure_future(consume(call)))
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(1.0)  # let every stream deliver its snapshot
    before = received

    stop = asyncio.Event()

    async def traffic() -> None:
        i = 0
        while not stop.is_set():
            session_id, payload = sessions[i % len(sessions)]
            output = await submit_one(measured, session_id, payload)
            watch_queues[i % len(watch_queues)].put_nowait(rc.WatchResultRequest(result_ids=[output]))
            i += 1
            await asyncio.sleep(0.02)

    flow = asyncio.ensure_future(traffic())
    started = time.perf_counter()
    loaded = summary(f"unary, {streams} streams open", await measure(measured, sessions, calls))
    elapsed = time.perf_counter() - started
    stop.set()
    await flow
    alive = sum(1 for c in consumers if not c.done())
    print(f"streams still open:          {alive}/{streams}")
    print(f"stream messages during run:  {received - before} ({(received - before) / elapsed:.0f}/s)")
    for call in open_calls:
        call.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    for channel in [*channels, measured_channel]:
        await channel.close()
    ok = loaded < TARGET_P99_MS and alive == streams
    verdict = "met" if ok else "NOT met"
    print(f"baseline p99 {baseline:.1f} ms; target p99 < {TARGET_P99_MS:.0f} ms with streams: {verdict}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    with ServerProcess(["--api", "armonik"]) as server:
        return asyncio.run(run(server.grpc_address, args.streams, args.calls))


if __name__ == "__main__":
    sys.exit(main())
