"""The ArmoniK task model (statuses, options merge), the reply checks the ArmoniK scenarios use,
and the field fitting that gives the legacy ``Session {id}`` its not-found case."""

from __future__ import annotations

from pathlib import Path

import protoconform.specs as specs
import pytest
import yaml
from armonik.protogen.common.objects_pb2 import TaskOptions
from google.protobuf import duration_pb2
from protoconform.conformance import examples as ex
from protoconform.conformance.examples.expectations import malformed
from protoconform.conformance.models.armonik import tasks as tk
from protoconform.conformance.suites.rules import cases_for
from protoconform.specs.rules import load

RUNNING, PAUSED = "SESSION_STATUS_RUNNING", "SESSION_STATUS_PAUSED"


# -- the lifecycle ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "statuses",
    [
        [tk.CREATING, tk.PENDING, tk.SUBMITTED, tk.DISPATCHED, tk.PROCESSING, tk.COMPLETED],
        [tk.PENDING, tk.PENDING, tk.COMPLETED],  # samples: repeated, skipped
        [tk.SUBMITTED, tk.DISPATCHED, tk.SUBMITTED, tk.DISPATCHED, tk.PROCESSING],  # acquisition timed out
        [tk.PENDING, tk.PAUSED, tk.SUBMITTED, tk.DISPATCHED, tk.PAUSED, tk.COMPLETED],  # paused, resumed
    ],
)
def test_walks_along_the_path(statuses: list[str]) -> None:
    assert tk.path_problem(statuses) == ""


@pytest.mark.parametrize(
    ("statuses", "problem"),
    [
        ([tk.PENDING, tk.SUBMITTED, tk.PENDING], "TASK_STATUS_PENDING after TASK_STATUS_SUBMITTED"),
        ([tk.PROCESSING, tk.DISPATCHED], "TASK_STATUS_DISPATCHED after TASK_STATUS_PROCESSING"),
        ([tk.PENDING, tk.ERROR], "TASK_STATUS_ERROR is not on the path"),
    ],
)
def test_leaving_the_path_is_named(statuses: list[str], problem: str) -> None:
    assert tk.path_problem(statuses).startswith(problem)


def test_a_task_waits_while_an_input_may_lack_data() -> None:
    assert tk.closure({tk.CREATING}, False, {RUNNING}) == {tk.CREATING, tk.PENDING}
    ready = tk.closure({tk.PENDING}, True, {RUNNING})
    assert ready == {tk.PENDING, tk.SUBMITTED, tk.DISPATCHED, tk.PROCESSING, tk.COMPLETED}


def test_a_ready_task_waits_in_paused_while_its_session_is_paused() -> None:
    assert tk.closure({tk.PENDING}, True, {PAUSED}) == {tk.PENDING, tk.PAUSED}
    assert tk.closure({tk.PAUSED}, True, {PAUSED}) == {tk.PAUSED}  # resuming is a call, not automatic


def test_cancelling_stops_what_is_unfinished_and_keeps_what_is_finished() -> None:
    assert tk.cancelled(frozenset({tk.PENDING})) == tk.STOPPED
    assert tk.cancelled(frozenset({tk.PROCESSING, tk.COMPLETED})) == {tk.COMPLETED, *tk.STOPPED}
    assert tk.cancelled(frozenset({tk.COMPLETED})) == {tk.COMPLETED}
    assert tk.cancelled(tk.ANY) == tk.ANY
    assert tk.closure({tk.CANCELLING}, False, {RUNNING}) == tk.STOPPED


# -- options ---------------------------------------------------------------------------------------
def test_options_merge_from_the_most_general_level() -> None:
    session = {
        "priority": 2,
        "max_retries": 3,
        "max_duration": "300s",
        "application_name": "s",
        "options": {"a": "s"},
    }
    submit = {
        "priority": 0,
        "max_retries": 0,
        "max_duration": "0s",
        "engine_type": "e",
        "options": {"a": "r", "b": "r"},
    }
    task = {"priority": 7, "application_name": "t", "application_service": "pc"}
    merged = tk.merged_options([session, submit, None, task])
    assert merged == {
        "options": {"a": "r", "b": "r"},
        "max_retries": 3,  # zero does not override
        "max_duration": "300s",
        "priority": 7,  # a given level's priority is taken as given (0 included)
        "application_name": "t",
        "engine_type": "e",
        "application_service": "pc",
    }
    assert tk.merged_options([session, submit])["priority"] == 0


def test_option_differences_name_each_field() -> None:
    expected = tk.merged_options(
        [{"priority": 4, "max_retries": 2, "max_duration": "60s", "options": {"k": "v"}}]
    )
    actual = TaskOptions(
        priority=4, max_retries=2, max_duration=duration_pb2.Duration(seconds=60), options={"k": "v"}
    )
    assert tk.option_differences(expected, actual) == []
    actual.max_retries, actual.application_name = 5, "x"
    actual.options["k"] = "w"
    wrong = tk.option_differences(expected, actual)
    assert [w.split()[0] for w in wrong] == ["max_retries", "application_name", "options"]
    assert tk.option_differences(expected, actual, skip=tk.MERGE_REAL_DIFFERS)[0].startswith(
        "application_name"
    )


# -- reply checks ------------------------------------------------------------------------------------
REPLY = {
    "services": [
        {"name": "database", "healthy": "HEALTHY", "message": "ok"},
        {"name": "queue", "healthy": "DEGRADED", "message": ""},
    ],
    "ok": {},
    "core": "0.29.1",
}


def test_a_star_reads_every_item_of_a_list() -> None:
    assert ex.field_mismatch(REPLY, {"field": "services.*.name", "contains": ["database", "queue"]}) is None
    assert ex.field_mismatch(REPLY, {"field": "services.*.healthy", "excludes": ["DEGRADED"]}) == (
        "services.*.healthy without ['DEGRADED']",
        '["HEALTHY", "DEGRADED"]',
    )
    assert ex.field_mismatch(REPLY, {"field": "services.*.missing", "count": 0}) is None
    assert ex.field_mismatch([{"a": 1}, {"a": 2}], {"field": "*", "count": 2}) is None


def test_sequence_wants_the_items_in_order() -> None:
    assert ex.field_mismatch(REPLY, {"field": "services.*.name", "sequence": ["database", "queue"]}) is None
    assert (
        ex.field_mismatch(REPLY, {"field": "services.*.name", "sequence": ["queue", "database"]}) is not None
    )
    assert ex.field_mismatch(REPLY, {"field": "services.*.name", "sequence": ["database"]}) is not None


def test_present_tells_an_empty_message_from_a_missing_field() -> None:
    assert ex.field_mismatch(REPLY, {"field": "ok", "present": True}) is None
    assert ex.field_mismatch(REPLY, {"field": "error", "present": False}) is None
    assert ex.field_mismatch(REPLY, {"field": "ok", "present": False}) == ("ok missing", "{}")


def test_matches_wants_the_whole_value() -> None:
    assert ex.field_mismatch(REPLY, {"field": "core", "matches": "[0-9]+([.][0-9]+)+"}) is None
    assert (
        ex.field_mismatch({"core": "Unknown"}, {"field": "core", "matches": "[0-9]+([.][0-9]+)+.*"})
        is not None
    )
    assert malformed({"field": "core", "matches": "("}).startswith("matches: not a regex")
    assert malformed({"field": "x", "sequence": "a"}) == "sequence: wants a list"


# -- rules: the legacy session id --------------------------------------------------------------------
def test_the_legacy_cancel_names_its_session_id() -> None:
    case = next(
        c for c in cases_for("armonik") if c.id == "armonik.sessions.not-found[Submitter.CancelSession]"
    )
    assert not case.skip
    assert case.paths == ("id",)


def test_every_scenario_checks_a_behaviour_rule() -> None:
    """specs/armonik/scenarios.yaml holds the effects of calls that succeed (behaviour rules)."""
    data = yaml.safe_load((Path(specs.__file__).parent / "armonik" / "scenarios.yaml").read_text())
    rules = load("armonik")
    book = ex.book("armonik")
    for rule_id, cases in data["cases"].items():
        assert rules.rule(rule_id).kind == "behaviour", rule_id
        assert len(book.cases[rule_id]) == len(cases)
