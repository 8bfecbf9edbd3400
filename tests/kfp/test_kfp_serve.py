"""``protoconform serve`` with the KFP options, as a user starts it: seeded objects and a running clock."""

from __future__ import annotations

import json
import time

import grpc
from kfp_support import RunService, workflow
from protoconform.mockserver.launcher import ServerProcess


def test_seeded_experiment_and_pipeline_with_a_real_time_clock(tmp_path) -> None:
    manifest = tmp_path / "pipeline.json"
    manifest.write_text(json.dumps(workflow({"a": [], "b": ["a"]})))
    args = [
        "--api",
        "kfp",
        "--clock-speed",
        "50",
        "--kfp-task-seconds",
        "2",
        "--kfp-experiment",
        "nightly=11111111-1111-1111-1111-111111111111",
        "--kfp-pipeline",
        f"trainer={manifest}=22222222-2222-2222-2222-222222222222",
    ]
    with ServerProcess(args) as process, grpc.insecure_channel(process.grpc_address) as channel:
        kfp = RunService(channel, server=None)  # type: ignore[arg-type]
        owner = {
            "key": {"type": "EXPERIMENT", "id": "11111111-1111-1111-1111-111111111111"},
            "relationship": "OWNER",
        }
        run = kfp.CreateRun(
            run={
                "name": "seeded",
                "pipeline_spec": {"pipeline_id": "22222222-2222-2222-2222-222222222222"},
                "resource_references": [owner],
            }
        ).run
        assert run.pipeline_spec.pipeline_name == "trainer"
        assert {r.name for r in run.resource_references} == {"nightly", "trainer"}
        deadline = time.monotonic() + 10
        while kfp.GetRun(run_id=run.id).run.status != "Succeeded":
            assert time.monotonic() < deadline, "run did not finish on the running clock"
            time.sleep(0.05)
        listed = kfp.ListRuns(resource_reference_key={"type": "EXPERIMENT", "id": owner["key"]["id"]})
        assert [r.id for r in listed.runs] == [run.id]
