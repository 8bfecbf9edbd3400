"""Suite *stateful*: the family models of :mod:`protoconform.conformance.models` against the target.

Two kinds of cases per model (a hypothesis rule-based machine over a specs
state machine):

- ``transitions[<Action>]``: the action called from every state the server can
  be brought to (shortest paths through the state machine, automatic edges
  waited for), each answer judged against the transition table and its rules;
- ``sequences[<Machine>]``: random call sequences (``--max-examples`` of them,
  drawn from ``--seed``) that the model follows; a deviation is shrunk to a
  minimal sequence, printed under the failure line.

Every case creates entities, so ``--read-only`` leaves the whole suite out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from protoconform.conformance.caller import Caller
from protoconform.conformance.models import family_model
from protoconform.conformance.models.base import Env, run_machine
from protoconform.conformance.models.machine import LifecycleMachine, check_action
from protoconform.conformance.plugin.recording import checked_too
from protoconform.conformance.suites._shared import parametrize_cases
from protoconform.conformance.target import Target
from protoconform.specs import FAMILIES
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import load

SUITE = "stateful"


@dataclass(frozen=True)
class Case:
    family: str
    machine: type[LifecycleMachine]
    action: str = ""  # "" = random sequences

    @property
    def service(self) -> str:
        registry = default_registry()
        return next(s for s in registry.families[self.family] if s.rpartition(".")[2] == self.machine.SERVICE)

    @property
    def id(self) -> str:
        what = f"transitions[{self.action}]" if self.action else f"sequences[{self.machine.__name__}]"
        return f"{self.family}:{what}"


def cases() -> list[Case]:
    found = []
    for family in FAMILIES:
        rules = load(family)
        for machine in family_model(family).machines():
            table = rules.state_machines.get(machine.MACHINE)
            if table is None:
                continue
            services = default_registry().families[family]
            service = next((s for s in services if s.rpartition(".")[2] == machine.SERVICE), "")
            calls = {m.name for m in default_registry().methods(family) if m.service == service}
            found.append(Case(family, machine))
            actions = [action for action in sorted(table.transitions) if action in calls]
            found += [Case(family, machine, action) for action in actions]
    return found


def _mark(case: Case) -> dict[str, Any]:
    return {"service": case.service, "method": case.action, "rule": "", "mutating": True}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_cases(metafunc, SUITE, cases, _mark)


def environment(case: Case, rpc: Caller, target: Target, control: Any, namespace: str) -> Env:
    suffix = (case.action or case.machine.__name__).lower()
    return Env(
        rpc=rpc,
        rules=load(case.family),
        namespace=f"{namespace}-{suffix}",
        lenient=target.lenient,
        control=control,
    )


def test_model(
    case: Case, rpc: Caller, target: Target, control: Any, namespace: str, request: pytest.FixtureRequest
) -> None:
    env = environment(case, rpc, target, control, namespace)
    new_machine = partial(case.machine, env)
    try:
        if case.action:
            if check_action(new_machine, case.action) == 0:
                pytest.skip(f"no state of {case.machine.MACHINE} could be reached to call {case.action} from")
            return
        run_machine(new_machine, seed=target.seed, max_examples=target.max_examples)
    finally:
        checked_too(request.node, *env.take_checked())
