"""The score shows what was not checked: rule coverage per family, the unchecked rules named, rules
that cannot be checked over the wire and rules about services the target does not serve apart, and
--min-coverage as a gate."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from engine_support import Engine, engine_server, run_check  # noqa: F401  (fixture)
from grpc_reflection.v1alpha import reflection
from protoconform.conformance.plugin.scope import Scope
from protoconform.conformance.reports import CaseResult, Report
from protoconform.specs import rules as spec_rules
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import parse

CONTROL_PLANE = ("armonik.api.grpc.v1.sessions.Sessions", "armonik.api.grpc.v1.results.Results")


def _report(**kwargs: object) -> Report:
    report = Report(target={}, families=["toy"], suites=[], seed=0, max_examples=1, read_only=False,
                    lenient=False, **kwargs)  # type: ignore[arg-type]  # fmt: skip
    report.rules = {"toy": ["toy.a", "toy.b", "toy.c", "toy.d"]}
    report.not_checkable = {"toy": {"toy.d": "needs the server's host"}}
    return report


def _case(rule: str, outcome: str) -> CaseResult:
    return CaseResult("n", "toy", "toy.v1.Toys", "GetToy", "rules", rule, outcome)


def test_coverage_counts_checked_rules_and_sets_the_marked_ones_apart() -> None:
    report = _report(min_coverage=70.0)
    report.results = [_case("toy.a", "passed"), _case("toy.b", "failed"), _case("toy.c", "skipped")]
    assert report.coverage()["toy"] == {
        "checked": 2,
        "checkable": 3,
        "not_checkable": 1,
        "not_applicable": 0,
        "percent": 66.7,
    }
    assert report.uncovered_rules() == {"toy": ["toy.c"]}  # a skipped case checks nothing
    assert report.below_min_coverage() == ["toy"]
    assert _report().below_min_coverage() == []  # no gate unless asked


def test_rules_not_applicable_to_the_target_are_neither_checked_nor_unchecked() -> None:
    report = _report(min_coverage=100.0)
    report.not_applicable = {"toy": {"toy.c": "Workers not served by the target"}}
    report.results = [_case("toy.a", "passed"), _case("toy.b", "failed")]
    assert report.coverage()["toy"] == {
        "checked": 2,
        "checkable": 2,
        "not_checkable": 1,
        "not_applicable": 1,
        "percent": 100.0,
    }
    assert report.uncovered_rules() == {"toy": []} and report.below_min_coverage() == []
    data = report.as_dict()
    assert data["not_applicable_rules"] == {"toy": {"toy.c": "Workers not served by the target"}}
    assert data["not_checkable_rules"] == {"toy": {"toy.d": "needs the server's host"}}


def _armonik_scope(listed: set[str], **kwargs: object) -> Scope:
    return Scope(served=["armonik"], listed=listed, **kwargs)  # type: ignore[arg-type]


def test_a_control_plane_without_worker_and_agent_has_their_rules_apart() -> None:
    rules = spec_rules.load("armonik").rules
    services = {method.rpartition(".")[0] for rule in rules.values() for method in rule.methods}
    pods = {s for s in services if s.rpartition(".")[2] in ("Worker", "Agent")}
    assert len(pods) == 2, services
    apart = _armonik_scope(services - pods).not_applicable("armonik", rules.values())
    expected = {
        rule.id
        for rule in rules.values()
        if not rule.not_checkable and {m.rpartition(".")[0] for m in rule.methods} <= pods
    }
    assert expected and set(apart) == expected
    assert all(why.endswith("not served by the target") for why in apart.values())
    assert all(rules[r].methods for r in apart)
    # A rule with one method on a served service still counts.
    assert not any({m.rpartition(".")[0] for m in rules[r].methods} - pods for r in apart)
    # Our mock serves them all: every rule counts; without reflection nothing is decided.
    assert _armonik_scope(services).not_applicable("armonik", rules.values()) == {}
    assert Scope(reflection_error="no reflection").not_applicable("armonik", rules.values()) == {}
    # A family named with --api that the target does not serve at all is checked as asked.
    assert Scope(warned=["armonik"], listed={"x.Other"}).not_applicable("armonik", rules.values()) == {}


def test_a_rule_says_why_it_cannot_be_checked() -> None:
    rules = parse(
        "toy",
        [
            {
                "rules": [
                    {"id": "toy.d", "kind": "behaviour", "method": "S.M", "not_checkable": "server-side only"}
                ]
            }
        ],
        [],
    )
    assert rules.rule("toy.d").not_checkable == "server-side only"
    assert "not_checkable" not in rules.rule("toy.d").params


def test_score_lines_show_coverage_and_the_gate_fails_the_run(
    engine_server: Engine,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    passing = run_check(
        ["--api", "kfp", "--suite", "surface", "--min-coverage", "0"], tmp_path, engine=engine_server
    )
    assert passing.status == 0, passing.stdout[-2000:]
    assert "rules checked 0/" in passing.stdout and "rules no case checked: kfp." in passing.stdout
    assert passing.report is not None and passing.report["coverage"]["kfp"]["checked"] == 0

    assert "meets --min-coverage 0%)" in passing.stdout
    assert passing.report["below_min_coverage"] == [] and passing.report["min_coverage"] == 0

    gated = run_check(
        ["--api", "kfp", "--suite", "surface", "--min-coverage", "50"], tmp_path, engine=engine_server
    )
    assert gated.status == 1, gated.stdout[-2000:]  # no case failed: the gate alone fails the run
    assert "FAIL kfp: rule coverage 0.0% is below --min-coverage 50%" in gated.stdout
    assert "below --min-coverage 50%)" in gated.stdout
    assert gated.report is not None and gated.report["totals"]["failed"] == 0
    assert gated.report["below_min_coverage"] == ["kfp"] and gated.report["exit_status"] == 1


@pytest.fixture
def control_plane() -> Iterator[str]:
    """A gRPC server whose reflection lists two ArmoniK services and nothing of the worker pods."""
    default_registry()  # the ArmoniK descriptors, in the pool reflection answers from
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    reflection.enable_server_reflection([*CONTROL_PLANE, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_rules_about_services_the_target_does_not_serve_are_reported_apart(
    control_plane: str, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    command = [sys.executable, "-m", "protoconform.mockserver", "check", "--target", control_plane,
               "--api", "armonik", "--suite", "surface", "--json", str(report_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    report = json.loads(report_path.read_text())
    apart = report["not_applicable_rules"]["armonik"]
    rules = spec_rules.load("armonik").rules
    for rule_id, why in apart.items():
        services = {m.rpartition(".")[0] for m in rules[rule_id].methods}
        assert not services & set(CONTROL_PLANE) and why.endswith("not served by the target"), rule_id
    assert {"armonik.worker.health", "armonik.agent.token-required"} <= set(apart)
    assert "armonik.sessions.not-found" not in apart  # Sessions is served: unchecked, not set apart
    assert "armonik.sessions.not-found" in report["uncovered_rules"]["armonik"]
    assert not set(apart) & set(report["uncovered_rules"]["armonik"])
    row = report["coverage"]["armonik"]
    assert row["not_applicable"] == len(apart)
    assert row["checkable"] == len(rules) - row["not_checkable"] - len(apart)
    assert f"{len(apart)} not applicable to this target" in done.stdout, done.stdout[-3000:]
    assert "armonik: rules not applicable to this target (about services it does not serve): " in done.stdout
