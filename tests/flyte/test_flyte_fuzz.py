"""Odd but well-formed requests to every method of every Flyte service: no crash, and a refusal changes
nothing.

Requests are drawn from each method's descriptor (edge numbers, undefined enums, extreme times,
empty and long strings), or are the method's plausible request with some fields swapped for wild
ones, against a world where the named entities exist.  flyteadmin answers such requests with
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION or success: INTERNAL, UNKNOWN or
DATA_LOSS means a handler raised.  A refused call must leave every table as it was.
"""

from __future__ import annotations

import os

import grpc
import pytest
from flyte_support import PLAUSIBLE, Admin, admin_methods, build_world
from google.protobuf import message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protoconform.conformance import strategies
from protoconform.specs.registry import default_registry

REGISTRY = default_registry()
CRASHES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
WILD = strategies.Options(max_depth=4, max_size=2, max_text=12, invalid_enums=True)
EXAMPLES = int(os.environ.get("PROTOCONFORM_FUZZ_EXAMPLES", "25"))


def _versions(admin: Admin) -> tuple[int, ...]:
    store = admin.state().store
    from protoconform.mockserver.apis.flyte.state import TABLES

    return tuple(store.table(name).version() for name in TABLES)


@pytest.mark.parametrize("name", admin_methods())
def test_odd_requests_never_crash_and_refusals_change_nothing(admin: Admin, name: str) -> None:
    world = build_world(admin)
    method = REGISTRY.method(f"flyteidl.service.AdminService.{name}")
    desc = method.descriptor.input_type
    example = world.message(method.request_type, PLAUSIBLE[name]())
    wild = strategies.messages(desc, WILD)
    drawn = st.one_of(
        wild,
        st.builds(
            lambda w, p: strategies.graft(example, w, p, descend=0.5, replace=0.8),
            wild,
            st.randoms(use_true_random=False),
        ),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=drawn)
    def check(request: message.Message) -> None:
        before = _versions(world)
        try:
            getattr(world, name)(request)
        except grpc.RpcError as error:
            assert error.code() not in CRASHES, (error.code(), error.details())
            assert _versions(world) == before, f"{name} refused ({error.code().name}) but changed the store"

    check()


OTHER_METHODS = [m for m in REGISTRY.methods("flyte") if not m.service.endswith(".AdminService")]


def _call(channel: grpc.Channel, method, request: message.Message) -> None:
    """One call of any kind; a refusal raises grpc.RpcError."""
    call = getattr(channel, method.kind)(
        method.path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=REGISTRY.message_class(method.response_type).FromString,
    )
    argument = iter([request]) if method.client_streaming else request
    if method.server_streaming:
        for _ in call(argument, timeout=10):
            pass
    else:
        call(argument, timeout=10)


@pytest.mark.parametrize("method", OTHER_METHODS, ids=[m.path for m in OTHER_METHODS])
def test_odd_requests_to_the_other_services_never_crash(admin: Admin, method) -> None:
    """DataProxy, signals, cache, agents, auth: requests drawn from the descriptor alone."""
    world = build_world(admin)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=strategies.messages(method.descriptor.input_type, WILD))
    def check(request: message.Message) -> None:
        before = _versions(world)
        try:
            _call(world.channel, method, request)
        except grpc.RpcError as error:
            assert error.code() not in CRASHES, (error.code(), error.details())
            assert _versions(world) == before, (
                f"{method.name} refused ({error.code().name}) but changed the store"
            )

    check()
