"""Every annotated route: values in the path, the query string and the body reach the handler
exactly as the same values sent by a gRPC caller do.

The bindings and the expected messages are derived here from the descriptors and the
annotations themselves (not from the gateway's route table), the request message is
captured at the dispatcher, and the same expected message is also sent over gRPC.
"""

from __future__ import annotations

import base64
import collections
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import grpc
import pytest
import requests
from gateway_support import Binding, Capture, annotated_bindings, field_chain, grpc_call
from google.protobuf import descriptor, duration_pb2, json_format, message, timestamp_pb2
from protoconform.mockserver.gateway import APP_KEY
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.registry import Registry, default_registry

FD = descriptor.FieldDescriptor
BINDINGS = annotated_bindings(default_registry())
SKIPPED_TYPES = {
    "google.protobuf.Any",
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.FieldMask",
}
WRAPPERS = {
    "google.protobuf.DoubleValue": FD.TYPE_DOUBLE,
    "google.protobuf.FloatValue": FD.TYPE_FLOAT,
    "google.protobuf.Int64Value": FD.TYPE_INT64,
    "google.protobuf.UInt64Value": FD.TYPE_UINT64,
    "google.protobuf.Int32Value": FD.TYPE_INT32,
    "google.protobuf.UInt32Value": FD.TYPE_UINT32,
    "google.protobuf.BoolValue": FD.TYPE_BOOL,
    "google.protobuf.StringValue": FD.TYPE_STRING,
    "google.protobuf.BytesValue": FD.TYPE_BYTES,
}
# The HTTP status grpc-gateway maps each gRPC code to (both generations agree on these).
HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def test_every_annotated_route_of_the_pinned_descriptors_is_counted() -> None:
    methods = {(b.family, b.service, b.method) for b in BINDINGS}
    per_group = collections.Counter(
        "kfp" if family == "kfp" else ("admin" if service.endswith(".AdminService") else "flyte-other")
        for family, service, _ in methods
    )
    assert per_group == {"kfp": 10, "admin": 56, "flyte-other": 18}
    assert len(methods) == 84
    # AdminService's List{Tasks,Workflows,LaunchPlans,DescriptionEntities} carry one additional binding each.
    assert len(BINDINGS) == 88
    assert sum(b.index > 0 for b in BINDINGS) == 4


def test_gateway_serves_exactly_the_annotated_bindings(threaded_server: ThreadedServer) -> None:
    gateway = threaded_server.server._http.app[APP_KEY]  # type: ignore[union-attr]
    served = {(r.method.path, r.http_method, str(r.template), r.body) for r in gateway.routes}
    annotated = {(b.grpc_path, b.http_method, b.path, b.body) for b in BINDINGS}
    assert served == annotated


# -- sample values -------------------------------------------------------------


def _bytes_without_slash(payload: bytes) -> bytes:
    """A payload whose standard base64 has no '/' or '+' (it goes into URL path segments)."""
    while set(base64.b64encode(payload)) & set(b"/+"):
        payload += b"."
    return payload


def scalar(field: descriptor.FieldDescriptor, tag: str) -> tuple[str, Any]:
    """(text for a URL, value for the message) of one scalar field; different per tag."""
    number = {"p": 7, "q": 11, "b": 13}[tag]
    kind = field.type
    if kind == FD.TYPE_STRING:
        return f"{tag}-{field.name}", f"{tag}-{field.name}"
    if kind in (
        FD.TYPE_INT32,
        FD.TYPE_INT64,
        FD.TYPE_SINT32,
        FD.TYPE_SINT64,
        FD.TYPE_SFIXED32,
        FD.TYPE_SFIXED64,
    ):
        return str(-number), -number
    if kind in (FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_FIXED32, FD.TYPE_FIXED64):
        return str(number), number
    if kind in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return f"{number}.5", number + 0.5
    if kind == FD.TYPE_BOOL:
        return "true", True
    if kind == FD.TYPE_BYTES:
        payload = _bytes_without_slash(f"{tag}-bytes-{field.name}".encode())
        return base64.b64encode(payload).decode(), payload
    if kind == FD.TYPE_ENUM:
        values = field.enum_type.values
        chosen = values[{"p": 1, "q": -1, "b": -1}[tag] if len(values) > 1 else 0]
        if tag == "b" and len(values) > 2:
            chosen = values[-2]
        return chosen.name, chosen.number
    raise AssertionError(f"unexpected field type {kind}")


def fill(msg: message.Message, tag: str, depth: int = 3, stack: tuple[str, ...] = ()) -> None:
    """Set every field a JSON body can carry, to deterministic values (one member per oneof)."""
    message_type = msg.DESCRIPTOR
    seen_oneofs: set[str] = set()
    for field in message_type.fields:
        if field.containing_oneof is not None:
            if field.containing_oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(field.containing_oneof.name)
        nested = field.message_type
        if nested is not None and nested.GetOptions().map_entry:
            key_field, value_field = nested.fields_by_name["key"], nested.fields_by_name["value"]
            key = scalar(key_field, tag)[1]
            if value_field.message_type is None:
                getattr(msg, field.name)[key] = scalar(value_field, tag)[1]
            elif depth > 0 and value_field.message_type.full_name not in (*SKIPPED_TYPES, *stack):
                entry = getattr(msg, field.name)[key]
                _fill_message(entry, tag, depth - 1, stack)
            continue
        if nested is not None:
            if nested.full_name in SKIPPED_TYPES or nested.full_name in stack or depth <= 0:
                if field.containing_oneof is not None:
                    seen_oneofs.discard(field.containing_oneof.name)
                continue
            if field.is_repeated:
                for _ in range(2):
                    _fill_message(getattr(msg, field.name).add(), tag, depth - 1, stack)
            else:
                _fill_message(getattr(msg, field.name), tag, depth - 1, stack)
            continue
        value = scalar(field, tag)[1]
        if field.is_repeated:
            getattr(msg, field.name).extend([value, value])
        else:
            setattr(msg, field.name, value)


def _fill_message(msg: message.Message, tag: str, depth: int, stack: tuple[str, ...]) -> None:
    name = msg.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        msg.CopyFrom(timestamp_pb2.Timestamp(seconds=1_704_164_645, nanos=500_000_000))
    elif name == "google.protobuf.Duration":
        msg.CopyFrom(duration_pb2.Duration(seconds=90))
    elif name in WRAPPERS:
        msg.value = scalar(msg.DESCRIPTOR.fields_by_name["value"], tag)[1]
    else:
        fill(msg, tag, depth, (*stack, name))
        if not msg.ListFields():
            msg.SetInParent()


def query_leaves(
    message_type: descriptor.Descriptor, excluded: list[list[str]], prefix: str = "", depth: int = 3
) -> Iterator[tuple[str, descriptor.FieldDescriptor]]:
    """Fields the query string can set: scalars, repeated scalars and one-value well-known types."""
    seen_oneofs: set[str] = set()
    for field in message_type.fields:
        path = prefix + field.name
        if any(path.split(".")[: len(e)] == e for e in excluded):
            continue
        nested = field.message_type
        if nested is not None and (nested.GetOptions().map_entry or field.is_repeated):
            continue
        if nested is not None and nested.full_name not in (
            *WRAPPERS,
            "google.protobuf.Timestamp",
            "google.protobuf.Duration",
        ):
            if nested.full_name in SKIPPED_TYPES or depth <= 0:
                continue
            yield from query_leaves(nested, excluded, path + ".", depth - 1)
            continue
        if field.containing_oneof is not None:
            if field.containing_oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(field.containing_oneof.name)
        yield path, field


def query_values(field: descriptor.FieldDescriptor) -> tuple[list[str], Any]:
    nested = field.message_type
    if nested is None:
        text, value = scalar(field, "q")
        if field.is_repeated:
            return [text, text], [value, value]
        return [text], value
    if nested.full_name == "google.protobuf.Timestamp":
        return ["2024-01-02T03:04:05.5Z"], timestamp_pb2.Timestamp(seconds=1_704_164_645, nanos=500_000_000)
    if nested.full_name == "google.protobuf.Duration":
        return ["1m30s"], duration_pb2.Duration(seconds=90)  # Go duration syntax in URLs
    inner = nested.fields_by_name["value"]
    text, value = scalar(inner, "q")
    return [text], {"value": value}  # a wrapper: its value field


def set_path(msg: message.Message, path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        msg = getattr(msg, part)
    field = msg.DESCRIPTOR.fields_by_name[parts[-1]]
    if isinstance(value, message.Message):
        getattr(msg, field.name).CopyFrom(value)
    elif isinstance(value, dict):
        getattr(msg, field.name).value = value["value"]
    elif field.is_repeated:
        getattr(msg, field.name).extend(value)
    else:
        setattr(msg, field.name, value)


def build_case(
    binding: Binding, registry: Registry
) -> tuple[str, list[tuple[str, str]], Any, message.Message]:
    """(URL path, query pairs, JSON body or None, the request message a gRPC caller would send)."""
    method = registry.method(binding.grpc_path)
    request_class = registry.message_class(method.request_type)
    request_type = request_class.DESCRIPTOR
    expected = request_class()
    body: Any = None
    if binding.body == "*":
        fill(expected, "b")
        body = json_format.MessageToDict(expected, preserving_proto_field_name=True)
    elif binding.body:
        scratch = request_class()
        fill(scratch, "b")
        field = request_type.fields_by_name[binding.body]
        whole = json_format.MessageToDict(scratch, preserving_proto_field_name=True)
        body = whole[field.name]
        if field.message_type is not None and not field.is_repeated:
            getattr(expected, field.name).CopyFrom(getattr(scratch, field.name))
        else:
            set_path(expected, field.name, getattr(scratch, field.name))
    path = binding.path
    for field_path in binding.path_fields:
        leaf = field_chain(request_type, field_path)[-1]
        text, value = scalar(leaf, "p")
        path = path.replace("{" + field_path + "}", quote(text, safe=""))
        set_path(expected, field_path, value)  # path values win over the body's
    pairs: list[tuple[str, str]] = []
    excluded = [p.split(".") for p in binding.path_fields] + ([[binding.body]] if binding.body else [])
    for field_path, leaf in query_leaves(request_type, excluded):
        texts, value = query_values(leaf)
        pairs += [(field_path, text) for text in texts]
        if binding.body != "*":  # with body "*" grpc-gateway reads no query parameter at all
            set_path(expected, field_path, value)
    return path, pairs, body, expected


# A client stream's messages reach the handler after the call starts: its route has its own test below.
UNARY_REQUESTS = [b for b in BINDINGS if not default_registry().method(b.grpc_path).client_streaming]


@pytest.mark.parametrize("binding", UNARY_REQUESTS, ids=[b.id for b in UNARY_REQUESTS])
def test_route_delivers_path_query_and_body_like_grpc(
    binding: Binding,
    fresh_server: ThreadedServer,
    capture: Capture,
    gateway_channel: grpc.Channel,
    registry: Registry,
) -> None:
    path, pairs, body, expected = build_case(binding, registry)
    if expected.DESCRIPTOR.fields:
        assert expected.ListFields(), "the case must carry values"
    url = fresh_server.http_url + path + ("?" + urlencode(pairs) if pairs else "")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    response = requests.request(
        binding.http_method, url, json=body if body is not None else None, headers=headers, timeout=10
    )
    over_rest = capture.take("rest", binding.grpc_path)
    assert over_rest == expected, _diff(over_rest, expected)

    outcome = grpc_call(gateway_channel, registry, binding.grpc_path, expected)
    over_grpc = capture.take("grpc", binding.grpc_path)
    assert over_grpc == over_rest, _diff(over_rest, over_grpc)

    code = outcome.code() if isinstance(outcome, grpc.RpcError) else grpc.StatusCode.OK
    assert response.status_code == HTTP.get(code, 200), (response.status_code, code, response.text[:300])
    if code != grpc.StatusCode.OK:
        assert response.json()["code"] == code.value[0]
        assert response.json()["message"] == outcome.details()


def _diff(got: message.Message, want: message.Message) -> str:
    g = json_format.MessageToDict(got, preserving_proto_field_name=True)
    w = json_format.MessageToDict(want, preserving_proto_field_name=True)
    return f"\n got: {g}\nwant: {w}"


def test_a_client_stream_route_takes_its_messages_one_json_value_after_another(
    fresh_server: ThreadedServer, gateway_channel: grpc.Channel, registry: Registry
) -> None:
    """SyncAgentService.ExecuteTaskSync over REST: the body holds the stream's messages (header, then
    inputs) as successive JSON values; the answer is its one message as a ``{"result": ...}`` chunk,
    the same as over gRPC."""
    (binding,) = [b for b in BINDINGS if b.method == "ExecuteTaskSync"]
    method = registry.method(binding.grpc_path)
    template = {
        "id": {"resource_type": "TASK", "project": "p", "domain": "d", "name": "t", "version": "v1"},
        "type": "protoconform-sync",
        "interface": {
            "inputs": {
                "variables": {"a": {"type": {"simple": "INTEGER"}}, "b": {"type": {"simple": "INTEGER"}}}
            },
            "outputs": {"variables": {"o0": {"type": {"simple": "INTEGER"}}}},
        },
        "custom": {},
        "config": {"protoconform.io/op": "sum"},
    }
    literal = lambda n: {"scalar": {"primitive": {"integer": str(n)}}}  # noqa: E731
    messages = [
        {"header": {"template": template, "output_prefix": "s3://bucket/out"}},
        {"inputs": {"literals": {"a": literal(2), "b": literal(40)}}},
    ]
    body = "\n".join(json.dumps(m) for m in messages)
    response = requests.post(
        fresh_server.http_url + binding.path,
        data=body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text[:300]
    chunks = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    over_rest = json_format.ParseDict(chunks[0]["result"], registry.message_class(method.response_type)())
    request_class = registry.message_class(method.request_type)
    call = gateway_channel.stream_stream(
        binding.grpc_path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=registry.message_class(method.response_type).FromString,
    )
    over_grpc = list(call(iter([json_format.ParseDict(m, request_class()) for m in messages]), timeout=10))
    assert len(chunks) == 1 and over_grpc == [over_rest], _diff(over_rest, over_grpc[0])
    assert over_rest.header.resource.outputs.literals["o0"].scalar.primitive.integer == 42
