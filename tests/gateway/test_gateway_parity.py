"""gRPC and REST agree on state: the same run, the same lists, the same page tokens."""

from __future__ import annotations

import json

import grpc
import requests
from gateway_support import grpc_call
from google.protobuf import json_format, message
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.registry import Registry

RUNS = "/apis/v1beta1/runs"
WORKFLOW = json.dumps(
    {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "parity-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}]},
    }
)


def _call(channel: grpc.Channel, registry: Registry, method: str, **fields: object) -> message.Message:
    path = f"/api.RunService/{method}"
    request = json_format.ParseDict(fields, registry.message_class(registry.method(path).request_type)())
    outcome = grpc_call(channel, registry, path, request)
    assert not isinstance(outcome, grpc.RpcError), outcome
    return outcome


def _protojson(msg: message.Message) -> dict:
    """The JSON grpc-gateway v1 writes for a message: proto names, zero values left out."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _rest(server: ThreadedServer, method: str, path: str, **kwargs: object) -> dict:
    response = requests.request(method, server.http_url + path, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def test_run_created_over_rest_is_the_same_over_grpc(
    fresh_server: ThreadedServer, gateway_channel: grpc.Channel, registry: Registry
) -> None:
    created = _rest(
        fresh_server,
        "POST",
        RUNS,
        json={"name": "parity", "description": "d", "pipeline_spec": {"workflow_manifest": WORKFLOW}},
    )
    run_id = created["run"]["id"]
    over_grpc = _call(gateway_channel, registry, "GetRun", run_id=run_id)
    assert _protojson(over_grpc) == created
    assert _protojson(over_grpc) == _rest(fresh_server, "GET", f"{RUNS}/{run_id}")
    assert "storage_state" not in created["run"]  # STORAGESTATE_AVAILABLE is the zero value: left out


def test_run_created_over_grpc_is_the_same_over_rest(
    fresh_server: ThreadedServer, gateway_channel: grpc.Channel, registry: Registry
) -> None:
    created = _call(
        gateway_channel,
        registry,
        "CreateRun",
        run={"name": "g", "pipeline_spec": {"workflow_manifest": WORKFLOW}},
    )
    fresh_server.run(lambda: fresh_server.server.clock.advance(2))  # Running, with a runtime manifest
    over_rest = _rest(fresh_server, "GET", f"{RUNS}/{created.run.id}")
    over_grpc = _call(gateway_channel, registry, "GetRun", run_id=created.run.id)
    assert over_rest == _protojson(over_grpc)
    parsed = json_format.ParseDict(over_rest, registry.message_class("api.RunDetail")())
    assert parsed == over_grpc
    assert over_rest["run"]["status"] == "Running"


def test_lists_agree_on_items_order_and_tokens(
    fresh_server: ThreadedServer, gateway_channel: grpc.Channel, registry: Registry
) -> None:
    for index, name in enumerate(["m", "c", "x", "a", "q", "c", "k"]):
        spec = {"workflow_manifest": WORKFLOW}
        if index % 2:
            _rest(fresh_server, "POST", RUNS, json={"name": name, "pipeline_spec": spec})
        else:
            _call(gateway_channel, registry, "CreateRun", run={"name": name, "pipeline_spec": spec})
    criteria = {
        "page_size": 2,
        "sort_by": "name desc",
        "filter": json.dumps({"predicates": [{"key": "name", "op": "NOT_EQUALS", "string_value": "q"}]}),
    }
    rest_token, grpc_token, seen = "", "", []
    while True:
        query = {**criteria, **({"page_token": rest_token} if rest_token else {})}
        page = _rest(fresh_server, "GET", RUNS, params=query)
        grpc_page = _call(gateway_channel, registry, "ListRuns", **{**criteria, "page_token": grpc_token})
        assert page == _protojson(grpc_page)
        assert page.get("next_page_token", "") == grpc_page.next_page_token
        assert page["total_size"] == 6
        seen += [run["name"] for run in page["runs"]]
        # Hand each side's token to the other protocol: tokens are interchangeable.
        rest_token, grpc_token = grpc_page.next_page_token, page.get("next_page_token", "")
        if not rest_token:
            break
    assert seen == ["x", "m", "k", "c", "c", "a"]
