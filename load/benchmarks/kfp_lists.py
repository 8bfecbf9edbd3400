"""KFP ListRuns at 1k, 100k and 1M runs: does a page cost the same whatever the number of runs?

For each store (``memory``, ``sqlite``) and each size N, a fresh child process
runs an in-process server (``--api kfp``, manual clock) and fills it with N
finished runs through the state API (ten experiments, two namespaces, one run
in ten archived; far faster than N CreateRun calls), committed to the sqlite
file in one transaction.  Then, through the real gRPC surface, it pages through
ListRuns with 50 runs a page two ways: the default sort (created_at) over every
run, and one experiment's runs with a storage_state filter (the KFP UI's
listing), following the page tokens (starting over at the end) for ``--pages``
pages each.  A few pages sorted by ``description`` show what a scan costs.
Prints median/p99 per size, the 1M/1k (largest/smallest) ratio against the
target (<= 2x), whether total_size is right, the server's memory per run (RSS growth / N) and, for sqlite,
the file size and the time a restarted server takes to load the file and
answer.  No timing is asserted: the figures are printed.

    python -m protoconform.load.benchmarks.kfp_lists [--sizes 1000,100000,1000000] [--stores memory,sqlite]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.registry import default_registry

TARGET_RATIO = 2.0  # page median at the largest size / at the smallest
SERVICE = "api.RunService"
PAGE = 50
EXPERIMENTS = 10
ARCHIVED_FILTER = json.dumps(
    {"predicates": [{"key": "storage_state", "op": "NOT_EQUALS", "string_value": "STORAGESTATE_ARCHIVED"}]}
)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def fill(state: Any, count: int) -> None:
    """``count`` finished runs, as CreateRun and the lifecycle would have left them (v2, no workflow)."""
    from protoconform.mockserver.apis.kfp.state import RunRecord

    api = state.api
    experiments = [state.add_experiment(f"bench-{i}", experiment_id=f"exp-{i}") for i in range(EXPERIMENTS)]
    base = state.now_seconds()
    for i in range(count):
        experiment = experiments[i % EXPERIMENTS]
        run = api.Run(id=str(uuid.uuid4()), name=f"run-{i % 997:03}-{i}", status="Succeeded")
        run.storage_state = 1 if i % 10 == 9 else 0  # one in ten archived
        run.pipeline_spec.pipeline_manifest = '{"pipelineInfo":{"name":"bench"}}'
        ref = run.resource_references.add(name=experiment.name, relationship=1)  # OWNER
        ref.key.type, ref.key.id = 1, experiment.id  # EXPERIMENT
        run.created_at.seconds = base + i // 4  # four runs a second: ties on created_at
        run.scheduled_at.SetInParent()
        run.finished_at.seconds = base + i // 4 + 30
        run.service_account = "pipeline-runner"
        record = RunRecord(
            run=run, experiment_id=experiment.id, namespace=f"ns-{i % 2}", template_version="v2"
        )
        state.store.insert_run(record)


class Runs:
    def __init__(self, channel: grpc.Channel) -> None:
        registry = default_registry()
        method = registry.method(f"{SERVICE}.ListRuns")
        self.request_class = registry.message_class(method.request_type)
        self.stub = channel.unary_unary(
            method.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=registry.message_class(method.response_type).FromString,
        )

    def list(self, **fields: Any) -> Any:
        return self.stub(json_format.ParseDict(fields, self.request_class()), timeout=600)


def walk(runs: Runs, pages: int, **query: Any) -> tuple[list[float], int]:
    """Milliseconds of ``pages`` pages following the tokens (from the top again at the end); total_size."""
    times, token, total = [], "", 0
    for _ in range(pages):
        start = time.perf_counter()
        page = runs.list(page_size=PAGE, page_token=token, **query)
        times.append((time.perf_counter() - start) * 1000)
        total = page.total_size
        token = page.next_page_token
    return times, total


def measure(store: str, count: int, pages: int, scans: int) -> dict[str, Any]:
    """One store and size, in this process (the parent runs each in a child of its own)."""
    with tempfile.TemporaryDirectory(prefix="kfp-lists-") as folder:
        return _measure(store, count, pages, scans, Path(folder))


def _measure(store: str, count: int, pages: int, scans: int, folder: Path) -> dict[str, Any]:
    spec = "memory" if store == "memory" else f"sqlite:{folder / 'kfp.db'}"
    config = ServerConfig(families=("kfp",), clock_speed=0, store=spec, log_level="WARNING")
    result: dict[str, Any] = {"store": store, "runs": count}
    server = ThreadedServer(config)
    before = rss_kb()
    started = time.perf_counter()
    fill(server.server.states["kfp"], count)  # before the loop runs: no call can see a half-filled state
    result["fill_s"] = time.perf_counter() - started
    started = time.perf_counter()
    server.server.commit()
    result["commit_s"] = time.perf_counter() - started
    result["kb_per_run"] = (rss_kb() - before) / count
    with server, grpc.insecure_channel(server.grpc_address) as channel:
        runs = Runs(channel)
        walk(runs, 5)  # warm up the channel
        default, total = walk(runs, pages)
        scoped, scoped_total = walk(
            runs,
            pages,
            resource_reference_key={"type": "EXPERIMENT", "id": "exp-3"},
            filter=ARCHIVED_FILTER,
        )
        scanned, _ = walk(runs, scans, sort_by="description")
    result.update(
        default_ms=default, scoped_ms=scoped, scan_ms=scanned, total=total, scoped_total=scoped_total
    )
    if store == "sqlite":
        result["file_mb"] = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        started = time.perf_counter()
        again = ThreadedServer(config)  # loads the file
        with again, grpc.insecure_channel(again.grpc_address) as channel:
            page = Runs(channel).list(page_size=PAGE)
            result["restart_s"] = time.perf_counter() - started
            result["reloaded_total"] = page.total_size
    return result


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), percentile(ordered, 0.99)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated run counts")
    parser.add_argument("--stores", default="memory,sqlite", help="memory, sqlite or both")
    parser.add_argument(
        "--pages", type=int, default=300, help="pages timed per listing (default: %(default)s)"
    )
    parser.add_argument("--scans", type=int, default=3, help="pages timed of a scanned listing")
    parser.add_argument("--one", nargs=2, metavar=("STORE", "N"), help=argparse.SUPPRESS)  # a child's share
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.pages, args.scans)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    stores = [s for s in args.stores.split(",") if s]
    if not sizes or any(n < 1 for n in sizes) or not set(stores) <= {"memory", "sqlite"} or not stores:
        parser.error("--sizes: positive counts; --stores: memory and/or sqlite")
    ok = counts_ok = True
    for store in stores:
        results = []
        for count in sizes:
            command = [
                sys.executable,
                "-m",
                "protoconform.load.benchmarks.kfp_lists",
                "--one",
                store,
                str(count),
            ]
            command += ["--pages", str(args.pages), "--scans", str(args.scans)]
            child = subprocess.run(command, capture_output=True, text=True, check=False)
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return 1
            result = json.loads(child.stdout.strip().splitlines()[-1])
            results.append(result)
            scoped_expected = len(range(3, count, EXPERIMENTS))  # exp-3's runs; archived ones end in 9
            counted = result["total"] == count and result["scoped_total"] == scoped_expected
            counts_ok = counts_ok and counted and result.get("reloaded_total", count) == count
            print(
                f"{store}, {count:,} runs: filled in {result['fill_s']:.1f} s, "
                f"committed in {result['commit_s']:.1f} s"
            )
            for label, key in (
                ("default sort", "default_ms"),
                ("experiment + storage_state filter", "scoped_ms"),
            ):
                median, p99 = summary(result[key])
                print(f"  ListRuns page {PAGE}, {label}: median {median:.2f} ms, p99 {p99:.2f} ms")
            median, _ = summary(result["scan_ms"])
            print(
                f"  scanned (sort by description): median {median:.1f} ms over {len(result['scan_ms'])} pages"
            )
            print(
                f"  total_size {result['total']:,} (expected {count:,}), one experiment's available runs "
                f"{result['scoped_total']:,} (expected {scoped_expected:,}); "
                f"memory {result['kb_per_run']:.2f} KB/run"
            )
            if store == "sqlite":
                print(
                    f"  file {result['file_mb']:.1f} MB; "
                    f"restart (load + first page) {result['restart_s']:.1f} s, "
                    f"total_size after it {result['reloaded_total']:,}"
                )
        if len(results) > 1:
            for label, key in (("default sort", "default_ms"), ("experiment + filter", "scoped_ms")):
                small, large = summary(results[0][key])[0], summary(results[-1][key])[0]
                ratio = large / small
                ok = ok and ratio <= TARGET_RATIO
                print(
                    f"{store}: page median {results[-1]['runs']:,} / {results[0]['runs']:,} runs, {label}: "
                    f"{ratio:.2f}x (target <= {TARGET_RATIO:.0f}x)"
                )
    print(f"counts right: {counts_ok}; page ratio target: {'met' if ok else 'NOT met'}")
    return 0 if counts_ok else 1  # timings are reported, not asserted


if __name__ == "__main__":
    sys.exit(main())
