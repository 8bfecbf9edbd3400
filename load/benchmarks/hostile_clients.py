"""What hostile or careless clients cost the server: refused bodies, and bursts of calls.

Starts ``protoconform serve --api kfp,armonik`` with its default limits, then:

1. three rounds of eight concurrent 100 MiB POSTs to ``/apis/v1beta1/runs``, once
   declared with Content-Length and once chunked; prints each answer's status and
   the server's RSS before (the baseline) and after every round (target: within
   100 MB of before);
2. a burst of 4,000 concurrent unary calls and one of 2,000 concurrent stream
   opens on one channel; prints how they ended (target: no CANCELLED) and the
   wall time of each burst against one unary call's (the baseline).

Bounded in count and time, loopback only.

    .venv/bin/python -m protoconform.load.benchmarks.hostile_clients [--size-mib N] [--calls N] [--streams N]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time

import grpc
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.common.events_common_pb2 import EventSubscriptionRequest
from armonik.protogen.common.objects_pb2 import TaskOptions
from armonik.protogen.common.sessions_common_pb2 import CreateSessionRequest, GetSessionRequest
from google.protobuf.duration_pb2 import Duration
from protoconform.mockserver.launcher import ServerProcess

MiB = 1024 * 1024
TARGET_RSS_GROWTH_MB = 100


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def post(address: str, size: int, chunked: bool) -> str:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    writer.write(f"POST /apis/v1beta1/runs HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode())
    chunk = b"x" * MiB
    try:
        for _ in range(size // MiB):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
    except OSError:
        pass  # answered and closed before the whole body was sent
    try:
        return (await asyncio.wait_for(reader.readline(), 60)).decode().strip() or "closed"
    except (OSError, TimeoutError) as exc:
        return type(exc).__name__
    finally:
        writer.close()


async def bodies(process: ServerProcess, size: int) -> bool:
    assert process.process is not None
    pid = process.process.pid
    ok = True
    for chunked in (False, True):
        before = rss_mb(pid)
        print(f"{'chunked' if chunked else 'content-length'}: RSS before {before:.0f} MB")
        for round_number in range(3):
            started = time.perf_counter()
            answers = await asyncio.gather(*(post(process.http_address, size, chunked) for _ in range(8)))
            await asyncio.sleep(0.5)
            after = rss_mb(pid)
            print(
                f"  round {round_number + 1}: {dict(collections.Counter(answers))} "
                f"in {time.perf_counter() - started:.1f} s, RSS {after:.0f} MB ({after - before:+.0f})"
            )
        growth = rss_mb(pid) - before
        ok &= growth < TARGET_RSS_GROWTH_MB
        print(f"  growth {growth:+.0f} MB (target < {TARGET_RSS_GROWTH_MB} MB)")
    return ok


async def bursts(address: str, calls: int, streams: int) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        sessions = SessionsStub(channel)
        options = TaskOptions(max_duration=Duration(seconds=60), max_retries=1, priority=1)
        session_id = (
            await sessions.CreateSession(CreateSessionRequest(default_task_option=options))
        ).session_id
        request = GetSessionRequest(session_id=session_id)
        started = time.perf_counter()
        await sessions.GetSession(request)
        single = time.perf_counter() - started

        codes: collections.Counter[str] = collections.Counter()

        async def unary() -> None:
            try:
                await sessions.GetSession(request, timeout=120)
                codes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                codes[exc.code().name] += 1

        started = time.perf_counter()
        await asyncio.gather(*(unary() for _ in range(calls)))
        unary_seconds = time.perf_counter() - started
        print(f"{calls} concurrent GetSession: {dict(codes)} in {unary_seconds:.2f} s")
        print(
            f"  one call alone {single * 1000:.1f} ms; burst per call {unary_seconds / calls * 1000:.2f} ms"
        )
        cancelled = codes["CANCELLED"]

        # a stream whose session is empty sends nothing: it is open once the server has not ended it
        events = EventsStub(channel)
        opened = [events.GetEvents(EventSubscriptionRequest(session_id=session_id)) for _ in range(streams)]
        started = time.perf_counter()
        await asyncio.sleep(3)
        ended = collections.Counter([(await call.code()).name for call in opened if call.done()])
        still_open = streams - sum(ended.values())
        print(f"{streams} concurrent GetEvents opens: {still_open} open after 3 s, ended {dict(ended)}")
        for call in opened:
            call.cancel()
        cancelled += ended["CANCELLED"]
    print(f"CANCELLED by the server: {cancelled} (target 0)")
    return cancelled == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100, help="size of each POST (default: %(default)s)")
    parser.add_argument(
        "--calls", type=int, default=4000, help="unary calls in the burst (default: %(default)s)"
    )
    parser.add_argument(
        "--streams", type=int, default=2000, help="stream opens in the burst (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    with ServerProcess(["--api", "kfp,armonik"]) as process:
        ok = asyncio.run(bodies(process, args.size_mib * MiB))
        ok &= asyncio.run(bursts(process.grpc_address, args.calls, args.streams))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
