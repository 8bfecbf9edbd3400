"""Known deviations that do not fail a run.

A baseline file (YAML or JSON) lists failures that are accepted for now, each
with a reason::

    deviations:
      - rule: armonik.results.create.session-not-found
        method: Results.CreateResults        # optional: every method of the rule when absent
        reason: "our server creates results lazily; tracked in ISSUE-12"

A failing case whose rule (and method, when given) matches an entry is
reported as *known* instead of failed; it still counts against the score.
Entries that match no failure are listed as *stale* so the file can shrink.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from protoconform.conformance.verdict import short_method


class BaselineError(ValueError):
    pass


@dataclass(frozen=True)
class Deviation:
    rule: str
    method: str  # "" = every method of the rule
    reason: str

    def matches(self, rule: str, method: str) -> bool:
        return self.rule == rule and (not self.method or short_method(self.method) == short_method(method))


@dataclass
class Baseline:
    deviations: list[Deviation]

    def match(self, rule: str, method: str) -> Deviation | None:
        if not rule:
            return None
        for deviation in self.deviations:
            if deviation.matches(rule, method):
                return deviation
        return None


def load(path: str | Path) -> Baseline:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise BaselineError(f"baseline {path} is not YAML/JSON: {exc}") from None
    entries = data.get("deviations") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise BaselineError(f"baseline {path}: expected a list under `deviations:`")
    deviations = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("rule") or not entry.get("reason"):
            raise BaselineError(f"baseline {path}: entry {i} needs `rule` and `reason`")
        deviations.append(Deviation(str(entry["rule"]), str(entry.get("method", "")), str(entry["reason"])))
    return Baseline(deviations)
