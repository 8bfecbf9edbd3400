"""A failure a person can act on: the rule's description and the place specs write it, the values of
hypothesis' falsifying example, the method of the call that failed, and all of it as structured
objects in the JSON report, in JUnit and in the terminal summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from engine_support import Engine, engine_server  # noqa: F401  (fixture)
from hypothesis import given, stateful
from hypothesis import strategies as st
from protoconform.conformance.hypothesis_profile import harness_settings
from protoconform.conformance.models.base import run_machine, run_property
from protoconform.conformance.plugin.recording import hypothesis_notes, rule_of
from protoconform.conformance.reports import CaseResult, Report
from protoconform.conformance.verdict import Mismatch
from protoconform.specs import rules as spec_rules

# Cases of a suite of our own, run by the plugin against the mock: a verdict on the reply of a
# call other than the marker's method (as a `then:` step or a model makes), and a property.
SUITE = """
import pytest
from hypothesis import given, strategies as st
from protoconform.conformance.hypothesis_profile import harness_settings
from protoconform.conformance.models.base import run_property
from protoconform.conformance.verdict import Mismatch


@pytest.mark.conformance(
    family="kfp", service="RunService", method="TerminateRun", suite="rules", rule="kfp.runs.terminate.effect"
)
def test_then_step(rpc):
    reply = rpc("RunService.GetRun", {"run_id": "no-such-run"})
    raise Mismatch("run.status in [Terminating]", reply.status(), reply=reply)


@pytest.mark.conformance(
    family="kfp", service="RunService", method="ListRuns", suite="properties", rule="kfp.runs.list.pagination"
)
def test_property():
    @harness_settings(20)
    @given(size=st.integers(1, 5), name=st.sampled_from(["alpha", "beta"]))
    def pages(size, name):
        if size > 2:
            raise Mismatch("each item once in pages of any size", f"a repeat in pages of {size}")

    run_property(pages)
"""


def _run_suite(
    engine: Engine, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    suite = tmp_path / "suite_of_our_own.py"
    suite.write_text(textwrap.dedent(SUITE), encoding="utf-8")
    report, junit = tmp_path / "report.json", tmp_path / "report.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(suite),
        "-p",
        "protoconform.conformance.plugin",
        "-p",
        "no:cacheprovider",
        "--import-mode=importlib",
        "--rootdir",
        str(tmp_path),
        "-c",
        os.devnull,
        "--target",
        engine.grpc,
        "--control",
        engine.http,
        "--api",
        "kfp",
        "--json",
        str(report),
        "--junit-xml",
        str(junit),
        "-q",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(report.read_text()), junit


def test_a_failure_names_its_rule_its_call_and_its_example(
    engine_server: Engine,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    done, report, junit = _run_suite(engine_server, tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    failures = {f["rule"]: f for f in report["failures"]}
    assert set(failures) == {"kfp.runs.terminate.effect", "kfp.runs.list.pagination"}, report["failures"]

    # The verdict was on GetRun's reply: the failure is GetRun's, not the marker's TerminateRun.
    step = failures["kfp.runs.terminate.effect"]
    effect = spec_rules.load("kfp").rule("kfp.runs.terminate.effect")
    assert (step["service"], step["method"]) == ("api.RunService", "GetRun")
    assert step["line"].startswith("rule kfp.runs.terminate.effect on RunService.GetRun: expected ")
    assert step["description"] == effect.description and effect.description
    assert step["spec"] == {"file": effect.source, "line": effect.line} and effect.source
    assert step["reproducer"]["method"] == "api.RunService.GetRun"
    assert "no-such-run" in step["reproducer"]["request"] and "buf curl" in step["reproducer"]["command"]
    assert {"family", "suite", "expected", "actual", "detail", "hypothesis_example", "nodeid"} <= set(step)
    case = next(c for c in report["cases"] if c["rule"] == "kfp.runs.terminate.effect")
    assert case["method"] == "GetRun" and case["line"] == step["line"]  # the case list agrees

    # The property's falsifying example, with the values hypothesis drew.
    prop = failures["kfp.runs.list.pagination"]
    assert "size=3" in prop["hypothesis_example"] and "name='alpha'" in prop["hypothesis_example"], prop
    assert prop["description"] == spec_rules.load("kfp").rule("kfp.runs.list.pagination").description

    # The terminal summary: under each FAIL line, the rule and where it is written, the example.
    summary = done.stdout.split("protoconform ====")[-1]
    where = f"{effect.source}:{effect.line}"
    assert f"    rule: {effect.description} ({where})" in summary, summary
    assert "    falsifying example:" in summary and "size=3," in summary, summary

    # JUnit: the same, as properties of the failed case.
    properties = {
        (p.get("name"), p.get("value"))
        for case in ET.parse(junit).getroot().iter("testcase")
        for p in case.iter("property")
    }
    assert ("spec", where) in properties and ("failed_method", "RunService.GetRun") in properties
    assert ("description", effect.description) in properties


def test_the_falsifying_example_shows_drawn_values() -> None:
    """schemathesis (a pytest plugin here too) blanks hypothesis' printer; the harness restores it."""

    @harness_settings(10)
    @given(size=st.integers(1, 5), data=st.data())
    def prop(size: int, data: st.DataObject) -> None:
        word = data.draw(st.sampled_from(["x", "y"]), label="word")
        if size > 1:
            raise Mismatch("size 1", f"size {size} with {word}")

    with pytest.raises(Mismatch) as failed:
        run_property(prop)
    notes = hypothesis_notes(failed.value)
    assert "size=2," in notes and "Draw 1 (word): 'x'" in notes, notes


class Counter(stateful.RuleBasedStateMachine):
    """A model that breaks once its total passes 4: the minimal sequence is a few steps long."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    @stateful.rule(step=st.integers(1, 3))
    def add(self, step: int) -> None:
        self.total += step
        if self.total > 4:
            raise Mismatch("a total of at most 4", self.total, rule="toy.total")


def test_a_state_machine_failure_shows_its_step_sequence() -> None:
    with pytest.raises(Mismatch) as failed:
        run_machine(Counter, seed=0, max_examples=20)
    notes = hypothesis_notes(failed.value)
    assert "state = Counter()" in notes and "state.add(step=" in notes, notes


def test_a_mismatch_replayed_from_a_group_keeps_the_groups_notes() -> None:
    inner = Mismatch("a", "b")
    try:
        try:
            group = BaseExceptionGroup("flaky", [inner])
            group.add_note("Failing test case: prop(\n    size=4,\n)")
            raise group
        except BaseExceptionGroup:
            raise inner from None
    except Mismatch as exc:
        assert hypothesis_notes(exc) == "Failing test case: prop(\n    size=4,\n)"


def test_every_shipped_rule_knows_where_it_is_written() -> None:
    root = Path(spec_rules.__file__).resolve().parent.parent
    for family in ("kfp", "armonik"):
        for rule in spec_rules.load(family).rules.values():
            assert rule.source.startswith(f"specs/{family}/") and rule.line > 0, rule.id
            text = (root / rule.source).read_text(encoding="utf-8").splitlines()[rule.line - 1]
            assert text.lstrip().startswith("- id:") and rule.id in text, (rule.where, text)
    assert rule_of("kfp.runs.get.not-found", "armonik") is not None  # found in its own family
    assert rule_of("no.such.rule") is None and rule_of("") is None


def test_flow_and_block_rules_both_get_their_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "# header\nrules:\n  - id: toy.block\n    kind: behaviour\n    method: S.M\n"
        "  - {id: toy.flow, kind: behaviour, method: S.M}\n",
        encoding="utf-8",
    )
    loaded = spec_rules.load_folder("toy", tmp_path, [])
    assert loaded.rule("toy.block").where == "specs/toy/a.yaml:3"
    assert loaded.rule("toy.flow").where == "specs/toy/a.yaml:6"
    # Where a rule is written is not part of what it means.
    assert loaded.rule("toy.block") == spec_rules.parse("toy", [{"rules": [_raw("toy.block")]}], []).rule(
        "toy.block"
    )


def _raw(rule_id: str) -> dict[str, Any]:
    return {"id": rule_id, "kind": "behaviour", "method": "S.M"}


def test_json_failures_are_objects_and_known_ones_keep_their_reason() -> None:
    report = Report(target={}, families=["toy"], suites=["rules"], seed=0, max_examples=1, read_only=False,
                    lenient=False)  # fmt: skip
    spec = {"file": "specs/toy/a.yaml", "line": 3}
    common = {"line": "rule toy.a on Toys.GetToy: expected X, got Y", "expected": "X", "actual": "Y"}
    report.results = [
        CaseResult("n1", "toy", "toy.v1.Toys", "GetToy", "rules", "toy.a", "failed", spec=spec, **common),
        CaseResult(
            "n2", "toy", "toy.v1.Toys", "GetToy", "rules", "toy.a", "known", reason="ticket 1", **common
        ),
    ]
    data = report.as_dict()
    (failure,) = data["failures"]
    assert failure["spec"] == spec and failure["line"] == common["line"] and "reason" not in failure
    for key in (
        "rule",
        "description",
        "family",
        "suite",
        "service",
        "method",
        "expected",
        "actual",
        "detail",
    ):
        assert key in failure
    assert set(failure["reproducer"] or {}) <= {"method", "request", "command"}
    (known,) = data["known"]
    assert known["line"] == common["line"] and known["reason"] == "ticket 1"
    assert json.loads(json.dumps(data)) == data  # plain JSON


def test_a_deviation_the_server_does_not_repeat_on_replay_is_reported_as_itself() -> None:
    """A server broken by an earlier call answers differently when hypothesis replays the sequence,
    which raises a flaky-data error while handling the deviation: the deviation is what is reported."""
    calls = {"n": 0}

    @harness_settings(10)
    @given(data=st.data())
    def prop(data: st.DataObject) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            data.draw(st.integers(0, 3), label="first")
        # on replay the broken "server" fails before the test draws what it drew the first time
        raise Mismatch("OK", "INTERNAL", rule="toy.listed")

    with pytest.raises(Mismatch) as failed:
        run_property(prop)
    assert failed.value.rule == "toy.listed" and failed.value.actual == "INTERNAL"
