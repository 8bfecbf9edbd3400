"""SubmitTasks and health-check latency of the ArmoniK mock with 2,000 event streams open.

Starts ``protoconform serve --api armonik`` and measures, over R rounds, the
latency of one SubmitTasks call of 100 tasks and of gRPC health checks
(``grpc.health.v1.Health/Check``) with no stream open (the baseline).  Then a
second process opens N ``Events.GetEvents`` streams: most spread over many idle
sessions, some read on the session being submitted to, and some on that session
never read (stalled, so they overflow their bounded buffer and are ended with
RESOURCE_EXHAUSTED), and the same rounds are measured again.  Prints p50/p99 of
both runs, their ratio, and how the streams ended.  Target: p99 under 50 ms with
the streams open.

    python -m protoconform.load.benchmarks.armonik_fanout [--streams N] [--stalled N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from collections import Counter
from typing import Any

import grpc
from armonik.protogen.client import events_service_pb2_grpc
from armonik.protogen.common import events_common_pb2 as ec
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import tasks_common_pb2 as tc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from protoconform.load.benchmarks.armonik_streams import Client, make_session
from protoconform.mockserver.launcher import ServerProcess

TARGET_P99_MS = 50.0
TASKS = 100  # per SubmitTasks call
HEALTH_PER_ROUND = 4
STREAMS_PER_SESSION = 10  # idle streams share a session, as several clients of one session would
# Read streams on the session being submitted to.  A round starts every ROUND_SECONDS, so that
# session produces ~2.3k events/s (about 7 a task), which a few streams carry on this 2-core
# machine (the server sends ~30k messages/s over all streams); many would fall behind and be ended.
READERS_ON_BUSY = 3
ROUND_SECONDS = 0.3
STREAMS_PER_CHANNEL = 100
SEPARATE = [("grpc.use_local_subchannel_pool", 1)]  # one connection per channel
# The stalled clients' connection: a window that does not grow, so what they do not read waits on
# the server (as behind a client that stops reading its socket) instead of in their own transport.
STALLED = [*SEPARATE, ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)]


# -- the stream holder (a process of its own, so reading events does not slow the measurements) ----
def hold_streams(
    address: str, idle: list[str], idle_streams: int, busy: str, stalled: int, pipe: Any
) -> None:
    asyncio.run(_hold(address, idle, idle_streams, busy, stalled, pipe))


async def _hold(address: str, idle: list[str], idle_streams: int, busy: str, stalled: int, pipe: Any) -> None:
    plan = [(idle[i % len(idle)], True) for i in range(idle_streams)]
    plan += [(busy, True)] * READERS_ON_BUSY + [(busy, False)] * stalled
    channels = [
        grpc.aio.insecure_channel(address, options=SEPARATE)
        for _ in range((len(plan) + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL)
    ]
    channels.append(grpc.aio.insecure_channel(address, options=STALLED))
    received = 0
    ended: Counter[str] = Counter()
    first: list[asyncio.Event] = []

    async def read(call: Any, opened: asyncio.Event) -> None:
        nonlocal received
        try:
            async for _ in call:
                received += 1
                opened.set()
        except grpc.aio.AioRpcError as error:
            ended[error.code().name] += 1

    calls, readers = [], []
    for i, (session_id, reads) in enumerate(plan):
        stub = events_service_pb2_grpc.EventsStub(channels[i // STREAMS_PER_CHANNEL if reads else -1])
        call = stub.GetEvents(ec.EventSubscriptionRequest(session_id=session_id))
        calls.append(call)
        if reads:
            first.append(asyncio.Event())
            readers.append(asyncio.ensure_future(read(call, first[-1])))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first)), 60)  # every read stream delivers
    await asyncio.sleep(0.5)  # the stalled ones are open too
    pipe.send(("ready", len(calls)))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until the measurements are done
    live = received
    stalled_ends: Counter[str] = Counter()

    async def drain(call: Any) -> None:  # a stalled client reads at last: its backlog, then the status
        try:
            async for _ in call:
                pass
            stalled_ends["OK"] += 1
        except grpc.aio.AioRpcError as error:
            stalled_ends[error.code().name] += 1

    stalled_calls = [c for c, (_, reads) in zip(calls, plan, strict=True) if not reads]
    await asyncio.wait([asyncio.ensure_future(drain(c)) for c in stalled_calls], timeout=20)
    alive = sum(1 for r in readers if not r.done())
    for call in calls:
        call.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for channel in channels:
        await channel.close()
    pipe.send(
        ("done", {"received": live, "alive": alive, "ended": dict(ended), "stalled": dict(stalled_ends)})
    )


# -- measurements -------------------------------------------------------------------------------
async def rounds(
    client: Client, health: Any, session_id: str, payload: str, count: int
) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {"SubmitTasks(100)": [], "Health/Check": []}
    for _ in range(count):
        round_end = time.perf_counter() + ROUND_SECONDS
        meta = await client.results.CreateResultsMetaData(
            rc.CreateResultsMetaDataRequest(
                session_id=session_id,
                results=[rc.CreateResultsMetaDataRequest.ResultCreate(name=f"o{i}") for i in range(TASKS)],
            )
        )
        creations = [
            tc.SubmitTasksRequest.TaskCreation(payload_id=payload, expected_output_keys=[r.result_id])
            for r in meta.results
        ]
        start = time.perf_counter()
        await client.tasks.SubmitTasks(tc.SubmitTasksRequest(session_id=session_id, task_creations=creations))
        latencies["SubmitTasks(100)"].append((time.perf_counter() - start) * 1000)
        for _ in range(HEALTH_PER_ROUND):  # while the engine moves those tasks (and publishes their events)
            start = time.perf_counter()
            await health.Check(health_pb2.HealthCheckRequest())
            latencies["Health/Check"].append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.02)
        await asyncio.sleep(max(0.0, round_end - time.perf_counter()))
    return latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def run(address: str, streams: int, stalled: int, count: int) -> int:
    channel = grpc.aio.insecure_channel(address, options=SEPARATE)
    client = Client(channel)
    health = health_pb2_grpc.HealthStub(channel)
    await health.Check(health_pb2.HealthCheckRequest())
    idle_streams = max(0, streams - READERS_ON_BUSY - stalled)
    idle = [(await make_session(client))[0] for _ in range(max(1, idle_streams // STREAMS_PER_SESSION))]
    quiet_session, quiet_payload = await make_session(client)
    busy_session, busy_payload = await make_session(client)

    baseline = await rounds(client, health, quiet_session, quiet_payload, count)

    parent, child = multiprocessing.get_context("spawn").Pipe()
    holder = multiprocessing.get_context("spawn").Process(
        target=hold_streams, args=(address, idle, idle_streams, busy_session, stalled, child), daemon=True
    )
    holder.start()
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    if not await loop.run_in_executor(None, parent.poll, 90):
        raise TimeoutError("the streams did not open in 90 s")
    _, opened = parent.recv()
    print(
        f"opened {opened} GetEvents streams in {time.perf_counter() - started:.1f} s: {idle_streams} on "
        f"{len(idle)} idle sessions, {READERS_ON_BUSY} read and {stalled} never read on the busy session"
    )
    loaded = await rounds(client, health, busy_session, busy_payload, count)
    parent.send("stop")
    if not await loop.run_in_executor(None, parent.poll, 60):
        raise TimeoutError("the stream holder did not report")
    _, report = parent.recv()
    holder.join(10)
    await channel.close()

    ok = True
    header = f"{opened} streams p50/p99/max"
    print(f"{'':<18}{'no streams p50/p99/max':>28}{header:>30}{'p99 ratio':>11}{'calls':>7}{'> target':>10}")
    for name, base in baseline.items():
        with_streams = loaded[name]
        b50, b99, l50, l99 = (
            statistics.median(base),
            pct(base, 0.99),
            statistics.median(with_streams),
            pct(with_streams, 0.99),
        )
        over = sum(1 for v in with_streams if v >= TARGET_P99_MS)
        print(
            f"{name:<18}{b50:>10.1f} /{b99:>6.1f} /{max(base):>6.1f} ms"
            f"{l50:>12.1f} /{l99:>6.1f} /{max(with_streams):>6.1f} ms"
            f"{l99 / b99:>10.1f}x{len(with_streams):>7}{over:>10}"
        )
        ok = ok and l99 < TARGET_P99_MS
    print(
        f"read streams: {report['received']} events received, {report['alive']} still open at the end; "
        f"ended during the run: {report['ended'] or 'none'}"
    )
    print(f"stalled streams, once read: {report['stalled']} (RESOURCE_EXHAUSTED = fell behind)")
    verdict = "met" if ok else "NOT met"
    print(f"rounds: {count}; target p99 < {TARGET_P99_MS:.0f} ms with the streams open: {verdict}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--stalled", type=int, default=20)
    # enough calls for a p99 that is not just the maximum (a full garbage collection lands in some)
    parser.add_argument("--rounds", type=int, default=150)
    args = parser.parse_args(argv)
    with ServerProcess(["--api", "armonik"]) as server:
        return asyncio.run(run(server.grpc_address, args.streams, args.stalled, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
