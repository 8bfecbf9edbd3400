"""ArmoniK ListSessions / ListTasks at 1k, 100k and 1M entities, in memory and on SQLite.

For each size N and store, a child process runs an in-process server
(``ThreadedServer``, the real gRPC surface on a loopback port), fills it with N
sessions and N tasks straight through the state's repositories (filling 1M
through gRPC would take hours; the records, indexes and store writes are the
same as a call's), and then measures pages of 50 through gRPC:

- ListSessions sorted by status (the official client's default), sorted by
  ``created_at`` descending, and filtered on one status;
- ListTasks sorted by task id (the official client's default), sorted by
  ``created_at`` descending, filtered on one session, and on one session and
  one status.

Each listing asks 100 pages: the first, then pages drawn uniformly over the
whole listing (deep offsets included); it prints their median and p99, the
ratio of each median to the smallest size's (target: at most 2x), and the
server's memory per entity (RSS growth over the fill / 2N, indexes included).
On SQLite (``--store sqlite:`` in a temporary folder) it also prints the time
to commit the fill, the file size, and the time a new server takes to load the
file back (restart).  Tasks are grouped 1,000 per session (so a session filter
matches 1,000 tasks at every size), timestamps repeat in groups of 8 (ties are
ordered by id), statuses are mixed.  No timing is asserted: it prints figures.

    python -m protoconform.load.benchmarks.armonik_lists \
        [--sizes 1000,100000,1000000] [--stores memory,sqlite]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from armonik.protogen.client import sessions_service_pb2_grpc, tasks_service_pb2_grpc
from armonik.protogen.common import filters_common_pb2 as fc
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import sessions_fields_pb2 as sf
from armonik.protogen.common import sessions_filters_pb2 as sfl
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from armonik.protogen.common import tasks_filters_pb2 as tfl
from armonik.protogen.common.objects_pb2 import TaskOptions
from google.protobuf.duration_pb2 import Duration
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer

PAGE_SIZE = 50
PAGES = 100  # pages asked per listing
TASKS_PER_SESSION = 1000
CHUNK = 20_000  # entities added per turn of the server's loop
TARGET_RATIO = 2.0
ASC, DESC = 1, 2
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SESSION_STATUSES = [1] * 6 + [4, 2]  # RUNNING mostly, some CLOSED and CANCELLED
TASK_STATUSES = [4] * 5 + [2, 9, 5]  # COMPLETED mostly, some SUBMITTED, PROCESSING, ERROR


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def session_id(i: int) -> str:
    return f"{random.Random(i).getrandbits(128):032x}-s{i}"


def task_id(i: int) -> str:
    return f"{random.Random(-i - 1).getrandbits(128):032x}-t{i}"


def fill(server: ThreadedServer, count: int) -> None:
    """``count`` sessions and ``count`` tasks, added through the repositories as calls add them."""
    from protoconform.mockserver.apis.armonik.state import Session, Task

    state = server.server.states["armonik"]
    options = TaskOptions(
        max_duration=Duration(seconds=60), max_retries=1, priority=1, partition_id="default"
    )

    def sessions(start: int, stop: int) -> None:
        for i in range(start, stop):
            copy = TaskOptions()
            copy.CopyFrom(options)
            created = EPOCH + timedelta(milliseconds=i // 8)
            state.sessions.add(
                Session(session_id(i), ["default"], copy, created, status=SESSION_STATUSES[i % 8])
            )
        server.server.commit()

    def tasks(start: int, stop: int) -> None:
        for i in range(start, stop):
            copy = TaskOptions()
            copy.CopyFrom(options)
            created = EPOCH + timedelta(milliseconds=i // 8)
            owner = session_id(i // TASKS_PER_SESSION)
            state.tasks.add(
                Task(task_id(i), owner, copy, f"payload-{i}", created, status=TASK_STATUSES[i % 8])
            )
        server.server.commit()

    for add in (sessions, tasks):
        for start in range(0, count, CHUNK):
            server.run(lambda add=add, start=start: add(start, min(count, start + CHUNK)))


def _session_sort(field: int, direction: int) -> Any:
    return sc.ListSessionsRequest.Sort(
        field=sf.SessionField(session_raw_field=sf.SessionRawField(field=field)), direction=direction
    )


def _task_sort(field: int, direction: int) -> Any:
    return tc.ListTasksRequest.Sort(
        field=tf.TaskField(task_summary_field=tf.TaskSummaryField(field=field)), direction=direction
    )


def _task_filter(session: str | None, status: int | None) -> Any:
    conditions = []
    if session is not None:
        conditions.append(
            tfl.FilterField(
                field=tf.TaskField(
                    task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_SESSION_ID)
                ),
                filter_string=fc.FilterString(value=session, operator=fc.FILTER_STRING_OPERATOR_EQUAL),
            )
        )
    if status is not None:
        conditions.append(
            tfl.FilterField(
                field=tf.TaskField(
                    task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_STATUS)
                ),
                filter_status=tfl.FilterStatus(value=status, operator=fc.FILTER_STATUS_OPERATOR_EQUAL),
            )
        )
    return tfl.Filters(**{"or": [tfl.FiltersAnd(**{"and": conditions})]})


def listings(count: int) -> dict[str, Callable[[grpc.Channel, int], Any]]:
    """Listing name -> (channel, page) -> its reply."""
    running = sfl.Filters(
        **{
            "or": [
                sfl.FiltersAnd(
                    **{
                        "and": [
                            sfl.FilterField(
                                field=sf.SessionField(
                                    session_raw_field=sf.SessionRawField(
                                        field=sf.SESSION_RAW_ENUM_FIELD_STATUS
                                    )
                                ),
                                filter_status=sfl.FilterStatus(
                                    value=1, operator=fc.FILTER_STATUS_OPERATOR_EQUAL
                                ),
                            )
                        ]
                    }
                )
            ]
        }
    )
    middle = session_id((count // TASKS_PER_SESSION) // 2)

    def sessions(sort: Any, filters: Any) -> Callable[[grpc.Channel, int], Any]:
        return lambda channel, page: sessions_service_pb2_grpc.SessionsStub(channel).ListSessions(
            sc.ListSessionsRequest(page=page, page_size=PAGE_SIZE, filters=filters, sort=sort)
        )

    def tasks(sort: Any, filters: Any) -> Callable[[grpc.Channel, int], Any]:
        return lambda channel, page: tasks_service_pb2_grpc.TasksStub(channel).ListTasks(
            tc.ListTasksRequest(page=page, page_size=PAGE_SIZE, filters=filters, sort=sort)
        )

    return {
        "ListSessions, by status (default)": sessions(
            _session_sort(sf.SESSION_RAW_ENUM_FIELD_STATUS, ASC), sfl.Filters()
        ),
        "ListSessions, created_at desc": sessions(
            _session_sort(sf.SESSION_RAW_ENUM_FIELD_CREATED_AT, DESC), sfl.Filters()
        ),
        "ListSessions, status = RUNNING": sessions(
            _session_sort(sf.SESSION_RAW_ENUM_FIELD_CREATED_AT, ASC), running
        ),
        "ListTasks, by task id (default)": tasks(
            _task_sort(tf.TASK_SUMMARY_ENUM_FIELD_TASK_ID, ASC), tfl.Filters()
        ),
        "ListTasks, created_at desc": tasks(
            _task_sort(tf.TASK_SUMMARY_ENUM_FIELD_CREATED_AT, DESC), tfl.Filters()
        ),
        "ListTasks, session = one": tasks(
            _task_sort(tf.TASK_SUMMARY_ENUM_FIELD_TASK_ID, ASC), _task_filter(middle, None)
        ),
        "ListTasks, session and status": tasks(
            _task_sort(tf.TASK_SUMMARY_ENUM_FIELD_CREATED_AT, DESC), _task_filter(middle, 4)
        ),
    }


def measure(channel: grpc.Channel, ask: Callable[[grpc.Channel, int], Any]) -> dict[str, float]:
    first = ask(channel, 0)
    last_page = max(0, (first.total - 1) // PAGE_SIZE)
    pages = [0, *(random.Random(7).randint(0, last_page) for _ in range(PAGES - 1))]
    times = []
    for page in pages:
        started = time.perf_counter()
        reply = ask(channel, page)
        times.append((time.perf_counter() - started) * 1000)
        assert reply.total == first.total
    times.sort()
    return {
        "median": statistics.median(times),
        "p99": times[int(0.99 * (len(times) - 1))],
        "total": first.total,
    }


def one(count: int, store: str) -> dict[str, Any]:
    """Fill and measure one size on one store (run in its own process: clean memory figures)."""
    found: dict[str, Any] = {"size": count, "store": store}
    with tempfile.TemporaryDirectory() as folder:
        spec = "memory" if store == "memory" else f"sqlite:{folder}/armonik.db"
        config = ServerConfig(families=("armonik",), clock_speed=0, store=spec)
        gc.collect()
        with ThreadedServer(config) as server:
            before = rss_kb()
            started = time.perf_counter()
            fill(server, count)
            found["fill_s"] = time.perf_counter() - started
            gc.collect()
            found["kb_per_entity"] = (rss_kb() - before) / (2 * count)
            with grpc.insecure_channel(server.grpc_address) as channel:
                found["lists"] = {name: measure(channel, ask) for name, ask in listings(count).items()}
        if store != "memory":
            path = Path(folder) / "armonik.db"
            found["file_mb"] = sum(p.stat().st_size for p in path.parent.glob("armonik.db*")) / 1e6
            started = time.perf_counter()
            with ThreadedServer(config) as again:
                found["restart_s"] = time.perf_counter() - started
                sessions = len(again.server.states["armonik"].sessions)
                tasks = len(again.server.states["armonik"].tasks)
                # PROCESSING tasks lost their run at the restart: each got a retry task.
                lost = sum(1 for i in range(count) if TASK_STATUSES[i % 8] == 9)
                assert sessions == count and tasks == count + lost, (sessions, tasks)
    return found


def report(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        line = f"N={run['size']:>9,} {run['store']:<7} fill {run['fill_s']:7.1f} s"
        line += f", {run['kb_per_entity']:.2f} KB/entity"
        if "restart_s" in run:
            line += f", file {run['file_mb']:.0f} MB, restart (load) {run['restart_s']:.1f} s"
        print(line)
    print(f"\npages of {PAGE_SIZE} through gRPC: median / p99 ms (ratio of medians to the smallest N)")
    for store in dict.fromkeys(r["store"] for r in runs):
        mine = sorted((r for r in runs if r["store"] == store), key=lambda r: r["size"])
        label = f"[{store}]"
        print(f"\n  {label:<34}" + "".join(f" {'N=' + format(r['size'], ','):>24}" for r in mine))
        for name in mine[0]["lists"]:
            base = mine[0]["lists"][name]["median"]
            cells = []
            for r in mine:
                figures = r["lists"][name]
                cells.append(
                    f"{figures['median']:6.2f}/{figures['p99']:6.2f} ({figures['median'] / base:4.1f}x)"
                )
            print(f"  {name:<34}" + "".join(f" {c:>24}" for c in cells))
    worst = 0.0  # the largest N's median over the smallest N's, per store and listing
    for store in dict.fromkeys(r["store"] for r in runs):
        mine = sorted((r for r in runs if r["store"] == store), key=lambda r: r["size"])
        for name in mine[0]["lists"]:
            worst = max(worst, mine[-1]["lists"][name]["median"] / mine[0]["lists"][name]["median"])
    verdict = "met" if worst <= TARGET_RATIO else "NOT met"
    print(
        f"\nlargest ratio of medians, largest N to smallest N: {worst:.2f}x "
        f"(target <= {TARGET_RATIO:.0f}x: {verdict})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated entity counts")
    parser.add_argument("--stores", default="memory,sqlite", help="comma-separated: memory, sqlite")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    stores = [s for s in args.stores.split(",") if s]
    if not sizes or any(s <= 0 for s in sizes) or not set(stores) <= {"memory", "sqlite"} or not stores:
        parser.error("--sizes takes positive counts, --stores memory and/or sqlite")
    runs = []
    for store in stores:
        for size in sizes:
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "protoconform.load.benchmarks.armonik_lists",
                    "--one",
                    str(size),
                    store,
                ],
                capture_output=True,
                text=True,
            )
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return 1
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"done: N={size:,} {store}", file=sys.stderr, flush=True)
    report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
