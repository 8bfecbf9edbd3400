"""Kubeflow Pipelines RunService under volume: create, report metrics, page through sorted and filtered lists.

Starts ``protoconform serve --api kfp`` as a user would (an accelerated clock so
runs finish while the benchmark works), then over gRPC: creates N runs of a
three-task pipeline, reports two metrics on each, waits until every run has
finished, and pages through every run three ways (default order, ``metric:``
sort descending, a filter on status).  Prints calls per second for each phase,
checks that paging visited every run exactly once, and the server's peak memory.

    python -m protoconform.load.benchmarks.kfp_runs [--runs N] [--page-size N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from protoconform.mockserver.launcher import ServerProcess
from protoconform.specs.registry import default_registry

TARGET_CREATE_PER_S = 200.0
TARGET_LIST_SECONDS = 10.0
TARGET_MB = 500.0

WORKFLOW = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "bench-"},
    "spec": {
        "entrypoint": "main",
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "prepare", "template": "step"},
                        {"name": "train", "template": "step", "dependencies": ["prepare"]},
                        {"name": "evaluate", "template": "step", "dependencies": ["train"]},
                    ]
                },
            },
            {"name": "step", "container": {"image": "alpine"}},
        ],
    },
}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Client:
    def __init__(self, channel: grpc.Channel) -> None:
        self.registry = default_registry()
        self.channel = channel

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = self.registry.method(f"api.RunService.{name}")
        request_class = self.registry.message_class(method.request_type)
        stub = self.channel.unary_unary(
            method.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.registry.message_class(method.response_type).FromString,
        )
        return lambda **fields: stub(json_format.ParseDict(fields, request_class()), timeout=30)


def page_through(client: Client, page_size: int, **query: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    token, calls = "", 0
    while True:
        page = client.ListRuns(page_size=page_size, page_token=token, **({} if token else query))
        calls += 1
        ids += [run.id for run in page.runs]
        token = page.next_page_token
        if not token:
            return ids, calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    manifest = json.dumps(WORKFLOW)
    serve_args = ["--api", "kfp", "--clock-speed", "100", "--kfp-task-seconds", "1", "--log-level", "WARNING"]
    with ServerProcess(serve_args) as server, grpc.insecure_channel(server.grpc_address) as channel:
        assert server.process is not None
        client = Client(channel)
        start = time.perf_counter()
        run_ids = [
            client.CreateRun(
                run={"name": f"run-{i:06}", "pipeline_spec": {"workflow_manifest": manifest}}
            ).run.id
            for i in range(args.runs)
        ]
        created = time.perf_counter()
        for i, run_id in enumerate(run_ids):
            client.ReportRunMetrics(
                run_id=run_id,
                metrics=[
                    {"name": "accuracy", "node_id": "evaluate", "number_value": (i * 37 % 1000) / 1000},
                    {"name": "loss", "node_id": "train", "number_value": 1 - (i * 37 % 1000) / 1000},
                ],
            )
        reported = time.perf_counter()

        succeeded = json.dumps(
            {"predicates": [{"key": "status", "op": "EQUALS", "string_value": "Succeeded"}]}
        )
        deadline = time.perf_counter() + args.timeout
        while time.perf_counter() < deadline:
            if client.ListRuns(page_size=1, filter=succeeded).total_size == args.runs:
                break
            time.sleep(0.2)
        finished = time.perf_counter()

        listings = {}
        for label, query in [
            ("default order", {}),
            ("metric:accuracy desc", {"sort_by": "metric:accuracy desc"}),
            ("filter status=Succeeded", {"filter": succeeded}),
        ]:
            begin = time.perf_counter()
            ids, calls = page_through(client, args.page_size, **query)
            listings[label] = (time.perf_counter() - begin, calls, ids)
        peak_mb = peak_rss_mb(server.process.pid)

    create_rate = args.runs / (created - start)
    print(f"runs:                        {args.runs}")
    print(f"CreateRun:                   {created - start:.2f} s ({create_rate:.0f} calls/s)")
    report_rate = args.runs / (reported - created)
    print(f"ReportRunMetrics:            {reported - created:.2f} s ({report_rate:.0f} calls/s)")
    print(f"until all Succeeded:         {finished - reported:.2f} s")
    ok = create_rate >= TARGET_CREATE_PER_S and peak_mb < TARGET_MB
    for label, (seconds, calls, ids) in listings.items():
        complete = sorted(ids) == sorted(run_ids)
        ok = ok and complete and seconds < TARGET_LIST_SECONDS
        print(f"ListRuns {label + ':':<24} {seconds:.2f} s, {calls} pages, every run once: {complete}")
    print(f"server peak RSS:             {peak_mb:.0f} MB")
    print(
        f"targets (>= {TARGET_CREATE_PER_S:.0f} creates/s, list < {TARGET_LIST_SECONDS:.0f} s, "
        f"< {TARGET_MB:.0f} MB): {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
