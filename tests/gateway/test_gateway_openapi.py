"""The served OpenAPI documents: valid OpenAPI, complete, and honoured by the server (schemathesis)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from gateway_support import annotated_bindings
from openapi_spec_validator import validate
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.registry import default_registry

SCHEMATHESIS = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"


@pytest.mark.parametrize("family", ["kfp", "flyte"])
def test_document_is_valid_openapi_with_every_binding(threaded_server: ThreadedServer, family: str) -> None:
    response = requests.get(f"{threaded_server.http_url}/openapi/{family}.json", timeout=10)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    operations = {
        op["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    bindings = [b for b in annotated_bindings(default_registry()) if b.family == family]
    assert len(operations) == len(bindings)
    for binding in bindings:
        name = f"{binding.service.rsplit('.', 1)[-1]}_{binding.method}" + (
            str(binding.index + 1) if binding.index else ""
        )
        assert operations[name][0] == binding.http_method


def test_kfp_document_describes_the_wire(threaded_server: ThreadedServer) -> None:
    document = requests.get(f"{threaded_server.http_url}/openapi/kfp.json", timeout=10).json()
    archive = document["paths"]["/apis/v1beta1/runs/{id}:archive"]["post"]
    assert [p["name"] for p in archive["parameters"]] == ["id"]
    listing = document["paths"]["/apis/v1beta1/runs"]["get"]
    assert [p["name"] for p in listing["parameters"]] == [
        "page_token",
        "page_size",
        "sort_by",
        "resource_reference_key.type",
        "resource_reference_key.id",
        "filter",
    ]
    create = document["paths"]["/apis/v1beta1/runs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/api.Run"
    }
    run = document["components"]["schemas"]["api.Run"]["properties"]
    assert run["created_at"] == {"type": "string", "format": "date-time"}
    assert run["storage_state"]["enum"] == ["STORAGESTATE_AVAILABLE", "STORAGESTATE_ARCHIVED"]
    error = document["components"]["schemas"]["grpc.gateway.runtime.Error"]["properties"]
    assert set(error) == {"error", "code", "message", "details"}


def test_index_page_lists_the_routes(threaded_server: ThreadedServer) -> None:
    page = requests.get(f"{threaded_server.http_url}/openapi/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "/apis/v1beta1/runs/{run_id}:reportMetrics" in page.text
    assert "/openapi/flyte.json" in page.text and "AdminService.ListTasks" in page.text
    assert requests.get(f"{threaded_server.http_url}/openapi/armonik.json", timeout=10).status_code == 404


def _schemathesis(
    server: ThreadedServer, family: str, checks: str, *extra: str
) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    command = [
        sys.executable, "-c", SCHEMATHESIS, "run", f"{server.http_url}/openapi/{family}.json",
        "--url", server.http_url, "--checks", checks, "--seed", "7", "--workers", "1",
        "--generation-database", "none", "--no-color", "--suppress-health-check", "all",
        "--max-failures", "5",
        *extra,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)


KFP_CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance"


def test_schemathesis_finds_nothing_against_kfp(fresh_server: ThreadedServer) -> None:
    run = _schemathesis(fresh_server, "kfp", KFP_CHECKS, "--phases", "examples,coverage,fuzzing", "-n", "8")
    assert run.returncode == 0, run.stdout[-4000:]
    assert "10 selected / 10 total" in run.stdout


def test_schemathesis_catches_errors_answered_as_200(fresh_server: ThreadedServer) -> None:
    fresh_server.server.dispatcher.defects.add("rest.error-as-200")
    run = _schemathesis(fresh_server, "kfp", KFP_CHECKS, "--phases", "fuzzing", "-n", "5")
    assert run.returncode != 0
    assert "Response violates schema" in run.stdout, run.stdout[-4000:]


def test_schemathesis_finds_nothing_against_flyte(fresh_server: ThreadedServer) -> None:
    # Every Flyte service is served: bodies, content types and the absence of any 5xx are checked.
    # The document describes flyteadmin's application/json marshaler (snake_case), which is what the
    # requests ask for.
    checks = "not_a_server_error,response_schema_conformance,content_type_conformance"
    run = _schemathesis(
        fresh_server, "flyte", checks, "--phases", "fuzzing", "-n", "2", "-H", "Accept: application/json"
    )
    assert run.returncode == 0, run.stdout[-4000:]
