"""KFP request builders shared by the run machine, the run lists and the round trip: runs of the
family's example workflow, optionally asking this project's mock to fail them."""

from __future__ import annotations

import json
from typing import Any

from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import Env
from protoconform.specs.rules import FamilyRules

# Ask this project's mock to fail a run (a real server ignores the annotations; the model
# accepts every outcome the state machine allows either way).
FAIL_ANNOTATION = "protoconform.io/fail-task"
FAIL_PHASE_ANNOTATION = "protoconform.io/fail-phase"


def manifest(rules: FamilyRules, fail_task: str = "", fail_phase: str = "") -> str:
    """The family's example workflow (specs/kfp ``x-manifests.hello``), optionally asking to fail."""
    document = json.loads(rules.extra["x-manifests"]["hello"])
    annotations = document.setdefault("metadata", {}).setdefault("annotations", {})
    if fail_task:
        annotations[FAIL_ANNOTATION] = fail_task
    if fail_phase:
        annotations[FAIL_PHASE_ANNOTATION] = fail_phase
    return json.dumps(document, separators=(",", ":"))


def create_request(
    rules: FamilyRules, name: str, fail_task: str = "", fail_phase: str = ""
) -> dict[str, Any]:
    """A CreateRun request for a run of the example workflow named ``name``."""
    workflow = manifest(rules, fail_task, fail_phase)
    return {"run": {"name": name, "pipeline_spec": {"workflow_manifest": workflow}}}


def delete_run(env: Env, run_id: str) -> Reply:
    return env.rpc("RunService.DeleteRun", {"id": run_id})
