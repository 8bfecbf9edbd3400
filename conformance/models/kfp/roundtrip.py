"""KFP's round trip: a created run's name, description and workflow come back as sent."""

from __future__ import annotations

from protoconform.conformance.models.kfp.requests import create_request, delete_run
from protoconform.conformance.models.roundtrip import RoundTrip


def round_trips() -> list[RoundTrip]:
    return [
        RoundTrip(
            create="RunService.CreateRun",
            rule="kfp.runs.output.run-fields",
            base=lambda env: create_request(env.rules, env.unique("trip")),
            read=lambda env, r: env.rpc("RunService.GetRun", {"run_id": r.response.run.id}),
            pairs=(
                ("run.name", "run.name"),
                ("run.description", "run.description"),
                ("run.pipeline_spec.workflow_manifest", "run.pipeline_spec.workflow_manifest"),
            ),
            vary=("run.name", "run.description"),
            undo=lambda env, r: delete_run(env, r.response.run.id),
        )
    ]
