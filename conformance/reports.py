"""Results of a run as data, and the JSON report.

Every case of a run becomes a :class:`CaseResult`.  The :class:`Report` derives
what the other formats show: the score per family, the rule coverage (rules a case
checked out of the checkable rules in specs, the unchecked ones named; rules no client
can check and rules about services the target does not serve counted apart), the
matrix of service, method and suite, and the failures with their rule's description
and place in specs, hypothesis' falsifying example and a reproducer.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("passed", "failed", "known", "skipped")
# How a matrix cell sums up its cases: the worst outcome wins.
CELL_ORDER = ("failed", "known", "passed", "skipped")


@dataclass
class CaseResult:
    nodeid: str
    family: str
    service: str  # full service name
    method: str  # method name ("" for service-level cases)
    suite: str
    rule: str
    outcome: str  # passed | failed | known | skipped
    duration: float = 0.0
    line: str = ""  # "rule <id> on <Service.Method>: expected <X>, got <Y>"
    expected: str = ""
    actual: str = ""
    details: str = ""  # the traceback's end, for an error that is not a verdict
    reason: str = ""  # why skipped, or the baseline's reason for a known deviation
    reproducer: dict[str, str] | None = None  # {"method", "request", "command"}
    also_checked: list[str] = field(default_factory=list)  # rules the case checked besides its own
    detail: str = ""  # what the verdict adds to expected and actual
    hypothesis_example: str = ""  # the falsifying example (drawn values, or the minimal step sequence)
    description: str = ""  # the failed rule's description in specs
    spec: dict[str, Any] | None = None  # where the failed rule is written: {"file", "line"}

    @property
    def short_method(self) -> str:
        service = self.service.rpartition(".")[2]
        return f"{service}.{self.method}" if self.method else service

    @property
    def spec_location(self) -> str:
        """``specs/<family>/<file>.yaml:<line>``, or "" when the failure names no rule of specs."""
        if not self.spec:
            return ""
        return f"{self.spec['file']}:{self.spec['line']}" if self.spec.get("line") else self.spec["file"]

    def failure(self) -> dict[str, Any]:
        """A failed or known case as the JSON report lists it: what a person needs to act on it."""
        entry = {
            "rule": self.rule,
            "description": self.description,
            "spec": self.spec,
            "family": self.family,
            "suite": self.suite,
            "service": self.service,
            "method": self.method,
            "expected": self.expected,
            "actual": self.actual,
            "detail": self.detail,
            "hypothesis_example": self.hypothesis_example,
            "reproducer": self.reproducer,
            "line": self.line,
            "nodeid": self.nodeid,
            "traceback": self.details,
        }
        if self.outcome == "known":
            entry["reason"] = self.reason
        return entry


@dataclass
class Report:
    target: dict[str, Any]
    families: list[str]
    suites: list[str]
    seed: int
    max_examples: int
    read_only: bool
    lenient: bool
    started: float = field(default_factory=time.time)
    finished: float = 0.0
    results: list[CaseResult] = field(default_factory=list)
    methods: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # family -> service -> methods
    rules: dict[str, list[str]] = field(default_factory=dict)  # family -> rule ids in specs
    not_checkable: dict[str, dict[str, str]] = field(default_factory=dict)  # family -> rule id -> why
    # family -> rule id -> why: rules only about services the target does not serve
    not_applicable: dict[str, dict[str, str]] = field(default_factory=dict)
    unspecified_services: dict[str, list[str]] = field(default_factory=dict)  # no rule names them
    min_coverage: float | None = None  # --min-coverage: the run fails below it
    stale_baseline: list[dict[str, str]] = field(default_factory=list)
    exit_status: int = 0

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    def counts(self, family: str | None = None) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for r in self.results:
            if family is None or r.family == family:
                counts[r.outcome] += 1
        return counts

    def scores(self) -> dict[str, dict[str, Any]]:
        """Per family: outcome counts and the score, passed / (passed + failed + known)."""
        table = {}
        for family in self.families:
            counts = self.counts(family)
            judged = counts["passed"] + counts["failed"] + counts["known"]
            table[family] = {
                **counts,
                "score": round(100.0 * counts["passed"] / judged, 1) if judged else None,
            }
        return table

    def matrix(self) -> dict[str, dict[str, dict[str, dict[str, dict[str, int]]]]]:
        """family -> service -> method -> suite -> {outcome: count}; methods without cases stay empty."""
        grid: dict[str, dict[str, dict[str, dict[str, dict[str, int]]]]] = {}
        for family in self.families:
            services = grid.setdefault(family, {})
            for service, methods in self.methods.get(family, {}).items():
                for method in methods:
                    services.setdefault(service, {}).setdefault(method, {})
        for r in self.results:
            cell = (
                grid.setdefault(r.family, {})
                .setdefault(r.service, {})
                .setdefault(r.method or "(service)", {})
                .setdefault(r.suite, {})
            )
            cell[r.outcome] = cell.get(r.outcome, 0) + 1
        return grid

    @staticmethod
    def cell_state(cell: dict[str, int] | None) -> str:
        if not cell:
            return "n.a."
        for outcome in CELL_ORDER:
            if cell.get(outcome):
                return outcome
        return "n.a."

    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.outcome in ("failed", "known")]

    def _apart(self, family: str) -> set[str]:
        """Rules counted neither as checked nor as unchecked: marked ``not_checkable`` in specs, or
        not applicable to this target."""
        return set(self.not_checkable.get(family, {})) | set(self.not_applicable.get(family, {}))

    def checked_rules(self) -> set[str]:
        """Rules some case of this run checked (a skipped case checks nothing)."""
        return {
            rule for r in self.results if r.outcome != "skipped" for rule in (r.rule, *r.also_checked) if rule
        }

    def uncovered_rules(self) -> dict[str, list[str]]:
        """Rules of the selected families that no case of this run checked, apart from those
        marked ``not_checkable`` and those not applicable to the target."""
        checked = self.checked_rules()
        return {
            family: sorted(set(ids) - checked - self._apart(family)) for family, ids in self.rules.items()
        }

    def coverage(self) -> dict[str, dict[str, Any]]:
        """Per family: rules checked by a case of this run out of the checkable rules in specs."""
        table = {}
        uncovered = self.uncovered_rules()
        for family, ids in self.rules.items():
            marked = set(self.not_checkable.get(family, {})) & set(ids)
            foreign = set(self.not_applicable.get(family, {})) & set(ids) - marked
            checkable = len(ids) - len(marked) - len(foreign)
            checked = checkable - len(uncovered[family])
            table[family] = {
                "checked": checked,
                "checkable": checkable,
                "not_checkable": len(marked),
                "not_applicable": len(foreign),
                "percent": round(100.0 * checked / checkable, 1) if checkable else 100.0,
            }
        return table

    def below_min_coverage(self) -> list[str]:
        """Families whose rule coverage is under ``min_coverage`` (none when it is not set)."""
        if self.min_coverage is None:
            return []
        return [f for f, row in self.coverage().items() if row["percent"] < self.min_coverage]

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": "protoconform check",
            "target": self.target,
            "families": self.families,
            "suites": self.suites,
            "seed": self.seed,
            "max_examples": self.max_examples,
            "read_only": self.read_only,
            "lenient": self.lenient,
            "started": self.started,
            "elapsed_seconds": round(self.elapsed, 3),
            "exit_status": self.exit_status,
            "totals": self.counts(),
            "scores": self.scores(),
            "matrix": self.matrix(),
            "failures": [r.failure() for r in self.failures() if r.outcome == "failed"],
            "known": [r.failure() for r in self.failures() if r.outcome == "known"],
            "stale_baseline": self.stale_baseline,
            "coverage": self.coverage(),
            "min_coverage": self.min_coverage,
            "below_min_coverage": self.below_min_coverage(),
            "uncovered_rules": self.uncovered_rules(),
            "not_checkable_rules": self.not_checkable,
            "not_applicable_rules": self.not_applicable,
            "unspecified_services": self.unspecified_services,
            "cases": [{**asdict(r), "method": r.method} for r in self.results],
        }


def write_json(report: Report, path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report.as_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
