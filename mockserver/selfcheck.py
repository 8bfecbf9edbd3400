"""Whether the server can serve, as health reports it.

Health must not say SERVING while the server cannot do its job.  Probes look
at what the whole server depends on (the virtual clock readable and moving, its
task alive, each family's own ``health_problems(state)`` when it has one);
:class:`SelfCheck` runs them every second and on demand (after a control call),
sets the gRPC health status of every service, and ``/healthz`` answers the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

if TYPE_CHECKING:
    from protoconform.mockserver.server import MockServer
    from protoconform.mockserver.workers import FanOutHealth

log = logging.getLogger(__name__)

PERIOD_SECONDS = 1.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def problems(server: MockServer) -> list[str]:
    """What keeps the server from serving now; empty when it can."""
    found: list[str] = []
    clock = server.clock
    try:
        clock.now()
        if clock.stopped():
            found.append("the virtual clock reached its limit and stopped; POST /control/reset restarts it")
    except Exception as exc:  # an unreadable clock breaks every lifecycle
        found.append(f"the virtual clock cannot be read: {type(exc).__name__}: {exc}")
    task = server.clock_task
    if task is not None and task.done() and not task.cancelled():
        found.append(f"the virtual clock's task ended: {task.exception()!r}")
    if server.front_ends is not None:  # --workers: gRPC front-ends left down
        found += server.front_ends.problems()
    for name, module in server.families.items():
        probe = getattr(module, "health_problems", None)
        if probe is not None:
            try:
                found += [f"{name}: {problem}" for problem in probe(server.states[name])]
            except Exception as exc:
                found.append(f"{name}: health probe failed: {type(exc).__name__}: {exc}")
    return found


class SelfCheck:
    def __init__(
        self, server: MockServer, health: HealthServicer | FanOutHealth, service_names: list[str]
    ) -> None:
        self.server = server
        self.health = health
        self.names = ["", *service_names]
        self.current: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> list[str]:
        """Probe now and publish the outcome (logged once per change)."""
        found = problems(self.server)
        if found != self.current:
            if found:
                log.warning("NOT_SERVING: %s", "; ".join(found))
            else:
                log.info("SERVING again")
            status = NOT_SERVING if found else SERVING
            for name in self.names:
                await self.health.set(name, status)
            self.current = found
        return found

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(PERIOD_SECONDS)
                try:
                    await self.refresh()
                except Exception:  # keep probing whatever one round did
                    log.exception("health probe failed")

        self._task = asyncio.create_task(loop(), name="selfcheck")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
