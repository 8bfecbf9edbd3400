"""The execution machine: executions launched, terminated, archived and read while their producer
(a flytepropeller, or this project's simulated one) moves them by events.

The ``workflow`` state machine of specs/flyte events.yaml has one call, TerminateExecution; every
other move comes from events, which flyteadmin takes from anywhere except out of a terminal phase,
and out of ABORTING only into a terminal one (rules ``flyte.events.workflow.terminal`` and
``flyte.events.workflow.aborting``): that is what the model lets the server do on its own.
Archiving (UpdateExecution) takes the execution out of the default ListExecutions, and a filter
naming ``state`` brings it back (``flyte.executions.update.effect``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from hypothesis.stateful import rule
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import Env, Lifecycle, expect_codes, fail
from protoconform.conformance.models.flyte import requests as rq
from protoconform.conformance.models.flyte import setup
from protoconform.conformance.models.machine import LifecycleMachine, Tracked

ARCHIVE_RULE = "flyte.executions.update.effect"
TERMINAL_RULE = "flyte.events.workflow.terminal"
STATE_ENUM = "flyteidl.admin.ExecutionState"  # the ``state`` column holds its numbers


class EventLifecycle(Lifecycle):
    """The workflow phases as events may move them (the calls are judged by the table as usual)."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        super().__init__(lifecycle.machine, lifecycle.rules, lifecycle.calls)
        self.automatic = ["events"]  # the server moves executions on its own
        table = self.machine.transitions
        self.aborting = {to for edges in table.values() for to in edges.values()}  # where calls lead

    def closure(self, states: Iterable[str]) -> frozenset[str]:
        found: set[str] = set()
        terminal = set(self.machine.terminal)
        for state in states:
            if state in terminal:
                found.add(state)
            elif state in self.aborting:
                found |= {state, *terminal}
            else:
                found |= set(self.machine.states)
        return frozenset(found)

    def moving(self, states: Iterable[str]) -> bool:
        return any(s not in self.machine.terminal for s in states)


class ExecutionMachine(LifecycleMachine):
    MACHINE: ClassVar[str] = "workflow"
    SERVICE: ClassVar[str] = "AdminService"
    ID_FIELD: ClassVar[str] = "id"
    READ: ClassVar[str] = "AdminService.GetExecution"
    CREATE_RULE: ClassVar[str] = "flyte.executions.create.initial"
    PROGRESS_RULE: ClassVar[str] = TERMINAL_RULE
    SETTLE_STEP: ClassVar[float] = 5.0
    VARIANTS: ClassVar[int] = 2  # one that runs, one whose node the mock's propeller fails

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.lifecycle = EventLifecycle(self.lifecycle)
        self.base = setup.base(env)
        self.fail_label = env.rules.extra["propeller"]["keys"]["fail_node"]

    def ident(self, name: str) -> dict[str, str]:
        return self.base.named(name)

    def action_request(self, entity_key: str, action: str) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.ident(entity_key)}
        if action == "TerminateExecution":
            body["cause"] = "conformance"
        return body

    def create_variant(self, variant: int) -> Tracked:
        name = rq.fresh(self.env, "x")
        plan = self.base.plan
        body = rq.execution_request(self.base.project, name, plan["name"], plan["version"])
        if variant:  # a real server ignores the label; the model allows every outcome either way
            body["spec"]["labels"] = {"values": {self.fail_label: rq.node_id()}}
        reply = self.env.rpc("AdminService.CreateExecution", body)
        expect_codes(reply, {"OK"}, self.CREATE_RULE, "launching the example launch plan")
        entity = self.track(name)
        observed, state = self.read(entity)
        expect_codes(observed, {"OK"}, self.CREATE_RULE, "reading a new execution")
        assert state is not None
        self.check_state(entity, observed, state)
        return entity

    def read(self, entity: Tracked) -> tuple[Reply, str | None]:
        reply = self.env.rpc(self.READ, {"id": self.ident(entity.key)})
        if not reply.ok:
            return reply, None
        enum = self.env.rpc.registry.enum(self.lifecycle.machine.enum)
        value = enum.values_by_number.get(reply.response.closure.phase)
        return reply, value.name if value is not None else str(reply.response.closure.phase)

    def check_state(self, entity: Tracked, reply: Reply, state: str) -> None:
        before = entity.states
        super().check_state(entity, reply, state)
        if before <= set(self.lifecycle.machine.terminal):
            self.env.covered(TERMINAL_RULE)  # a terminal phase was seen to stay

    def apply(self, entity: Tracked, action: str) -> None:
        super().apply(entity, action)
        if entity.gone:
            return
        # The answer was judged: a refusal leaves only terminal phases possible, a success ABORTING on.
        method = self.env.full(self.method_of(action))
        terminal = set(self.lifecycle.machine.terminal)
        if entity.states <= terminal:
            self.env.covered(self.lifecycle.refusal_rule(action, next(iter(entity.states)), method).id)
        else:
            self.env.covered(self.lifecycle.effect_rule(action, method).id)

    def delete(self, entity: Tracked) -> None:
        self.env.rpc("AdminService.TerminateExecution", self.action_request(entity.key, "TerminateExecution"))

    @rule(entity=LifecycleMachine.entities)
    def archive(self, entity: Tracked) -> None:
        reply = self.env.rpc(
            "AdminService.UpdateExecution", {"id": self.ident(entity.key), "state": "EXECUTION_ARCHIVED"}
        )
        expect_codes(reply, {"OK"}, ARCHIVE_RULE, "archiving in any phase")
        archived = self.env.rpc.registry.enum(STATE_ENUM).values_by_name["EXECUTION_ARCHIVED"].number
        named = f"eq(execution_name,{entity.key})"
        for filters, listed in ((named, False), (f"{named}+eq(state,{archived})", True)):
            found = self.env.rpc(
                "AdminService.ListExecutions",
                {"id": {"project": self.base.project, "domain": rq.DOMAIN}, "limit": 10, "filters": filters},
            )
            expect_codes(found, {"OK"}, ARCHIVE_RULE, "listing executions")
            shown = [e.id.name for e in found.response.executions]
            if (entity.key in shown) != listed:
                wanted = "listed" if listed else "not listed"
                raise fail(
                    ARCHIVE_RULE, found, f"an archived execution {wanted} with filters {filters}", shown
                )
        self.env.covered(ARCHIVE_RULE)
