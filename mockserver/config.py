"""Server configuration: one dataclass, filled from the command line or by tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protoconform.mockserver.registry import FAMILIES


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0  # gRPC; 0 = pick a free port
    http_port: int = 0  # HTTP side (health, version, REST gateway, OpenAPI, control API); 0 = free port
    families: tuple[str, ...] = FAMILIES
    log_level: str = "INFO"
    clock_speed: float = 1.0  # virtual seconds per wall second; 0 = manual clock
    defects: frozenset[str] = frozenset()  # deliberate deviations, for proving conformance suites
    grace_seconds: float = 5.0  # how long in-flight calls may finish on shutdown
    # Per-family options (e.g. ArmoniK partitions, an attached worker address),
    # keyed by family name; each family documents and parses its own.
    family_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options(self, family: str) -> dict[str, Any]:
        return self.family_options.get(family, {})
