"""KFP fixtures: a RunService client over a real gRPC channel to the in-process server (manual clock)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from kfp_support import RunService
from protoconform.mockserver.launcher import ThreadedServer


@pytest.fixture(scope="session")
def kfp_channel(threaded_server: ThreadedServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(threaded_server.grpc_address) as channel:
        yield channel


@pytest.fixture
def kfp(fresh_server: ThreadedServer, kfp_channel: grpc.Channel) -> RunService:
    return RunService(kfp_channel, fresh_server)


@pytest.fixture
def defect(fresh_server: ThreadedServer) -> Callable[[str], None]:
    """Switch on a defect mode for one test (fresh_server clears them)."""
    return fresh_server.server.dispatcher.defects.add
