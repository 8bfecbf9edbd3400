"""A hypothesis rule-based machine over one entity's specs state machine.

:class:`LifecycleMachine` knows nothing of any family: it creates entities,
calls the state machine's actions on them, reads their state, lets automatic
edges happen, and calls actions on ids that name nothing.  Every answer is
judged against :class:`~protoconform.conformance.models.base.Lifecycle` and the
``not_found`` rules.  A family model subclasses it, says how an entity is
created and read, and adds rules for what else it has to remember.

A machine is made for one run's :class:`~protoconform.conformance.models.base.Env`
(``Machine(env)``); the drivers take a factory (``functools.partial(Machine, env)``)
so hypothesis gets a fresh machine per sequence and no class carries run state.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    multiple,
    precondition,
    rule,
)
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import (
    Env,
    Lifecycle,
    expect_codes,
    expect_rule,
    fail,
    not_found_rule,
)


@dataclass(eq=False)
class Tracked:
    """One entity as the model remembers it."""

    key: str
    states: frozenset[str]
    rule: str  # the rule that says what its state must be now (creation, or the last action's effect)
    gone: bool = False  # deleted: every call naming it must answer NOT_FOUND (or succeed, if idempotent)
    memory: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # shows in the minimal failing sequence
        return f"<{self.key[:8]}>"


class LifecycleMachine(RuleBasedStateMachine):
    MACHINE: ClassVar[str] = ""  # state machine name in specs
    SERVICE: ClassVar[str] = ""  # short service name whose methods are the machine's calls
    ID_FIELD: ClassVar[str] = ""  # request field naming the entity in those calls
    READ: ClassVar[str] = ""  # Service.Method that reads one entity
    CREATE_RULE: ClassVar[str] = ""  # rule saying what a new entity looks like
    PROGRESS_RULE: ClassVar[str] = ""  # rule saying how the server moves entities on its own
    DOMAIN_RULE: ClassVar[str] = ""  # rule saying states stay in the documented set
    GONE: ClassVar[frozenset[str]] = frozenset()  # states after which the entity no longer exists
    SETTLE_STEP: ClassVar[float] = 2.0  # server seconds per wait while settling
    VARIANTS: ClassVar[int] = 1  # ways to create an entity (e.g. a run that will fail)

    entities = Bundle("entities")  # entities made so far: a creation that made none adds nothing

    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        service = self.env.rpc.resolve(f"{self.SERVICE}.{self.READ.rpartition('.')[2]}").service
        calls = [m.name for m in self.env.rpc.registry.methods() if m.service == service]
        self.lifecycle = Lifecycle(self.env.rules.state_machines[self.MACHINE], self.env.rules, calls)
        self.tracked: list[Tracked] = []

    # -- family hooks ---------------------------------------------------------------
    def create_variant(self, variant: int) -> Tracked:
        """Create one entity of the given variant (0 <= variant < VARIANTS)."""
        raise NotImplementedError

    def create_entity(self, data: st.DataObject) -> Tracked | None:
        """Create one entity, the variant drawn (None when nothing was made)."""
        variant = data.draw(st.integers(0, self.VARIANTS - 1), label="variant") if self.VARIANTS > 1 else 0
        return self.create_variant(variant)

    def read(self, entity: Tracked) -> tuple[Reply, str | None]:
        """Read an entity: the reply and its state (None when the reply is not OK)."""
        raise NotImplementedError

    def action_request(self, entity_key: str, action: str) -> dict[str, Any]:
        return {self.ID_FIELD: entity_key}

    def after_action(self, entity: Tracked, action: str, reply: Reply) -> None:
        """Family checks of a successful action's reply, and memory updates."""

    def after_read(self, entity: Tracked, reply: Reply) -> None:
        """Family checks of a read of an existing entity."""

    def delete(self, entity: Tracked) -> None:
        """Best-effort removal at the end of a sequence."""

    # -- helpers --------------------------------------------------------------------
    def track(self, key: str, rule_id: str = "", **memory: Any) -> Tracked:
        entity = Tracked(
            key, self.lifecycle.closure({self.lifecycle.initial}), rule_id or self.CREATE_RULE, memory=memory
        )
        self.tracked.append(entity)
        return entity

    def method_of(self, action: str) -> str:
        return f"{self.SERVICE}.{action}"

    def expect_gone(self, reply: Reply, id_field: str | None = None) -> None:
        """A call naming a deleted (or never created) entity: its not_found rule (or OK when idempotent)."""
        method = reply.method.descriptor.full_name
        id_field = id_field or self.ID_FIELD
        rule = not_found_rule(self.env.rules, method, id_field)
        if rule is not None:
            expect_rule(self.env, reply, rule, "the entity does not exist")
            return
        # No not_found rule: the call is idempotent and succeeds (the rule saying so is about the id).
        about_id = [r for r in self.env.rules.for_method(method) if r.field == id_field and r.code == "OK"]
        expect_codes(
            reply, {"OK"}, about_id[0] if about_id else self.CREATE_RULE, "the entity does not exist"
        )

    def check_state(self, entity: Tracked, reply: Reply, state: str) -> None:
        """An observed state (of an existing entity) against the model."""
        machine = self.lifecycle.machine
        if state not in machine.states:
            raise fail(
                self.DOMAIN_RULE or entity.rule, reply, f"a state of {machine.name}", state or "(empty)"
            )
        entity.states = self.lifecycle.observe(entity.states, state, reply, entity.rule)
        if state in self.GONE:
            entity.gone = True

    # -- rules ----------------------------------------------------------------------
    @rule(target=entities, data=st.data())
    def create(self, data: st.DataObject) -> Tracked | MultipleResults[Tracked]:
        entity = self.create_entity(data)
        return multiple() if entity is None else entity

    def apply(self, entity: Tracked, action: str) -> None:
        """Call one action of the state machine on ``entity`` and judge the answer."""
        method = self.env.full(self.method_of(action))
        reply = self.env.rpc(self.method_of(action), self.action_request(entity.key, action))
        if entity.gone:
            self.expect_gone(reply)
            return
        entity.states = self.lifecycle.judge(entity.states, action, reply, self.env.accepted)
        if reply.ok:
            entity.rule = self.lifecycle.effect_rule(action, method).id
            self.after_action(entity, action, reply)
            if entity.states <= self.GONE:
                entity.gone = True

    @rule(entity=entities, data=st.data())
    def act(self, entity: Tracked, data: st.DataObject) -> None:
        """A short chain of actions on one entity (chains reach the refusals deep in the table)."""
        for action in data.draw(
            st.lists(st.sampled_from(self.lifecycle.calls), min_size=1, max_size=3), label="actions"
        ):
            self.apply(entity, action)

    @rule(entity=entities)
    def observe(self, entity: Tracked) -> None:
        reply, state = self.read(entity)
        if entity.gone:
            self.expect_gone(reply)
            return
        expect_codes(reply, {"OK"}, entity.rule, "reading an existing entity")
        assert state is not None
        self.check_state(entity, reply, state)
        if not entity.gone:
            self.after_read(entity, reply)

    def settle_to(self, entity: Tracked, wanted: str | None = None) -> bool:
        """Let the server move the entity on its own until it rests, or reaches ``wanted``
        (bounded in time); whether it ended where wanted (or at rest)."""
        deadline = time.monotonic() + self.env.settle_timeout
        while time.monotonic() < deadline:
            if wanted is not None and entity.states == {wanted}:
                return True
            if wanted is not None and wanted not in entity.states:
                return False
            if not self.lifecycle.moving(entity.states):
                return wanted is None or entity.states == {wanted}
            self.env.wait(self.SETTLE_STEP)
            reply, state = self.read(entity)
            expect_codes(reply, {"OK"}, self.PROGRESS_RULE or entity.rule, "reading an existing entity")
            assert state is not None
            self.check_state(entity, reply, state)
        return False

    @precondition(lambda self: bool(self.lifecycle.automatic) and self.env.control is not None)
    @rule(entity=entities)
    def settle(self, entity: Tracked) -> None:
        """Move the mock's clock until the entity rests.  (A real server is not waited for in
        random sequences: the transition walk waits for it, once per state.)"""
        if entity.gone:
            return
        self.settle_to(entity)

    @rule(data=st.data())
    def unknown(self, data: st.DataObject) -> None:
        """Calls naming an entity that does not exist."""
        names = sorted({self.READ.rpartition(".")[2], *self.lifecycle.calls})
        action = data.draw(st.sampled_from(names), label="method")
        key = str(uuid.UUID(int=data.draw(st.integers(0, 2**128 - 1), label="id"), version=4))
        reply = self.env.rpc(self.method_of(action), self.action_request(key, action))
        self.expect_gone(reply)

    def teardown(self) -> None:
        for entity in self.tracked:
            if not entity.gone:
                with contextlib.suppress(Exception):  # cleanup is best effort: the verdict is made
                    self.delete(entity)


MachineFactory = Callable[[], LifecycleMachine]  # a fresh machine talking to one run's target


# -- the whole transition table, deterministically ------------------------------------------


def shortest_paths(lifecycle: Lifecycle) -> dict[str, list[str]]:
    """For each state, the shortest list of actions (calls and automatic edges) reaching it."""
    paths: dict[str, list[str]] = {lifecycle.initial: []}
    frontier = [lifecycle.initial]
    while frontier:
        following = []
        for state in frontier:
            for action, edges in sorted(lifecycle.machine.transitions.items()):
                target = edges.get(state)
                if target is not None and target not in paths:
                    paths[target] = [*paths[state], action]
                    following.append(target)
        frontier = following
    return paths


def reach(machine: LifecycleMachine, state: str, path: list[str]) -> Tracked | None:
    """An entity in ``state``, or None when the server took every candidate elsewhere.

    One candidate per creation variant, all made at once so they move on together;
    runs of automatic edges are waited for on all of them in the same rounds.
    """
    table = machine.lifecycle.machine
    candidates = [machine.create_variant(variant) for variant in range(machine.VARIANTS)]
    planned = machine.lifecycle.initial
    for index, action in enumerate(path):
        planned = table.target(action, planned) or planned
        if action in machine.lifecycle.calls:
            for entity in candidates:
                machine.apply(entity, action)
        elif index + 1 == len(path) or path[index + 1] in machine.lifecycle.calls:
            # the end of a run of automatic edges: wait for the server to get there
            candidates = settle_all(machine, candidates, planned)
    chosen = next((e for e in candidates if state in e.states), None)
    for entity in candidates:
        if entity is not chosen and not entity.gone:
            machine.delete(entity)
            entity.gone = True
    return chosen


def settle_all(machine: LifecycleMachine, entities: list[Tracked], wanted: str) -> list[Tracked]:
    """The entities that reached ``wanted`` (the others are deleted), waiting in shared rounds."""
    arrived: list[Tracked] = []
    pending = [e for e in entities if wanted in e.states]
    for entity in entities:
        if entity not in pending and not entity.gone:
            machine.delete(entity)
            entity.gone = True
    deadline = time.monotonic() + machine.env.settle_timeout
    while pending:
        for entity in list(pending):
            if entity.states == {wanted}:
                arrived.append(entity)
                pending.remove(entity)
            elif wanted not in entity.states or not machine.lifecycle.moving(entity.states):
                pending.remove(entity)
                machine.delete(entity)
                entity.gone = True
        if not pending or time.monotonic() > deadline:
            break
        machine.env.wait(machine.SETTLE_STEP)
        for entity in pending:
            reply, observed = machine.read(entity)
            expect_codes(reply, {"OK"}, machine.PROGRESS_RULE or entity.rule, "reading an existing entity")
            assert observed is not None
            machine.check_state(entity, reply, observed)
    for entity in pending:  # out of time: not there yet
        machine.delete(entity)
        entity.gone = True
    return arrived


def check_action(new_machine: MachineFactory, action: str) -> int:
    """Call ``action`` from every state the server can be brought to; the number of states tried.

    ``new_machine`` makes the machine the walk uses.  A refusal or a success
    that the state machine does not allow raises a Mismatch naming the rule, as
    in the random sequences.
    """
    machine = new_machine()
    tried = 0
    try:
        for state, path in shortest_paths(machine.lifecycle).items():
            entity = reach(machine, state, path)
            if entity is None:
                continue
            machine.apply(entity, action)
            tried += 1
    finally:
        machine.teardown()
    return tried
