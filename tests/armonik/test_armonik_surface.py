"""Every ArmoniK RPC is served (none answers UNIMPLEMENTED), plus the configuration-derived services."""

from __future__ import annotations

import importlib.metadata

import grpc
import pytest
from akutil import Stubs
from armonik.protogen.common import auth_common_pb2, health_checks_common_pb2, versions_common_pb2
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs import documented_methods
from protoconform.specs.registry import default_registry


def _armonik_methods() -> list[tuple[str, str]]:
    return documented_methods("armonik")


def test_sixty_one_rpcs_documented_and_served() -> None:
    methods = _armonik_methods()
    assert len(methods) == 61
    registry = default_registry()
    assert {(m.service, m.name) for m in registry.methods("armonik")} == set(methods)


@pytest.mark.parametrize(("service", "method"), _armonik_methods(), ids=lambda v: v.rpartition(".")[2])
def test_no_rpc_is_unimplemented(server: ThreadedServer, service: str, method: str) -> None:
    registry = default_registry()
    info = registry.method(f"/{service}/{method}")
    request = registry.message_class(info.request_type)()
    response_class = registry.message_class(info.response_type)
    with grpc.insecure_channel(server.grpc_address) as channel:
        factory = getattr(channel, info.kind)
        call = factory(
            info.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        code = grpc.StatusCode.OK
        try:
            if info.client_streaming:
                reply = call(iter([request]), timeout=0.5)
            else:
                reply = call(request, timeout=0.5)
            if info.server_streaming:
                for _ in reply:
                    pass
        except grpc.RpcError as error:
            code = error.code()
            assert error.code() != grpc.StatusCode.UNIMPLEMENTED, error.details()
        assert code != grpc.StatusCode.UNIMPLEMENTED


def test_versions_health_and_user(server: ThreadedServer) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        stubs = Stubs(channel)
        versions = stubs.versions.ListVersions(versions_common_pb2.ListVersionsRequest())
        assert versions.api == importlib.metadata.version("armonik")
        assert versions.core == importlib.metadata.version("protoconform")
        health = stubs.health.CheckHealth(health_checks_common_pb2.CheckHealthRequest())
        assert [s.name for s in health.services] == ["database", "object", "queue"]
        assert {s.healthy for s in health.services} == {health_checks_common_pb2.HEALTH_STATUS_ENUM_HEALTHY}
        user = stubs.auth.GetCurrentUser(auth_common_pb2.GetCurrentUserRequest()).user
        assert user.username == "Anonymous"
        assert "Sessions:CreateSession" in user.permissions and "General:Impersonate" in user.permissions
        assert "HealthChecks:CheckHealth" in user.permissions
        assert not [p for p in user.permissions if p.startswith(("Agent:", "Worker:"))]
