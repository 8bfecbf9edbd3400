"""A small sample of the mutation run end to end: the unmutated tree passes its own check, and two
mutants are each served from a copy and checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from protoconform.load.benchmarks.mutation import OUTCOMES

pytestmark = pytest.mark.slow

TRIAGE = Path(__file__).resolve().parents[1] / "load" / "benchmarks" / "mutation_triage.yaml"


def test_two_mutants(tmp_path: Path) -> None:
    summary = tmp_path / "mutation.json"
    # KFP's checks are the quickest: the run's plumbing is the same for every family
    command = [sys.executable, "-m", "protoconform.load.benchmarks.mutation", "--api", "kfp", "--count", "2"]
    done = subprocess.run(
        # One of the two (seed 1) makes the check hang: 60 s, not the default 180 s, judge it a timeout.
        [*command, "--jobs", "2", "--timeout", "60", "--triage", str(TRIAGE), "--json", str(summary)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    # 0 or 1 (a survivor not triaged yet, or a low score on two mutants): the run itself worked
    assert done.returncode in (0, 1), done.stdout + done.stderr
    out = done.stdout
    assert "baseline (unmutated): " in out
    for label in (
        "mutants run:  2",
        "killed:",
        "survived:",
        "equivalent:",
        "invalid:",
        "timeouts:",
        "score:",
    ):
        assert label in out, (label, out)

    report = json.loads(summary.read_text())
    totals = report["totals"]
    mutants = report["mutants"]
    assert len(mutants) == totals["run"] == 2 and report["families"] == ["kfp"]
    assert {m["outcome"] for m in mutants} <= set(OUTCOMES)
    assert totals["killed"] + totals["survived"] + totals["invalid"] == 2
    assert totals["killed"] == totals["killed_by_check"] + totals["killed_at_start"] + totals["timeouts"]
    assert 0 <= report["score"] <= 100
    assert report["baseline"]["outcome"] == "survived"  # the unmutated tree passes its own check
    assert report["passed"] == (done.returncode == 0)
    for mutant in mutants:
        assert mutant["id"].startswith(mutant["path"] + ":") and mutant["before"] != mutant["after"]
        assert mutant["path"].startswith("mockserver/apis/kfp/")
        if mutant["outcome"] == "killed":
            assert mutant["failing_rules"] or mutant["detail"], mutant
        if mutant["outcome"] == "survived":
            assert f"survivor {mutant['id']}" in out
