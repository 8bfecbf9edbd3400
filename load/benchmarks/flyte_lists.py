"""Flyte ListTasks over a large registry: pages filtered and sorted, with and without writes between them.

Starts ``protoconform serve --api flyte`` as a user would, registers N tasks
over gRPC (many calls in flight; most in one project and domain, so a listing
there has a lot to look at), then pages with ``limit``/``token`` through
ListTasks four ways: a name filter sorted by ``created_at`` descending, a
``contains`` filter sorted by version, the whole scope sorted by name, and the
``contains`` listing again with a task registered in the same scope before
every page (so no page is served from a cached selection).  Checks that every
listing visits each matching task exactly once and in order.  Prints the
registration rate, the first page of each listing (it builds the scope's
indexes) and min/median/p99/max of the other pages, against a baseline taken
on the same server (GetTask, and a ListTasks page of an empty scope), and the
server's memory per registered task.  Targets: the pages after the first under
20 ms (p99 over the four listings' ~1,000 pages), under 16 KB per task.

With ``--store sqlite:PATH`` (a new file) the server writes through to that store;
the benchmark then also kills it (SIGKILL), starts it again on the file and
prints how long loading took, checking that the whole-scope listing comes back
the same.

    python -m protoconform.load.benchmarks.flyte_lists [--tasks N] [--page-size N] [--store sqlite:PATH]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from protoconform.mockserver.launcher import ServerProcess
from protoconform.specs.registry import default_registry

TARGET_PAGE_MS = 20.0  # p99 of the pages after the first, over every listing
TARGET_KB_PER_TASK = 16.0  # server RSS growth per registered task, indexes built
SERVICE = "flyteidl.service.AdminService"
MAIN = ("bench", "development")  # most tasks live here
OTHERS = [("bench", "staging"), ("bench2", "development")]  # one task in ten, each
EMPTY = ("bench", "production")  # no task: the baseline listing
NAMES = 100
IN_FLIGHT = 64
DESCENDING, ASCENDING = 0, 1
TEMPLATE = {
    "type": "python-task",
    "metadata": {"runtime": {"type": "FLYTE_SDK", "version": "1.16.0"}},
    "interface": {
        "inputs": {"variables": {"a": {"type": {"simple": "INTEGER"}}}},
        "outputs": {"variables": {"o0": {"type": {"simple": "INTEGER"}}}},
    },
    "container": {"image": "python:3.11", "args": ["pyflyte-execute"]},
}

TaskId = tuple[str, str, str, str]  # project, domain, name, version


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Admin:
    """AdminService methods by name, requests as dicts or as serialized bytes."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.registry = default_registry()
        self.channel = channel

    def request_class(self, name: str) -> Any:
        return self.registry.message_class(self.registry.method(f"{SERVICE}.{name}").request_type)

    def raw(self, name: str) -> grpc.UnaryUnaryMultiCallable:
        method = self.registry.method(f"{SERVICE}.{name}")
        return self.channel.unary_unary(
            method.path,
            request_serializer=lambda data: data,
            response_deserializer=self.registry.message_class(method.response_type).FromString,
        )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        stub, request_class = self.raw(name), self.request_class(name)
        return lambda **fields: stub(
            json_format.ParseDict(fields, request_class()).SerializeToString(), timeout=60
        )


def task_ids(count: int) -> list[TaskId]:
    """Nine in ten in MAIN, the rest in OTHERS; names cycle, versions grow."""
    found = []
    for i in range(count):
        project, domain = OTHERS[i % 20] if i % 20 < len(OTHERS) else MAIN
        found.append((project, domain, f"bench.t{i % NAMES:03}", f"v{i // NAMES:06}"))
    return found


def register(admin: Admin, ids: list[TaskId]) -> float:
    """Registers every task with IN_FLIGHT calls outstanding; returns the seconds it took."""
    create = admin.raw("CreateTask")
    request = json_format.ParseDict({"spec": {"template": TEMPLATE}}, admin.request_class("CreateTask")())
    pending: deque[grpc.Future] = deque()
    start = time.perf_counter()
    for project, domain, name, version in ids:
        for ident in (request.id, request.spec.template.id):
            ident.resource_type, ident.project, ident.domain = 1, project, domain  # 1: TASK
            ident.name, ident.version = name, version
        pending.append(create.future(request.SerializeToString(), timeout=120))
        if len(pending) >= IN_FLIGHT:
            pending.popleft().result()
    while pending:
        pending.popleft().result()
    return time.perf_counter() - start


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return (time.perf_counter() - start) * 1000, result


def created(task: Any) -> tuple[int, int]:
    stamp = task.closure.created_at
    return (stamp.seconds, stamp.nanos)


class Listing:
    def __init__(
        self, label: str, expected: list[TaskId], order: Callable[[Any], Any], descending: bool, **query: Any
    ) -> None:
        self.label = label
        self.expected = expected
        self.order = order  # the sort column of a listed task: pages must not go against it
        self.descending = descending
        self.query = query
        self.first_ms = 0.0
        self.rest_ms: list[float] = []
        self.exact = False

    def run(self, admin: Admin, page_size: int, between: Callable[[], None] | None = None) -> None:
        seen: list[TaskId] = []
        keys: list[Any] = []
        token = ""
        while True:
            if between is not None and token:
                between()
            ms, page = timed(
                lambda token=token: admin.ListTasks(
                    id={"project": MAIN[0], "domain": MAIN[1]}, limit=page_size, token=token, **self.query
                )
            )
            if token:
                self.rest_ms.append(ms)
            else:
                self.first_ms = ms
            seen += [(t.id.project, t.id.domain, t.id.name, t.id.version) for t in page.tasks]
            keys += [self.order(t) for t in page.tasks]
            token = page.token
            if not token:
                break
        ordered = keys == sorted(keys, reverse=self.descending)
        self.exact = ordered and len(seen) == len(set(seen)) and set(seen) == set(self.expected)

    def report(self, baseline_ms: float) -> bool:
        pages = len(self.rest_ms) + 1
        print(f"{self.label}")
        print(f"  {len(self.expected)} tasks, {pages} pages, each once and in order: {self.exact}")
        print(f"  first page:  {self.first_ms:.1f} ms ({self.first_ms / baseline_ms:.1f}x the baseline)")
        if not self.rest_ms:
            return self.exact
        rest = sorted(self.rest_ms)
        p99 = percentile(rest, 0.99)
        median = statistics.median(rest)
        print(
            f"  other pages: min {rest[0]:.1f}  median {median:.1f}  p99 {p99:.1f}  max {rest[-1]:.1f} ms"
            f"  (median {median / baseline_ms:.1f}x the baseline)"
        )
        return self.exact


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def median_ms(call: Callable[[], Any], runs: int = 200) -> float:
    return statistics.median(timed(call)[0] for _ in range(runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--store", default="memory", help="the server's --store (default: memory)")
    args = parser.parse_args(argv)
    if args.store.startswith("sqlite:") and Path(args.store.partition(":")[2]).exists():
        parser.error(f"--store {args.store}: the file exists; the benchmark registers into a new one")

    ids = task_ids(args.tasks)
    main_ids = [i for i in ids if i[:2] == MAIN]  # registration order
    named = "bench.t042"
    listings = [
        Listing(
            f"eq(task.name,{named}), created_at descending",
            [i for i in main_ids if i[2] == named],
            created,
            True,
            filters=f"eq(task.name,{named})",
            sort_by={"key": "created_at", "direction": DESCENDING},
        ),
        Listing(
            "contains(name,t04), version ascending",
            [i for i in main_ids if "t04" in i[2]],
            lambda task: task.id.version,
            False,
            filters="contains(name,t04)",
            sort_by={"key": "version", "direction": ASCENDING},
        ),
        Listing(
            "whole scope, name ascending",
            main_ids,
            lambda task: task.id.name,
            False,
            sort_by={"key": "name", "direction": ASCENDING},
        ),
    ]
    written = Listing(
        "contains(name,t04), version ascending, a task registered in the scope before each page",
        listings[1].expected,
        listings[1].order,
        False,
        **listings[1].query,
    )

    serve = ["--api", "flyte", "--log-level", "WARNING", "--store", args.store]
    restart_s = 0.0
    checked = [*listings, written]
    with ServerProcess(serve) as server:
        assert server.process is not None
        with grpc.insecure_channel(server.grpc_address) as channel:
            admin = Admin(channel)
            for project in sorted({MAIN[0], *(p for p, _ in OTHERS)}):
                admin.RegisterProject(project={"id": project, "name": project})
            probe = ids[0]
            register(admin, [probe])
            before_kb = rss_kb(server.process.pid)
            seconds = register(admin, ids[1:])
            registered_kb = rss_kb(server.process.pid)

            probe_id = dict(zip(("project", "domain", "name", "version"), probe, strict=True))
            get_ms = median_ms(lambda: admin.GetTask(id={"resource_type": "TASK", **probe_id}))
            empty_ms = median_ms(
                lambda: admin.ListTasks(
                    id={"project": EMPTY[0], "domain": EMPTY[1]},
                    limit=args.page_size,
                    filters=f"eq(task.name,{named})",
                    sort_by={"key": "created_at"},
                )
            )
            for listing in listings:
                listing.run(admin, args.page_size)
            extras: list[TaskId] = []

            def one_more() -> None:
                extras.append((*MAIN, "bench.other", f"w{len(extras):06}"))
                register(admin, extras[-1:])

            written.run(admin, args.page_size, one_more)
            listed_kb = rss_kb(server.process.pid)
        if args.store != "memory":
            server.stop(signal.SIGKILL)
            started = time.perf_counter()
            server.start()
            restart_s = time.perf_counter() - started
            whole = listings[2]
            # the whole scope again, with the tasks the last listing registered
            again = Listing(
                f"{whole.label}, after kill -9 and a restart on the store",
                whole.expected + extras,
                whole.order,
                False,
                **whole.query,
            )
            with grpc.insecure_channel(server.grpc_address) as channel:
                again.run(Admin(channel), args.page_size)
            checked.append(again)

    print(f"tasks registered:   {args.tasks} ({len(main_ids)} in {'/'.join(MAIN)}), {NAMES} names")
    rate = (args.tasks - 1) / seconds
    print(f"registration:       {seconds:.1f} s, {rate:.0f} tasks/s ({IN_FLIGHT} calls in flight)")
    per_task = (registered_kb - before_kb) / (args.tasks - 1)
    with_indexes = (listed_kb - before_kb) / (args.tasks - 1)
    print(f"server RSS growth:  {per_task:.2f} KB per task registered, {with_indexes:.2f} KB with indexes")
    print(f"baseline (medians): GetTask {get_ms:.2f} ms, ListTasks of an empty scope {empty_ms:.2f} ms")
    if args.store != "memory":
        print(f"store {args.store}: killed and started again, ready in {restart_s:.1f} s")
    ok = with_indexes < TARGET_KB_PER_TASK
    for listing in checked:
        ok = listing.report(empty_ms) and ok
    pages = sorted(ms for listing in checked for ms in listing.rest_ms) or [0.0]
    p99 = percentile(pages, 0.99)
    print(f"all pages after the first: {len(pages)}, median {statistics.median(pages):.1f}, p99 {p99:.1f} ms")
    ok = ok and p99 < TARGET_PAGE_MS
    print(
        f"targets (pages after the first: p99 < {TARGET_PAGE_MS:.0f} ms; "
        f"< {TARGET_KB_PER_TASK:.0f} KB per task): {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
