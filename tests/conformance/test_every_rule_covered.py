"""Every rule in specs is checked by some case, or says why no client can check it (``not_checkable``).

The full default check runs against a clean mock (which serves every service, so no rule is set
apart as not applicable) with ``--min-coverage 100``; the test fails listing, per family, each
rule no case checked, with its description and where specs write it.
"""

from __future__ import annotations

from pathlib import Path

from engine_support import Engine, engine_server, run_check  # noqa: F401  (fixture)
from protoconform.specs import rules as spec_rules


def test_every_rule_is_covered_or_marked_not_checkable(
    engine_server: Engine,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    run = run_check(["--min-coverage", "100"], tmp_path, engine=engine_server)
    report = run.report
    assert report is not None, run.stdout[-3000:] + run.stderr[-3000:]
    assert report["families"], report["target"]
    assert report["not_applicable_rules"] == {}, "the mock serves every service"

    uncovered = {family: ids for family, ids in report["uncovered_rules"].items() if ids}
    # The gate says the same as the list, on the terminal and in the JSON report.
    assert sorted(report["below_min_coverage"]) == sorted(uncovered), report["coverage"]
    for family in uncovered:
        assert f"FAIL {family}: rule coverage " in run.stdout, run.stdout[-3000:]
    if uncovered:
        assert run.status == 1, run.stdout[-3000:]

    lines = []
    for family, ids in sorted(uncovered.items()):
        row = report["coverage"][family]
        lines.append(f"{family}: {len(ids)} of {row['checkable']} checkable rules unchecked")
        rules = spec_rules.load(family).rules
        lines += [f"  {rule} ({rules[rule].where}): {rules[rule].description}" for rule in ids]
    assert not uncovered, "rules no case checked and not marked not_checkable:\n" + "\n".join(lines)
