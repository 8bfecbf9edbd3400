"""10,000 ArmoniK tasks submitted in one call and run to completion on the simulated engine.

Starts ``protoconform serve --api armonik`` as a user would, then with the
official ``armonik`` client: creates a session, one payload and N output
results, submits N tasks in a single SubmitTasks call, and waits until every
task is COMPLETED (polling CountTasksByStatus).  Prints the wall time of each
phase and the server's peak resident memory.  Targets: under 10 s from submit
to completion, under 500 MB.

    python -m protoconform.load.benchmarks.armonik_tasks [--tasks N] [--max-parallel N]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import grpc
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Task, TaskDefinition, TaskOptions, TaskStatus
from protoconform.mockserver.launcher import ServerProcess

TARGET_SECONDS = 10.0
TARGET_MB = 500.0


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a process (Linux ``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--max-parallel", type=int, default=None, help="engine slots (default: the server's)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    serve_args = ["--api", "armonik"]
    if args.max_parallel:
        serve_args += ["--armonik-max-parallel", str(args.max_parallel)]
    with ServerProcess(serve_args) as server:
        assert server.process is not None
        pid = server.process.pid
        idle_mb = rss_mb(pid)
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        with grpc.insecure_channel(server.grpc_address, options=options) as channel:
            sessions, results = ArmoniKSessions(channel), ArmoniKResults(channel)
            tasks = ArmoniKTasks(channel)
            session_id = sessions.create_session(
                TaskOptions(max_duration=datetime.timedelta(seconds=60), priority=1, max_retries=1)
            )

            start = time.perf_counter()
            payload = results.create_results({"payload": b"benchmark payload"}, session_id)["payload"]
            names = [f"out-{i}" for i in range(args.tasks)]
            outputs = results.create_results_metadata(names, session_id, batch_size=len(names))
            created = time.perf_counter()

            definitions = [
                TaskDefinition(payload_id=payload.result_id, expected_output_ids=[outputs[name].result_id])
                for name in names
            ]
            tasks.submit_tasks(session_id, definitions, chunk_size=len(definitions))  # one call
            submitted = time.perf_counter()

            deadline = submitted + args.timeout
            completed = 0
            while time.perf_counter() < deadline:
                counts = tasks.count_tasks_by_status(Task.session_id == session_id)
                completed = counts.get(TaskStatus.COMPLETED, 0)
                if completed == args.tasks:
                    break
                time.sleep(0.05)
            done = time.perf_counter()

        peak_mb = peak_rss_mb(pid)

    run_seconds = done - submitted
    total_seconds = done - created
    print(f"tasks:                       {args.tasks}")
    print(f"create payload + outputs:    {created - start:.2f} s")
    print(f"SubmitTasks (one call):      {submitted - created:.2f} s")
    print(f"reply -> all COMPLETED:      {run_seconds:.2f} s ({completed} completed)")
    print(f"submit call -> all COMPLETED: {total_seconds:.2f} s")
    rate = completed / max(total_seconds, 1e-9)
    print(f"throughput:                  {rate:.0f} tasks/s (submission included)")
    print(f"server RSS idle / peak:      {idle_mb:.0f} MB / {peak_mb:.0f} MB")
    ok = completed == args.tasks and total_seconds < TARGET_SECONDS and peak_mb < TARGET_MB
    print(f"target < {TARGET_SECONDS:.0f} s and < {TARGET_MB:.0f} MB: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
