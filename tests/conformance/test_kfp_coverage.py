"""The pieces KFP's newer checks rest on (an artifact's gzipped tar, a run's progress as a RunDetail
shows it) tell good answers from bad ones; every KFP rule covered by the full default run is
``test_engine_check.py`` (end-to-end tier)."""

from __future__ import annotations

import base64
import io
import json
import tarfile

from protoconform.conformance.examples.expectations import field_mismatch
from protoconform.conformance.models.kfp.machine import progress_problem, reported_states
from protoconform.mockserver.apis.kfp import artifacts
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import load

RULES = load("kfp")
PROGRESS = RULES.rule("kfp.runs.lifecycle.progress")
REPORTED = reported_states(RULES.state_machines["run"], ["RetryRun", "TerminateRun"])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_tgz_files_wants_a_gzipped_tar_holding_the_files() -> None:
    wanted = {"field": "data", "tgz_files": ["out.txt"]}
    good = artifacts.tgz("out.txt", b"conformance\n", 0)
    assert field_mismatch({"data": _b64(good)}, wanted) is None
    plain_tar = io.BytesIO()
    with tarfile.open(fileobj=plain_tar, mode="w") as archive:
        info = tarfile.TarInfo("out.txt")
        archive.addfile(info, io.BytesIO(b""))
    for bad in (b"conformance\n", plain_tar.getvalue(), artifacts.tgz("other.txt", b"x", 0)):
        assert field_mismatch({"data": _b64(bad)}, wanted) is not None
    assert field_mismatch({"data": "not base64!"}, wanted) is not None
    assert field_mismatch({}, wanted) is not None


# -- a run's progress --------------------------------------------------------------------------------


def _detail(status: str, finished_at: int, workflow: dict | None) -> object:
    detail = default_registry().message_class("api.RunDetail")()
    detail.run.status = status
    detail.run.finished_at.seconds = finished_at
    if workflow is not None:
        detail.pipeline_runtime.workflow_manifest = json.dumps(workflow)
    return detail


def _workflow(phase: str, *node_phases: str) -> dict:
    nodes = {f"n{i}": {"id": f"n{i}", "phase": p} for i, p in enumerate(node_phases)}
    return {"kind": "Workflow", "status": {"phase": phase, **({"nodes": nodes} if nodes else {})}}


def test_progress_agrees_with_the_status() -> None:
    consistent = [
        _detail("", 0, {"kind": "Workflow", "status": {}}),
        _detail("Pending", 0, _workflow("Pending")),
        _detail("Running", 0, _workflow("Running", "Running")),
        _detail("Terminating", 0, _workflow("Running", "Running")),
        _detail("Succeeded", 1700000000, _workflow("Succeeded", "Succeeded", "Skipped")),
        _detail("Failed", 1700000000, _workflow("Failed", "Failed")),
    ]
    for detail in consistent:
        assert progress_problem(PROGRESS, REPORTED, detail) is None, detail


def test_progress_catches_what_does_not_follow() -> None:
    broken = {
        "finished without finished_at": _detail("Succeeded", 0, _workflow("Succeeded", "Succeeded")),
        "finished_at while running": _detail("Running", 1700000000, _workflow("Running", "Running")),
        "workflow phase behind": _detail("Running", 0, _workflow("Pending")),
        "no nodes once succeeded": _detail("Succeeded", 1700000000, _workflow("Succeeded")),
        "a node still running": _detail("Succeeded", 1700000000, _workflow("Succeeded", "Running")),
        "not JSON": _detail("Running", 0, None),
    }
    broken["not JSON"].pipeline_runtime.workflow_manifest = "kind: Workflow"  # type: ignore[attr-defined]
    for what, detail in broken.items():
        assert progress_problem(PROGRESS, REPORTED, detail) is not None, what
