"""Fixtures of the ArmoniK tests: one manual-clock server a module, reset before each test.

A module changes its server's options by overriding ``server_options``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from akutil import Stubs, manual_server
from protoconform.mockserver.launcher import ThreadedServer


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    return {}


@pytest.fixture(scope="module")
def server(server_options: dict[str, Any]) -> Iterator[ThreadedServer]:
    with manual_server(**server_options) as srv:
        yield srv


@pytest.fixture
def fresh_channel(server: ThreadedServer) -> Iterator[grpc.Channel]:
    """A channel to the module's server, its state reset and every defect off."""
    server.run(server.server.reset_state)
    server.server.dispatcher.defects.clear()
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield channel


@pytest.fixture
def stubs(fresh_channel: grpc.Channel) -> Stubs:
    return Stubs(fresh_channel)
