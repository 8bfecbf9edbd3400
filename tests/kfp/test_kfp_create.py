"""CreateRun and GetRun through a real gRPC channel."""

from __future__ import annotations

import json
import uuid

import grpc
import yaml
from kfp_support import workflow


def test_created_run_has_the_documented_defaults(kfp) -> None:
    before = kfp.state().now_seconds()
    detail = kfp.CreateRun(
        run={
            "name": "first",
            "description": "d",
            "pipeline_spec": {"workflow_manifest": json.dumps(workflow())},
        }
    )
    run = detail.run
    assert uuid.UUID(run.id)
    assert (run.name, run.description, run.status) == ("first", "d", "")
    assert run.storage_state == 0
    assert run.created_at.seconds >= before and run.created_at.nanos == 0
    assert run.HasField("scheduled_at") and run.scheduled_at.seconds == 0
    assert run.HasField("finished_at") and run.finished_at.seconds == 0
    assert run.service_account == "pipeline-runner"
    [ref] = run.resource_references
    assert (ref.key.type, ref.relationship, ref.name) == (1, 1, "Default")  # EXPERIMENT, OWNER
    runtime = json.loads(detail.pipeline_runtime.workflow_manifest)
    assert runtime["metadata"]["labels"]["pipeline/runid"] == run.id
    assert runtime["metadata"]["name"].startswith("pipeline-")
    assert run.id in json.dumps(runtime["spec"])  # {{workflow.uid}} is the run id
    assert json.loads(run.pipeline_spec.workflow_manifest) == workflow()  # the manifest as sent
    assert kfp.GetRun(run_id=run.id) == detail


def test_runs_without_experiment_share_one_default_experiment(kfp) -> None:
    first, second = kfp.create("a"), kfp.create("b")
    assert first.resource_references[0].key.id == second.resource_references[0].key.id


def test_parameters_override_declared_values(kfp) -> None:
    run = kfp.create(parameters=[{"name": "who", "value": "you"}])
    runtime = json.loads(kfp.GetRun(run_id=run.id).pipeline_runtime.workflow_manifest)
    assert runtime["spec"]["arguments"]["parameters"] == [{"name": "who", "value": "you"}]
    assert [(p.name, p.value) for p in run.pipeline_spec.parameters] == [("who", "you")]


def test_service_account_from_request_then_workflow(kfp) -> None:
    assert kfp.create(service_account="mine").service_account == "mine"
    assert kfp.create(manifest=workflow(serviceAccountName="wf-sa")).service_account == "wf-sa"


def test_undeclared_parameter_is_invalid_and_stores_nothing(kfp) -> None:
    error = kfp.error(
        "CreateRun",
        run={
            "name": "x",
            "pipeline_spec": {
                "workflow_manifest": json.dumps(workflow()),
                "parameters": [{"name": "nope", "value": "1"}],
            },
        },
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("run.pipeline_spec.parameters: ")
    assert "Unrecognized input parameter: nope" in error.details()
    assert kfp.ListRuns().total_size == 0


def test_name_is_required_and_named_in_the_error(kfp) -> None:
    error = kfp.error("CreateRun", run={"pipeline_spec": {"workflow_manifest": json.dumps(workflow())}})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("run.name:")
    assert kfp.ListRuns().total_size == 0


def test_experiment_reference_seeded_and_unknown(kfp) -> None:
    experiment = kfp.server.run(lambda: kfp.state().add_experiment("mine", "desc"))
    owner = {"key": {"type": "EXPERIMENT", "id": experiment.id}, "relationship": "OWNER"}
    run = kfp.create(resource_references=[owner])
    [ref] = run.resource_references
    assert (ref.key.id, ref.name) == (experiment.id, "mine")

    unknown = {"key": {"type": "EXPERIMENT", "id": str(uuid.uuid4())}, "relationship": "OWNER"}
    error = kfp.error("CreateRun", run={"name": "x", "pipeline_spec": {"workflow_manifest": "{}"}})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # "{}" is no known template
    error = kfp.error(
        "CreateRun",
        run={
            "name": "x",
            "pipeline_spec": {"workflow_manifest": json.dumps(workflow())},
            "resource_references": [unknown],
        },
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details().startswith("run.resource_references: Experiment ")
    assert [r.id for r in kfp.list_all()] == [run.id]


def test_run_from_uploaded_pipeline_gets_its_default_version(kfp) -> None:
    manifest = yaml.safe_dump(workflow({"x": []}))  # uploaded pipelines may be YAML
    pipeline = kfp.server.run(lambda: kfp.state().add_pipeline("uploaded", manifest))
    detail = kfp.CreateRun(run={"name": "p", "pipeline_spec": {"pipeline_id": pipeline.id}})
    run = detail.run
    assert run.pipeline_spec.pipeline_name == "uploaded"
    assert run.pipeline_spec.workflow_manifest == manifest
    types = {(r.key.type, r.relationship, r.key.id, r.name) for r in run.resource_references}
    assert (4, 2, pipeline.id, "uploaded") in types  # PIPELINE_VERSION, CREATOR
    assert json.loads(detail.pipeline_runtime.workflow_manifest)["kind"] == "Workflow"

    other = kfp.server.run(lambda: kfp.state().add_pipeline("other", manifest))
    version_ref = {"key": {"type": "PIPELINE_VERSION", "id": other.id}, "relationship": "CREATOR"}
    error = kfp.error(
        "CreateRun",
        run={
            "name": "p",
            "pipeline_spec": {"pipeline_id": pipeline.id},
            "resource_references": [version_ref],
        },
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pipeline ID should be parent of pipeline version" in error.details()
    run = kfp.CreateRun(run={"name": "v", "resource_references": [version_ref]}).run
    assert run.pipeline_spec.pipeline_id == "" and run.resource_references[0].name == "other"


def test_namespace_and_job_references(kfp) -> None:
    job = kfp.server.run(lambda: kfp.state().add_job("nightly"))
    refs = [
        {"key": {"type": "NAMESPACE", "id": "team-a"}, "relationship": "OWNER"},
        {"key": {"type": "JOB", "id": job.id}, "relationship": "CREATOR"},
    ]
    run = kfp.create(resource_references=refs)
    names = {r.key.id: r.name for r in run.resource_references}
    assert names["team-a"] == "team-a" and names[job.id] == "nightly"
    listed = kfp.ListRuns(resource_reference_key={"type": "NAMESPACE", "id": "team-a"})
    assert [r.id for r in listed.runs] == [run.id]
    listed = kfp.ListRuns(resource_reference_key={"type": "JOB", "id": job.id})
    assert [r.id for r in listed.runs] == [run.id]


def test_v2_pipeline_manifest(kfp) -> None:
    ir = {"pipelineInfo": {"name": "v2"}, "root": {"dag": {"tasks": {"t": {"taskInfo": {"name": "t"}}}}}}
    detail = kfp.CreateRun(run={"name": "v2", "pipeline_spec": {"pipeline_manifest": json.dumps(ir)}})
    assert detail.run.pipeline_spec.pipeline_manifest == json.dumps(ir)
    assert detail.pipeline_runtime.workflow_manifest == ""


def test_get_unknown_run_is_not_found(kfp) -> None:
    error = kfp.error("GetRun", run_id="missing")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "run_id: Run missing not found."
