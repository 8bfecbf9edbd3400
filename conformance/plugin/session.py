"""Setting up a run: the target and report from the options, the baseline, the Hypothesis
profile and seed; and, before any case, a probe of the target and the families it serves."""

from __future__ import annotations

import pytest
from protoconform.conformance import baseline as baseline_module
from protoconform.conformance import hypothesis_profile
from protoconform.conformance.options import split_values
from protoconform.conformance.plugin.cases import MARKER
from protoconform.conformance.plugin.options import target_from_options
from protoconform.conformance.plugin.recording import STATE, RunState
from protoconform.conformance.plugin.scope import decide
from protoconform.conformance.reports import Report
from protoconform.conformance.target import Target, TargetError, probe


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(family, service, method, suite, rule, calls=None, mutating=None): "
        "a protoconform conformance case",
    )
    target = target_from_options(config)
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
        min_coverage=config.getoption("min_coverage"),
    )
    config.stash[STATE] = RunState(
        target, report, base, config.getoption("pc_json"), config.getoption("pc_html"), set()
    )
    if target is not None:
        _seed_hypothesis(config, target)
        _describe_run(report, target)


def _seed_hypothesis(config: pytest.Config, target: Target) -> None:
    """The run's Hypothesis profile, and its data seeded by ``--seed``."""
    hypothesis_profile.load(target.max_examples)
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
        family_rules = load(family)
        rules = family_rules.rules
        report.rules[family] = sorted(rules)
        report.unspecified_services[family] = sorted(set(services) - family_rules.services)
        report.not_checkable[family] = {i: r.not_checkable for i, r in rules.items() if r.not_checkable}


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(STATE, None)
    # --list shows the selection whatever the target serves (it needs no target at all).
    if state is None or state.target is None or config.getoption("collectonly"):
        return
    if not config.getoption("skip_probe"):
        try:
            probe(state.target)
        except TargetError as exc:
            state.probe_error = str(exc)
            pytest.exit(f"protoconform: {exc}", returncode=2)
    _scope(state, split_values(config.getoption("api")))


def _scope(state: RunState, named: tuple[str, ...]) -> None:
    """Leave out the families the target does not serve, before collection selects cases."""
    target = state.target
    assert target is not None
    scope = decide(target, named)
    state.scope = scope
    report = state.report
    report.target["scope"] = scope.as_dict()
    if not scope.skipped:
        return
    target.families = tuple(f for f in target.families if f not in scope.skipped)
    report.families = list(target.families)
    for family in scope.skipped:
        report.methods.pop(family, None)
        report.rules.pop(family, None)
        report.not_checkable.pop(family, None)
