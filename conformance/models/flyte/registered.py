"""The base of the machines over registered entities (launch plans, tasks, workflows).

Registered entities are named by identifiers, not by the single id field the generic rules of
:class:`~protoconform.conformance.models.machine.LifecycleMachine` send, and the launch plan
state machine's actions (``activate``, ``deactivate``) are states of one call, UpdateLaunchPlan:
the generic rules are switched off here and each machine brings its own.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hypothesis import strategies as st
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import Env
from protoconform.conformance.models.flyte import setup
from protoconform.conformance.models.machine import LifecycleMachine, Tracked


class RegisteredMachine(LifecycleMachine):
    MACHINE: ClassVar[str] = "launch_plan"
    SERVICE: ClassVar[str] = "AdminService"
    ID_FIELD: ClassVar[str] = "id"
    READ: ClassVar[str] = "AdminService.GetLaunchPlan"

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.base = setup.base(env)

    # The generic rules, as plain methods: hypothesis only runs methods marked as rules.
    def create(self, data: st.DataObject) -> Any:  # type: ignore[override]
        raise NotImplementedError

    def act(self, entity: Tracked, data: st.DataObject) -> None:  # type: ignore[override]
        raise NotImplementedError

    def observe(self, entity: Tracked) -> None:  # type: ignore[override]
        raise NotImplementedError

    def settle(self, entity: Tracked) -> None:  # type: ignore[override]
        raise NotImplementedError

    def unknown(self, data: st.DataObject) -> None:  # type: ignore[override]
        raise NotImplementedError

    def read(self, entity: Tracked) -> tuple[Reply, str | None]:
        reply = self.env.rpc(self.READ, {"id": entity.memory["id"]})
        return reply, self.state_name(reply.response.closure.state) if reply.ok else None

    def state_name(self, number: int) -> str:
        enum = self.env.rpc.registry.enum(self.lifecycle.machine.enum)
        value = enum.values_by_number.get(number)
        return value.name if value is not None else str(number)
