"""Twenty clients write and list the same KFP runs at once on the sqlite store; nothing is lost or torn.

For a bounded time, each client thread archives and unarchives runs of a
shared pool, reports metrics on them, creates runs in two shared experiments
and walks listings (scopes, storage-state filters, sorts, small pages) while
the others write, recording every acknowledged write.  The runs move on the
virtual clock meanwhile, so the engine writes too.  Afterwards, and again after
kill -9 and a restart on the same file: every acknowledged write is visible
(a run's storage state is one a last write could have left), total_size agrees
with the runs there are and with a full paging walk, and no listing taken
during the writes repeated a run, went against its sort, or held a run its
scope or filter excludes.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from kfp_support import RunService
from protoconform.mockserver.launcher import ServerProcess

THREADS = 20
SECONDS = 4.0  # of load, then the checks
EXPERIMENTS = ("exp-a", "exp-b")
POOL = 24  # runs every thread updates
ARCHIVED, AVAILABLE = 1, 0
STATE_NAMES = {ARCHIVED: "STORAGESTATE_ARCHIVED", AVAILABLE: "STORAGESTATE_AVAILABLE"}


def _ref(experiment_id: str) -> dict[str, Any]:
    return {"key": {"type": "EXPERIMENT", "id": experiment_id}, "relationship": "OWNER"}


def _experiment_of(run: Any) -> str:
    return next(r.key.id for r in run.resource_references if r.key.type == 1)  # EXPERIMENT


def _sort_key(run: Any, field: str) -> tuple[Any, str]:
    return (run.name if field == "name" else run.created_at.seconds, run.id)


class Recorder:
    """What every client thread saw acknowledged, and what was wrong with any listing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: dict[str, str] = {}  # run id -> experiment
        self.storage: dict[str, list[tuple[float, float, int]]] = {}  # run id -> (sent, answered, state)
        self.metrics: dict[str, dict[tuple[str, str], float]] = {}  # run id -> acknowledged metrics
        self.problems: list[str] = []
        self.listings = 0
        self.errors: list[str] = []


def _client(server: ServerProcess, recorder: Recorder, pool: list[str], seed: int, deadline: float) -> None:
    rng = random.Random(seed)
    with grpc.insecure_channel(server.grpc_address) as channel:
        kfp = RunService(channel, None)  # type: ignore[arg-type]  # a server process, not in-process
        count = 0
        while time.monotonic() < deadline:
            count += 1
            kind = rng.choice(["storage", "storage", "metrics", "create", "list", "list"])
            try:
                if kind == "storage":
                    run_id, value = rng.choice(pool), rng.choice([ARCHIVED, AVAILABLE])
                    sent = time.monotonic()
                    (kfp.ArchiveRun if value == ARCHIVED else kfp.UnarchiveRun)(id=run_id)
                    with recorder.lock:
                        recorder.storage[run_id].append((sent, time.monotonic(), value))
                elif kind == "metrics":
                    run_id = rng.choice(pool)
                    metrics = [
                        {"name": f"t{seed}n{count}k{k}", "node_id": f"node-{k}", "number_value": count + k}
                        for k in range(2)
                    ]
                    answer = kfp.ReportRunMetrics(run_id=run_id, metrics=metrics)
                    assert all(r.status == 1 for r in answer.results), answer  # OK
                    with recorder.lock:
                        recorder.metrics[run_id].update(
                            {(m["node_id"], m["name"]): m["number_value"] for m in metrics}
                        )
                elif kind == "create":
                    experiment = rng.choice(EXPERIMENTS)
                    run = kfp.create(f"c{seed}-{count}", resource_references=[_ref(experiment)])
                    with recorder.lock:
                        recorder.created[run.id] = experiment
                else:
                    problem = _check_walk(kfp, rng)
                    with recorder.lock:
                        recorder.listings += 1
                        if problem:
                            recorder.problems.append(problem)
            except (grpc.RpcError, AssertionError) as exc:
                with recorder.lock:
                    recorder.errors.append(f"{kind}: {exc}")


def _check_walk(kfp: RunService, rng: random.Random) -> str:
    """A listing walked (a few pages) while others write: '' if sound, else what was wrong."""
    field = rng.choice(["created_at", "name"])
    desc = rng.random() < 0.5
    experiment = rng.choice([None, *EXPERIMENTS])
    wanted_state = rng.choice([None, ARCHIVED, AVAILABLE])
    request: dict[str, Any] = {
        "page_size": rng.randint(1, 30),
        "sort_by": f"{field} {'desc' if desc else 'asc'}",
    }
    if experiment:
        request["resource_reference_key"] = {"type": "EXPERIMENT", "id": experiment}
    if wanted_state is not None:
        predicate = {"key": "storage_state", "op": "EQUALS", "string_value": STATE_NAMES[wanted_state]}
        request["filter"] = json.dumps({"predicates": [predicate]})
    seen: set[str] = set()
    last = None
    token = ""
    for _ in range(4):
        page = kfp.ListRuns(page_token=token, **request)
        if len(page.runs) > request["page_size"] or page.total_size < len(page.runs):
            return f"malformed page: {len(page.runs)} runs, total {page.total_size}, {request}"
        for run in page.runs:
            if run.id in seen:
                return f"run {run.id} listed twice in {request}"
            seen.add(run.id)
            key = _sort_key(run, field)
            if last is not None and (key > last if desc else key < last):
                return f"run {run.id} against the sort in {request}"
            last = key
            if experiment and _experiment_of(run) != experiment:
                return f"run {run.id} outside the scope of {request}"
            if wanted_state is not None and run.storage_state != wanted_state:
                return f"run {run.id} outside the filter of {request}"
        token = page.next_page_token
        if not token:
            break
    return ""


def _walk(kfp: RunService, **request: Any) -> tuple[list[Any], set[int]]:
    """Every run of a listing, and the total_size each page gave."""
    runs, totals, token = [], set(), ""
    while True:
        page = kfp.ListRuns(page_token=token, page_size=37, **request)
        runs.extend(page.runs)
        totals.add(page.total_size)
        token = page.next_page_token
        if not token:
            return runs, totals


def _verify(kfp: RunService, recorder: Recorder, pool: list[str], pool_experiment: dict[str, str]) -> dict:
    """Every acknowledged write is visible and the counts agree; returns what the runs hold."""
    snapshot = {}
    everything, totals = _walk(kfp)
    ids = [r.id for r in everything]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(pool) | set(recorder.created)
    assert totals == {len(ids)}
    for run in everything:
        snapshot[run.id] = (run.storage_state, {(m.node_id, m.name): m.number_value for m in run.metrics})
        assert _experiment_of(run) == (recorder.created.get(run.id) or pool_experiment.get(run.id))
    for run_id in pool:
        state, metrics = snapshot[run_id]
        assert metrics == recorder.metrics[run_id]
        writes = recorder.storage[run_id]
        # A register's final value: one of the writes no other write wholly followed.
        last = [value for sent, answered, value in writes if not any(s > answered for s, _, _ in writes)]
        assert state in (last or [AVAILABLE]), (run_id, state, writes)
    for experiment in EXPERIMENTS:
        in_scope = {i for i, e in {**pool_experiment, **recorder.created}.items() if e == experiment}
        scoped, totals = _walk(kfp, resource_reference_key={"type": "EXPERIMENT", "id": experiment})
        assert {r.id for r in scoped} == in_scope and totals == {len(in_scope)}
        for state, name in STATE_NAMES.items():
            predicate = {"key": "storage_state", "op": "EQUALS", "string_value": name}
            filtered, totals = _walk(
                kfp,
                resource_reference_key={"type": "EXPERIMENT", "id": experiment},
                filter=json.dumps({"predicates": [predicate]}),
                sort_by="name desc",
            )
            expected = {i for i in in_scope if snapshot[i][0] == state}
            assert {r.id for r in filtered} == expected and totals == {len(expected)}
    return snapshot


@pytest.mark.slow  # bounded load of several seconds, then a restart
def test_twenty_clients_update_and_list_the_same_runs_then_kill_9(tmp_path: Path) -> None:
    args = ["--api", "kfp", "--clock-speed", "20", "--store", f"sqlite:{tmp_path}/kfp.db"]
    args += [arg for e in EXPERIMENTS for arg in ("--kfp-experiment", f"shared {e}={e}")]
    recorder = Recorder()
    with ServerProcess(args) as server:
        with grpc.insecure_channel(server.grpc_address) as channel:
            kfp = RunService(channel, None)  # type: ignore[arg-type]
            pool_experiment = {}
            for i in range(POOL):
                experiment = EXPERIMENTS[i % 2]
                pool_experiment[kfp.create(f"pool-{i}", resource_references=[_ref(experiment)]).id] = (
                    experiment
                )
        pool = list(pool_experiment)
        recorder.storage = {run_id: [] for run_id in pool}
        recorder.metrics = {run_id: {} for run_id in pool}
        deadline = time.monotonic() + SECONDS
        threads = [
            threading.Thread(target=_client, args=(server, recorder, pool, seed, deadline))
            for seed in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert recorder.errors == [] and recorder.problems == []
        assert recorder.listings > 0 and len(recorder.created) > 0
        assert sum(len(w) for w in recorder.storage.values()) > 0 and any(recorder.metrics.values())
        with grpc.insecure_channel(server.grpc_address) as channel:
            before = _verify(RunService(channel, None), recorder, pool, pool_experiment)  # type: ignore[arg-type]
        server.stop(signal.SIGKILL)

    with ServerProcess(args) as again, grpc.insecure_channel(again.grpc_address) as channel:
        after = _verify(RunService(channel, None), recorder, pool, pool_experiment)  # type: ignore[arg-type]
    assert after == before
