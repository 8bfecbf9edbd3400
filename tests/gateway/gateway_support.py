"""Helpers for the REST gateway tests: annotated routes read straight from the descriptors,
a call observer capturing what reaches the handlers, and a generic gRPC caller."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import grpc
from google.api import annotations_pb2
from google.protobuf import descriptor, message
from protoconform.mockserver.dispatch import CallRecord
from protoconform.specs.registry import Registry

VARIABLE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")


@dataclass(frozen=True)
class Binding:
    """One google.api.http binding, as a reader of the annotation sees it."""

    family: str
    service: str
    method: str
    http_method: str
    path: str
    body: str
    index: int

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.method}"

    @property
    def path_fields(self) -> list[str]:
        return VARIABLE.findall(self.path)

    @property
    def id(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.method}#{self.index}"


def annotated_bindings(registry: Registry) -> list[Binding]:
    bindings = []
    for family, services in registry.families.items():
        for service_name in services:
            for method in registry.service(service_name).methods:
                options = method.GetOptions()
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule = options.Extensions[annotations_pb2.http]
                for index, binding in enumerate([rule, *rule.additional_bindings]):
                    kind = binding.WhichOneof("pattern")
                    http_method, path = (
                        (binding.custom.kind, binding.custom.path)
                        if kind == "custom"
                        else (kind, getattr(binding, kind))
                    )
                    bindings.append(
                        Binding(
                            family, service_name, method.name, http_method.upper(), path, binding.body, index
                        )
                    )
    return bindings


class Capture:
    """A dispatcher observer that keeps every request message it sees, by protocol."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str, message.Message]] = []

    async def before(self, record: CallRecord) -> None:
        with self._lock:
            for request in record.requests:
                self.calls.append((record.protocol, record.method.path, request))

    def after(self, record: CallRecord) -> None:
        return None

    def take(self, protocol: str, path: str) -> message.Message:
        with self._lock:
            found = [request for proto, p, request in self.calls if proto == protocol and p == path]
            self.calls.clear()
        assert len(found) == 1, f"expected one {protocol} call of {path}, saw {len(found)}"
        return found[0]


def grpc_call(channel: grpc.Channel, registry: Registry, grpc_path: str, request: message.Message) -> Any:
    """Call any unary or server-streaming method; returns the response(s) or the RpcError."""
    method = registry.method(grpc_path)
    response_class = registry.message_class(method.response_type)
    kwargs: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": response_class.FromString,
    }
    try:
        if method.server_streaming:
            return list(channel.unary_stream(grpc_path, **kwargs)(request, timeout=10))
        return channel.unary_unary(grpc_path, **kwargs)(request, timeout=10)
    except grpc.RpcError as error:
        return error


def field_chain(message_type: descriptor.Descriptor, path: str) -> list[descriptor.FieldDescriptor]:
    chain = []
    current: descriptor.Descriptor | None = message_type
    for part in path.split("."):
        assert current is not None, path
        field = current.fields_by_name[part]
        chain.append(field)
        current = field.message_type
    return chain
