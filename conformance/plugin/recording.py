"""What a run records: each case's outcome (with the baseline applied), the failure line, the
failed rule's description and place in specs, hypothesis' falsifying example and a reproducer,
and at the end the JSON and HTML reports and the terminal summary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from protoconform.conformance import baseline as baseline_module
from protoconform.conformance.caller import Caller, Reply, buf_curl, resolve_method, to_json
from protoconform.conformance.html import write_html
from protoconform.conformance.plugin.cases import case_info
from protoconform.conformance.plugin.scope import Scope
from protoconform.conformance.reports import CaseResult, Report, write_json
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch, short_method

if TYPE_CHECKING:
    from protoconform.specs.rules import Rule


@dataclass
class RunState:
    """What the plugin keeps for one pytest session."""

    target: Target | None
    report: Report
    baseline: baseline_module.Baseline | None
    json_path: str
    html_path: str
    used_baseline: set[int]
    probe_error: str = ""
    scope: Scope | None = None  # which selected families the target serves (none under --list)


STATE = pytest.StashKey[RunState]()
ALSO_CHECKED = pytest.StashKey[list[str]]()
INDENT = "    "  # lines under a FAIL line in the terminal summary


def _show_hypothesis_values() -> None:
    """Give hypothesis its own printer back.

    schemathesis (imported by the rest suite, and loaded by pytest as a plugin) replaces the
    printer hypothesis writes falsifying examples with by one that prints nothing, which
    speeds up its own runs but leaves every failing property reading ``size=,``.  Its setup
    runs once (then marks itself done), so it is run here first and then undone.
    """
    try:
        from hypothesis import core
        from hypothesis.vendor import pretty
        from schemathesis.generation.hypothesis import setup
    except ImportError:  # a base install: no harness extras, no check runs
        return
    setup()
    if getattr(core, "RepresentationPrinter", None) is not pretty.RepresentationPrinter:
        core.RepresentationPrinter = pretty.RepresentationPrinter  # type: ignore[attr-defined]


_show_hypothesis_values()


def checked_too(item: pytest.Item, *rules: str) -> None:
    """Say that the running case also checked these rules (besides the one it is named after):
    coverage counts them when the case ran (a skipped case checked nothing)."""
    found = item.stash.setdefault(ALSO_CHECKED, [])
    found.extend(r for r in rules if r and r not in found)


def _reproducer(
    target: Target | None, reply: Reply | None, explicit: dict[str, str] | None
) -> dict[str, str] | None:
    if explicit:
        return explicit
    if reply is None or target is None:
        return None
    return {
        "method": reply.name,
        "request": "\n".join(to_json(r, indent=2) for r in reply.requests) or "{}",
        "command": buf_curl(target, reply),
    }


def record(
    state: RunState, item: pytest.Item, info: dict[str, Any], outcome: str, **fields: Any
) -> CaseResult:
    result = CaseResult(
        nodeid=item.nodeid,
        family=info["family"],
        service=info["service"],
        method=info["method"],
        suite=info["suite"],
        rule=info["rule"],
        outcome=outcome,
        also_checked=list(item.stash.get(ALSO_CHECKED, [])),
        **fields,
    )
    state.report.results.append(result)
    return result


def _locate(result: CaseResult, rule: str, method: str) -> None:
    """A failure belongs to the rule and the method of the call that failed (a ``then:`` step, a
    model's call of another method) rather than to its marker; it says what the rule asks and
    where specs write it."""
    result.rule = rule
    spec_rule = rule_of(rule, result.family)
    if spec_rule is not None:
        result.description = spec_rule.description
        result.spec = {"file": spec_rule.source, "line": spec_rule.line} if spec_rule.source else None
    if method and method != result.service:
        from protoconform.specs.registry import default_registry

        try:
            found = resolve_method(default_registry(), method)
        except KeyError:
            return
        result.service, result.method = found.service, found.name


def rule_of(rule_id: str, family: str = "") -> Rule | None:
    """The rule of specs with this id (looked for in ``family`` first), or None."""
    if not rule_id:
        return None
    from protoconform.specs import FAMILIES
    from protoconform.specs.rules import load

    for name in dict.fromkeys([family, rule_id.partition(".")[0], *FAMILIES]):
        try:
            found = load(name).rules.get(rule_id) if name else None
        except (KeyError, ValueError, OSError):
            continue
        if found is not None:
            return found
    return None


def hypothesis_notes(exc: BaseException | None) -> str:
    """The falsifying example hypothesis attached to a failure (as exception notes): the drawn
    values of a property, the step sequence of a state machine.  A deviation seen once but not
    replayed is re-raised from inside hypothesis' exception group, whose notes then tell it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        notes = [str(n) for n in getattr(exc, "__notes__", None) or () if str(n).strip()]
        if notes:
            return "\n".join(notes)
        exc = exc.__context__ if isinstance(exc.__context__, BaseExceptionGroup) else None
    return ""


def _spec_line(result: CaseResult) -> str:
    """The failed rule's description and where specs write it, for the lines under a failure."""
    where = f" ({result.spec_location})" if result.spec_location else ""
    return f"rule: {result.description or '(no description)'}{where}" if result.rule else ""


def failure_block(result: CaseResult) -> list[str]:
    """The lines that follow a FAIL or KNOWN line: the rule, the falsifying example, the reproducer."""
    lines = [_spec_line(result)] if result.rule else []
    if result.hypothesis_example:
        lines.append("falsifying example:")
        lines += [INDENT + line for line in result.hypothesis_example.splitlines()]
    if result.reproducer:
        lines.append(f"reproducer: {result.reproducer['command']}")
    return [line for line in lines if line]


def _failure_line(rule: str, method: str, suite: str, text: str, service: str = "") -> str:
    """``rule <id> on <Service.Method>: <text>``; ``service`` names a service-level case's service."""
    if not method:
        where = "(service)"
    else:
        where = method.rpartition(".")[2] if method == service else short_method(method)
    return f"rule {rule} on {where}: {text}" if rule else f"{suite} check on {where}: {text}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    state = item.config.stash.get(STATE, None)
    info = case_info(item)
    if state is None or info is None or state.target is None:
        return report
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _conclude(state, item, info, call, report)
    return report


def _conclude(state: RunState, item: pytest.Item, info: dict[str, Any], call: Any, report: Any) -> None:
    duration = report.duration
    where = f"{info['service']}.{info['method']}" if info["method"] else info["service"]
    for key, value in (
        ("family", info["family"]),
        ("suite", info["suite"]),
        ("rule", info["rule"]),
        ("method", short_method(where) if where else ""),
    ):
        item.user_properties.append((key, value))  # JUnit <properties> of every case
    if report.passed:
        record(state, item, info, "passed", duration=duration)
        return
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        record(state, item, info, "skipped", duration=duration, reason=reason.removeprefix("Skipped: "))
        return
    exc = call.excinfo.value if call.excinfo is not None else None
    rule, method = info["rule"], f"{info['service']}.{info['method']}" if info["method"] else info["service"]
    rpc = item.funcargs.get("rpc") if hasattr(item, "funcargs") else None
    reply = rpc.last() if isinstance(rpc, Caller) else None
    explicit = None
    notes = hypothesis_notes(exc)
    if isinstance(exc, Mismatch):
        rule = exc.rule if exc.rule is not None else rule
        # The failing call's method: the one the verdict names, else the one of its reply.
        method = exc.method or (exc.reply.name if isinstance(exc.reply, Reply) else "") or method
        reply = exc.reply if exc.reply is not None else reply
        explicit = exc.reproducer
        expected, actual, detail = exc.expected, exc.actual, exc.detail
        text = f"expected {expected}, got {actual}" + (f" ({exc.detail})" if exc.detail else "")
        traceback = ""
    else:
        first = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
        expected, actual, detail = "", f"{type(exc).__name__}: {first}", ""
        text = actual
        traceback = str(report.longreprtext)[-4000:]
    line = _failure_line(rule, method, info["suite"], text, "" if info["method"] else info["service"])
    reproducer = _reproducer(state.target, reply, explicit)
    deviation = state.baseline.match(rule, method) if state.baseline else None
    fields = {
        "duration": duration,
        "line": line,
        "expected": expected,
        "actual": actual,
        "details": traceback,
        "detail": detail,
        "hypothesis_example": notes,
        "reproducer": reproducer,
    }
    if deviation is not None:
        state.used_baseline.add(id(deviation))
        report.outcome = "skipped"
        report.wasxfail = f"known deviation (baseline): {deviation.reason}"
        result = record(state, item, info, "known", reason=deviation.reason, **fields)
    else:
        result = record(state, item, info, "failed", **fields)
    _locate(result, rule, method)
    item.user_properties += [
        ("failed_rule", rule),
        ("failed_method", short_method(method)),
        ("expected", expected),
        ("actual", actual),
    ]
    for key, value in (
        ("description", result.description),
        ("spec", result.spec_location),
        ("hypothesis_example", notes),
    ):
        if value:
            item.user_properties.append((key, value))
    if deviation is None and isinstance(exc, Mismatch):
        # The one-line verdict and the lines under it (rule, falsifying example, reproducer) say it all.
        report.longrepr = "\n".join([line, *failure_block(result)])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None or state.target is None:
        return
    report = state.report
    report.finished = time.time()
    report.exit_status = int(exitstatus)
    if state.baseline:
        report.stale_baseline = [
            {"rule": d.rule, "method": d.method, "reason": d.reason}
            for d in state.baseline.deviations
            if id(d) not in state.used_baseline
        ]
    if state.probe_error or session.config.getoption("collectonly"):
        return
    _not_applicable(state)
    if report.below_min_coverage() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # the coverage gate failed the run
        report.exit_status = int(session.exitstatus)
    if state.json_path:
        write_json(report, state.json_path)
    if state.html_path:
        write_html(report, state.html_path)


def _not_applicable(state: RunState) -> None:
    """The rules of each family the target cannot be asked about (see :mod:`.scope`); a rule some
    case checked all the same (its service was reached another way) counts as checked."""
    if state.scope is None:
        return
    from protoconform.specs.rules import load

    checked = state.report.checked_rules()
    for family in state.report.rules:
        found = state.scope.not_applicable(family, load(family).rules.values())
        found = {rule: why for rule, why in found.items() if rule not in checked}
        if found:
            state.report.not_applicable[family] = found


def _coverage_text(report: Report, family: str) -> str:
    """``; rules checked N/M (P%, ...)`` for a family's score line, with the gate when there is one."""
    covered = report.coverage().get(family)
    if covered is None:
        return ""
    notes = [f"{covered['percent']:.1f}%"]
    if covered["not_checkable"]:
        notes.append(f"{covered['not_checkable']} not checkable")
    if covered["not_applicable"]:
        notes.append(f"{covered['not_applicable']} not applicable to this target")
    if report.min_coverage is not None:
        met = "below" if family in report.below_min_coverage() else "meets"
        notes.append(f"{met} --min-coverage {report.min_coverage:g}%")
    return f"; rules checked {covered['checked']}/{covered['checkable']} ({', '.join(notes)})"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or state.target is None or state.probe_error or config.getoption("collectonly"):
        return
    report = state.report
    write = terminalreporter.write_line
    terminalreporter.section("protoconform")
    for outcome, label in (("failed", "FAIL"), ("known", "KNOWN")):
        for result in report.results:
            if result.outcome == outcome:
                known = f" [baseline: {result.reason}]" if outcome == "known" else ""
                write(f"{label} {result.line}{known}")
                for line in failure_block(result):
                    write(INDENT + line)
    for line in state.scope.lines() if state.scope else []:
        write(line)
    for family, row in report.scores().items():
        if not any(row[outcome] for outcome in ("passed", "failed", "known", "skipped")):
            continue  # nothing of this family was selected
        score = "n/a" if row["score"] is None else f"{row['score']:.1f}%"
        write(
            f"{family}: score {score} ({row['passed']} passed, {row['failed']} failed, "
            f"{row['known']} known, {row['skipped']} skipped){_coverage_text(report, family)}"
        )
        unchecked = report.uncovered_rules().get(family)
        if unchecked:
            write(f"{family}: rules no case checked: {', '.join(unchecked)}")
        unspecified = report.unspecified_services.get(family)
        if unspecified:
            names = ", ".join(name.rpartition(".")[2] for name in unspecified)
            write(f"{family}: services no rule in specs describes (nothing of them checked): {names}")
        foreign = report.not_applicable.get(family)
        if foreign:
            write(
                f"{family}: rules not applicable to this target (about services it does not serve): "
                f"{', '.join(sorted(foreign))}"
            )
    for family in report.below_min_coverage():
        percent = report.coverage()[family]["percent"]
        write(f"FAIL {family}: rule coverage {percent:.1f}% is below --min-coverage {report.min_coverage:g}%")
    for entry in report.stale_baseline:
        write(f"stale baseline entry: {entry['rule']} {entry['method']}".rstrip())
    for path in filter(None, [getattr(config.option, "xmlpath", None), state.json_path, state.html_path]):
        write(f"report: {Path(path)}")
    write(f"elapsed: {report.elapsed:.1f} s")
