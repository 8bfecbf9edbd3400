"""What every family model shares: the run's environment, state machines seen from outside,
and the driver that runs a hypothesis rule-based machine deterministically per seed.

A model keeps what a conforming server must remember (which entities exist, the
states they may be in, family-specific memory) and compares every answer with
it; a difference raises :class:`~protoconform.conformance.verdict.Mismatch`
naming the rule it breaks.  Hypothesis then shrinks the call sequence to a
minimal one.

State machines come from ``specs/<family>/*.yaml`` (``state_machines:``).  An
action whose name is a method of the entity's service is a call the model
makes; any other action is an *automatic* edge the server takes on its own
(e.g. a run's workflow reporting progress).  Because automatic edges happen
whenever the server likes, the model tracks a *set* of possible states: the
closure of the last known state under automatic edges.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis.errors import Flaky
from hypothesis.stateful import RuleBasedStateMachine
from protoconform.conformance.caller import Caller, Reply
from protoconform.conformance.hypothesis_profile import harness_settings
from protoconform.conformance.models.hypothesis_hooks import seeded_machine_test, shrink_budget
from protoconform.conformance.verdict import Mismatch, short_method
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import FamilyRules, Rule, StateMachine, load

STEPS = 20  # steps per generated sequence (each step makes one call or a few)
SHRINK_SECONDS = 20.0  # wall seconds spent making a failing example smaller


@dataclass
class Env:
    """Everything a model needs from the run."""

    rpc: Caller
    rules: FamilyRules
    namespace: str = "pc"
    lenient: bool = False
    control: Any = None  # a ControlClient when the target is our mock (moves its clock)
    settle_timeout: float = 30.0  # wall seconds a model waits for automatic progress
    cleanup: list[Callable[[], Any]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)  # things several checks share (populations)
    checked_rules: set[str] = field(default_factory=set)  # rules a check really compared (coverage)
    _counter: Iterable[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def offline(cls, family: str) -> Env:
        """An environment that resolves names but cannot call (to describe cases at collection)."""
        return cls(rpc=Caller(None, default_registry(), None), rules=load(family))  # type: ignore[arg-type]

    def unique(self, what: str) -> str:
        """A fresh name inside the run's namespace."""
        return f"{self.namespace}-{what}-{next(self._counter)}"  # type: ignore[call-overload]

    def accepted(self, rule: Rule) -> set[str]:
        return rule.accepted_codes(strict=not self.lenient)

    def rule(self, rule_id: str) -> Rule:
        return self.rules.rule(rule_id)

    def covered(self, *rule_ids: str) -> None:
        """Say that a check just compared the target with these rules (the run's coverage counts them).

        Call it where the rule's meaning was checked, not where a call merely had to succeed."""
        unknown = [r for r in rule_ids if r not in self.rules.rules]
        if unknown:
            raise KeyError(f"no rule {unknown} in specs")  # a typo would count nothing
        self.checked_rules.update(rule_ids)

    def take_checked(self) -> list[str]:
        """The rules checked since the last call (for the case that just ran), forgetting them."""
        found, self.checked_rules = sorted(self.checked_rules), set()
        return found

    def full(self, method: str) -> str:
        """``Service.Method`` -> the full method name (as rules store it)."""
        return self.rpc.resolve(method).descriptor.full_name

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of server time pass: the mock's clock is moved, a real server is waited for."""
        if self.control is not None:
            try:
                self.control.advance(seconds)
                return
            except Exception:  # no control API after all: fall back to waiting
                self.control = None
        time.sleep(min(seconds, 0.25))


# -- expectations ------------------------------------------------------------------


def fail(rule: Rule | str, reply: Reply | None, expected: Any, actual: Any, detail: str = "") -> Mismatch:
    rule_id = rule.id if isinstance(rule, Rule) else rule
    method = short_method(reply.method.path) if reply is not None else None
    return Mismatch(expected, actual, rule=rule_id, method=method, reply=reply, detail=detail)


def expect_codes(reply: Reply, codes: set[str], rule: Rule | str, detail: str = "") -> None:
    """The reply's status must be one of ``codes``."""
    if reply.code.name not in codes:
        expected = " or ".join(sorted(codes))
        raise fail(rule, reply, expected, reply.status(), detail)


def expect_rule(env: Env, reply: Reply, rule: Rule, detail: str = "") -> None:
    """The reply's status must be the rule's code (or its real code when lenient)."""
    expect_codes(reply, env.accepted(rule), rule, detail)
    env.covered(rule.id)


def expect_ok(reply: Reply, rule: Rule | str, detail: str = "") -> None:
    expect_codes(reply, {"OK"}, rule, detail)


def expect_equal(rule: Rule | str, reply: Reply | None, what: str, expected: Any, actual: Any) -> None:
    if expected != actual:
        raise fail(rule, reply, f"{what} {expected!r}", repr(actual))


def not_found_rule(rules: FamilyRules, method: str, field_name: str = "") -> Rule | None:
    """The ``not_found`` rule of ``method`` (the one about ``field_name`` when several apply)."""
    candidates = rules.for_method(method, "not_found")
    if field_name:
        exact = [r for r in candidates if r.field.rpartition(".")[2] == field_name]
        candidates = exact or candidates
    return candidates[0] if candidates else None


# -- state machines from specs ----------------------------------------------------------


class Lifecycle:
    """A specs state machine as an outside observer sees it.

    ``calls``: the actions that are methods of the entity's service; every other
    action is automatic.  The initial state is the first one listed.
    """

    def __init__(self, machine: StateMachine, rules: FamilyRules, calls: Iterable[str]) -> None:
        self.machine = machine
        self.rules = rules
        self.calls = sorted(a for a in machine.transitions if a in set(calls))
        self.automatic = sorted(a for a in machine.transitions if a not in self.calls)

    @property
    def name(self) -> str:
        return self.machine.name

    @property
    def initial(self) -> str:
        return self.machine.states[0]

    def closure(self, states: Iterable[str]) -> frozenset[str]:
        """``states`` and every state automatic edges lead to from them."""
        found = set(states)
        frontier = list(found)
        while frontier:
            state = frontier.pop()
            for action in self.automatic:
                following = self.machine.target(action, state)
                if following is not None and following not in found:
                    found.add(following)
                    frontier.append(following)
        return frozenset(found)

    def moving(self, states: Iterable[str]) -> bool:
        """Whether the server may still move on its own from one of ``states``."""
        return any(self.machine.target(a, s) is not None for a in self.automatic for s in states)

    # -- which rule speaks ------------------------------------------------------------
    def refusal_rule(self, action: str, state: str, method: str) -> Rule:
        """The rule giving the status of ``action`` refused in ``state``."""
        specific = [
            r
            for r in self.rules.for_method(method)
            if r.kind in ("transition", "precondition") and state in (r.params.get("from") or ())
        ]
        if specific:
            return specific[0]
        by_action = [
            r
            for r in self.rules.for_method(method)
            if r.kind in ("transition", "precondition")
            and r.code != "OK"
            and r.params.get("state_machine") == self.name
            and r.params.get("action") == action
        ]
        if by_action:
            return by_action[0]
        if self.machine.illegal_rule:
            return self.rules.rule(self.machine.illegal_rule)
        raise KeyError(f"state machine {self.name}: no rule says how {action} is refused")

    def effect_rule(self, action: str, method: str) -> Rule:
        """The rule a wrongly refused (or wrongly applied) legal ``action`` breaks."""
        for rule in self.rules.for_method(method):
            if (
                rule.kind == "transition"
                and rule.code == "OK"
                and rule.params.get("state_machine") == self.name
                and rule.params.get("action") == action
            ):
                return rule
        return self.refusal_rule(action, "", method)

    # -- judging answers --------------------------------------------------------------
    def judge(
        self, states: frozenset[str], action: str, reply: Reply, accepted: Callable[[Rule], set[str]]
    ) -> frozenset[str]:
        """The possible states after ``action`` answered ``reply``; a wrong answer raises Mismatch."""
        method = reply.method.descriptor.full_name
        legal = {s for s in states if self.machine.target(action, s) is not None}
        refused = states - legal
        if reply.ok:
            if not legal:
                state = sorted(refused)[0]
                rule = self.refusal_rule(action, state, method)
                raise fail(
                    rule,
                    reply,
                    " or ".join(sorted(accepted(rule))),
                    "OK",
                    f"{action} from {state or '(empty)'} is not a transition of state machine {self.name}",
                )
            return self.closure(self.machine.target(action, s) for s in legal)  # type: ignore[misc]
        matching = frozenset(
            s for s in refused if reply.code.name in accepted(self.refusal_rule(action, s, method))
        )
        if matching:
            return self.closure(matching)  # refused: where it was, and moving on from there
        if refused:
            state = sorted(refused)[0]
            rule = self.refusal_rule(action, state, method)
            expected = " or ".join(sorted(accepted(rule) | ({"OK"} if legal else set())))
            raise fail(rule, reply, expected, reply.status(), f"{action} from {describe(states)}")
        rule = self.effect_rule(action, method)
        raise fail(
            rule,
            reply,
            "OK",
            reply.status(),
            f"{action} from {describe(states)} is a transition of {self.name}",
        )

    def observe(
        self, states: frozenset[str], observed: str, reply: Reply, rule: Rule | str
    ) -> frozenset[str]:
        """Check an observed state against the possible ones; the new possible states."""
        if observed not in states:
            raise fail(rule, reply, f"status in {describe(states)}", observed or "(empty)")
        return self.closure({observed})


def describe(states: Iterable[str]) -> str:
    names = sorted(s or "(empty)" for s in states)
    return names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"


# -- running a machine ------------------------------------------------------------------


def machine_settings(max_examples: int, steps: int = STEPS) -> settings:
    """Settings that make a run depend only on the seed: no example database, no deadline."""
    return harness_settings(max_examples, stateful_step_count=steps)


def first_mismatch(error: BaseException | None, depth: int = 0) -> Mismatch | None:
    """The first Mismatch inside an exception group (hypothesis groups failures it could not replay),
    or behind a flaky-data error (a server that answered differently when the sequence was replayed
    raises it while handling the deviation it first saw)."""
    if error is None or depth > 20:
        return None
    if isinstance(error, Mismatch):
        return error
    for inner in getattr(error, "exceptions", ()):
        found = first_mismatch(inner, depth + 1)
        if found is not None:
            return found
    if isinstance(error, Flaky):
        return first_mismatch(error.__cause__ or error.__context__, depth + 1)
    return None


def run_property(test: Callable[[], None]) -> None:
    """Run a hypothesis test; a deviation seen once but not replayed while shrinking (the server
    moved on) is still reported as the deviation it was, not as a flaky test."""
    try:
        with shrink_budget(SHRINK_SECONDS):
            test()
    except (BaseExceptionGroup, Flaky) as group:
        mismatch = first_mismatch(group)
        if mismatch is None:
            raise
        mismatch.detail = "; ".join(
            filter(None, [mismatch.detail, "seen once, not replayed while shrinking"])
        )
        raise mismatch from None


def run_machine(
    new_machine: Callable[[], RuleBasedStateMachine], *, seed: int, max_examples: int, steps: int = STEPS
) -> None:
    """Run the machines ``new_machine`` makes (a fresh one per sequence) as one test; a failure is
    re-raised after shrinking to a minimal sequence."""
    run_property(seeded_machine_test(new_machine, seed, machine_settings(max_examples, steps)))
