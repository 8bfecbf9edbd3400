"""The toy family's handlers: a dictionary of toys.

The handlers check only what needs state; the request-shape rules of
``specs/rules.yaml`` (name required, size in range) are the dispatcher's job.
"""

from __future__ import annotations

from typing import Any

import grpc
from protoconform.mockserver.rpc import ApiError, CallContext, handler
from protoconform.specs import rules as spec_rules

SERVICE = "toy.v1.Toys"
WRONG_STATUS = "toy.get-wrong-status"


class ToyState:
    def __init__(self, registry: Any) -> None:
        self.rules = spec_rules.load("toy")
        self.toy_class = registry.message_class("toy.v1.Toy")
        self.toys: dict[str, Any] = {}


def create_state(options: dict[str, Any], clock: Any, registry: Any, store: Any = None) -> ToyState:
    # memory only: a toy keeps nothing across restarts
    return ToyState(registry)


@handler(SERVICE, "CreateToy")
def create_toy(request: Any, ctx: CallContext) -> Any:
    state: ToyState = ctx.state
    if request.name in state.toys:
        rule = state.rules.rule("toy.create.exists")
        raise ApiError(rule.status, f"name: toy '{request.name}' already exists")
    toy = state.toy_class(name=request.name, size=request.size)
    state.toys[request.name] = toy
    return toy


@handler(SERVICE, "GetToy")
def get_toy(request: Any, ctx: CallContext) -> Any:
    state: ToyState = ctx.state
    toy = state.toys.get(request.name)
    if toy is None:
        if ctx.defect(WRONG_STATUS):  # the deliberate bug the check must catch
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"name: no toy '{request.name}'")
        raise ApiError(state.rules.rule("toy.get.not-found").status, f"name: toy '{request.name}' not found")
    return toy
