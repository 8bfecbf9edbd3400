"""A small server-reflection client: what services a target says it serves, and their descriptors.

Tries ``grpc.reflection.v1`` first and falls back to ``v1alpha`` (same
messages, other package).  Descriptors come back as FileDescriptorProtos; they
are loaded, with their dependencies, into a private pool so they can be
compared with the registry's without touching the default pool.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2

SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


class ReflectionError(Exception):
    pass


class ReflectionClient:
    def __init__(self, channel: grpc.Channel, timeout: float = 10.0) -> None:
        self.channel = channel
        self.timeout = timeout
        self.service_name: str | None = None
        self._files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        self._pool: descriptor_pool.DescriptorPool | None = None

    def _ask(
        self, request: reflection_pb2.ServerReflectionRequest
    ) -> reflection_pb2.ServerReflectionResponse:
        names = [self.service_name] if self.service_name else list(SERVICES)
        last_error: Exception | None = None
        for name in names:
            call = self.channel.stream_stream(
                f"/{name}/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            try:
                responses = list(call(iter([request]), timeout=self.timeout))
            except grpc.RpcError as exc:
                last_error = exc
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    continue
                raise ReflectionError(f"reflection failed: {exc.code().name}: {exc.details()}") from None
            self.service_name = name
            if not responses:
                raise ReflectionError("reflection answered nothing")
            response = responses[0]
            if response.HasField("error_response"):
                err = response.error_response
                raise ReflectionError(f"reflection error {err.error_code}: {err.error_message}")
            return response
        code = last_error.code().name if isinstance(last_error, grpc.RpcError) else "?"
        raise ReflectionError(f"the target serves no reflection service ({code})")

    def list_services(self) -> list[str]:
        response = self._ask(reflection_pb2.ServerReflectionRequest(list_services=""))
        return [s.name for s in response.list_services_response.service]

    def _add_files(self, response: reflection_pb2.ServerReflectionResponse) -> None:
        for raw in response.file_descriptor_response.file_descriptor_proto:
            file = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self._files.setdefault(file.name, file)
        self._pool = None

    def load_symbol(self, symbol: str) -> None:
        """Fetch the file defining ``symbol`` and, transitively, every file it imports."""
        self._add_files(self._ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)))
        missing = self._missing()
        while missing:
            for name in missing:
                self._add_files(self._ask(reflection_pb2.ServerReflectionRequest(file_by_filename=name)))
            still = self._missing()
            if still & missing:
                raise ReflectionError(f"reflection cannot provide {sorted(still & missing)}")
            missing = still

    def _missing(self) -> set[str]:
        return {d for f in self._files.values() for d in f.dependency if d not in self._files}

    def pool(self) -> descriptor_pool.DescriptorPool:
        """A private pool holding every file fetched so far."""
        if self._pool is None:
            pool = descriptor_pool.DescriptorPool()
            added: set[str] = set()

            def add(name: str) -> None:
                if name in added:
                    return
                added.add(name)
                file = self._files[name]
                for dependency in file.dependency:
                    add(dependency)
                pool.Add(file)

            for name in self._files:
                add(name)
            self._pool = pool
        return self._pool

    def service(self, name: str) -> Any:
        return self.pool().FindServiceByName(name)
