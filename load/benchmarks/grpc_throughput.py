"""Throughput of the mock against a bare grpcio server: a stateful Get and Health/Check.

In one run, on one machine, with one load generator, this starts two servers
in child processes: the mock (``serve --api armonik``, journal and fault
observers on, request validation on, in-memory store) and a bare ``grpc.aio``
server that answers every call with the bytes the mock answered (no decoding,
no state).  One ArmoniK session is created on the mock; then the same load
(``Sessions/GetSession`` of that session, then ``grpc.health.v1.Health/Check``)
is fired at each server in turn, alternating rounds so that a noisy neighbour
hurts both sides alike.  Prints req/s per round and the mock/bare ratios
(median of the rounds) against the target (stateful Get >= 0.8x), and next to
them each server's CPU time per call (from /proc): on a machine shared with
other work, the ratio of CPU per call is the steadier figure of the two.
With ``--mock-args "--workers N"`` the mock's CPU is that of its whole
process tree (serving process and gRPC front-ends), and the serving process's
own share is printed next to it: that share bounds how far more front-ends
(on more cores) can go, at 1 / (its CPU per call) calls a second.

The load generator is h2load (Debian's ``nghttp2-client``) when it is on PATH:
``--connections`` x ``--streams`` concurrent calls for ``--seconds`` each.
Without it (or with ``--generator python``), ``--processes`` grpcio client
processes keep ``--streams`` calls in flight each.  h2load does not read
gRPC trailers, so each server's answer is checked with a grpcio call before
and after the load.  No figure is asserted: they are printed.

    python -m protoconform.load.benchmarks.grpc_throughput [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from armonik.protogen.common.objects_pb2 import TaskOptions
from armonik.protogen.common.sessions_common_pb2 import (
    CreateSessionReply,
    CreateSessionRequest,
    GetSessionRequest,
)
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2
from protoconform.mockserver.launcher import ServerProcess

TARGET_RATIO = 0.8
GET_SESSION = "/armonik.api.grpc.v1.sessions.Sessions/GetSession"
CREATE_SESSION = "/armonik.api.grpc.v1.sessions.Sessions/CreateSession"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
NEW_SESSION = CreateSessionRequest(
    default_task_option=TaskOptions(max_duration=Duration(seconds=60), max_retries=1, priority=1)
)


# -- the bare server ---------------------------------------------------------
async def _serve_bare(answers: dict[str, bytes]) -> None:
    server = grpc.aio.server()

    def answering(raw: bytes) -> grpc.RpcMethodHandler:
        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return raw

        return grpc.unary_unary_rpc_method_handler(answer)

    by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for path, raw in answers.items():
        service, method = path[1:].split("/")
        by_service.setdefault(service, {})[method] = answering(raw)
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(s, m) for s, m in by_service.items())
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"bare ready 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


class BareServer:
    """A child process running :func:`_serve_bare`; ``answers`` maps paths to response bytes."""

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers
        self.process: subprocess.Popen[str] | None = None
        self.address = ""
        self.pid = 0

    def __enter__(self) -> BareServer:
        encoded = json.dumps({p: base64.b64encode(raw).decode() for p, raw in self.answers.items()})
        self.process = subprocess.Popen(
            [sys.executable, "-m", __spec__.name if __spec__ else __name__, "--bare-server", encoded],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("bare ready "):
            raise RuntimeError(f"bare server did not start: {line!r}")
        self.address = line.split()[-1]
        self.pid = self.process.pid
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


# -- load generators ---------------------------------------------------------
def grpc_frame(payload: bytes) -> bytes:
    """One length-prefixed gRPC message (not compressed), as it goes in an HTTP/2 DATA frame."""
    return struct.pack(">BI", 0, len(payload)) + payload


def h2load_rate(
    address: str, path: str, payload: bytes, args: argparse.Namespace, seconds: int
) -> tuple[float, int]:
    """Calls per second and calls answered, ``seconds`` of h2load at ``address``."""
    with tempfile.NamedTemporaryFile(suffix=".grpc") as body:
        body.write(grpc_frame(payload))
        body.flush()
        command = [
            "h2load",
            f"http://{address}{path}",
            *("-d", body.name, "-H", "content-type: application/grpc", "-H", "te: trailers"),
            *("-c", str(args.connections), "-m", str(args.streams), "-t", "1", "-D", f"{seconds}s"),
        ]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    counts = re.search(r"requests: .* (\d+) succeeded, (\d+) failed", out)
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if rate is None or counts is None:
        raise RuntimeError(f"unexpected h2load output:\n{out}")
    if int(counts[2]):
        raise RuntimeError(f"h2load saw failed requests against {address}:\n{out}")
    return float(rate[1]), int(counts[1])


def _client_process(
    address: str, path: str, payload: bytes, streams: int, seconds: float, out: object
) -> None:
    async def run() -> int:
        done = 0
        async with grpc.aio.insecure_channel(address) as channel:
            call = channel.unary_unary(path)
            await call(payload)  # connected before the clock starts
            deadline = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    await call(payload)
                    done += 1

            await asyncio.gather(*(worker() for _ in range(streams)))
        return done

    out.put(asyncio.run(run()))  # type: ignore[attr-defined]


def python_rate(
    address: str, path: str, payload: bytes, args: argparse.Namespace, seconds: int
) -> tuple[float, int]:
    """Calls per second and calls answered, ``seconds`` of grpcio client processes at ``address``."""
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(
            target=_client_process, args=(address, path, payload, args.streams, seconds, queue)
        )
        for _ in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    total = sum(queue.get(timeout=seconds + 60) for _ in workers)
    for worker in workers:
        worker.join()
    return total / seconds, total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (Linux); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``serve --workers``: the front-end processes), from /proc."""
    found = [pid]
    for parent in found:  # grows as children are found
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found += [int(child) for child in children.read_text().split()]
    return found


def tree_cpu(pid: int) -> dict[int, float]:
    return {member: cpu_seconds(member) for member in process_tree(pid)}


def measure(
    rate_of: Callable[..., tuple[float, int]],
    pid: int,
    address: str,
    path: str,
    payload: bytes,
    args: argparse.Namespace,
) -> tuple[float, float, float]:
    """Calls per second, and the server's CPU microseconds per call (steadier on a shared machine):
    its whole process tree's, and its serving process's own (the same without front-ends)."""
    rate_of(address, path, payload, args, 1)  # warm-up: connections, caches
    before = tree_cpu(pid)
    rate, calls = rate_of(address, path, payload, args, args.seconds)
    after = tree_cpu(pid)
    spent = sum(after.values()) - sum(before.get(member, 0.0) for member in after)
    per_call = 1e6 / max(calls, 1)
    return rate, spent * per_call, (after[pid] - before[pid]) * per_call


# -- the run -----------------------------------------------------------------
def unary(address: str, path: str, payload: bytes) -> bytes:
    with grpc.insecure_channel(address) as channel:
        return channel.unary_unary(path)(payload, timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds per server and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/mock rounds per method")
    parser.add_argument("--generator", choices=("auto", "h2load", "python"), default="auto")
    parser.add_argument("--connections", type=int, default=8, help="h2load connections")
    parser.add_argument("--streams", type=int, default=16, help="concurrent calls per connection/process")
    parser.add_argument("--processes", type=int, default=2, help="client processes of the python generator")
    parser.add_argument(
        "--mock-args", default="", help="extra serve arguments, e.g. '--store sqlite:/tmp/x.db'"
    )
    parser.add_argument("--bare-server", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        answers = {p: base64.b64decode(raw) for p, raw in json.loads(args.bare_server).items()}
        asyncio.run(_serve_bare(answers))
        return 0

    generator = args.generator
    if generator == "auto":
        generator = "h2load" if shutil.which("h2load") else "python"
    rate_of = h2load_rate if generator == "h2load" else python_rate
    shape = (
        f"{args.connections} connections x {args.streams} streams"
        if generator == "h2load"
        else f"{args.processes} processes x {args.streams} calls in flight"
    )
    print(f"load generator: {generator} ({shape}), {args.seconds:g} s per measure, {args.rounds} rounds")

    mock_args = ["--api", "armonik", "--log-level", "WARNING", *args.mock_args.split()]
    with ServerProcess(mock_args) as mock:
        workers = "workers" in mock.fields  # the mock's CPU is its whole process tree's
        owner_cpus: dict[str, list[float]] = {}
        created = CreateSessionReply.FromString(
            unary(mock.grpc_address, CREATE_SESSION, NEW_SESSION.SerializeToString())
        )
        get = GetSessionRequest(session_id=created.session_id).SerializeToString()
        health = health_pb2.HealthCheckRequest().SerializeToString()
        calls = {"Sessions/GetSession": (GET_SESSION, get), "Health/Check": (HEALTH_CHECK, health)}
        answers = {path: unary(mock.grpc_address, path, payload) for path, payload in calls.values()}
        with BareServer(answers) as bare:
            for path, payload in calls.values():  # the bare server answers the same bytes
                assert unary(bare.address, path, payload) == answers[path]
            ratios: dict[str, list[float]] = {}
            cpu_ratios: dict[str, list[float]] = {}
            servers = (
                ("bare", bare.address, bare.pid),
                ("mock", mock.grpc_address, mock.process.pid),  # type: ignore[union-attr]
            )
            for name, (path, payload) in calls.items():
                for round_ in range(args.rounds):
                    got = {
                        side: measure(rate_of, pid, address, path, payload, args)
                        for side, address, pid in servers
                    }
                    (bare_rate, bare_cpu, _), (mock_rate, mock_cpu, owner_cpu) = got["bare"], got["mock"]
                    ratios.setdefault(name, []).append(mock_rate / bare_rate)
                    cpu_ratios.setdefault(name, []).append(bare_cpu / mock_cpu)
                    owner_cpus.setdefault(name, []).append(owner_cpu)
                    print(
                        f"{name:20} round {round_ + 1}: bare {bare_rate:6.0f} req/s {bare_cpu:4.0f} us/call"
                        f"  mock {mock_rate:6.0f} req/s {mock_cpu:4.0f} us/call"
                        f"  ratio {mock_rate / bare_rate:.2f} (CPU {bare_cpu / mock_cpu:.2f})"
                        + (f"  serving process {owner_cpu:4.0f} us/call" if workers else ""),
                        flush=True,
                    )
                # the mock still answers what it answered before the load (nothing broke)
                if unary(mock.grpc_address, path, payload) != answers[path]:
                    print(f"{name}: the mock's answer changed under load")
    print()
    for name, values in ratios.items():
        median = statistics.median(values)
        cpu = cpu_ratios[name]
        verdict = f"  target >= {TARGET_RATIO}: {'met' if median >= TARGET_RATIO else 'NOT met'}"
        print(
            f"{name:20} mock/bare req/s: median {median:.2f}x (range {min(values):.2f}-{max(values):.2f})"
            f"{verdict if name.startswith('Sessions') else ''}"
        )
        print(
            f"{'':20} bare/mock server CPU per call: median {statistics.median(cpu):.2f}x"
            f" (range {min(cpu):.2f}-{max(cpu):.2f}): "
            + ("the whole process tree's" if workers else "the one-process ceiling ratio")
        )
        if workers:
            owner = statistics.median(owner_cpus[name])
            ceiling = f"its ceiling is {1e6 / owner:.0f} calls/s" if owner else "it does no work for these"
            print(
                f"{'':20} serving process CPU per call: median {owner:.0f} us: with front-ends on cores of"
                f" their own, {ceiling}"
            )
    store = "in-memory store" if "--store" not in args.mock_args else args.mock_args
    print(f"(mock: journal and fault observers on, requests validated, {store})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
