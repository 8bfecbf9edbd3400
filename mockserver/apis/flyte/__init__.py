"""Flyte (flyteidl.service.*): nine services.

Their stateful semantics (a simulated propeller, events, flytekit end to end)
come with the Flyte capability; until then every Flyte RPC answers
UNIMPLEMENTED with a message naming the full method.
"""

from __future__ import annotations

from typing import Any

from protoconform.mockserver.clock import Clock
from protoconform.specs.registry import Registry


class FlyteState:
    def __init__(self, clock: Clock, registry: Registry) -> None:
        self.clock = clock
        self.registry = registry


def create_state(options: dict[str, Any], clock: Clock, registry: Registry) -> FlyteState:
    return FlyteState(clock, registry)
