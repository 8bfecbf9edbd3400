"""The score shows what was not checked: rule coverage per family, the unchecked rules named, rules
that cannot be checked over the wire apart, and --min-coverage as a gate."""

from __future__ import annotations

from pathlib import Path

from engine_support import Engine, engine_server, run_check  # noqa: F401  (fixture)
from protoconform.conformance.reports import CaseResult, Report
from protoconform.specs.rules import parse


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
    assert report.coverage()["toy"] == {"checked": 2, "checkable": 3, "not_checkable": 1, "percent": 66.7}
    assert report.uncovered_rules() == {"toy": ["toy.c"]}  # a skipped case checks nothing
    assert report.below_min_coverage() == ["toy"]
    assert _report().below_min_coverage() == []  # no gate unless asked


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

    gated = run_check(
        ["--api", "kfp", "--suite", "surface", "--min-coverage", "50"], tmp_path, engine=engine_server
    )
    assert gated.status == 1, gated.stdout[-2000:]
    assert "FAIL kfp: rule coverage 0.0% is below --min-coverage 50%" in gated.stdout
