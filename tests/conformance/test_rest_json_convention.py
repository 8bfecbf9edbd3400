"""REST replies are held to the family's JSON convention on their raw JSON, not through json_format.

Unit tests of the checker on hand-written JSON, a guard that the convention documented in
``specs/kfp/rest.yaml`` matches the mock's gateway convention, and a `check --suite rest` run
against a mock, clean and with the ``rest.camel-case-keys`` defect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine_support import Engine, engine_server, run_check  # noqa: F401  (fixture)
from google.protobuf import descriptor
from protoconform.conformance import json_convention as rest_json
from protoconform.mockserver.gateway import conventions, defects
from protoconform.specs.registry import default_registry

RULE = "kfp.rest.json-convention"
KFP = rest_json.convention("kfp")


def _run_type() -> descriptor.Descriptor:
    return default_registry().message_class("api.Run").DESCRIPTOR


def _violation(value: Any) -> str | None:
    assert KFP is not None
    return rest_json.message_violation(_run_type(), value, KFP)


def test_kfp_documents_its_convention() -> None:
    assert KFP is not None and KFP.rule == RULE


def test_the_documented_convention_matches_the_mock_gateway() -> None:
    """specs/kfp/rest.yaml and the mock's conventions.py describe the same gateway."""
    assert KFP is not None
    gateway = conventions.for_family("kfp")
    marshaler = gateway.marshalers[conventions.WILDCARD]
    assert KFP.keys == ("proto_names" if marshaler.proto_names else "json_names")
    assert KFP.unpopulated == ("emitted" if marshaler.emit_unpopulated else "omitted")
    assert gateway.version == 1 and KFP.cancelled_status == 408


def test_correct_json_passes() -> None:
    run = {
        "id": "r1",
        "created_at": "2024-01-01T00:00:00Z",
        "storage_state": "STORAGESTATE_ARCHIVED",
        "pipeline_spec": {"pipeline_id": "p1", "parameters": [{"name": "a", "value": "1"}]},
        "metrics": [{"name": "m", "node_id": "n", "number_value": 0.5}],
    }
    assert _violation(run) is None


def test_a_camel_case_key_is_flagged() -> None:
    problem = _violation({"id": "r1", "pipeline_spec": {"pipelineId": "p1"}})
    assert problem is not None and "'pipeline_spec.pipelineId'" in problem and "pipeline_id" in problem


def test_an_enum_number_is_flagged() -> None:
    problem = _violation({"storage_state": 1})
    assert problem is not None and "storage_state" in problem and "STORAGESTATE_ARCHIVED" in problem


def test_an_int64_number_is_flagged() -> None:
    def with_value(value: Any) -> dict[str, Any]:  # api.Value.int_value, inside a map of messages
        return {"pipeline_spec": {"runtime_config": {"parameters": {"n": {"int_value": value}}}}}

    problem = _violation(with_value(7))
    assert problem is not None and "int_value" in problem and "string" in problem
    assert _violation(with_value("7")) is None


def test_a_zero_value_is_flagged_where_the_gateway_omits_it() -> None:
    problem = _violation({"id": "r1", "description": ""})
    assert problem is not None and "description" in problem and "omitted" in problem


def test_the_other_convention_reads_the_other_way() -> None:
    camel = rest_json.JsonConvention(rule="x", keys="json_names", enums="numbers", int64="numbers")
    run_type = _run_type()
    assert rest_json.message_violation(run_type, {"pipelineSpec": {"pipelineId": "p"}}, camel) is None
    assert "name" in (rest_json.message_violation(run_type, {"storage_state": 1}, camel) or "")
    assert "STORAGESTATE" in (
        rest_json.message_violation(run_type, {"storageState": "STORAGESTATE_ARCHIVED"}, camel) or ""
    )


def test_an_error_body_with_a_foreign_key_is_flagged() -> None:
    assert KFP is not None
    assert rest_json.error_violation({"error": "x", "code": 5, "message": "x"}, KFP) is None
    assert "status" in (
        rest_json.error_violation({"code": 5, "message": "x", "status": "NOT_FOUND"}, KFP) or ""
    )


def test_the_defect_names_the_rule() -> None:
    assert defects.DEFECTS[defects.CAMEL_CASE_KEYS].rule == RULE


def test_rest_suite_passes_clean_and_catches_camel_case_keys(engine_server: Engine, tmp_path: Path) -> None:  # noqa: F811
    engine_server.control.reset(defects=True)
    clean = run_check(["--api", "kfp", "--suite", "rest"], tmp_path, name="clean", engine=engine_server)
    assert clean.status == 0, clean.stdout[-2000:]

    engine_server.control.set_defects([defects.CAMEL_CASE_KEYS])
    try:
        broken = run_check(["--api", "kfp", "--suite", "rest"], tmp_path, name="camel", engine=engine_server)
    finally:
        engine_server.control.set_defects([])
    assert broken.status == 1, broken.stdout[-2000:]
    assert any(rule == RULE for rule, _ in broken.failed_rules()), broken.stdout[-2000:]
