"""The official REST client, kfp-server-api 1.8.5, used as a user would; a gRPC client sees every change.

Timings follow the KFP mock's defaults on the manual clock: Pending after 1 s, Running 1 s
later, each task 5 s; a workflow annotation asks for a task to fail (documented in
mockserver/apis/kfp/lifecycle.py).
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from typing import Any

import grpc
import kfp_server_api
import pytest
from gateway_support import grpc_call
from google.protobuf import json_format, message
from kfp_server_api import (
    ApiParameter,
    ApiPipelineSpec,
    ApiReportRunMetricsRequest,
    ApiRun,
    ApiRunMetric,
    RunServiceApi,
)
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.registry import Registry

TO_RUNNING, TASK = 2.0, 5.0


def manifest(tasks: list[str], fail: str = "") -> str:
    """An Argo workflow running ``tasks`` one after the other."""
    dag = [
        {"name": name, "template": "work", **({"dependencies": [tasks[i - 1]]} if i else {})}
        for i, name in enumerate(tasks)
    ]
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": "rest-",
            **({"annotations": {"protoconform.io/fail-task": fail}} if fail else {}),
        },
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "who", "value": "world"}]},
            "templates": [
                {"name": "main", "dag": {"tasks": dag}},
                {
                    "name": "work",
                    "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.who}}"]},
                },
            ],
        },
    }
    return json.dumps(workflow)


class Grpc:
    """RunService over gRPC: ``grpc.GetRun(run_id=...)`` returns the response or raises the RpcError."""

    def __init__(self, channel: grpc.Channel, registry: Registry) -> None:
        self.channel, self.registry = channel, registry

    def __getattr__(self, name: str) -> Any:
        method = self.registry.method(f"api.RunService.{name}")

        def call(**fields: Any) -> message.Message:
            request = json_format.ParseDict(fields, self.registry.message_class(method.request_type)())
            outcome = grpc_call(self.channel, self.registry, method.path, request)
            if isinstance(outcome, grpc.RpcError):
                raise outcome
            return outcome

        return call


@pytest.fixture
def api(fresh_server: ThreadedServer) -> Iterator[RunServiceApi]:
    client = kfp_server_api.ApiClient(kfp_server_api.Configuration(host=fresh_server.http_url))
    yield RunServiceApi(client)
    client.rest_client.pool_manager.clear()


@pytest.fixture
def over_grpc(gateway_channel: grpc.Channel, registry: Registry) -> Grpc:
    return Grpc(gateway_channel, registry)


def advance(server: ThreadedServer, seconds: float) -> None:
    server.run(lambda: server.server.clock.advance(seconds))


def create(api: RunServiceApi, name: str, tasks: list[str], fail: str = "", description: str = "") -> str:
    spec = ApiPipelineSpec(
        workflow_manifest=manifest(tasks, fail), parameters=[ApiParameter(name="who", value=name)]
    )
    detail = api.create_run(ApiRun(name=name, description=description, pipeline_spec=spec))
    assert detail.run.name == name and detail.run.id
    return detail.run.id


def test_a_user_drives_runs_over_rest_and_grpc_sees_every_change(
    api: RunServiceApi, over_grpc: Grpc, fresh_server: ThreadedServer
) -> None:
    # create
    first = create(api, "alpha", ["prep", "train"], description="first run")
    seen = over_grpc.GetRun(run_id=first).run
    assert (seen.name, seen.description, seen.status) == ("alpha", "first run", "")
    owner = [r for r in seen.resource_references if r.relationship == 1]  # OWNER: the Default experiment
    assert owner and owner[0].key.type == 1 and owner[0].name == "Default"
    others = [create(api, name, ["only"]) for name in ("bravo", "charlie", "delta")]
    doomed = create(api, "echo", ["a", "b"], fail="b")

    # get: the statuses move on the virtual clock
    assert api.get_run(first).run.status in (None, "")
    advance(fresh_server, TO_RUNNING)
    assert api.get_run(first).run.status == "Running" == over_grpc.GetRun(run_id=first).run.status

    # list with paging and sorting
    names, token, pages = [], None, 0
    while True:
        page = api.list_runs(page_size=2, sort_by="name desc", page_token=token)
        assert page.total_size == 5
        names += [run.name for run in page.runs]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert names == ["echo", "delta", "charlie", "bravo", "alpha"] and pages == 3
    # ... and filters (JSON of api.Filter, URL-encoded by the client)
    only = json.dumps({"predicates": [{"key": "name", "op": "IS_SUBSTRING", "string_value": "ar"}]})
    assert [run.name for run in api.list_runs(filter=only).runs] == ["charlie"]
    grpc_only = over_grpc.ListRuns(filter=only)
    assert [run.name for run in grpc_only.runs] == ["charlie"]

    # archive / unarchive
    api.archive_run(others[0])
    assert over_grpc.GetRun(run_id=others[0]).run.storage_state == 1  # STORAGESTATE_ARCHIVED
    assert api.get_run(others[0]).run.storage_state == "STORAGESTATE_ARCHIVED"
    hide = json.dumps(
        {
            "predicates": [
                {"key": "storage_state", "op": "NOT_EQUALS", "string_value": "STORAGESTATE_ARCHIVED"}
            ]
        }
    )
    assert others[0] not in [run.id for run in api.list_runs(filter=hide).runs]
    api.archive_run(others[0])  # idempotent
    api.unarchive_run(others[0])
    assert over_grpc.GetRun(run_id=others[0]).run.storage_state == 0
    assert api.get_run(others[0]).run.storage_state in (None, "STORAGESTATE_AVAILABLE")

    # metrics: one good, its duplicate, one invalid name
    reply = api.report_run_metrics(
        first,
        ApiReportRunMetricsRequest(
            run_id=first,
            metrics=[
                ApiRunMetric(name="accuracy", node_id="train", number_value=0.93),
                ApiRunMetric(name="accuracy", node_id="train", number_value=0.10),
                ApiRunMetric(name="9lives", node_id="train", number_value=1.0),
            ],
        ),
    )
    assert [r.status for r in reply.results] == ["OK", "DUPLICATE_REPORTING", "INVALID_ARGUMENT"]
    metrics = over_grpc.GetRun(run_id=first).run.metrics
    assert [(m.name, m.node_id, m.number_value) for m in metrics] == [("accuracy", "train", 0.93)]
    assert [(m.name, m.number_value) for m in api.get_run(first).run.metrics] == [("accuracy", 0.93)]

    # read an artifact of a finished task
    advance(fresh_server, 2 * TASK)
    detail = api.get_run(first)
    assert detail.run.status == "Succeeded"
    nodes = json.loads(detail.pipeline_runtime.workflow_manifest)["status"]["nodes"]
    train = next(node for node in nodes.values() if node["displayName"] == "train")
    artifact = api.read_artifact(first, train["id"], "main-logs")
    data = base64.b64decode(artifact.data, validate=True)
    assert gzip.decompress(data)  # a gzipped tar
    assert data == over_grpc.ReadArtifact(run_id=first, node_id=train["id"], artifact_name="main-logs").data

    # terminate a running run, then retry it once it failed; retry a failed run
    succeeded = others[1]
    target = create(api, "foxtrot", ["long", "longer"])
    advance(fresh_server, TO_RUNNING)
    api.terminate_run(target)
    assert over_grpc.GetRun(run_id=target).run.status == "Terminating"
    advance(fresh_server, 1)
    assert over_grpc.GetRun(run_id=target).run.status == "Failed"
    api.retry_run(target)
    assert over_grpc.GetRun(run_id=target).run.status == "Running"
    assert api.get_run(doomed).run.status == "Failed"
    api.retry_run(doomed)
    assert over_grpc.GetRun(run_id=doomed).run.status == "Running"

    # errors surface as ApiException with the mapped status
    with pytest.raises(kfp_server_api.ApiException) as finished:
        api.terminate_run(first)  # succeeded runs cannot be terminated
    assert finished.value.status == 400
    with pytest.raises(kfp_server_api.ApiException) as not_failed:
        api.retry_run(succeeded)  # only failed runs can be retried
    assert not_failed.value.status == 409 and json.loads(not_failed.value.body)["code"] == 10

    # delete: gone for gRPC too, and a second delete is NOT_FOUND
    api.delete_run(first)
    with pytest.raises(grpc.RpcError) as gone:
        over_grpc.GetRun(run_id=first)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(kfp_server_api.ApiException) as twice:
        api.delete_run(first)
    assert twice.value.status == 404
    body = json.loads(twice.value.body)
    assert body["code"] == 5 and body["error"] == body["message"] and first in body["message"]
    assert api.list_runs().total_size == 5  # six created, one deleted


def test_changes_made_over_grpc_show_over_rest(api: RunServiceApi, over_grpc: Grpc) -> None:
    run = over_grpc.CreateRun(
        run={"name": "from-grpc", "pipeline_spec": {"workflow_manifest": manifest(["x"])}}
    ).run
    assert api.get_run(run.id).run.name == "from-grpc"
    over_grpc.ArchiveRun(id=run.id)
    assert api.get_run(run.id).run.storage_state == "STORAGESTATE_ARCHIVED"
    over_grpc.DeleteRun(id=run.id)
    with pytest.raises(kfp_server_api.ApiException) as gone:
        api.get_run(run.id)
    assert gone.value.status == 404
