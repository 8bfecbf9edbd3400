"""The pytest plugin under ``protoconform check``; usable from any pytest run::

    pytest -p protoconform.conformance.plugin --target HOST:PORT --pyargs protoconform.conformance.suites

Options (group "protoconform") say where the target is, how to reach it and
what to run; fixtures give cases the target, a channel, the descriptor
registry, the rules, an ``rpc`` helper and the mock's control API.  Every case
carries ``@pytest.mark.conformance(family=, service=, method=, suite=, rule=)``,
which drives selection (``--api``, ``--suite``, ``--method``, ``--rule``,
``--read-only``), the baseline, the reports and the one-line failure form
``rule <id> on <Service.Method>: expected <X>, got <Y>``.

A case that may call methods other than its own lists them in the marker's
``calls=`` so ``--read-only`` can tell whether it changes state (methods are
classified by ``specs/<family>/effects.yaml``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from protoconform.conformance import DEFAULT_MAX_EXAMPLES, known_suites
from protoconform.conformance import baseline as baseline_module
from protoconform.conformance import examples as examples_module
from protoconform.conformance.caller import Caller, Reply, buf_curl, resolve_method, to_json
from protoconform.conformance.html import write_html
from protoconform.conformance.reports import CaseResult, Report, write_json
from protoconform.conformance.target import Target, TargetError, probe
from protoconform.conformance.verdict import Mismatch, short_method

MARKER = "conformance"


def conformance_families() -> list[str]:
    """Families ``--api all`` means: those with rules in specs/."""
    from protoconform.specs import FAMILIES
    from protoconform.specs.rules import load

    return [f for f in FAMILIES if load(f).rules]


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for value in values or [] for v in value.split(",") if v.strip()))


# -- options -----------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("protoconform", "protoconform conformance harness")

    def add(name: str, **kwargs: Any) -> None:
        # Another plugin may own a name (pytest-html has --html): fall back to --pc-<name>,
        # keeping the destination.
        kwargs.setdefault("dest", name.removeprefix("--").replace("-", "_"))
        try:
            group.addoption(name, **kwargs)
        except ValueError:
            group.addoption(f"--pc-{name.removeprefix('--')}", **kwargs)

    add("--target", metavar="HOST:PORT", help="gRPC address of the server under test")
    add("--rest", metavar="URL", default="", help="base URL of its REST gateway, for the rest suite")
    add(
        "--api", action="append", metavar="FAMILY", help="armonik, kfp, ... or all (default: all); repeatable"
    )
    add(
        "--suite", action="append", metavar="NAME", help="suites to run (default: all); repeatable/comma list"
    )
    add("--method", dest="pc_methods", action="append", metavar="SERVICE.METHOD", help="only these methods")
    add(
        "--rule",
        dest="pc_rules",
        action="append",
        metavar="RULE_ID",
        help="only cases whose marker names one of these rules",
    )
    add("--tls", action="store_true", help="connect with TLS")
    add("--ca", default="", metavar="PEM", help="CA certificate to trust (TLS)")
    add("--cert", default="", metavar="PEM", help="client certificate (mTLS)")
    add("--key", default="", metavar="PEM", help="client private key (mTLS)")
    add("--server-name", default="", metavar="NAME", help="TLS server name to verify, if not the host")
    add(
        "--token",
        default=os.environ.get("PROTOCONFORM_TOKEN", ""),
        help="bearer token (env PROTOCONFORM_TOKEN)",
    )
    add("--seed", type=int, default=0, help="seed for generated data; same seed, same run (default: 0)")
    add("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES, help="hypothesis examples per property")
    add("--junit", default="", metavar="PATH", help="write a JUnit XML report")
    add("--json", dest="pc_json", default="", metavar="PATH", help="write the JSON report")
    add("--html", dest="pc_html", default="", metavar="PATH", help="write the HTML report")
    add("--baseline", default="", metavar="FILE", help="known deviations that do not fail the run")
    add("--read-only", action="store_true", help="only cases whose calls change nothing")
    add("--namespace", default="", metavar="PREFIX", help="prefix of every name the run creates")
    add("--lenient", action="store_true", help="also accept the real servers' documented codes (real_code)")
    add("--control", default="", metavar="URL", help="control API of a protoconform mock (defects, journal)")
    add("--call-timeout", type=float, default=10.0, help="deadline of one call, seconds (default: 10)")
    add("--skip-probe", action="store_true", help=argparse.SUPPRESS)


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


STATE = pytest.StashKey[RunState]()
CASE = pytest.StashKey[dict[str, Any]]()


def _families(values: tuple[str, ...]) -> tuple[str, ...]:
    from protoconform.specs import FAMILIES

    if not values or "all" in values:
        return tuple(conformance_families())
    unknown = [v for v in values if v not in FAMILIES]
    if unknown:
        raise pytest.UsageError(
            f"--api: unknown family {', '.join(unknown)}; choose from {', '.join(FAMILIES)}, all"
        )
    return values


def _target(config: pytest.Config) -> Target | None:
    option = config.getoption
    if not option("target"):
        return None
    suites = _split(option("suite"))
    unknown = [s for s in suites if s not in known_suites()]
    if unknown:
        raise pytest.UsageError(
            f"--suite: unknown {', '.join(unknown)}; choose from {', '.join(known_suites())}"
        )
    namespace = option("namespace") or f"pc{option('seed')}-{int(time.time()) % 100000:05d}"
    return Target(
        address=option("target"),
        rest=option("rest"),
        families=_families(_split(option("api"))),
        suites=suites or tuple(known_suites()),
        methods=_split(option("pc_methods")),
        rules=_split(option("pc_rules")),
        tls=option("tls") or bool(option("ca") or option("cert")),
        ca=option("ca"),
        cert=option("cert"),
        key=option("key"),
        server_name=option("server_name"),
        token=option("token"),
        seed=option("seed"),
        max_examples=option("max_examples"),
        read_only=option("read_only"),
        namespace=namespace,
        lenient=option("lenient"),
        control=option("control"),
        timeout=option("call_timeout"),
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(family, service, method, suite, rule, calls=None, mutating=None): "
        "a protoconform conformance case",
    )
    target = _target(config)
    if target is not None and config.getoption("junit") and not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = config.getoption("junit")
    base = None
    if config.getoption("baseline"):
        try:
            base = baseline_module.load(config.getoption("baseline"))
        except baseline_module.BaselineError as exc:
            raise pytest.UsageError(str(exc)) from None
    report = Report(
        target={"address": target.address, "rest": target.rest, "tls": target.tls} if target else {},
        families=list(target.families) if target else [],
        suites=list(target.suites) if target else [],
        seed=target.seed if target else 0,
        max_examples=target.max_examples if target else 0,
        read_only=bool(target and target.read_only),
        lenient=bool(target and target.lenient),
    )
    config.stash[STATE] = RunState(
        target, report, base, config.getoption("pc_json"), config.getoption("pc_html"), set()
    )
    if target is not None:
        _hypothesis_profile(config, target)
        _describe_run(report, target)


def _hypothesis_profile(config: pytest.Config, target: Target) -> None:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "protoconform",
        max_examples=target.max_examples,
        deadline=None,
        database=None,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )
    settings.load_profile("protoconform")
    if getattr(config.option, "hypothesis_seed", None) is None:
        # Same --seed, same generated data (the hypothesis plugin reads this option too).
        config.option.hypothesis_seed = str(target.seed)
        try:
            from hypothesis import core

            core.global_force_seed = target.seed
        except (ImportError, AttributeError):
            pass


def _describe_run(report: Report, target: Target) -> None:
    from protoconform.specs import load_inventory
    from protoconform.specs.rules import load

    for family in target.families:
        services: dict[str, list[str]] = {}
        for service in load_inventory(family)["services"]:
            services[service["name"]] = [m["name"] for m in service["methods"]]
        report.methods[family] = services
        report.rules[family] = sorted(load(family).rules)


def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None or state.target is None or session.config.getoption("skip_probe"):
        return
    if session.config.getoption("collectonly"):
        return
    try:
        probe(state.target)
    except TargetError as exc:
        state.probe_error = str(exc)
        pytest.exit(f"protoconform: {exc}", returncode=2)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Suite modules are not named test_*.py: collect them when their folder is collected
    (``--pyargs protoconform.conformance.suites``); files named on the command line pytest
    collects by itself."""
    from protoconform.conformance import suites

    folder = Path(suites.__file__).resolve().parent
    if (
        file_path.suffix == ".py"
        and file_path.resolve().parent == folder
        and file_path.stem in known_suites()
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


# -- selection ----------------------------------------------------------------------------


def case_info(item: pytest.Item) -> dict[str, Any] | None:
    """The conformance marker of an item, normalised (full service name, method name)."""
    if CASE in item.stash:
        return item.stash[CASE]
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        return None
    kwargs = dict(mark.kwargs)
    service = str(kwargs.get("service", ""))
    method = str(kwargs.get("method", ""))
    if "." in method:
        prefix, _, method = method.rpartition(".")
        service = service or prefix
    family = str(kwargs.get("family", ""))
    if service and "." not in service:
        from protoconform.specs.registry import default_registry

        matches = [s for s in default_registry().families.get(family, []) if s.rpartition(".")[2] == service]
        service = matches[0] if matches else service
    calls = kwargs.get("calls")
    info = {
        "family": family,
        "service": service,
        "method": method,
        "suite": str(kwargs.get("suite", "")),
        "rule": str(kwargs.get("rule", "") or ""),
        "calls": tuple(calls) if calls is not None else ((f"{service}.{method}",) if method else ()),
        "mutating": kwargs.get("mutating"),
    }
    item.stash[CASE] = info
    return info


def _is_mutating(info: dict[str, Any]) -> tuple[bool, str]:
    if info["mutating"] is not None:
        return bool(info["mutating"]), info["method"]
    from protoconform.specs.registry import default_registry

    registry = default_registry()
    for name in info["calls"]:
        try:
            method = resolve_method(registry, name)
        except KeyError:
            return True, short_method(name)  # unknown: assume the worst
        full = f"{method.service}.{method.name}"
        try:
            if examples_module.book(method.family).mutating(full):
                return True, short_method(full)
        except examples_module.ExampleError:
            return True, short_method(full)
    return False, ""


def _wanted_method(info: dict[str, Any], wanted: tuple[str, ...]) -> bool:
    full = f"{info['service']}.{info['method']}"
    return any(w in (full, short_method(full), info["method"]) for w in wanted)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    target = state.target
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        info = case_info(item)
        if info is None:
            keep.append(item)
            continue
        if target is None:
            item.add_marker(pytest.mark.skip(reason="no --target given"))
            keep.append(item)
            continue
        if (
            info["family"] not in target.families
            or info["suite"] not in target.suites
            or (target.methods and not _wanted_method(info, target.methods))
            or (target.rules and info["rule"] not in target.rules)
        ):
            dropped.append(item)
            continue
        if target.read_only:
            mutating, which = _is_mutating(info)
            if mutating:
                dropped.append(item)
                _record(state, item, info, "skipped", reason=f"read-only run: the case would call {which}")
                continue
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# -- fixtures -----------------------------------------------------------------------------


def _state(request: pytest.FixtureRequest) -> RunState:
    state = request.config.stash.get(STATE, None)
    if state is None or state.target is None:
        pytest.skip("no --target given")
    return state


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """The server under test and the options of this run."""
    state = _state(request)
    assert state.target is not None
    return state.target


@pytest.fixture(scope="session")
def registry() -> Any:
    """Descriptors of every family (protoconform.specs.registry.default_registry())."""
    from protoconform.specs.registry import default_registry

    return default_registry()


@pytest.fixture(scope="session")
def rules() -> Callable[[str], Any]:
    """``rules(family)`` -> the family's FamilyRules from specs/."""
    from protoconform.specs.rules import load

    return load


@pytest.fixture(scope="session")
def examples() -> Callable[[str], examples_module.FamilyExamples]:
    """``examples(family)`` -> valid requests and effects from specs/<family>/examples.yaml."""
    return examples_module.book


@pytest.fixture(scope="session")
def channel(target: Target) -> Iterator[grpc.Channel]:
    """A channel to the target with the run's transport, credentials and token."""
    ch = target.channel()
    yield ch
    ch.close()


@pytest.fixture(scope="session")
def control(target: Target) -> Iterator[Any]:
    """The mock's control API client, or None when the target is not a protoconform mock."""
    if not target.control:
        yield None
        return
    from protoconform.conformance.control import ControlClient

    client = ControlClient(target.control)
    yield client
    client.close()


@pytest.fixture
def rpc(channel: grpc.Channel, registry: Any, target: Target) -> Caller:
    """Call any method by name; every reply is recorded for the reproducer."""
    return Caller(channel, registry, target)


@pytest.fixture(scope="session")
def namespace(target: Target) -> str:
    """Prefix of every name this run creates on the target."""
    return target.namespace


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], None]]]:
    """Undo actions (best effort), run in reverse order after the case."""
    actions: list[Callable[[], None]] = []
    yield actions
    for action in reversed(actions):
        with contextlib.suppress(Exception):
            action()


@pytest.fixture
def rng(request: pytest.FixtureRequest, target: Target) -> random.Random:
    """Random numbers that depend only on --seed and the case."""
    return random.Random(f"{target.seed}:{request.node.nodeid}")


@pytest.fixture
def scenario(
    rpc: Caller, namespace: str, rng: random.Random, cleanup: list[Callable[[], None]], control: Any
) -> examples_module.Scenario:
    """Runs the examples of specs/<family>/examples.yaml (steps, valid request, cleanup)."""
    return examples_module.Scenario(rpc, namespace, rng, cleanup, control)


# -- outcomes ------------------------------------------------------------------------------


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


def _record(
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
        _record(state, item, info, "passed", duration=duration)
        return
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _record(state, item, info, "skipped", duration=duration, reason=reason.removeprefix("Skipped: "))
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
        known = _record(
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
    failed = _record(
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
    for family, row in report.scores().items():
        if not any(row[outcome] for outcome in ("passed", "failed", "known", "skipped")):
            continue  # nothing of this family was selected
        score = "n/a" if row["score"] is None else f"{row['score']:.1f}%"
        write(
            f"{family}: score {score} ({row['passed']} passed, {row['failed']} failed, "
            f"{row['known']} known, {row['skipped']} skipped)"
        )
    for entry in report.stale_baseline:
        write(f"stale baseline entry: {entry['rule']} {entry['method']}".rstrip())
    for path in filter(None, [getattr(config.option, "xmlpath", None), state.json_path, state.html_path]):
        write(f"report: {Path(path)}")
    write(f"elapsed: {report.elapsed:.1f} s")
