"""Every request-shape rule of every family in ``specs/`` is enforced by the mock, over gRPC.

The rules are read from the specs, not listed here: for each rule (required,
nonempty, range, pattern, length, enum_defined) and each unary method it names,
requests that break that rule alone are drawn and sent; the answer must be the
rule's code with a message naming the rule's field.  The dispatcher applies
these rules before any handler runs, so no state is needed.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from protoconform.conformance import strategies as S
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs import FAMILIES
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import REQUEST_KINDS, load

REGISTRY = default_registry()


def _cases() -> list[tuple[str, str, str]]:
    """``(family, method, rule id)`` for every shape rule that one request can break alone."""
    found = []
    for family in FAMILIES:
        rules = load(family)
        for rule in rules.of_kind(*REQUEST_KINDS):
            for method in rule.methods:
                if REGISTRY.method(method).client_streaming:
                    continue  # a streamed request is checked by its handler, message by message
                if not S.why_unbreakable(rule, method):
                    found.append((family, method, rule.id))
    return found


CASES = _cases()


def test_every_family_has_shape_rules_to_check() -> None:
    families = {family for family, _, _ in CASES}
    assert {"kfp", "armonik"} <= families, families


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    server = ThreadedServer(ServerConfig(clock_speed=0, grace_seconds=0.2))
    with server, grpc.insecure_channel(server.grpc_address) as ch:
        yield ch


@pytest.mark.parametrize(("family", "method", "rule_id"), CASES, ids=[f"{m}:{r}" for _, m, r in CASES])
def test_the_mock_enforces_the_rule(channel: grpc.Channel, family: str, method: str, rule_id: str) -> None:
    rules = load(family)
    rule = rules.rule(rule_id)
    resolved = REGISTRY.method(method)
    response_class = REGISTRY.message_class(resolved.response_type)

    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(request=S.invalid_request(method, rules, rule))
    def check(request: object) -> None:
        stub = channel.unary_unary(
            resolved.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        if resolved.server_streaming:
            stub = channel.unary_stream(
                resolved.path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_class.FromString,
            )
        with pytest.raises(grpc.RpcError) as refused:
            reply = stub(request, timeout=10)
            if resolved.server_streaming:
                list(reply)
        assert refused.value.code() == rule.status, refused.value.details()
        assert rule.field in (refused.value.details() or ""), refused.value.details()

    check()
