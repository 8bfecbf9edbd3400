"""Latency at a fixed rate: p50/p99 of a stateful Get at 200 calls a second, mock and bare grpcio.

Starts the mock (``serve --api armonik``, journal and fault observers on) and,
as the baseline, a bare ``grpc.aio`` server answering the same response bytes
(see ``grpc_throughput``), each in a child process.  A grpcio client sends
``Sessions/GetSession`` of one session at a fixed rate (open loop: calls leave
on schedule whether or not earlier ones have been answered, so a slow answer
cannot hide the calls that would have queued behind it) for ``--seconds``, to
each server in turn, ``--rounds`` times, and prints p50/p99/max per run and the
medians against the target (p99 < 5 ms).  Latency is measured from the
scheduled send time to the answer.  No figure is asserted: they are printed.

    python -m protoconform.load.benchmarks.latency_fixed_rate [--rate 200] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import grpc
from armonik.protogen.common.sessions_common_pb2 import CreateSessionReply, GetSessionRequest
from protoconform.load.benchmarks.grpc_throughput import (
    CREATE_SESSION,
    GET_SESSION,
    NEW_SESSION,
    BareServer,
    unary,
)
from protoconform.mockserver.launcher import ServerProcess

TARGET_P99_MS = 5.0


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def fixed_rate(
    address: str, payload: bytes, rate: float, seconds: float
) -> tuple[list[float], list[float], int]:
    """Latencies in ms (sorted) of ``rate`` calls a second for ``seconds``, from the scheduled and
    from the actual send time (apart when the client itself fell behind), and the count of failures."""
    latencies: list[float] = []
    from_send: list[float] = []
    failed = 0
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(GET_SESSION)
        for _ in range(20):  # connected and warm before the clock starts
            await call(payload)

        async def one(scheduled: float) -> None:
            nonlocal failed
            sent = time.perf_counter()
            try:
                await call(payload, timeout=10)
            except grpc.RpcError:
                failed += 1
                return
            now = time.perf_counter()
            latencies.append((now - scheduled) * 1000)
            from_send.append((now - sent) * 1000)

        start = time.perf_counter()
        pending = []
        for i in range(int(rate * seconds)):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*pending)
    return sorted(latencies), sorted(from_send), failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="calls a second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per server and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    p99s: dict[str, list[float]] = {"bare": [], "mock": []}
    p50s: dict[str, list[float]] = {"bare": [], "mock": []}
    with ServerProcess(["--api", "armonik", "--log-level", "WARNING"]) as mock:
        created = CreateSessionReply.FromString(
            unary(mock.grpc_address, CREATE_SESSION, NEW_SESSION.SerializeToString())
        )
        payload = GetSessionRequest(session_id=created.session_id).SerializeToString()
        answer = unary(mock.grpc_address, GET_SESSION, payload)
        with BareServer({GET_SESSION: answer}) as bare:
            print(f"Sessions/GetSession at {args.rate:g} calls/s, {args.seconds:g} s per run, open loop")
            for round_ in range(args.rounds):
                for side, address in (("bare", bare.address), ("mock", mock.grpc_address)):
                    latencies, from_send, failed = asyncio.run(
                        fixed_rate(address, payload, args.rate, args.seconds)
                    )
                    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
                    p50s[side].append(p50)
                    p99s[side].append(p99)
                    print(
                        f"round {round_ + 1} {side}: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
                        f"  max {latencies[-1]:7.2f} ms  (from the actual send: p99"
                        f" {percentile(from_send, 0.99):6.2f} ms; {len(latencies)} ok, {failed} failed)",
                        flush=True,
                    )
    print()
    for side in ("bare", "mock"):
        print(
            f"{side}: p50 median {statistics.median(p50s[side]):.2f} ms;"
            f" p99 median {statistics.median(p99s[side]):.2f} ms"
            f" (range {min(p99s[side]):.2f}-{max(p99s[side]):.2f})"
        )
    p99 = statistics.median(p99s["mock"])
    print(
        f"mock p99 / bare p99: {p99 / statistics.median(p99s['bare']):.2f}x;"
        f" target mock p99 < {TARGET_P99_MS:g} ms: {'met' if p99 < TARGET_P99_MS else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
