"""The locust gRPC user's throughput against a raw grpcio client loop, same target, same run.

One mock serves both. For each call -- ``Health/Check`` and a stateful ArmoniK ``GetSession`` --
the benchmark alternates, ``--rounds`` times, back to back: a raw loop (one process, ``--concurrency``
threads, a channel each, a blocking call in a loop, nothing recorded but a count) and
``protoconform load`` with as many locust users (one process, a channel each, every call a
locust request event with its timing and size). It prints the medians and the median of each
round's ratio; target: the locust user reaches at least 0.7x the raw loop. It also prints the
client CPU per call of each (the locust process's once its start-up is taken off): on a shared
machine where the server and the client compete for cores, that ratio is the steadier figure.

    python -m protoconform.load.benchmarks.locust_user [--concurrency 4] [--duration 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class Measure:
    rate: float  # calls per second
    cpu_us: float  # client CPU time per call, microseconds (user + system, every thread)


def raw_loop(target: str, call: str, concurrency: int, duration: float) -> Measure:
    """``concurrency`` threads, each on its own channel, calling for ``duration`` s."""
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
    cpu = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(duration)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    for channel in channels:
        channel.close()
    return Measure(sum(counts) / elapsed, cpu / max(1, sum(counts)) * 1e6)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def locust_run(
    target: str, call: str, concurrency: int, duration: float, startup_cpu: float = 0.0
) -> Measure:
    """The rate ``protoconform load`` reports for the same call (its stats CSV), and the CPU of its
    processes per call once ``startup_cpu`` (that of a run of one request: imports, spawning,
    reports) is taken off."""
    with tempfile.TemporaryDirectory() as folder:
        bound = ["--duration", f"{duration:g}"] if duration else ["--requests", "1"]
        command = [
            sys.executable, "-m", "protoconform.mockserver", "load",
            "--scenario", CALLS[call][1], "--target", target, "--users", str(concurrency), *bound,
            "--report-dir", folder, "--quiet", "--max-error-ratio", "0",
        ]  # fmt: skip
        cpu = _children_cpu()
        result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120, check=False)
        cpu = _children_cpu() - cpu
        if result.returncode != 0:
            raise RuntimeError(f"protoconform load failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        with (Path(folder) / "load_stats.csv").open(newline="") as handle:
            total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
        calls = max(1, int(total["Request Count"]))
        if not duration:
            return Measure(0.0, cpu)  # the startup's CPU seconds
        return Measure(float(total["Requests/s"]), max(0.0, cpu - startup_cpu) / calls * 1e6)


def _figures(measures: list[Measure]) -> str:
    rates = [m.rate for m in measures]
    cpu = statistics.median(m.cpu_us for m in measures)
    each = ", ".join(f"{r:.0f}" for r in rates)
    return f"{statistics.median(rates):8.0f} req/s ({each}); {cpu:.0f} us CPU/call"


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
            startup = locust_run(server.grpc_address, call, args.concurrency, 0).cpu_us
            raw: list[Measure] = []
            user: list[Measure] = []
            for _ in range(args.rounds):
                raw.append(raw_loop(server.grpc_address, call, args.concurrency, args.duration))
                user.append(locust_run(server.grpc_address, call, args.concurrency, args.duration, startup))
            # each round's pair ran back to back: the median of their ratios shrugs off the drift
            # of a shared machine better than a ratio of medians taken minutes apart
            ratio = statistics.median(u.rate / r.rate for u, r in zip(user, raw, strict=True))
            ratios.append(ratio)
            shape = f"{args.concurrency} concurrent, medians of {args.rounds} x {args.duration:g} s"
            print(f"{call}: {shape}")
            print(f"{call}: raw grpcio loop   {_figures(raw)}")
            print(f"{call}: locust gRPC user  {_figures(user)}")
            print(f"{call}: ratio locust/raw  {ratio:.2f} (median of each round's; target {TARGET_RATIO})")
            cpu = statistics.median(r.cpu_us for r in raw) / statistics.median(u.cpu_us for u in user)
            print(f"{call}: CPU per call raw/locust {cpu:.2f} (the rate ratio on a client-bound machine)")
    met = all(r >= TARGET_RATIO for r in ratios)
    print(f"target locust/raw >= {TARGET_RATIO}: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
