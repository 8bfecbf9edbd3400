"""Shared fixtures: servers on loopback ports chosen at run time, and channels to them."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ServerProcess, ThreadedServer


@pytest.fixture(scope="session")
def server_process() -> Iterator[ServerProcess]:
    """``protoconform serve`` as a user runs it, shared by the whole session."""
    with ServerProcess() as process:
        yield process


@pytest.fixture(scope="session")
def threaded_server() -> Iterator[ThreadedServer]:
    """An in-process server (manual clock) for tests that look at state or step time."""
    with ThreadedServer(ServerConfig(clock_speed=0, grace_seconds=0.5)) as server:
        yield server


@pytest.fixture
def fresh_server(threaded_server: ThreadedServer) -> ThreadedServer:
    """The in-process server with every family's state reset."""
    threaded_server.run(threaded_server.server.reset_state)
    threaded_server.server.dispatcher.defects.clear()
    return threaded_server


@pytest.fixture(scope="session")
def channel(server_process: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server_process.grpc_address) as ch:
        yield ch
