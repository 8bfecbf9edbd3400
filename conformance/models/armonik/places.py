"""Where ArmoniK examples may run (``inside:`` in ``specs/armonik/*examples.yaml``), and where the
run reaches the Agent: read by the plugin's ``places`` and ``channel`` fixtures.

- ``worker``: inside a task the target is processing, handed to the harness's own Worker
  (:mod:`.workerhost`); binds ``task``, the ``ProcessRequest``;
- ``idle-worker``: while the harness's Worker processes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from protoconform.conformance.models.armonik.workerhost import (
    AGENT_SERVICE,
    IdlePlace,
    Settings,
    WorkerPlace,
    WorkerSetup,
)
from protoconform.conformance.target import Target


def _settings(config: pytest.Config) -> Settings:
    def option(name: str) -> str:
        return str(config.getoption(name, default="") or "")

    return Settings(
        listen=option("armonik_worker_listen"),
        partition=option("armonik_worker_partition"),
        agent=option("armonik_agent"),
    )


class Places:
    """The family's places (one setup, started on first use) and how to close them."""

    def __init__(self, config: pytest.Config, target: Target, control: Any) -> None:
        self.setup = WorkerSetup(_settings(config), target, control)
        self.places: dict[str, Any] = {
            "worker": WorkerPlace(self.setup),
            "idle-worker": IdlePlace(self.setup),
        }

    def close(self) -> None:
        self.setup.close()


def open_places(config: pytest.Config, target: Target, control: Any) -> Places:
    return Places(config, target, control)


def channel_routes(config: pytest.Config) -> dict[str, str]:
    """Services the run reaches somewhere else than the target: the Agent at --armonik-agent."""
    agent = _settings(config).agent
    return {AGENT_SERVICE: agent} if agent else {}
