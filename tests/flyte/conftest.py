"""Flyte fixtures: AdminService clients over real gRPC channels to in-process servers (manual clock).

``admin`` talks to the shared server, whose simulated propeller runs executions; ``events_admin`` to a
server started with the simulation off, where only Create*Event calls move executions.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from flyte_support import Admin
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer


@pytest.fixture(scope="session")
def flyte_channel(threaded_server: ThreadedServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(threaded_server.grpc_address) as channel:
        yield channel


@pytest.fixture
def admin(fresh_server: ThreadedServer, flyte_channel: grpc.Channel) -> Admin:
    return Admin(flyte_channel, fresh_server)


@pytest.fixture(scope="session")
def events_server() -> Iterator[ThreadedServer]:
    config = ServerConfig(
        clock_speed=0, grace_seconds=0.2, families=("flyte",), family_options={"flyte": {"propeller": False}}
    )
    with ThreadedServer(config) as server:
        yield server


@pytest.fixture
def events_admin(events_server: ThreadedServer) -> Iterator[Admin]:
    events_server.run(events_server.server.reset_state)
    with grpc.insecure_channel(events_server.grpc_address) as channel:
        yield Admin(channel, events_server)
