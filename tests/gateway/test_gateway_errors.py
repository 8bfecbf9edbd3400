"""Bad requests, unknown routes and wrong methods, with each gateway generation's status and body.

KFP 1.8.5 runs grpc-gateway v1: error bodies ``{"error", "code", "message"}`` (zero values left
out) and Go's plain-text routing errors.  Flyte runs grpc-gateway v2: a ``google.rpc.Status``
body for everything, routing errors included.
"""

from __future__ import annotations

import json

import pytest
import requests
from protoconform.mockserver.launcher import ThreadedServer

KFP_RUNS = "/apis/v1beta1/runs"


def _v1_error(response: requests.Response, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    # v1 omits empty fields: "details" is there only when the handler attached some (KFP's api.Error)
    assert set(body) - {"details"} == {"error", "code", "message"}, body
    assert all("@type" in detail for detail in body.get("details", [])), body
    assert body["code"] == code and body["error"] == body["message"]
    return body["message"]


def _v2_error(response: requests.Response, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body.keys() == {"code", "message", "details"} and body["details"] == [], body
    assert body["code"] == code
    return body["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "named"),
    [
        ("POST", KFP_RUNS, b'{"name": "r", ', "malformed JSON"),
        ("POST", KFP_RUNS, b'{"name": 5}', "name"),
        ("POST", KFP_RUNS, b'{"name": "r", "resource_references": [{"key": {"type": "BOGUS"}}]}', "BOGUS"),
        ("POST", KFP_RUNS, b'["not", "an", "object"]', "run: expected a JSON object"),
        (
            "POST",
            KFP_RUNS,
            b'{"name": "r", "resource_references": {"key": {}}}',
            "resource_references: expected",
        ),
        ("POST", KFP_RUNS + "/r1:reportMetrics", b'{"metrics": [{"number_value": "high"}]}', "number_value"),
        ("GET", KFP_RUNS + "?page_size=abc", b"", "page_size"),
        ("GET", KFP_RUNS + "?page_size=99999999999", b"", "out of range"),
        ("GET", KFP_RUNS + "?resource_reference_key.type=BOGUS", b"", "resource_reference_key.type"),
        ("GET", KFP_RUNS + "//nodes/n/artifacts/a:read", b"", "missing parameter run_id"),
    ],
)
def test_kfp_bad_input_is_400_naming_the_problem(
    fresh_server: ThreadedServer, method: str, path: str, body: bytes, named: str
) -> None:
    response = requests.request(method, fresh_server.http_url + path, data=body, timeout=10)
    assert named in _v1_error(response, 400, 3)


def test_kfp_ignores_unknown_fields_and_parameters_like_grpc_gateway_v1(fresh_server: ThreadedServer) -> None:
    # allowUnknownFields is on in grpc-gateway v1; unknown query parameters are skipped by both versions.
    response = requests.get(fresh_server.http_url + KFP_RUNS + "?no_such_field=1&page_size=2", timeout=10)
    assert response.status_code == 200, response.text
    response = requests.post(fresh_server.http_url + KFP_RUNS, json={"no_such_field": 1}, timeout=10)
    assert "no_such_field" not in _v1_error(response, 400, 3)  # the handler's own complaint: no name


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", "/apis/v1beta1/nothing", 404, "Not Found\n"),
        ("GET", KFP_RUNS + "/r1:frobnicate", 404, "Not Found\n"),
        ("GET", KFP_RUNS + "/:archive", 404, "Not Found\n"),
        ("PUT", KFP_RUNS, 405, "Method Not Allowed\n"),
        ("GET", KFP_RUNS + "/r1:archive", 405, "Method Not Allowed\n"),
        ("DELETE", KFP_RUNS + "/r1/retry", 405, "Method Not Allowed\n"),
    ],
)
def test_kfp_routing_errors_are_go_plain_text(
    fresh_server: ThreadedServer, method: str, path: str, status: int, text: str
) -> None:
    response = requests.request(method, fresh_server.http_url + path, timeout=10)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == text


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "named"),
    [
        ("POST", "/api/v1/projects", {"Content-Type": "application/json"}, b"{", "malformed JSON"),
        ("POST", "/api/v1/projects", {"Content-Type": "application/json"}, b'{"project": {"id": 1}}', "id"),
        # application/json is decoded strictly in flyteadmin (DiscardUnknown off for that marshaler)
        ("POST", "/api/v1/projects", {"Content-Type": "application/json"}, b'{"projekt": {}}', "projekt"),
        ("PUT", "/api/v1/projects/p1", {}, b'{"state": "GONE"}', "GONE"),
        ("GET", "/api/v1/named_entities/BOGUS/p/d", {}, b"", "resource_type"),
        ("GET", "/api/v1/task_ids/p/d?limit=ten", {}, b"", "limit"),
        ("GET", "/api/v1/task_ids/p/d?limit=1&limit=2", {}, b"", "too many values"),
        ("GET", "/api/v1/agent/task/n/notanumber/aGk=", {}, b"", "task_category.version"),
        ("GET", "/api/v1/agent/task/n/1/not-base64!", {}, b"", "resource_meta"),
        ("GET", "/api/v1/tasks/p//n/v", {}, b"", "missing parameter id.domain"),
    ],
)
def test_flyte_bad_input_is_400_with_a_status_body(
    fresh_server: ThreadedServer, method: str, path: str, headers: dict, body: bytes, named: str
) -> None:
    response = requests.request(method, fresh_server.http_url + path, data=body, headers=headers, timeout=10)
    assert named in _v2_error(response, 400, 3)


def test_flyte_default_marshaler_discards_unknown_fields(fresh_server: ThreadedServer) -> None:
    # Without Content-Type the wildcard marshaler (DiscardUnknown) reads the body: the call reaches
    # the handler.
    response = requests.post(fresh_server.http_url + "/api/v1/projects", data=b'{"projekt": {}}', timeout=10)
    assert _v2_error(response, 400, 3) == "project: missing project"


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "message"),
    [
        ("GET", "/api/v1/nothing", 404, 5, "Not Found"),
        ("GET", "/api/v1/projects/p1/extra", 404, 5, "Not Found"),
        # grpc-gateway v2 would answer 501 here (routing error mapped through UNIMPLEMENTED); see
        # gateway.errors.DEVIATIONS: the status is 405, the body is grpc-gateway's.
        ("DELETE", "/api/v1/projects/p1", 405, 12, "Method Not Allowed"),
        ("PATCH", "/api/v1/executions", 405, 12, "Method Not Allowed"),
    ],
)
def test_flyte_routing_errors_are_status_bodies(
    fresh_server: ThreadedServer, method: str, path: str, status: int, code: int, message: str
) -> None:
    response = requests.request(method, fresh_server.http_url + path, timeout=10)
    assert _v2_error(response, status, code) == message


def test_other_http_routes_are_untouched(fresh_server: ThreadedServer) -> None:
    assert requests.get(fresh_server.http_url + "/healthz", timeout=10).json()["status"] == "SERVING"
    response = requests.get(fresh_server.http_url + "/no/family/here", timeout=10)
    assert response.status_code == 404 and "code" not in response.text  # the app's own 404


def test_handler_errors_keep_their_status_and_name_the_field(fresh_server: ThreadedServer) -> None:
    response = requests.get(fresh_server.http_url + KFP_RUNS + "/no-such-run", timeout=10)
    assert _v1_error(response, 404, 5).startswith("run_id")
    response = requests.get(fresh_server.http_url + KFP_RUNS + "?page_size=-1", timeout=10)
    assert "page_size" in _v1_error(response, 400, 3)


def test_defect_error_as_200_answers_errors_with_http_200(fresh_server: ThreadedServer) -> None:
    url = fresh_server.http_url + KFP_RUNS + "/no-such-run"
    assert requests.get(url, timeout=10).status_code == 404
    fresh_server.server.dispatcher.defects.add("rest.error-as-200")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert json.loads(response.text)["code"] == 5  # the error body, under the wrong status
    flyte = requests.get(fresh_server.http_url + "/api/v1/projects/p1", timeout=10)
    assert flyte.status_code == 200 and flyte.json()["code"] == 5
