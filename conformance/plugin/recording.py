"""What a run records: each case's outcome (with the baseline applied), the failure line and
reproducer, and at the end the JSON and HTML reports and the terminal summary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from protoconform.conformance import baseline as baseline_module
from protoconform.conformance.caller import Caller, Reply, buf_curl, resolve_method, to_json
from protoconform.conformance.html import write_html
from protoconform.conformance.plugin.cases import case_info
from protoconform.conformance.plugin.scope import Scope
from protoconform.conformance.reports import CaseResult, Report, write_json
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch, short_method


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
    """A failure belongs to the rule and method it names (a model may name another than its marker)."""
    result.rule = rule
    if method and method != result.service:
        from protoconform.specs.registry import default_registry

        try:
            found = resolve_method(default_registry(), method)
        except KeyError:
            return
        result.service, result.method = found.service, found.name


def _failure_line(rule: str, method: str, suite: str, text: str) -> str:
    where = short_method(method) if method else "(service)"
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
    notes = "\n".join(getattr(exc, "__notes__", []) or [])
    if isinstance(exc, Mismatch):
        rule = exc.rule if exc.rule is not None else rule
        method = exc.method or method
        reply = exc.reply if exc.reply is not None else reply
        explicit = exc.reproducer
        expected, actual = exc.expected, exc.actual
        text = f"expected {expected}, got {actual}" + (f" ({exc.detail})" if exc.detail else "")
        details = notes
    else:
        expected, actual = (
            "",
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
        )
        text = actual
        details = "\n".join(filter(None, [notes, str(report.longreprtext)[-4000:]]))
    line = _failure_line(rule, method, info["suite"], text)
    reproducer = _reproducer(state.target, reply, explicit)
    deviation = state.baseline.match(rule, method) if state.baseline else None
    for key, value in (
        ("failed_rule", rule),
        ("failed_method", short_method(method)),
        ("expected", expected),
        ("actual", actual),
    ):
        item.user_properties.append((key, value))
    if deviation is not None:
        state.used_baseline.add(id(deviation))
        report.outcome = "skipped"
        report.wasxfail = f"known deviation (baseline): {deviation.reason}"
        known = record(
            state,
            item,
            info,
            "known",
            duration=duration,
            line=line,
            expected=expected,
            actual=actual,
            details=details,
            reason=deviation.reason,
            reproducer=reproducer,
        )
        _locate(known, rule, method)
        return
    failed = record(
        state,
        item,
        info,
        "failed",
        duration=duration,
        line=line,
        expected=expected,
        actual=actual,
        details=details,
        reproducer=reproducer,
    )
    _locate(failed, rule, method)
    if isinstance(exc, Mismatch):
        # The one-line verdict (plus hypothesis' notes and the reproducer) says it all.
        parts = [line]
        if notes:
            parts.append(notes)
        if reproducer:
            parts.append(f"reproducer: {reproducer['command']}")
        report.longrepr = "\n".join(parts)


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
    if report.below_min_coverage() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # the coverage gate failed the run
        report.exit_status = int(session.exitstatus)
    if state.json_path:
        write_json(report, state.json_path)
    if state.html_path:
        write_html(report, state.html_path)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or state.target is None or state.probe_error or config.getoption("collectonly"):
        return
    report = state.report
    write = terminalreporter.write_line
    terminalreporter.section("protoconform")
    for result in report.results:
        if result.outcome == "failed":
            write(f"FAIL {result.line}")
    for result in report.results:
        if result.outcome == "known":
            write(f"KNOWN {result.line} [baseline: {result.reason}]")
    for line in state.scope.lines() if state.scope else []:
        write(line)
    for family, row in report.scores().items():
        if not any(row[outcome] for outcome in ("passed", "failed", "known", "skipped")):
            continue  # nothing of this family was selected
        score = "n/a" if row["score"] is None else f"{row['score']:.1f}%"
        covered = report.coverage().get(family)
        coverage = ""
        if covered is not None:
            marked = f", {covered['not_checkable']} not checkable" if covered["not_checkable"] else ""
            coverage = (
                f"; rules checked {covered['checked']}/{covered['checkable']} "
                f"({covered['percent']:.1f}%{marked})"
            )
        write(
            f"{family}: score {score} ({row['passed']} passed, {row['failed']} failed, "
            f"{row['known']} known, {row['skipped']} skipped){coverage}"
        )
        unchecked = report.uncovered_rules().get(family)
        if unchecked:
            write(f"{family}: rules no case checked: {', '.join(unchecked)}")
    for family in report.below_min_coverage():
        percent = report.coverage()[family]["percent"]
        write(f"FAIL {family}: rule coverage {percent:.1f}% is below --min-coverage {report.min_coverage:g}%")
    for entry in report.stale_baseline:
        write(f"stale baseline entry: {entry['rule']} {entry['method']}".rstrip())
    for path in filter(None, [getattr(config.option, "xmlpath", None), state.json_path, state.html_path]):
        write(f"report: {Path(path)}")
    write(f"elapsed: {report.elapsed:.1f} s")
