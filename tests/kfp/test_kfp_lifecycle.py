"""Statuses on the virtual clock, the runtime workflow, terminate, retry, archive and delete."""

from __future__ import annotations

import json

import grpc
from kfp_support import workflow

# Default timings: Pending after 1 s, Running 1 s later, each task 5 s.
TO_RUNNING = 2.0
TASK = 5.0


def _status(kfp, run_id: str) -> str:
    return kfp.GetRun(run_id=run_id).run.status


def _nodes(kfp, run_id: str) -> dict[str, dict]:
    runtime = json.loads(kfp.GetRun(run_id=run_id).pipeline_runtime.workflow_manifest)
    return {n["displayName"]: n for n in runtime["status"].get("nodes", {}).values()}


def test_run_goes_pending_running_succeeded_with_nodes(kfp) -> None:
    run = kfp.create(manifest=workflow({"a": [], "b": ["a"]}))
    assert _status(kfp, run.id) == ""
    kfp.advance(1)
    assert _status(kfp, run.id) == "Pending"
    kfp.advance(1)
    assert _status(kfp, run.id) == "Running"
    nodes = _nodes(kfp, run.id)
    assert nodes["a"]["phase"] == "Running" and "b" not in nodes
    root = next(n for n in nodes.values() if n["type"] == "DAG")
    assert nodes["a"]["boundaryID"] == root["id"] and root["phase"] == "Running"
    kfp.advance(TASK)
    nodes = _nodes(kfp, run.id)
    assert (nodes["a"]["phase"], nodes["b"]["phase"]) == ("Succeeded", "Running")
    kfp.advance(TASK)
    detail = kfp.GetRun(run_id=run.id)
    assert detail.run.status == "Succeeded"
    assert detail.run.finished_at.seconds >= detail.run.created_at.seconds + TO_RUNNING + 2 * TASK
    runtime = json.loads(detail.pipeline_runtime.workflow_manifest)
    assert runtime["status"]["phase"] == "Succeeded"
    assert {n["phase"] for n in runtime["status"]["nodes"].values()} == {"Succeeded"}


def test_requested_failure_then_retry_succeeds(kfp) -> None:
    manifest = workflow({"a": [], "b": ["a"], "c": ["b"]}, annotations={"protoconform.io/fail-task": "b"})
    run = kfp.create(manifest=manifest)
    kfp.advance(TO_RUNNING + 2 * TASK)
    assert _status(kfp, run.id) == "Failed"
    nodes = _nodes(kfp, run.id)
    assert (nodes["a"]["phase"], nodes["b"]["phase"]) == ("Succeeded", "Failed") and "c" not in nodes
    finished = kfp.GetRun(run_id=run.id).run.finished_at.seconds
    assert finished > 0

    kfp.RetryRun(run_id=run.id)
    detail = kfp.GetRun(run_id=run.id)
    assert detail.run.status == "Running" and detail.run.finished_at.seconds == 0
    nodes = _nodes(kfp, run.id)
    assert nodes["a"]["phase"] == "Succeeded" and nodes["b"]["phase"] == "Running"  # a is kept
    kfp.advance(2 * TASK)
    assert _status(kfp, run.id) == "Succeeded"
    error = kfp.error("RetryRun", run_id=run.id)
    assert error.code() == grpc.StatusCode.ABORTED and error.details().startswith("run_id:")


def test_failure_by_parameter_and_error_phase(kfp) -> None:
    manifest = workflow({"a": []})
    manifest["spec"]["arguments"]["parameters"].append({"name": "protoconform-fail-task", "value": ""})
    fine = kfp.create(manifest=manifest)
    failing = kfp.create(manifest=manifest, parameters=[{"name": "protoconform-fail-task", "value": "a"}])
    erroring = kfp.create(
        manifest=workflow(
            annotations={"protoconform.io/fail-task": "?", "protoconform.io/fail-phase": "Error"}
        )
    )
    kfp.advance(TO_RUNNING + TASK)
    assert [_status(kfp, r.id) for r in (fine, failing, erroring)] == ["Succeeded", "Failed", "Error"]
    kfp.RetryRun(run_id=erroring.id)  # Error can be retried too
    assert _status(kfp, erroring.id) == "Running"


def test_retry_only_from_failed_or_error(kfp) -> None:
    run = kfp.create()
    for advance in [0, TO_RUNNING, TASK]:  # "", Running, Succeeded
        kfp.advance(advance)
        error = kfp.error("RetryRun", run_id=run.id)
        assert error.code() == grpc.StatusCode.ABORTED
        assert "Workflow must be Failed/Error to retry" in error.details()
    assert _status(kfp, run.id) == "Succeeded"
    assert kfp.error("RetryRun", run_id="nope").code() == grpc.StatusCode.NOT_FOUND


def test_terminate_running_then_failed_and_not_twice(kfp) -> None:
    run = kfp.create(manifest=workflow({"a": [], "b": ["a"]}))
    kfp.advance(TO_RUNNING + 1)
    kfp.TerminateRun(run_id=run.id)
    assert _status(kfp, run.id) == "Terminating"
    runtime = json.loads(kfp.GetRun(run_id=run.id).pipeline_runtime.workflow_manifest)
    assert runtime["spec"]["activeDeadlineSeconds"] == 0
    error = kfp.error("TerminateRun", run_id=run.id)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"run_id: Failed to terminate run {run.id}. Row not found."
    kfp.advance(1)
    detail = kfp.GetRun(run_id=run.id)
    assert detail.run.status == "Failed" and detail.run.finished_at.seconds > 0
    assert _nodes(kfp, run.id)["a"]["phase"] == "Failed"
    kfp.advance(3 * TASK)  # nothing moves any more
    assert _status(kfp, run.id) == "Failed" and "b" not in _nodes(kfp, run.id)
    kfp.RetryRun(run_id=run.id)  # a terminated run can be retried
    kfp.advance(2 * TASK)
    assert _status(kfp, run.id) == "Succeeded"


def test_terminate_before_start_and_after_finish(kfp) -> None:
    fresh, done = kfp.create("fresh"), kfp.create("done")
    kfp.advance(TO_RUNNING + TASK)
    fresh2 = kfp.create("fresh2")
    kfp.TerminateRun(run_id=fresh2.id)  # status "" may be terminated
    assert _status(kfp, fresh2.id) == "Terminating"
    error = kfp.error("TerminateRun", run_id=done.id)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _status(kfp, done.id) == "Succeeded" and _status(kfp, fresh.id) == "Succeeded"
    assert kfp.error("TerminateRun", run_id="nope").code() == grpc.StatusCode.NOT_FOUND


def test_archive_unarchive_idempotent_and_run_keeps_going(kfp) -> None:
    run = kfp.create()
    for _ in range(2):
        assert kfp.ArchiveRun(id=run.id).ByteSize() == 0
        assert kfp.GetRun(run_id=run.id).run.storage_state == 1
    kfp.advance(TO_RUNNING + TASK)
    assert _status(kfp, run.id) == "Succeeded"
    for _ in range(2):
        kfp.UnarchiveRun(id=run.id)
        assert kfp.GetRun(run_id=run.id).run.storage_state == 0
    for method in ("ArchiveRun", "UnarchiveRun"):
        error = kfp.error(method, id="nope")
        assert error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith("id:")


def test_delete_twice_is_not_found_and_run_is_gone(kfp) -> None:
    keep, run = kfp.create("keep"), kfp.create("gone")
    kfp.DeleteRun(id=run.id)
    error = kfp.error("DeleteRun", id=run.id)
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details() == f"id: Run {run.id} not found."
    assert kfp.error("GetRun", run_id=run.id).code() == grpc.StatusCode.NOT_FOUND
    assert [r.id for r in kfp.list_all()] == [keep.id]
    kfp.advance(TO_RUNNING + TASK)  # the deleted run's timers do nothing
    assert _status(kfp, keep.id) == "Succeeded"


def test_v2_run_progresses_without_runtime_manifest(kfp) -> None:
    ir = {
        "pipelineInfo": {"name": "v2"},
        "root": {"dag": {"tasks": {"a": {}, "b": {"dependentTasks": ["a"]}}}},
    }
    run = kfp.CreateRun(run={"name": "v2", "pipeline_spec": {"pipeline_manifest": json.dumps(ir)}}).run
    kfp.advance(TO_RUNNING + TASK)
    assert _status(kfp, run.id) == "Running"
    kfp.advance(TASK)
    detail = kfp.GetRun(run_id=run.id)
    assert detail.run.status == "Succeeded" and detail.pipeline_runtime.workflow_manifest == ""
    error = kfp.error("ReadArtifact", run_id=run.id, node_id="n", artifact_name="a")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_steps_and_nested_dags(kfp) -> None:
    manifest = workflow()
    manifest["spec"]["templates"] = [
        {
            "name": "main",
            "steps": [[{"name": "one", "template": "inner"}], [{"name": "two", "template": "work"}]],
        },
        {
            "name": "inner",
            "dag": {"tasks": [{"name": "x", "template": "work"}, {"name": "y", "template": "work"}]},
        },
        {"name": "work", "container": {"image": "alpine"}},
    ]
    run = kfp.create(manifest=manifest)
    kfp.advance(TO_RUNNING)
    nodes = _nodes(kfp, run.id)
    assert (nodes["x"]["phase"], nodes["y"]["phase"], nodes["one"]["type"]) == ("Running", "Running", "DAG")
    kfp.advance(TASK)
    assert _nodes(kfp, run.id)["two"]["phase"] == "Running"
    kfp.advance(TASK)
    assert _status(kfp, run.id) == "Succeeded"


def test_recursive_templates_are_cut_and_still_run(kfp) -> None:
    manifest = workflow()
    manifest["spec"]["templates"] = [
        {
            "name": "main",
            "dag": {"tasks": [{"name": "a", "template": "main"}, {"name": "b", "template": "main"}]},
        },
    ]
    run = kfp.create(manifest=manifest)
    kfp.advance(TO_RUNNING + TASK)
    detail = kfp.GetRun(run_id=run.id)
    assert detail.run.status == "Succeeded"
    nodes = json.loads(detail.pipeline_runtime.workflow_manifest)["status"]["nodes"]
    assert 100 < len(nodes) <= 500
