"""`protoconform check --api all` against the clean mock, with three seeds.

Each seed runs on a fresh mock (two at a time).  Every run: all suites pass, nothing
fails.  Seed 0 writes the JUnit, JSON and HTML reports, which are checked.  Every case
has the same outcome under every seed (no flaky case).  The elapsed time is printed
and must stay under five minutes.  Every rule in specs is checked by some case, or says
why no client can check it (``not_checkable``): the runs gate on ``--min-coverage 100``,
and a rule no case checked is listed with its description and where specs write it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from engine_support import CheckRun, Engine, run_check
from protoconform.conformance import known_suites
from protoconform.conformance.control import ControlClient
from protoconform.mockserver.launcher import ServerProcess
from protoconform.specs import rules as spec_rules

pytestmark = pytest.mark.slow  # three full checks of every family: the end-to-end tier
BUDGET_SECONDS = 300
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[CheckRun, Path]]:
    folder = tmp_path_factory.mktemp("check")

    def one(seed: int) -> tuple[CheckRun, Path]:
        reports = (
            ["--junit", str(folder / "check.xml"), "--html", str(folder / "check.html")] if seed == 0 else []
        )
        with ServerProcess() as process:
            engine = Engine(process, ControlClient(process.http_url))
            args = ["--api", "all", "--seed", str(seed), "--min-coverage", "100", *reports]
            return run_check(args, folder, name=f"seed{seed}", engine=engine), folder

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(SEEDS, pool.map(one, SEEDS), strict=True))


def _failures(run: CheckRun) -> str:
    lines = [line for line in run.stdout.splitlines() if line.startswith("FAIL ")]
    return "\n".join(lines) or run.stdout[-4000:] + run.stderr[-2000:]


def test_clean_mock_passes_every_suite(runs: dict[int, tuple[CheckRun, Path]]) -> None:
    run, folder = runs[0]
    assert run.status == 0, _failures(run)
    elapsed = [line for line in run.stdout.splitlines() if line.startswith("elapsed: ")]
    assert elapsed, run.stdout[-2000:]
    print(f"\ncheck --api all against the clean mock: {elapsed[-1]} (wall {run.elapsed:.1f} s)")
    assert run.elapsed < BUDGET_SECONDS

    report = run.report
    assert report is not None and report["totals"]["failed"] == 0
    assert set(report["families"]) == {"armonik", "kfp", "flyte"}
    assert all(row["percent"] == 100.0 for row in report["coverage"].values()), report["uncovered_rules"]
    suites_passed = {case["suite"] for case in report["cases"] if case["outcome"] == "passed"}
    assert suites_passed == set(known_suites()), suites_passed  # every suite had passing cases
    assert all(row["score"] == 100.0 for row in report["scores"].values()), report["scores"]

    root = ET.parse(folder / "check.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    assert int(suite.get("failures", "1")) == 0 and int(suite.get("errors", "1")) == 0
    cases = suite.findall("testcase")
    assert len(cases) == len(report["cases"])
    properties = {p.get("name") for case in cases for p in case.iter("property")}
    assert {"rule", "method", "family", "suite"} <= properties

    page = (folder / "check.html").read_text()
    assert all(f'id="score-{family}"' in page for family in ("armonik", "kfp", "flyte"))
    assert "No failures." in page


def test_three_seeds_no_failure_no_flaky(runs: dict[int, tuple[CheckRun, Path]]) -> None:
    outcomes = {}
    for seed, (run, _) in runs.items():
        assert run.status == 0, f"seed {seed}:\n{_failures(run)}"
        assert run.report is not None
        outcomes[seed] = {case["nodeid"]: case["outcome"] for case in run.report["cases"]}
    first = outcomes[SEEDS[0]]
    for seed in SEEDS[1:]:
        changed = {k for k in first.keys() | outcomes[seed].keys() if first.get(k) != outcomes[seed].get(k)}
        assert not changed, f"seed {seed} differs on {sorted(changed)[:10]}"


def test_every_rule_is_covered_or_marked_not_checkable(runs: dict[int, tuple[CheckRun, Path]]) -> None:
    run, _ = runs[0]
    report = run.report
    assert report is not None, run.stdout[-3000:] + run.stderr[-3000:]
    assert report["not_applicable_rules"] == {}, "the mock serves every service"
    uncovered = {family: ids for family, ids in report["uncovered_rules"].items() if ids}
    # The gate says the same as the list, on the terminal and in the JSON report.
    assert sorted(report["below_min_coverage"]) == sorted(uncovered), report["coverage"]
    for family in uncovered:
        assert f"FAIL {family}: rule coverage " in run.stdout, run.stdout[-3000:]
    lines = []
    for family, ids in sorted(uncovered.items()):
        row = report["coverage"][family]
        lines.append(f"{family}: {len(ids)} of {row['checkable']} checkable rules unchecked")
        rules = spec_rules.load(family).rules
        lines += [f"  {rule} ({rules[rule].where}): {rules[rule].description}" for rule in ids]
    assert not uncovered, "rules no case checked and not marked not_checkable:\n" + "\n".join(lines)
