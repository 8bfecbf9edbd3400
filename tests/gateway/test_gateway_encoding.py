"""JSON styles, marshaler choice, binary protobuf and response streams, end to end.

Flyte's handlers are not there yet, so these tests register their own under a handler
variant ("gateway-test") that only the Flyte state of the test's fresh server selects.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import requests
from gateway_support import Capture
from protoconform.mockserver import rpc
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.registry import Registry

VARIANT = "gateway-test"
ADMIN = "flyteidl.service.AdminService"
AGENT = "flyteidl.service.AsyncAgentService"


def _registry_class(name: str):
    from protoconform.specs.registry import default_registry

    return default_registry().message_class(name)


@rpc.handler(ADMIN, "GetProject", variant=VARIANT)
def _get_project(request, ctx):
    project = _registry_class("flyteidl.admin.Project")(id=request.id, name="Flyte Project")
    project.domains.add(id="development", name="development")
    return project


@rpc.handler(ADMIN, "UpdateProject", variant=VARIANT)
def _update_project(request, ctx):
    if request.name == "refuse":
        raise rpc.ApiError(grpc.StatusCode.UNAUTHENTICATED, "authorization: token expired")
    return _registry_class("flyteidl.admin.ProjectUpdateResponse")()


@rpc.handler(AGENT, "GetTaskLogs", variant=VARIANT)
async def _task_logs(request, ctx) -> AsyncIterator:
    response = _registry_class("flyteidl.admin.GetTaskLogsResponse")
    if request.lines == 0:
        raise rpc.invalid_argument("lines: must be positive")
    for number in range(request.lines):
        item = response()
        item.body.results.append(f"line {number}")
        yield item
    raise rpc.not_found("resource_meta: the task is gone")


@pytest.fixture
def flyte(fresh_server: ThreadedServer) -> Iterator[ThreadedServer]:
    def select() -> None:
        fresh_server.server.states["flyte"].handler_variant = VARIANT

    fresh_server.run(select)
    yield fresh_server


def test_flyte_json_follows_the_marshaler_the_request_selects(flyte: ThreadedServer) -> None:
    url = flyte.http_url + "/api/v1/projects/p1"
    # application/json: proto names, every field, unset messages as null (flyteadmin's marshaler).
    snake = requests.get(url, headers={"Accept": "application/json"}, timeout=10)
    assert snake.status_code == 200 and snake.headers["Content-Type"] == "application/json"
    assert snake.json() == {
        "id": "p1",
        "name": "Flyte Project",
        "domains": [{"id": "development", "name": "development"}],
        "description": "",
        "labels": None,
        "state": "ACTIVE",
        "org": "",
    }
    # No Accept / Content-Type: grpc-gateway v2's default marshaler, lowerCamelCase keys.
    camel = requests.get(url, timeout=10).json()
    assert camel["labels"] is None and camel["state"] == "ACTIVE"
    logs = flyte.http_url + "/api/v1/agent/task/logs/sensor/1/aGk=?lines=1"
    first = json.loads(requests.get(logs, timeout=10).text.splitlines()[0])
    assert first == {"result": {"body": {"results": ["line 0"], "structuredLines": []}}}
    via_content_type = requests.get(url, headers={"Content-Type": "application/json"}, timeout=10).json()
    assert via_content_type == snake.json()


def test_kfp_json_leaves_zero_values_out(fresh_server: ThreadedServer) -> None:
    url = fresh_server.http_url + "/apis/v1beta1/runs?page_size=1"
    assert requests.get(url, timeout=10).text == "{}"  # empty list: no runs, no total_size, no token


def test_binary_protobuf_in_and_out(flyte: ThreadedServer, capture: Capture, registry: Registry) -> None:
    project = registry.message_class("flyteidl.admin.Project")(id="ignored", name="binary")
    response = requests.put(
        flyte.http_url + "/api/v1/projects/p9",
        data=project.SerializeToString(),
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/octet-stream"
    assert response.content == b""  # an empty ProjectUpdateResponse
    received = capture.take("rest", f"/{ADMIN}/UpdateProject")
    assert (received.id, received.name) == ("p9", "binary")  # the path wins over the body

    refused = requests.put(
        flyte.http_url + "/api/v1/projects/p9",
        data=registry.message_class("flyteidl.admin.Project")(name="refuse").SerializeToString(),
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert (
        refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "authorization: token expired"
    )
    from google.rpc import status_pb2

    status = status_pb2.Status.FromString(refused.content)
    assert (status.code, status.message) == (16, "authorization: token expired")


def test_server_stream_writes_result_lines_then_an_error_line(flyte: ThreadedServer) -> None:
    url = flyte.http_url + "/api/v1/agent/task/logs/sensor/1/aGk=?lines=2"
    response = requests.get(url, headers={"Accept": "application/json"}, timeout=10)
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[:2] == [
        {"result": {"body": {"results": ["line 0"], "structured_lines": []}}},
        {"result": {"body": {"results": ["line 1"], "structured_lines": []}}},
    ]
    assert lines[2] == {"error": {"code": 5, "message": "resource_meta: the task is gone", "details": []}}
    assert len(lines) == 3


def test_server_stream_failing_first_answers_like_a_unary_call(flyte: ThreadedServer) -> None:
    response = requests.get(flyte.http_url + "/api/v1/agent/task/logs/sensor/1/aGk=", timeout=10)
    assert response.status_code == 400
    assert response.json() == {"code": 3, "message": "lines: must be positive", "details": []}


def test_metadata_reaches_the_handler_like_grpc_gateway_forwards_it(fresh_server: ThreadedServer) -> None:
    seen: list[dict[str, str]] = []

    class Observer:
        async def before(self, record) -> None:
            seen.append(dict(record.metadata))

        def after(self, record) -> None:
            return None

    observer = Observer()
    fresh_server.run(lambda: fresh_server.server.dispatcher.observers.append(observer))
    try:
        requests.get(
            fresh_server.http_url + "/apis/v1beta1/runs",
            headers={"Authorization": "Bearer t0k", "Grpc-Metadata-Tenant": "blue", "X-Other": "dropped"},
            timeout=10,
        )
    finally:
        fresh_server.run(lambda: fresh_server.server.dispatcher.observers.remove(observer))
    metadata = seen[-1]
    assert metadata["authorization"] == "Bearer t0k"
    assert metadata["grpcgateway-authorization"] == "Bearer t0k"
    assert metadata["tenant"] == "blue"
    assert "x-other" not in metadata and metadata["x-forwarded-for"] == "127.0.0.1"
