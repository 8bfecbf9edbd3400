"""KFP on the durable store (``--store sqlite:PATH``): what a client saw acknowledged survives kill -9.

Each test runs the server as a process, kills it with SIGKILL and starts it
again on the same file.  Runs in flight go on where they stood (the Argo
workflow of a real KFP run keeps running while the API server restarts), on a
virtual clock that does not move while the server is down.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from kfp_support import RunService, workflow
from protoconform.mockserver.launcher import ServerProcess

ARCHIVED, AVAILABLE = 1, 0  # api.Run.StorageState


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--api", "kfp", "--clock-speed", "0", "--store", f"sqlite:{tmp_path}/kfp.db", *extra]


def _post(server: ServerProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.http_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def _advance(server: ServerProcess, seconds: float) -> None:
    _post(server, "/control/clock/advance", {"seconds": seconds})


class _Client:
    """A RunService client of a server process (its own channel, closed with it)."""

    def __init__(self, server: ServerProcess) -> None:
        self.channel = grpc.insecure_channel(server.grpc_address)
        self.kfp = RunService(self.channel, None)  # type: ignore[arg-type]  # no in-process server

    def __enter__(self) -> RunService:
        return self.kfp

    def __exit__(self, *exc: object) -> None:
        self.channel.close()


def _experiment_ref(experiment_id: str) -> dict[str, Any]:
    return {"key": {"type": "EXPERIMENT", "id": experiment_id}, "relationship": "OWNER"}


def _namespace_ref(namespace: str) -> dict[str, Any]:
    return {"key": {"type": "NAMESPACE", "id": namespace}, "relationship": "OWNER"}


def _metrics(run: Any) -> dict[tuple[str, str], float]:
    return {(m.node_id, m.name): m.number_value for m in run.metrics}


def test_every_acknowledged_write_survives_kill_9_and_no_call_is_half_done(tmp_path: Path) -> None:
    args = _args(tmp_path, "--kfp-experiment", "shared=exp-shared")
    expected: dict[str, dict[str, Any]] = {}  # run id -> what the acknowledged writes left
    inflight: list[Any] = []  # the one write sent but not answered when the server died
    acknowledged = threading.Event()
    stop = threading.Event()

    def writer(kfp: RunService) -> None:
        rng = random.Random(7)
        count = 0
        while not stop.is_set():
            live = [i for i, e in expected.items() if not e["deleted"]]
            kind = rng.choice(["create", "create", "archive", "unarchive", "metrics", "delete"])
            if kind != "create" and not live:
                kind = "create"
            run_id = rng.choice(live) if kind != "create" else None
            metrics = [
                {"name": f"m{count}x{k}", "node_id": f"node-{k}", "number_value": count + k / 10}
                for k in range(3)
            ]
            inflight[:] = [kind, run_id, metrics]
            try:
                if kind == "create":
                    refs = [_experiment_ref("exp-shared")] if count % 2 else []
                    if count % 3 == 0:
                        refs.append(_namespace_ref(f"ns{count % 2}"))
                    run = kfp.create(f"run-{count}", resource_references=refs)
                    expected[run.id] = {
                        "name": run.name,
                        "storage_state": AVAILABLE,
                        "metrics": {},
                        "deleted": False,
                        "experiment": "exp-shared" if count % 2 else "default",
                    }
                elif kind in ("archive", "unarchive"):
                    (kfp.ArchiveRun if kind == "archive" else kfp.UnarchiveRun)(id=run_id)
                    expected[run_id]["storage_state"] = ARCHIVED if kind == "archive" else AVAILABLE
                elif kind == "metrics":
                    kfp.ReportRunMetrics(run_id=run_id, metrics=metrics)  # three metrics in one call
                    expected[run_id]["metrics"].update(
                        {(m["node_id"], m["name"]): m["number_value"] for m in metrics}
                    )
                else:
                    kfp.DeleteRun(id=run_id)
                    expected[run_id]["deleted"] = True
            except grpc.RpcError:
                return  # the server is gone: ``inflight`` may or may not have been applied
            inflight.clear()
            count += 1
            if count >= 120:
                acknowledged.set()

    with ServerProcess(args) as first, _Client(first) as kfp:
        keeper = kfp.create("keeper")  # in the Default experiment, created now; never deleted
        default_id = {r.key.id for r in keeper.resource_references if r.key.type == 1}  # EXPERIMENT
        thread = threading.Thread(target=writer, args=(kfp,))
        thread.start()
        assert acknowledged.wait(60), "the writer made no progress"
        first.stop(signal.SIGKILL)  # while the writer is still sending
        stop.set()
        thread.join(30)
    assert len(expected) >= 30

    with ServerProcess(args) as second, _Client(second) as kfp:
        ambiguous = inflight[1] if inflight else None
        live = 0
        for run_id, want in expected.items():
            if want["deleted"]:
                assert kfp.error("GetRun", run_id=run_id).code() == grpc.StatusCode.NOT_FOUND
                continue
            try:
                run = kfp.GetRun(run_id=run_id).run
            except grpc.RpcError as error:
                assert run_id == ambiguous and inflight[0] == "delete", error
                continue
            live += 1
            assert run.name == want["name"]
            experiment = [r for r in run.resource_references if r.key.type == 1]  # EXPERIMENT
            assert len(experiment) == 1
            if want["experiment"] == "exp-shared":
                assert experiment[0].key.id == "exp-shared" and experiment[0].name == "shared"
            else:
                assert experiment[0].name == "Default"
            got = _metrics(run)
            if run_id == ambiguous and inflight[0] == "metrics":
                sent = {(m["node_id"], m["name"]): m["number_value"] for m in inflight[2]}
                assert got in (want["metrics"], {**want["metrics"], **sent}), "a metrics call half applied"
            else:
                assert got == want["metrics"]
            if run_id == ambiguous and inflight[0] in ("archive", "unarchive"):
                assert run.storage_state in (ARCHIVED, AVAILABLE)
            else:
                assert run.storage_state == want["storage_state"]
        listed = [r for r in kfp.list_all(page_size=100) if r.id != keeper.id]
        created_unacked = 1 if inflight and inflight[0] == "create" else 0
        assert len(listed) - created_unacked <= live <= len(listed)
        assert kfp.ListRuns(page_size=1).total_size == len(listed) + 1
        assert len({r.id for r in listed}) == len(listed)

        # The lazily created Default experiment was stored: a new run lands in the same one.
        keeper = kfp.GetRun(run_id=keeper.id).run
        assert {r.key.id for r in keeper.resource_references if r.key.type == 1} == default_id
        again = kfp.create("after-restart")
        assert {r.key.id for r in again.resource_references if r.key.type == 1} == default_id
        assert again.id not in expected
        # The seeded experiment is not seeded twice: its scope still lists its runs.
        shared = kfp.list_all(resource_reference_key={"type": "EXPERIMENT", "id": "exp-shared"}, page_size=50)
        assert {r.id for r in shared} >= {
            i
            for i, w in expected.items()
            if w["experiment"] == "exp-shared" and not w["deleted"] and i != ambiguous
        }


def test_runs_in_flight_go_on_where_they_stood_after_kill_9(tmp_path: Path) -> None:
    args = _args(tmp_path, "--kfp-task-seconds", "5")
    chain = workflow({"first": [], "second": ["first"]})
    with ServerProcess(args) as first, _Client(first) as kfp:
        moving = kfp.create("moving", chain)
        stopping = kfp.create("stopping", chain)
        _advance(first, 4)  # Running since t=2, task "first" runs until t=7
        kfp.TerminateRun(run_id=stopping.id)  # Terminating, stopped at t=5
        assert kfp.GetRun(run_id=moving.id).run.status == "Running"
        waiting = kfp.create("waiting")  # created at t=4: not even Pending when killed
        first.stop(signal.SIGKILL)

    with ServerProcess(args) as second, _Client(second) as kfp:
        assert kfp.GetRun(run_id=moving.id).run.status == "Running"
        assert kfp.GetRun(run_id=stopping.id).run.status == "Terminating"
        assert kfp.GetRun(run_id=waiting.id).run.status == ""
        _advance(second, 2)  # t=6
        assert kfp.GetRun(run_id=stopping.id).run.status == "Failed"
        assert kfp.GetRun(run_id=waiting.id).run.status == "Running"
        _advance(second, 30)
        done = kfp.GetRun(run_id=moving.id)
        assert done.run.status == "Succeeded"
        # Pending at 1, Running at 2, "first" 2..7, "second" 7..12: no time lost or added by the restart.
        assert done.run.finished_at.seconds - done.run.created_at.seconds == 12
        nodes = json.loads(done.pipeline_runtime.workflow_manifest)["status"]["nodes"]
        phases = sorted(n["displayName"] + ":" + n["phase"] for n in nodes.values() if n["type"] == "Pod")
        assert phases == ["first:Succeeded", "second:Succeeded"]
        assert kfp.GetRun(run_id=waiting.id).run.status == "Succeeded"


def test_artifacts_survive_and_reset_empties_the_store(tmp_path: Path) -> None:
    args = _args(tmp_path)
    with ServerProcess(args) as first, _Client(first) as kfp:
        run = kfp.create("with-artifacts")
        _advance(first, 20)
        detail = kfp.GetRun(run_id=run.id)
        assert detail.run.status == "Succeeded"
        nodes = json.loads(detail.pipeline_runtime.workflow_manifest)["status"]["nodes"]
        pod = next(n for n in nodes.values() if n["type"] == "Pod")
        blob = kfp.ReadArtifact(run_id=run.id, node_id=pod["id"], artifact_name="main-logs").data
        assert blob
        first.stop(signal.SIGKILL)

    with ServerProcess(args) as second, _Client(second) as kfp:
        again = kfp.ReadArtifact(run_id=run.id, node_id=pod["id"], artifact_name="main-logs").data
        assert again == blob
        _post(second, "/control/reset", {})
        assert kfp.ListRuns().total_size == 0
        second.stop(signal.SIGKILL)

    with ServerProcess(args) as third, _Client(third) as kfp:
        assert kfp.ListRuns().total_size == 0
        assert kfp.error("GetRun", run_id=run.id).code() == grpc.StatusCode.NOT_FOUND
