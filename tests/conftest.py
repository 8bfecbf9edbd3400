"""Shared fixtures: servers on loopback ports chosen at run time, and channels to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from fault_support import Armonik, clean_control
from protoconform.conformance.control import ControlClient
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


# For a module that defines ``server`` (a ThreadedServer or a ServerProcess): the fault and
# --workers tests. A module's own fixture of the same name wins.
@pytest.fixture
def control(server: Any) -> Iterator[ControlClient]:
    """The server's control API, with no fault rule and fresh state before and after the test."""
    with clean_control(server.http_url) as client:
        yield client


@pytest.fixture
def ak(server: Any) -> Iterator[Armonik]:
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield Armonik(channel)
