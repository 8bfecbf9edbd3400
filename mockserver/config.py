"""Server configuration: one dataclass, filled from the command line or by tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protoconform.mockserver.auth import AuthConfig
from protoconform.mockserver.tls import TlsConfig
from protoconform.specs.registry import FAMILIES


def _limit(default: float, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the server: sized so bursts get through and abuse does not.

    Each field is a ``serve`` option of the same name (``--max-pending-calls``...);
    its help text is the metadata below.
    """

    max_message_bytes: int = _limit(64 * 1024 * 1024, "largest gRPC message, either direction")
    max_pending_calls: int = _limit(
        20_000, "gRPC calls accepted and waiting for a handler; past it new calls get RESOURCE_EXHAUSTED"
    )
    keepalive_seconds: float = _limit(60.0, "ping a gRPC connection quiet for this long")
    keepalive_timeout_seconds: float = _limit(
        20.0, "close a gRPC connection whose ping is not answered by then (half-open)"
    )
    idle_connection_seconds: float = _limit(900.0, "close a gRPC connection with no call for this long")
    max_body_bytes: int = _limit(
        64 * 1024 * 1024, "largest HTTP body; larger ones get 413, from Content-Length or while reading"
    )
    body_timeout_seconds: float = _limit(60.0, "an HTTP body not fully received by then gets 408")
    http_idle_seconds: float = _limit(
        75.0, "close an HTTP connection idle (or still sending its headers) for this long"
    )


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0  # gRPC; 0 = pick a free port
    http_port: int = 0  # HTTP side (health, version, REST gateway, OpenAPI, control API); 0 = free port
    families: tuple[str, ...] = FAMILIES
    log_level: str = "INFO"
    clock_speed: float = 1.0  # virtual seconds per wall second; 0 = manual clock
    defects: frozenset[str] = frozenset()  # deliberate deviations, for proving conformance suites
    store: str = "memory"  # where state lasts: "memory" (gone at exit) or "sqlite:PATH"
    grace_seconds: float = 5.0  # how long in-flight calls may finish on shutdown
    limits: Limits = field(default_factory=Limits)
    tls: TlsConfig | None = None  # PEM files: TLS (and mTLS with a client CA) on both ports
    auth: AuthConfig = field(default_factory=AuthConfig)  # bearer tokens / JWT; off when empty
    # Per-family options (e.g. ArmoniK partitions, an attached worker address),
    # keyed by family name; each family documents and parses its own.
    family_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Fault rules applied from the start (mockserver/faults.py), and the seed of their draws
    # (None: a random one, shown by GET /control/faults).
    faults: list[dict[str, Any]] = field(default_factory=list)
    fault_seed: int | None = None
    # gRPC front-end processes sharing the port (mockserver/workers.py); 1 = this process serves it
    workers: int = 1

    def options(self, family: str) -> dict[str, Any]:
        return self.family_options.get(family, {})
