"""The family models and the list invariants, against the in-process mock: quiet when it conforms,
and a failure naming the right rule when one of its defect modes is on."""

from __future__ import annotations

from functools import partial

import grpc
import pytest
from protoconform.conformance.caller import Caller, Reply
from protoconform.conformance.control import ControlClient
from protoconform.conformance.models import armonik, kfp, listing
from protoconform.conformance.models.base import Env, Lifecycle, run_machine
from protoconform.conformance.models.machine import check_action, shortest_paths
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import load


@pytest.fixture
def env_of(fresh_server):
    """``env_of(family)``: a model environment talking to the fresh in-process mock (manual clock)."""
    target = Target(fresh_server.grpc_address)
    channel = target.channel()
    control = ControlClient(fresh_server.http_url)

    def make(family: str) -> Env:
        return Env(
            rpc=Caller(channel, default_registry(), target),
            rules=load(family),
            namespace="t",
            control=control,
        )

    yield make
    control.close()
    channel.close()


def defect(server, name: str) -> None:
    server.server.dispatcher.defects.add(name)


def reply_of(method: str, code: grpc.StatusCode = grpc.StatusCode.OK) -> Reply:
    return Reply(default_registry().method(method), code, "", [])


# -- state machines seen from outside -------------------------------------------------------------


def test_lifecycle_tracks_possible_states_and_names_rules():
    rules = load("kfp")
    lifecycle = Lifecycle(rules.state_machines["run"], rules, ["TerminateRun", "RetryRun", "GetRun"])
    assert lifecycle.calls == ["RetryRun", "TerminateRun"]
    assert {"", "Pending", "Running", "Succeeded", "Failed", "Error"} == lifecycle.closure({""})
    assert lifecycle.closure({"Succeeded"}) == {"Succeeded"}
    accepted = lambda r: r.accepted_codes()  # noqa: E731
    terminate = "api.RunService.TerminateRun"
    # from a possibly running run, either answer is right; OK leads to Terminating (then Failed)
    assert lifecycle.judge(
        frozenset({"Running", "Succeeded"}), "TerminateRun", reply_of(terminate), accepted
    ) == {
        "Terminating",
        "Failed",
    }
    refused = reply_of(terminate, grpc.StatusCode.INVALID_ARGUMENT)
    assert lifecycle.judge(frozenset({"Running", "Succeeded"}), "TerminateRun", refused, accepted) == {
        "Succeeded"
    }
    with pytest.raises(Mismatch) as caught:
        lifecycle.judge(frozenset({"Succeeded"}), "TerminateRun", reply_of(terminate), accepted)
    assert caught.value.rule == "kfp.runs.terminate.precondition"
    with pytest.raises(Mismatch) as caught:
        lifecycle.judge(
            frozenset({"Failed"}), "RetryRun", reply_of("api.RunService.RetryRun", refused.code), accepted
        )
    assert caught.value.rule == "kfp.runs.retry.effect"


def test_every_state_has_a_path():
    rules = load("armonik")
    calls = [
        "PauseSession",
        "CancelSession",
        "CloseSession",
        "PurgeSession",
        "ResumeSession",
        "DeleteSession",
    ]
    lifecycle = Lifecycle(rules.state_machines["session"], rules, calls)
    paths = shortest_paths(lifecycle)
    assert set(paths) == set(rules.state_machines["session"].states)
    assert paths["SESSION_STATUS_PURGED"] in (
        ["CancelSession", "PurgeSession"],
        ["CloseSession", "PurgeSession"],
    )


# -- models against the mock -------------------------------------------------------------------------


def test_session_transitions_conform_and_catch_an_illegal_one(fresh_server, env_of):
    new_machine = partial(armonik.SessionMachine, env_of("armonik"))
    for action in ("CancelSession", "PauseSession", "DeleteSession"):
        assert check_action(new_machine, action) == 6  # from every state of the session machine
    defect(fresh_server, "armonik.illegal-transition-accepted")
    with pytest.raises(Mismatch) as caught:
        check_action(new_machine, "PauseSession")
    assert caught.value.rule == "armonik.sessions.illegal-transition"
    assert caught.value.method == "Sessions.PauseSession"


@pytest.mark.slow  # 33 generated run sequences
def test_run_sequences_conform_and_catch_a_duplicate_metric(fresh_server, env_of):
    new_machine = partial(kfp.RunMachine, env_of("kfp"))
    run_machine(new_machine, seed=3, max_examples=8)
    defect(fresh_server, "kfp.duplicate-metric-accepted")
    with pytest.raises(Mismatch) as caught:
        run_machine(new_machine, seed=3, max_examples=25)
    assert caught.value.rule == "kfp.runs.metrics.duplicate"


def test_finished_run_refuses_termination(fresh_server, env_of):
    new_machine = partial(kfp.RunMachine, env_of("kfp"))
    assert (
        check_action(new_machine, "TerminateRun") >= 4
    )  # "", Running, Succeeded, Failed, Error (Pending is brief)
    defect(fresh_server, "kfp.terminate-finished-run-accepted")
    with pytest.raises(Mismatch) as caught:
        check_action(new_machine, "TerminateRun")
    assert caught.value.rule == "kfp.runs.terminate.precondition"


# -- list invariants ------------------------------------------------------------------------------------


def test_task_lists_partition_and_filter(fresh_server, env_of):
    env = env_of("armonik")
    dialect = armonik.ArmonikList(env, "Tasks.ListTasks")
    population = dialect.populate()
    assert len(population.keys) == 6
    listing.check_contains(dialect, population)
    for size in (1, 4):
        listing.check_pagination(dialect, population, size)
    items = dialect.walk(population, listing.BIG_PAGE).items
    assert dialect.sorts(items)
    for sort in dialect.sorts(items)[:6]:
        listing.check_sort(dialect, population, sort)
    task_id = armonik.FieldRef("task_summary_field", "TASK_SUMMARY_ENUM_FIELD_TASK_ID", "string")
    equal = "FILTER_STRING_OPERATOR_EQUAL"
    condition = dialect.condition(task_id, equal, population.keys[0])
    where = [[{**condition, "_model": {"ref": task_id, "op": equal, "value": population.keys[0]}}]]
    listing.check_filter(dialect, population, where)
    defect(fresh_server, "armonik.filter-ignored")
    with pytest.raises(Mismatch) as caught:
        listing.check_filter(dialect, population, where)
    assert caught.value.rule == "armonik.filters.semantics"
    fresh_server.server.dispatcher.defects.clear()
    defect(fresh_server, "armonik.list-skips-item")
    with pytest.raises(Mismatch) as caught:
        listing.check_pagination(dialect, population, 2)
    assert caught.value.rule == "armonik.lists.pagination"


def test_run_lists_sort_and_page(fresh_server, env_of):
    env = env_of("kfp")
    dialect = kfp.RunList(env)
    population = dialect.populate()
    listing.check_pagination(dialect, population, 3)
    by_name = listing.Sort("name", "name", True)
    listing.check_sort(dialect, population, by_name)
    defect(fresh_server, "kfp.sort-ignored")
    with pytest.raises(Mismatch) as caught:
        listing.check_sort(dialect, population, by_name)
    assert caught.value.rule == "kfp.runs.list.sort-applied"
    fresh_server.server.dispatcher.defects.clear()
    defect(fresh_server, "kfp.list-repeats-item")
    with pytest.raises(Mismatch) as caught:
        listing.check_pagination(dialect, population, 2)
    assert caught.value.rule == "kfp.runs.list.pagination"


def _walk_scoped(dialect, population) -> None:
    """Every way the scoped dialect pages, in pages of two."""
    for sort in dialect.paging_sorts():
        for where in dialect.paging_filters():
            listing.check_pagination(dialect, population, 2, sort, where)


def test_experiment_run_lists_page_by_the_model(fresh_server, env_of):
    env = env_of("kfp")
    dialect = kfp.ExperimentRunList(env)
    population = dialect.populate()
    assert len(population.keys) == 8
    assert dialect.unusable(population) == ""
    runs = population.scope["runs"]
    # the model's orders: name differs from creation; some runs share a second, some do not
    by_name = dialect.expected(population, listing.Sort("name", "name"), None)
    assert by_name != dialect.expected(population, None, None)
    assert len({r["created_at"] for r in runs.values()}) == 3
    listing.check_contains(dialect, population)
    _walk_scoped(dialect, population)
    for sort in dialect.sorts([]):
        listing.check_sort(dialect, population, sort)
    archived = [{"key": "storage_state", "op": "EQUALS", "string_value": "STORAGESTATE_ARCHIVED"}]
    listing.check_filter(dialect, population, archived)
    assert len(dialect.expected(population, None, archived)) == 3


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("kfp.list-repeats-item", "kfp.runs.list.pagination"),
        ("kfp.sort-ignored", "kfp.runs.list.sort-applied"),
        ("kfp.scoped-page-token-ignored", "kfp.runs.list.pagination"),
    ],
)
def test_experiment_run_lists_catch_defects(fresh_server, env_of, name, rule):
    dialect = kfp.ExperimentRunList(env_of("kfp"))
    population = dialect.populate()
    defect(fresh_server, name)
    with pytest.raises(Mismatch) as caught:
        _walk_scoped(dialect, population)
    assert caught.value.rule == rule


def test_the_name_scoped_list_misses_what_only_the_experiment_list_sees(fresh_server, env_of):
    """The index defect restarts only a scoped listing: the name-filtered listing pages right."""
    dialect = kfp.RunList(env_of("kfp"))
    population = dialect.populate()
    defect(fresh_server, "kfp.scoped-page-token-ignored")
    listing.check_pagination(dialect, population, 2)


class _Listed(listing.ListDialect):
    """Keys in memory, paged by offset, with one bug at a time: the model's order is ``MODEL``."""

    METHOD = "api.RunService.ListRuns"
    PAGINATION_RULE, TOTAL_RULE = "kfp.runs.list.pagination", "kfp.runs.list.total-size"
    SORT_RULE, FILTER_RULE = "kfp.runs.list.sort-applied", "kfp.runs.list.filter-applied"
    LAST_PAGE_TOKENLESS = True
    MODEL = ["a", "b", "c", "d"]

    def __init__(self, shown: list[str], trailing: bool = False) -> None:
        self.shown, self.trailing = shown, trailing

    def page(self, population, size, cursor, sort, where):
        start = cursor or 0
        items = self.shown[start : start + size]
        more = start + size < len(self.shown) or (self.trailing and start < len(self.shown))
        return reply_of(self.METHOD), items, start + size if more else None, len(self.shown)

    def key(self, item):
        return item

    def expected(self, population, sort, where):
        return self.MODEL


@pytest.mark.parametrize(
    ("shown", "trailing", "rule"),
    [
        (["a", "b", "c", "d"], False, None),
        (["a", "b", "x", "c", "d"], False, None),  # another's item: not the model's business
        (["a", "b", "c", "d"], True, "kfp.runs.list.pagination"),  # a token to an empty page
        (["a", "c", "b", "d"], False, "kfp.runs.list.sort-applied"),
        (["a", "b", "c"], False, "kfp.runs.list.pagination"),
        (["a", "b", "c", "d", "e"], False, "kfp.runs.list.filter-applied"),  # "e" is the check's own
    ],
)
def test_pagination_holds_own_items_to_the_model(shown, trailing, rule):
    population = listing.Population(["a", "b", "c", "d", "e"], None)
    dialect = _Listed(shown, trailing)
    if rule is None:
        listing.check_pagination(dialect, population, 2, None)
        return
    with pytest.raises(Mismatch) as caught:
        listing.check_pagination(dialect, population, 2, None)
    assert caught.value.rule == rule
