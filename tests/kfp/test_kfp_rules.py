"""specs/kfp is the single truth: the handlers use its rules and answer its examples with its codes."""

from __future__ import annotations

import re
from importlib import resources

import grpc
import pytest
from protoconform.specs import rules
from protoconform.specs.rules import REQUEST_KINDS

FAMILY = rules.load("kfp")
EXAMPLES = [
    (rule, index, example["request"])
    for rule in FAMILY.rules.values()
    for index, example in enumerate(rule.params.get("examples", []))
]


def _code_rule_ids() -> set[str]:
    package = resources.files("protoconform.mockserver.apis.kfp")
    text = "".join(entry.read_text() for entry in package.iterdir() if entry.name.endswith(".py"))
    return set(re.findall(r'"(kfp\.runs\.[a-z0-9.-]+)"', text))


def test_rules_named_in_code_exist_and_status_rules_are_used() -> None:
    used = _code_rule_ids()
    assert used - set(FAMILY.rules) == set()
    unused = {
        r.id
        for r in FAMILY.rules.values()
        if r.code != "OK" and r.kind not in REQUEST_KINDS and r.id not in used
    }
    assert unused == set()


def test_every_rule_names_methods_of_the_service_and_a_known_code() -> None:
    served = {
        f"api.RunService.{m}" for m in ("CreateRun", "GetRun", "ListRuns", "ArchiveRun", "UnarchiveRun")
    }
    served |= {
        f"api.RunService.{m}" for m in ("DeleteRun", "ReportRunMetrics", "ReadArtifact", "TerminateRun")
    }
    served.add("api.RunService.RetryRun")
    for rule in FAMILY.rules.values():
        assert set(rule.methods) <= served, rule.id
        grpc.StatusCode[rule.code]
        if rule.real_code:
            assert rule.real_note, rule.id


def test_real_server_deviations_are_recorded() -> None:
    deviations = {r.id: (r.code, r.real_code) for r in FAMILY.rules.values() if r.real_code}
    assert deviations == {
        "kfp.runs.create.undeclared-parameter": ("INVALID_ARGUMENT", "INTERNAL"),
        "kfp.runs.create.experiment-not-found": ("NOT_FOUND", "INTERNAL"),
        "kfp.runs.archive.not-found": ("NOT_FOUND", "OK"),
    }


def test_transitions_used_by_the_rpcs_are_in_the_state_machine() -> None:
    machine = FAMILY.state_machines["run"]
    for rule in FAMILY.rules.values():
        if "action" in rule.params:
            assert rule.params["action"] in machine.transitions, rule.id
    for edges in machine.transitions.values():
        assert set(edges) | set(edges.values()) <= set(machine.states)


@pytest.mark.parametrize(
    ("rule", "index", "request_json"), EXAMPLES, ids=[f"{r.id}[{i}]" for r, i, _ in EXAMPLES]
)
def test_rule_examples_answer_the_rule_code(kfp, rule, index, request_json) -> None:
    existing = kfp.create("existing")
    [method] = {m.rpartition(".")[2] for m in rule.methods}
    error = kfp.error(method, request_json)
    assert error.code() == grpc.StatusCode[rule.code], error.details()
    assert error.details().startswith(f"{rule.field}:"), error.details()
    after = kfp.list_all()
    assert [r.id for r in after] == [existing.id]
    assert kfp.GetRun(run_id=existing.id).run == existing
