"""The Flyte model against the in-process mock: quiet when the mock conforms, and a failure naming
the right rule when the mock is made to break the rule (a list that ignores filters, a reversed
sort, a token that restarts, two active launch plans, a different spec taken for the same one, a
terminated execution terminated again)."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from protoconform.conformance.caller import Caller
from protoconform.conformance.control import ControlClient
from protoconform.conformance.models import family_model, flyte, listing
from protoconform.conformance.models.base import Env, run_machine
from protoconform.conformance.models.machine import check_action
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch
from protoconform.mockserver.apis.flyte import executions as mock_executions
from protoconform.mockserver.apis.flyte import listing as mock_listing
from protoconform.mockserver.apis.flyte import registration as mock_registration
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import load


@pytest.fixture
def env(fresh_server):
    target = Target(fresh_server.grpc_address)
    channel = target.channel()
    control = ControlClient(fresh_server.http_url)
    yield Env(
        rpc=Caller(channel, default_registry(), target), rules=load("flyte"), namespace="t", control=control
    )
    control.close()
    channel.close()


def dialect(env: Env, method: str) -> listing.ListDialect:
    return next(d for d in flyte.lists(env) if method == d.METHOD)


def filters_hold(found: listing.ListDialect, population: listing.Population, examples: int = 15) -> None:
    items = found.walk(population, listing.BIG_PAGE, found.stable_sort()).items

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(where=found.filters(items))
    def check(where):
        listing.check_filter(found, population, where)

    check()


def test_the_model_keeps_the_contract():
    model = family_model("flyte")
    assert model is flyte.MODEL
    assert model.machines() == [flyte.ActivationMachine, flyte.RegistrationMachine, flyte.ExecutionMachine]
    methods = [d.METHOD for d in model.lists(Env.offline("flyte"))]
    assert methods == [
        "AdminService.ListTasks",
        "AdminService.ListWorkflows",
        "AdminService.ListLaunchPlans",
        "AdminService.ListExecutions",
        "AdminService.ListProjects",
        "AdminService.ListNamedEntities",
    ]


def test_lists_page_sort_and_filter_on_a_conforming_mock(env):
    for found in flyte.lists(env):
        population = found.populate()
        listing.check_contains(found, population)
        for size in (1, 4):
            listing.check_pagination(found, population, size)
        items = found.walk(population, listing.BIG_PAGE, found.stable_sort()).items
        for sort in found.sorts(items):
            listing.check_sort(found, population, sort)
        filters_hold(found, population)
    checked = set(env.take_checked())
    assert {"flyte.executions.update.effect", "flyte.projects.list.default"} <= checked


def test_ignored_filters_are_caught(env, monkeypatch):
    found = dialect(env, "AdminService.ListTasks")
    population = found.populate()
    monkeypatch.setattr(mock_listing, "parse_filters", lambda state, text, primary: [])
    with pytest.raises(Mismatch) as caught:
        filters_hold(found, population, examples=50)
    assert caught.value.rule == "flyte.lists.filter-applied"


def test_a_reversed_sort_is_caught(env, monkeypatch):
    found = dialect(env, "AdminService.ListExecutions")
    population = found.populate()
    parse = mock_listing.parse_sort

    def reversed_sort(*args):
        sort = parse(*args)
        return None if sort is None else mock_listing.Sort(sort.column, not sort.descending)

    monkeypatch.setattr(mock_listing, "parse_sort", reversed_sort)
    with pytest.raises(Mismatch) as caught:
        listing.check_sort(found, population, listing.Sort("id", "id"))
    assert caught.value.rule == "flyte.lists.sort-applied"


def test_a_restarting_token_is_caught(env, monkeypatch):
    found = dialect(env, "AdminService.ListProjects")
    population = found.populate()
    page = mock_listing.page
    monkeypatch.setattr(mock_listing, "page", lambda items, offset, limit: page(items, 0, limit))
    with pytest.raises(Mismatch) as caught:
        listing.check_pagination(found, population, 2)
    assert caught.value.rule == "flyte.lists.pagination"


def test_archived_executions_in_the_default_list_are_caught(env, monkeypatch):
    found = dialect(env, "AdminService.ListExecutions")
    equality = mock_listing.equality

    def no_state(entity, column, value):  # the listing's own state filter keeps everything
        return (
            mock_listing.Filter(entity, "gte", column, (0,))
            if column == "state"
            else equality(entity, column, value)
        )

    monkeypatch.setattr(mock_listing, "equality", no_state)
    with pytest.raises(Mismatch) as caught:
        found.populate()
    assert caught.value.rule == "flyte.executions.update.effect"


def test_machines_pass_on_a_conforming_mock(env):
    for machine in flyte.machines():
        run_machine(partial(machine, env), seed=1, max_examples=8)
    assert check_action(partial(flyte.ExecutionMachine, env), "TerminateExecution") > 0
    checked = set(env.take_checked())
    assert {
        "flyte.launch-plans.update.activation",
        "flyte.launch-plans.active.not-found",
        "flyte.register.identical",
        "flyte.register.different",
        "flyte.register.immutable",
        "flyte.executions.terminate.effect",
        "flyte.executions.update.effect",
    } <= checked


def test_two_active_versions_are_caught(env, monkeypatch):
    monkeypatch.setattr(mock_registration, "_versions", lambda *args: [])  # activating leaves the others be
    with pytest.raises(Mismatch) as caught:
        run_machine(partial(flyte.ActivationMachine, env), seed=1, max_examples=25)
    assert caught.value.rule == "flyte.launch-plans.update.activation"


def test_a_different_spec_taken_for_the_same_is_caught(env, monkeypatch):
    monkeypatch.setattr(mock_registration.diffs, "digest", lambda entity: "same")
    with pytest.raises(Mismatch) as caught:
        run_machine(partial(flyte.RegistrationMachine, env), seed=1, max_examples=25)
    assert caught.value.rule == "flyte.register.different"


def test_terminating_a_finished_execution_again_is_caught(env, monkeypatch):
    # TerminateExecution's own view of terminal phases only (events and the propeller keep theirs)
    events = SimpleNamespace(**{k: getattr(mock_executions.events, k) for k in dir(mock_executions.events)})
    events.terminal = lambda *args: False
    monkeypatch.setattr(mock_executions, "events", events)
    with pytest.raises(Mismatch) as caught:
        run_machine(partial(flyte.ExecutionMachine, env), seed=1, max_examples=25)
    assert caught.value.rule in {"flyte.executions.terminate.terminal", "flyte.events.workflow.terminal"}


def test_the_grammar_reads_the_specs_filters():
    grammar = flyte.grammar.Grammar(load("flyte"))
    assert flyte.grammar.like("a%c_", "abbbcd") and not flyte.grammar.like("a%c_", "abc")
    (implicit,) = grammar.parse("eq(state,0)", "e")
    assert implicit.values == (0,) and implicit.holds(0)
    assert not implicit.holds(1) and not implicit.holds(None)  # NULL never matches
    (joined,) = grammar.parse("value_in(launch_plan.name,a;b)", "e")
    assert (joined.entity, joined.column, joined.values) == ("l", "name", ("a", "b"))
    assert grammar.text([joined]) == "value_in(launch_plan.name,a;b)"
    assert "contains" not in grammar.functions("int") and "contains" in grammar.functions("text")
