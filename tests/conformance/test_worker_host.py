"""Cases that run inside a task handed to the harness's own Worker (``inside: worker``).

Against the mock, ``check --control`` routes a partition of its own to the harness; with
``--armonik-worker-listen`` and ``--armonik-worker-partition`` the user does (a mock started
with ``--armonik-partition NAME:worker=ADDRESS``, or a real cluster); with neither, those
cases skip with one reason and their rules stay unchecked.
"""

from __future__ import annotations

import dataclasses
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import Engine, run_check
from protoconform.conformance import examples as ex
from protoconform.conformance.control import ControlClient
from protoconform.mockserver.launcher import ServerProcess
from protoconform.specs.rules import load

RULES = (
    "armonik.agent.common-direct-data",
    "armonik.agent.create-task-reply-errors",
    "armonik.agent.create-task-stream-order",
    "armonik.agent.no-task",
    "armonik.agent.notified-file-missing",
    "armonik.agent.products-land-on-success",
    "armonik.agent.resource-not-found",
    "armonik.agent.result-not-found",
    "armonik.agent.result-other-session",
    "armonik.agent.results-created",
    "armonik.agent.session-mismatch",
    "armonik.agent.submit-tasks",
    "armonik.agent.token-required",
    "armonik.agent.token-unknown",
    "armonik.attach.process",
    "armonik.tasks.retry",
    "armonik.tasks.timeout",
    "armonik.tasks.error-no-retry",
    "armonik.worker.builtin-output",
    "armonik.worker.failure-requested",
    "armonik.worker.notify-failed",
    "armonik.worker.output-unwritable",
    "armonik.worker.process.data-folder-required",
    "armonik.worker.process.payload-required",
    "armonik.worker.health",
)
NEED_BUILTIN_AGENT = {"armonik.worker.builtin-output", "armonik.worker.notify-failed"}


def selection(rules: tuple[str, ...] = RULES) -> list[str]:
    return ["--api", "armonik", "--suite", "rules", *(a for rule in rules for a in ("--rule", rule))]


def inside_cases(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in report["cases"] if c["rule"] in RULES or "[Agent." in c["nodeid"]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def mock() -> Iterator[Engine]:
    with ServerProcess(["--api", "armonik"]) as process:
        control = ControlClient(process.http_url)
        yield Engine(process, control)
        control.close()


def test_with_control_every_agent_case_runs_and_passes(mock: Engine, tmp_path: Path) -> None:
    run = run_check(selection(), tmp_path, engine=mock)
    assert run.report is not None, run.stderr
    cases = inside_cases(run.report)
    assert len(cases) >= 50
    assert [c["nodeid"] for c in cases if c["outcome"] != "passed"] == [], run.stdout[-3000:]
    assert not set(RULES) & set(run.report["uncovered_rules"].get("armonik", [])), run.report[
        "uncovered_rules"
    ]
    assert run.status == 0, run.stdout[-3000:]
    # the run left no route behind: the partition it used is back to the built-in processing
    assert mock.control.armonik_workers()["workers"] == {}
    assert mock.control.armonik_workers()["worker_agent"] == ""


def test_a_partition_the_user_points_at_the_harness(tmp_path: Path) -> None:
    port = free_port()
    args = ["--api", "armonik", "--armonik-partition", "default"]
    args += ["--armonik-partition", f"agentcheck:worker=127.0.0.1:{port}"]
    with ServerProcess(args) as process:
        options = ["--target", process.grpc_address, "--armonik-worker-listen", f"127.0.0.1:{port}"]
        options += ["--armonik-worker-partition", "agentcheck"]
        # (timeout left out: without --control it waits max_duration in real time)
        rules = tuple(r for r in RULES if r != "armonik.tasks.timeout")
        run = run_check([*options, *selection(rules)], tmp_path)
    assert run.report is not None, run.stderr
    cases = inside_cases(run.report)
    skipped = {c["rule"]: c["reason"] for c in cases if c["outcome"] == "skipped"}
    passed = {c["rule"] for c in cases if c["outcome"] == "passed"}
    assert [c["nodeid"] for c in cases if c["outcome"] == "failed"] == [], run.stdout[-3000:]
    # without --control, only the cases that need the built-in Worker to notify this Agent skip
    assert set(skipped) == NEED_BUILTIN_AGENT
    assert all("--control" in reason for reason in skipped.values())
    assert set(rules) - NEED_BUILTIN_AGENT <= passed


def test_without_a_route_the_cases_skip_with_one_reason(mock: Engine, tmp_path: Path) -> None:
    run = run_check(
        ["--target", mock.grpc, "--rule", "armonik.agent.token-required", "--suite", "rules"], tmp_path
    )
    assert run.report is not None, run.stderr
    reasons = {c["reason"] for c in run.report["cases"] if c["outcome"] == "skipped"}
    assert len(reasons) == 1 and "--armonik-worker-listen" in reasons.pop()
    assert "armonik.agent.token-required" in run.report["uncovered_rules"]["armonik"]


# -- the `inside:` data ------------------------------------------------------------------------------
def test_examples_name_their_place() -> None:
    book = ex.book("armonik")
    example = book.example(book.qualify("Agent.CreateResultsMetaData"))
    assert example is not None and (example.inside, example.binds) == ("worker", "task")
    assert book.qualify("Tasks.SubmitTasks") in book.place_calls(example)
    idle = book.cases["armonik.agent.no-task"][0]
    assert (idle.inside, idle.binds) == ("idle-worker", "")


def test_unknown_places_and_unbound_names_are_refused() -> None:
    rules = load("armonik")
    from protoconform.specs.registry import default_registry

    def book_with(example: dict[str, Any]) -> ex.FamilyExamples:
        extra = {**rules.extra, "examples": {"Agent.CreateResults": example}, "cases": {}}
        return ex.FamilyExamples("armonik", default_registry(), dataclasses.replace(rules, extra=extra))

    with pytest.raises(ex.ExampleError, match="no place 'elsewhere'"):
        book_with({"inside": "elsewhere", "request": {}})
    with pytest.raises(ex.ExampleError, match=r"refers to unbound \['task'\]"):
        book_with({"request": {"communication_token": "${task.communication_token}"}})
    assert book_with({"inside": "worker", "request": {"communication_token": "${task.x}"}})


class FakePlace:
    binds = "task"

    def __init__(self, order: list[str]) -> None:
        self.order = order

    def unavailable(self) -> str:
        return ""

    def hold(self, scenario: Any, settings: dict[str, Any], bindings: dict[str, Any]) -> Any:
        order = self.order

        class Held:
            def __enter__(self) -> dict[str, Any]:
                order.append(f"enter with {sorted(bindings)}")
                return {"communication_token": "t"}

            def __exit__(self, *exc: Any) -> None:
                order.append("leave")

        return Held()


def test_steps_that_need_no_task_run_before_it_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    book = ex.book("armonik")
    example = book.cases["armonik.agent.session-mismatch"][0]  # given: other (no task needed)
    step = ex.Step("uses_task", book.qualify("Agent.CreateResults"), False, request={"x": "${task.x}"})
    scenario = ex.Scenario(None, "ns", random.Random(0), [], places={"worker": FakePlace(order)})  # type: ignore[arg-type]
    monkeypatch.setattr(scenario, "_run_step", lambda s, bindings, phase="": order.append(s.name) or s.name)
    monkeypatch.setattr(scenario, "bind", lambda reply: {"step": reply})
    with scenario.within(example, (*example.given, step)) as bindings:
        assert bindings["task"] == {"communication_token": "t"}
        order.append("call")
    assert order == ["other", "enter with ['other']", "uses_task", "call", "leave"]
