"""Failed KFP calls carry the server's ``api.Error`` detail, over gRPC and over REST."""

from __future__ import annotations

import requests
from grpc_status import rpc_status
from kfp_support import RunService


def _api_error(kfp: RunService, error) -> object:
    status = rpc_status.from_call(error)
    assert status is not None and len(status.details) == 1
    detail = kfp.registry.message_class("api.Error")()
    assert status.details[0].Unpack(detail)
    return detail


def test_not_found_carries_the_external_message_and_the_internal_chain(kfp: RunService) -> None:
    error = kfp.error("GetRun", run_id="missing")
    detail = _api_error(kfp, error)
    assert detail.error_message == "Run missing not found."
    assert detail.error_details == error.details()


def test_request_rule_failures_carry_it_too(kfp: RunService) -> None:
    error = kfp.error("CreateRun", run={})
    detail = _api_error(kfp, error)
    assert "run.name" in detail.error_details


def test_rest_error_body_has_the_same_detail(kfp: RunService) -> None:
    response = requests.get(f"{kfp.server.http_url}/apis/v1beta1/runs/missing", timeout=10)
    assert response.status_code == 404
    (detail,) = response.json()["details"]
    assert detail == {
        "@type": "type.googleapis.com/api.Error",
        "error_message": "Run missing not found.",
        "error_details": response.json()["message"],
    }
