"""Descriptor registry: the one source of truth for wire shapes.

It sits below both engines: the mock server and the conformance harness (which
must be able to test a real server without the mock) read it alike.
Everything the server, the gateway and the conformance suites know about a
message or a method comes from here.  Flyte and ArmoniK descriptors are loaded
from their official wheels; Kubeflow Pipelines and Flyte's CacheService come
from the .proto files in ``protos/``, compiled when the package is built.  All of them end up
in protobuf's default descriptor pool, which is also what server reflection
serves.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message, message_factory
from protoconform import specs
from protoconform.protos import compile_protos
from protoconform.specs import families as family_table

FAMILIES = specs.FAMILIES


@dataclass(frozen=True)
class Method:
    """One RPC, resolved against the descriptor pool."""

    family: str
    service: str  # full service name, e.g. "api.RunService"
    name: str  # method name, e.g. "CreateRun"
    descriptor: descriptor.MethodDescriptor

    @cached_property  # on every call's path
    def path(self) -> str:
        """The gRPC path, ``/package.Service/Method``."""
        return f"/{self.service}/{self.name}"

    @cached_property  # on every call's path
    def client_streaming(self) -> bool:
        return bool(self.descriptor.client_streaming)

    @cached_property  # on every call's path
    def server_streaming(self) -> bool:
        return bool(self.descriptor.server_streaming)

    @property
    def kind(self) -> str:
        """``unary_unary``, ``unary_stream``, ``stream_unary`` or ``stream_stream``."""
        request = "stream" if self.client_streaming else "unary"
        return f"{request}_{'stream' if self.server_streaming else 'unary'}"

    @cached_property  # on every call's path
    def request_type(self) -> str:
        return self.descriptor.input_type.full_name

    @cached_property  # on every call's path
    def response_type(self) -> str:
        return self.descriptor.output_type.full_name


def _import_all(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package_name}.{info.name}")


def _add_files(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> list[str]:
    """Add files to the default pool (those already there are kept); their names."""
    pool = descriptor_pool.Default()
    names = []
    for file_proto in files:
        try:
            pool.FindFileByName(file_proto.name)
        except KeyError:
            pool.AddSerializedFile(file_proto.SerializeToString())
        names.append(file_proto.name)
    return names


@cache
def _load_local_files() -> tuple[str, ...]:
    """Our compiled .proto files and every family's own descriptor set, once per process."""
    names = _add_files(compile_protos().file)
    for entry in family_table.TABLE.values():
        if entry.descriptor_set:
            file_set = descriptor_pb2.FileDescriptorSet.FromString(Path(entry.descriptor_set).read_bytes())
            names += _add_files(file_set.file)
    return tuple(names)


class Registry:
    """Descriptors of every served API family, looked up by full name."""

    def __init__(self, families: tuple[str, ...] | list[str] = FAMILIES) -> None:
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown API families {sorted(unknown)}; known: {', '.join(FAMILIES)}")
        self.pool = descriptor_pool.Default()
        for entry in family_table.TABLE.values():  # load all so types shared across families resolve
            for package_name in entry.wheel_packages:
                _import_all(package_name)
        self.local_files = _load_local_files()
        self.families: dict[str, list[str]] = {family: specs.served_services(family) for family in families}
        self._methods: dict[str, Method] = {}
        for family, services in self.families.items():
            for service_name in services:
                service = self.service(service_name)
                for method_descriptor in service.methods:
                    method = Method(family, service_name, method_descriptor.name, method_descriptor)
                    self._methods[method.path] = method

    # -- lookups -------------------------------------------------------------
    def service(self, full_name: str) -> descriptor.ServiceDescriptor:
        return self.pool.FindServiceByName(full_name)

    def message_descriptor(self, full_name: str) -> descriptor.Descriptor:
        return self.pool.FindMessageTypeByName(full_name)

    def message_class(self, full_name: str) -> type[message.Message]:
        return message_factory.GetMessageClass(self.message_descriptor(full_name))

    def enum(self, full_name: str) -> descriptor.EnumDescriptor:
        return self.pool.FindEnumTypeByName(full_name)

    def method(self, path_or_name: str) -> Method:
        """A served method by gRPC path (``/pkg.Svc/M``) or dotted name (``pkg.Svc.M``)."""
        if not path_or_name.startswith("/"):
            service, _, name = path_or_name.rpartition(".")
            path_or_name = f"/{service}/{name}"
        return self._methods[path_or_name]

    def methods(self, family: str | None = None) -> list[Method]:
        return [m for m in self._methods.values() if family is None or m.family == family]

    def service_names(self) -> list[str]:
        return [name for services in self.families.values() for name in services]

    def family_of_service(self, service_name: str) -> str:
        for family, services in self.families.items():
            if service_name in services:
                return family
        raise KeyError(service_name)


@cache
def default_registry() -> Registry:
    """The registry of all families, shared within a process (descriptors are immutable)."""
    return Registry()
