"""A test client of one service of the mock: methods called by name, over a real gRPC channel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import grpc
import pytest
from google.protobuf import json_format, message
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.registry import default_registry


def as_protojson(value: Any) -> Any:
    """Dicts and lists whose leaves may be messages, as protojson."""
    if isinstance(value, message.Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, dict):
        return {k: as_protojson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_protojson(v) for v in value]
    return value


class ServiceClient:
    """Calls the methods of ``SERVICE`` by name with a message, a dict (protojson, whose leaves may
    be messages) or keyword fields; ``FAMILY`` names the state the helpers read."""

    SERVICE: ClassVar[str] = ""
    FAMILY: ClassVar[str] = ""

    def __init__(self, channel: grpc.Channel, server: ThreadedServer) -> None:
        self.registry = default_registry()
        self.channel = channel
        self.server = server

    def message(self, full_name: str, value: Any = None, /, **fields: Any) -> message.Message:
        if isinstance(value, message.Message):
            return value
        return json_format.ParseDict(
            as_protojson({**(value or {}), **fields}), self.registry.message_class(full_name)()
        )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        try:
            method = self.registry.method(f"{self.SERVICE}.{name}")
        except KeyError:
            raise AttributeError(name) from None
        response_class = self.registry.message_class(method.response_type)
        stub = self.channel.unary_unary(
            method.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )

        def call(value: Any = None, /, **fields: Any) -> Any:
            return stub(self.message(method.request_type, value, **fields), timeout=10)

        return call

    def error(self, method: str, value: Any = None, /, **fields: Any) -> grpc.RpcError:
        """Call expecting a failure; returns the error."""
        with pytest.raises(grpc.RpcError) as caught:
            getattr(self, method)(value, **fields)
        return caught.value

    def advance(self, seconds: float) -> None:
        self.server.run(lambda: self.server.server.clock.advance(seconds))

    def state(self) -> Any:
        return self.server.server.states[self.FAMILY]
