"""The locust gRPC user's throughput against a raw grpcio client loop, same target, same run.

One mock serves both. For each call -- ``Health/Check`` and a stateful ArmoniK ``GetSession`` --
the benchmark alternates, ``--rounds`` times, back to back: a raw loop (one process, ``--concurrency``
threads, a channel each, a blocking call in a loop, nothing recorded but a count) and
``protoconform load`` with as many locust users (one process, a channel each, every call a
locust request event with its timing and size). It prints the medians and the median of each
round's ratio; target: the locust user reaches at least 0.7x the raw loop.

    python -m protoconform.load.benchmarks.locust_user [--concurrency 4] [--duration 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2
from protoconform.mockserver.launcher import ServerProcess
from protoconform.specs.registry import default_registry

TARGET_RATIO = 0.7
HEALTH = "/grpc.health.v1.Health/Check"
SESSIONS = "/armonik.api.grpc.v1.sessions.Sessions"


def _health(channel: grpc.Channel) -> Callable[[], object]:
    call = channel.unary_unary(
        HEALTH,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
        _registered_method=True,
    )
    request = health_pb2.HealthCheckRequest()
    return lambda: call(request, timeout=30)


def _get_session(channel: grpc.Channel) -> Callable[[], object]:
    registry = default_registry()
    classes = {
        name: registry.message_class(f"armonik.api.grpc.v1.sessions.{name}")
        for name in ("CreateSessionRequest", "CreateSessionReply", "GetSessionRequest", "GetSessionResponse")
    }

    def unary(method: str, reply: str) -> Callable[..., object]:
        return channel.unary_unary(
            f"{SESSIONS}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=classes[reply].FromString,
            _registered_method=True,
        )

    create = classes["CreateSessionRequest"]()
    create.default_task_option.max_retries = 1
    create.default_task_option.priority = 1
    create.default_task_option.max_duration.seconds = 60
    session = unary("CreateSession", "CreateSessionReply")(create, timeout=30).session_id
    get = unary("GetSession", "GetSessionResponse")
    request = classes["GetSessionRequest"](session_id=session)
    return lambda: get(request, timeout=30)


CALLS = {"health": (_health, "health"), "get": (_get_session, "session-get")}


def raw_loop(target: str, call: str, concurrency: int, duration: float) -> float:
    """Calls per second of ``concurrency`` threads, each on its own channel, for ``duration`` s."""
    make = CALLS[call][0]
    channels = [grpc.insecure_channel(target) for _ in range(concurrency)]
    calls = [make(channel) for channel in channels]
    for fn in calls:
        fn()  # connected and warm before the clock starts
    counts = [0] * concurrency
    stop = threading.Event()

    def loop(index: int) -> None:
        fn = calls[index]
        while not stop.is_set():
            fn()
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(duration)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for channel in channels:
        channel.close()
    return sum(counts) / elapsed


def locust_run(target: str, call: str, concurrency: int, duration: float) -> float:
    """Requests per second ``protoconform load`` reports for the same call (its stats CSV)."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, "-m", "protoconform.mockserver", "load",
            "--scenario", CALLS[call][1], "--target", target,
            "--users", str(concurrency), "--duration", f"{duration:g}",
            "--report-dir", folder, "--quiet", "--max-error-ratio", "0",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"protoconform load failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        with (Path(folder) / "load_stats.csv").open(newline="") as handle:
            total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
        return float(total["Requests/s"])


def _figures(rates: list[float]) -> str:
    return f"{statistics.median(rates):8.0f} req/s ({', '.join(f'{r:.0f}' for r in rates)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4, help="threads of the raw loop = locust users")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw/locust measurements")
    parser.add_argument("--calls", default="health,get", help="health, get or both")
    args = parser.parse_args(argv)
    ratios: list[float] = []
    with ServerProcess(["--api", "armonik"]) as server:
        for call in args.calls.split(","):
            raw, user = [], []
            for _ in range(args.rounds):
                raw.append(raw_loop(server.grpc_address, call, args.concurrency, args.duration))
                user.append(locust_run(server.grpc_address, call, args.concurrency, args.duration))
            # each round's pair ran back to back: the median of their ratios shrugs off the drift
            # of a shared machine better than a ratio of medians taken minutes apart
            ratio = statistics.median(u / r for u, r in zip(user, raw, strict=True))
            ratios.append(ratio)
            shape = f"{args.concurrency} concurrent, medians of {args.rounds} x {args.duration:g} s"
            print(f"{call}: {shape}")
            print(f"{call}: raw grpcio loop   {_figures(raw)}")
            print(f"{call}: locust gRPC user  {_figures(user)}")
            print(f"{call}: ratio locust/raw  {ratio:.2f} (median of each round's; target {TARGET_RATIO})")
    met = all(r >= TARGET_RATIO for r in ratios)
    print(f"target locust/raw >= {TARGET_RATIO}: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
