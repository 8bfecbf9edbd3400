"""Gateway fixtures: the in-process server, a gRPC channel to it, and a request-capturing observer."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from gateway_support import Capture
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.registry import Registry, default_registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="session")
def gateway_channel(threaded_server: ThreadedServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(threaded_server.grpc_address) as channel:
        yield channel


@pytest.fixture
def capture(fresh_server: ThreadedServer) -> Iterator[Capture]:
    observer = Capture()
    observers = fresh_server.server.dispatcher.observers
    fresh_server.run(lambda: observers.append(observer))
    try:
        yield observer
    finally:
        fresh_server.run(lambda: observers.remove(observer))
