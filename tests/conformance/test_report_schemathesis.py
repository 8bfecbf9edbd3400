"""A schemathesis finding names the OpenAPI operation as the document writes it, the request values
that triggered it, and the response's status and body."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from protoconform.conformance.plugin.recording import hypothesis_notes
from protoconform.conformance.suites import rest
from protoconform.conformance.verdict import Mismatch

DOCUMENT = {
    "openapi": "3.0.0",
    "info": {"title": "things", "version": "1"},
    "paths": {
        "/things/{thing_id}": {
            "get": {
                "operationId": "Things_GetThing",
                "parameters": [
                    {"name": "thing_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "view", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {
                    "200": {
                        "description": "the thing",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        }
    },
}


class Broken(BaseHTTPRequestHandler):
    """Answers every request with a server error that repeats the path it was asked."""

    def do_GET(self) -> None:
        body = json.dumps({"error": f"storage failed for {self.path}", "code": 13}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def broken() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_error_names_operation_values_and_response(broken: str) -> None:
    import schemathesis
    from schemathesis import checks

    schema = schemathesis.openapi.from_dict(DOCUMENT)
    operation = next(iter(schema.get_all_operations())).ok()
    client = SimpleNamespace(base=broken, session=requests.Session(), timeout=10.0, verify=True)
    with pytest.raises(Mismatch) as found:
        rest.probe_operation(operation, "Things.GetThing", client, [checks.not_a_server_error], 3)  # type: ignore[arg-type]
    failure = found.value
    assert failure.method == "Things.GetThing"
    assert "GET /things/{thing_id}" in failure.expected  # the operation, as the document writes it
    assert failure.actual.startswith("HTTP 500 (Server error")
    assert '"code": 13' in failure.actual and "storage failed for /things/" in failure.actual  # the body
    request = json.loads(failure.reproducer["request"])  # type: ignore[index]
    assert request["operation"] == "GET /things/{thing_id}"
    thing_id = request["path_parameters"]["thing_id"]
    assert f'"thing_id": {json.dumps(thing_id)}' in failure.detail  # the offending value
    assert failure.reproducer["command"].startswith("curl -X GET ")  # type: ignore[index]
    assert failure.reproducer["method"] == "Things.GetThing (GET /things/{thing_id})"  # type: ignore[index]
    notes = hypothesis_notes(failure)
    assert "request: " in notes and "GET /things/{thing_id}" in notes, notes


def test_a_long_body_is_cut_and_says_its_length() -> None:
    operation = SimpleNamespace(method="post", path="/things")
    generated = SimpleNamespace(
        path_parameters={}, query={"view": 2}, headers={}, cookies={}, body={"name": "x"},
        as_curl_command=lambda: "curl -X POST http://h/things",
    )  # fmt: skip
    response = SimpleNamespace(status_code=200, text="y" * 1000)
    failure = rest.openapi_mismatch(
        operation, generated, response, ValueError("schema"), "Things.CreateThing"
    )
    assert failure.actual.endswith("… [1000 characters]") and len(failure.actual) < 300
    assert failure.detail == 'request {"query": {"view": 2}, "body": {"name": "x"}}'
