"""Every AdminService method answers a plausible request, over gRPC and, for GET routes, over REST alike."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import grpc
import pytest
import requests
from flyte_support import PLAUSIBLE, Admin, admin_methods, build_world
from google.protobuf import json_format
from protoconform.conformance.suites.rest import http_rule, transcode
from protoconform.specs.registry import default_registry

SERVICE = "flyteidl.service.AdminService"


def _value(request: Any, dotted: str) -> str:
    """A path variable's text, zero values included (retry_attempt 0), enums by name."""
    holder: Any = request
    *parents, leaf = dotted.split(".")
    for part in parents:
        holder = getattr(holder, part)
    field = holder.DESCRIPTOR.fields_by_name[leaf]
    value = getattr(holder, leaf)
    return field.enum_type.values_by_number[value].name if field.enum_type else str(value)


@pytest.fixture
def world(admin: Admin) -> Admin:
    return build_world(admin)


def test_every_method_of_the_service_has_a_plausible_request() -> None:
    assert sorted(PLAUSIBLE) == sorted(admin_methods())


def test_every_admin_method_answers_its_plausible_request(world: Admin) -> None:
    refused = {}
    for name in admin_methods():  # in the descriptor's order: updates come before gets and deletes
        try:
            getattr(world, name)(PLAUSIBLE[name]())
        except grpc.RpcError as error:
            refused[name] = (error.code().name, error.details())
    assert refused == {}


def test_get_routes_answer_over_rest_as_over_grpc(world: Admin) -> None:
    registry = default_registry()
    compared = []
    for name in admin_methods():
        method = registry.method(f"{SERVICE}.{name}")
        rule = http_rule(method)
        if rule is None or rule.WhichOneof("pattern") != "get":
            continue
        request = world.message(method.request_type, PLAUSIBLE[name]())
        over_grpc = getattr(world, name)(request)
        query = transcode(method, request).query
        path = re.sub(r"\{([\w.]+)\}", lambda m, r=request: quote(_value(r, m[1]), safe=""), rule.get)
        reply = requests.get(
            world.server.http_url + path, params=query, headers={"Accept": "application/json"}, timeout=10
        )
        assert reply.status_code == 200, (name, reply.text[:300])
        over_rest = json_format.Parse(reply.text, registry.message_class(method.response_type)())
        assert over_rest == over_grpc, name
        compared.append(name)
    assert len(compared) == 35  # every GET route of AdminService


def test_rest_errors_are_status_bodies(world: Admin) -> None:
    url = world.server.http_url + "/api/v1/tasks/p1/development/mod.none/v1"
    reply = requests.get(url, headers={"Accept": "application/json"}, timeout=10)
    body = reply.json()
    assert reply.status_code == 404 and body["code"] == 5
    assert body["message"].startswith("id: missing entity of type TASK with identifier")
    reply = requests.get(
        world.server.http_url + "/api/v1/tasks/p1/development?limit=5&filters=eq(nope,1)", timeout=10
    )
    assert reply.status_code == 400 and reply.json()["message"] == "filters: 't.nope' is invalid filter"


def _status_of_an_empty_call(channel: grpc.Channel, method: Any) -> grpc.StatusCode:
    """The status of ``method`` called with an empty request (one empty message on a client stream)."""
    registry = default_registry()
    request = registry.message_class(method.request_type)()
    call = getattr(channel, method.kind)(
        method.path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=registry.message_class(method.response_type).FromString,
    )
    argument = iter([request]) if method.client_streaming else request
    try:
        if method.server_streaming:
            for _ in call(argument, timeout=10):
                pass
        else:
            call(argument, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_no_method_of_any_flyte_service_answers_unimplemented(admin: Admin) -> None:
    """Every method the family serves (the nine documented services, the wheel's extra methods and its
    SyncAgentService) has a handler: an empty request gets its own answer, never the fallback."""
    methods = list(default_registry().methods("flyte"))
    services = {m.service.rpartition(".")[2] for m in methods}
    assert len(services) == 10 and "SyncAgentService" in services
    answers = {m.path: _status_of_an_empty_call(admin.channel, m) for m in methods}
    assert len(answers) >= 78
    assert [path for path, code in answers.items() if code == grpc.StatusCode.UNIMPLEMENTED] == []
