"""Hostile JSON and YAML from the network is refused as the client's mistake.

Documents nested far beyond any real one (100,000 levels) or YAML whose aliases
expand without bound must be answered INVALID_ARGUMENT (gRPC) / HTTP 400 (REST)
with a message naming what was sent, never INTERNAL / HTTP 500, and the server
must go on serving.  Everything goes through ``protoconform serve`` child
processes on loopback ports chosen at run time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from google.protobuf import descriptor, json_format, message, struct_pb2
from protoconform.mockserver import safejson
from protoconform.mockserver.gateway import jsonmap, transcode
from protoconform.mockserver.gateway.routes import Route, compile_routes
from protoconform.mockserver.launcher import ServerProcess
from protoconform.specs.registry import default_registry

REGISTRY = default_registry()
ROUTES = [
    route for mux in compile_routes(REGISTRY, REGISTRY.service_names()).values() for route in mux.routes
]
JSON_TYPES = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
LEVELS = 100_000
HOSTILE = {
    "array": "[" * LEVELS + "]" * LEVELS,
    "object": '{"a":' * LEVELS + "1" + "}" * LEVELS,
}
TOO_DEEP = f"nested deeper than {safejson.MAX_DEPTH} levels"


def workflow() -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hostile-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}]},
    }


# -- REST ------------------------------------------------------------------------


def concrete_path(route: Route) -> str:
    """A request path the route matches: every ``*`` / ``**`` segment filled with one value."""
    path = "/" + "/".join(s.text if s.kind == "literal" else "x" for s in route.template.segments)
    return path + (f":{route.template.verb}" if route.template.verb else "")


BODY_ROUTES = [route for route in ROUTES if route.body]


def _json_query_fields(
    message_type: descriptor.Descriptor,
    excluded: list[list[str]],
    prefix: str = "",
    seen: tuple[str, ...] = (),
) -> Iterator[str]:
    """Query parameters the gateway parses as JSON: Struct/Value/ListValue fields (v2 only)."""
    for field in message_type.fields:
        path = prefix + field.name
        if any(path.split(".")[: len(e)] == e for e in excluded) or field.message_type is None:
            continue
        nested = field.message_type
        if nested.GetOptions().map_entry:
            value_type = nested.fields_by_name["value"].message_type
            if value_type is not None and value_type.full_name in JSON_TYPES:
                yield f"{path}[key]"
        elif nested.full_name in JSON_TYPES:
            yield path
        elif not field.is_repeated and nested.full_name not in seen:
            yield from _json_query_fields(nested, excluded, path + ".", (*seen, nested.full_name))


QUERY_JSON = [
    (route, name)
    for route in ROUTES
    if route.convention.version == 2 and route.body != "*"  # no query string is read with body "*"
    for name in _json_query_fields(
        REGISTRY.message_class(route.method.request_type).DESCRIPTOR,
        [v.field_path.split(".") for v in route.template.variables] + ([[route.body]] if route.body else []),
    )
]


def assert_refused(response: requests.Response, *names: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    text = response.json()["message"]
    for name in names:
        assert name in text, text


def test_the_served_families_have_body_routes() -> None:
    assert {route.family for route in BODY_ROUTES} == {"kfp", "flyte"}


@pytest.mark.parametrize("shape", HOSTILE)
@pytest.mark.parametrize("route", BODY_ROUTES, ids=[r.operation_id for r in BODY_ROUTES])
def test_deep_body_is_refused_on_every_route(server_process: ServerProcess, route: Route, shape: str) -> None:
    response = requests.request(
        route.http_method,
        server_process.http_url + concrete_path(route),
        data=HOSTILE[shape],
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert_refused(response, "request body", TOO_DEEP)


@pytest.mark.parametrize("shape", HOSTILE)
def test_deep_value_after_a_first_value_is_refused_in_a_stream_but_not_read_otherwise(shape: str) -> None:
    # A unary body is read like Go's decoder: what follows the first value is never parsed.
    assert jsonmap.first_json_value(b'{"a": 1} ' + HOSTILE[shape].encode()) == (True, {"a": 1})
    with pytest.raises(jsonmap.JsonError, match=TOO_DEEP):
        list(jsonmap.json_values(b'{"a": 1} ' + HOSTILE[shape].encode()))


def test_deep_json_query_parameters_are_refused(server_process: ServerProcess) -> None:
    # Enumerated from the compiled routes; today no served route has one (Struct-typed
    # fields appear only in Flyte bodies), so the next test drives the query parser itself.
    deep = "[" * 1000 + "]" * 1000  # as deep as a request line allows
    for route, name in QUERY_JSON:
        url = server_process.http_url + concrete_path(route)
        response = requests.request(route.http_method, url, params={name: deep}, timeout=30)
        assert_refused(response, name.split("[")[0], TOO_DEEP)


@pytest.mark.parametrize(
    ("target", "parts", "values"),
    [
        (struct_pb2.Value, ["struct_value"], ["deep"]),  # a Struct
        (struct_pb2.Value, ["list_value"], ["deep"]),  # a ListValue
        (struct_pb2.Struct, ["fields"], ["key", "deep"]),  # a map of Values
    ],
    ids=["Struct", "ListValue", "Value"],
)
@pytest.mark.parametrize("shape", HOSTILE)
def test_query_values_parsed_as_json_are_depth_limited(
    target: type[message.Message], parts: list[str], values: list[str], shape: str
) -> None:
    values = [HOSTILE[shape] if v == "deep" else v for v in values]
    with pytest.raises(ValueError, match=TOO_DEEP) as caught:
        transcode.populate(target(), parts, values, 2)
    assert parts[0] in str(caught.value)


def test_deep_kfp_filter_and_page_token_over_rest(server_process: ServerProcess) -> None:
    url = server_process.http_url + "/apis/v1beta1/runs"
    for deep in ("[" * 1000 + "]" * 1000, '{"a":' * 400 + "1" + "}" * 400):  # within a request line
        assert_refused(requests.get(url, params={"filter": deep}, timeout=30), "filter", TOO_DEEP)
        token = base64.b64encode(deep.encode()).decode()
        assert_refused(requests.get(url, params={"page_token": token}, timeout=30), "page_token", TOO_DEEP)
    assert requests.get(url, params={"page_size": 1}, timeout=30).status_code == 200


def test_rest_still_serves_after_hostile_bodies(server_process: ServerProcess) -> None:
    url = server_process.http_url + "/apis/v1beta1/runs"
    for shape in HOSTILE.values():
        assert requests.post(url, data=shape, timeout=30).status_code == 400
    response = requests.post(
        url,
        json={"name": "after", "pipeline_spec": {"workflow_manifest": json.dumps(workflow())}},
        timeout=30,
    )
    assert response.status_code == 200, response.text[:300]


# -- gRPC ------------------------------------------------------------------------


def call(channel: grpc.Channel, method_name: str, request: dict[str, Any] | bytes) -> Any:
    """A unary call with a protojson request or raw request bytes; the response or the RpcError.

    ``method_name`` is a RunService method or a method's full name.
    """
    method = REGISTRY.method(method_name if "." in method_name else f"api.RunService.{method_name}")
    if isinstance(request, dict):
        request = json_format.ParseDict(
            request, REGISTRY.message_class(method.request_type)()
        ).SerializeToString()
    stub = channel.unary_unary(
        method.path,
        request_serializer=lambda raw: raw,
        response_deserializer=REGISTRY.message_class(method.response_type).FromString,
    )
    try:
        return stub(request, timeout=30)
    except grpc.RpcError as error:
        return error


def assert_invalid(outcome: Any, *names: str) -> None:
    assert isinstance(outcome, grpc.RpcError), outcome
    assert outcome.code() == grpc.StatusCode.INVALID_ARGUMENT, (outcome.code(), outcome.details()[:300])
    for name in names:
        assert name in outcome.details(), outcome.details()[:300]


def assert_still_serving(channel: grpc.Channel) -> None:
    outcome = call(channel, "ListRuns", {"page_size": 1})
    assert not isinstance(outcome, grpc.RpcError), outcome


def create(manifest_field: str, text: str) -> dict[str, Any]:
    return {"run": {"name": "hostile", "pipeline_spec": {manifest_field: text}}}


@pytest.mark.parametrize("shape", HOSTILE)
@pytest.mark.parametrize("manifest_field", ["workflow_manifest", "pipeline_manifest"])
def test_deep_manifest_is_invalid_argument(channel: grpc.Channel, manifest_field: str, shape: str) -> None:
    outcome = call(channel, "CreateRun", create(manifest_field, HOSTILE[shape]))
    assert_invalid(outcome, f"run.pipeline_spec.{manifest_field}", TOO_DEEP)
    assert_still_serving(channel)


@pytest.mark.parametrize("shape", HOSTILE)
def test_deep_filter_is_invalid_argument(channel: grpc.Channel, shape: str) -> None:
    assert_invalid(call(channel, "ListRuns", {"filter": HOSTILE[shape]}), "filter", TOO_DEEP)
    assert_still_serving(channel)


@pytest.mark.parametrize("shape", HOSTILE)
def test_deep_page_token_is_invalid_argument(channel: grpc.Channel, shape: str) -> None:
    token = base64.b64encode(HOSTILE[shape].encode()).decode()
    assert_invalid(call(channel, "ListRuns", {"page_token": token}), "page_token", TOO_DEEP)
    assert_still_serving(channel)


def _token(filter_text: str) -> str:
    payload = {"model": "Run", "sort": ["created_at", False], "filter": filter_text, "key": [True, 0, ""]}
    return base64.b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize("shape", HOSTILE)
def test_deep_filter_inside_a_page_token_is_invalid_argument(channel: grpc.Channel, shape: str) -> None:
    assert_invalid(call(channel, "ListRuns", {"page_token": _token(HOSTILE[shape])}), "page_token", TOO_DEEP)
    assert_still_serving(channel)


@pytest.mark.parametrize("filter_text", ["not json", '{"predicates": 5}', '{"predicates": [{"op": 99}]}'])
def test_forged_filter_inside_a_page_token_is_an_invalid_token(
    channel: grpc.Channel, filter_text: str
) -> None:
    assert_invalid(call(channel, "ListRuns", {"page_token": _token(filter_text)}), "Invalid package token.")
    assert_still_serving(channel)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


SET_SIGNAL = "flyteidl.service.SignalService.SetSignal"


def _deep_signal(levels: int) -> bytes:
    """SetSignal request bytes whose ``value.scalar.generic`` Struct nests ``levels`` Structs (two
    messages a level), encoded by hand: a client library will not build what it could not read back."""
    fields_number = struct_pb2.Struct.DESCRIPTOR.fields_by_name["fields"].number
    struct_number = struct_pb2.Value.DESCRIPTOR.fields_by_name["struct_value"].number
    struct = b""
    for _ in range(levels):
        entry = _length_delimited(1, b"k") + _length_delimited(2, _length_delimited(struct_number, struct))
        struct = _length_delimited(fields_number, entry)
    message_type = REGISTRY.message_class(REGISTRY.method(SET_SIGNAL).request_type).DESCRIPTOR
    numbers = []
    for name in ("value", "scalar", "generic"):
        field = message_type.fields_by_name[name]
        numbers.append(field.number)
        message_type = field.message_type
    for number in reversed(numbers):
        struct = _length_delimited(number, struct)
    return struct


def test_deep_struct_in_a_binary_request_is_invalid_argument(channel: grpc.Channel) -> None:
    # KFP and ArmoniK requests hold no Struct and no recursive message; Flyte's do.  protobuf's
    # parser stops at 100 nested messages and the server's decoder answers INVALID_ARGUMENT.
    shallow = call(channel, SET_SIGNAL, _deep_signal(5))  # decoded: the handler finds no signal id
    assert_invalid(shallow, "missing id")
    assert_invalid(call(channel, SET_SIGNAL, _deep_signal(200)), "flyteidl.admin.SignalSetRequest")
    assert_still_serving(channel)


def test_deep_unknown_groups_in_a_binary_request_are_invalid_argument(channel: grpc.Channel) -> None:
    start, end = _varint(99 << 3 | 3), _varint(99 << 3 | 4)  # an unknown field as nested groups
    deep = call(channel, "api.RunService.ListRuns", start * LEVELS + end * LEVELS)
    assert_invalid(deep, "api.ListRunsRequest")
    assert_still_serving(channel)


# -- YAML pipelines (seeded with --kfp-pipeline, run by pipeline id) --------------

DEEP_BLOCK = "".join(f"{'  ' * level}a:\n" for level in range(150)) + "  " * 150 + "b: 1\n"
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)
YAML_MANIFESTS = {
    "deep-json": HOSTILE["object"],
    "deep-flow": "kind: Workflow\nspec: " + HOSTILE["array"] + "\n",
    "deep-block": DEEP_BLOCK,
    "billion-laughs": "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n" + BILLION_LAUGHS,
}
# Real Argo YAML: its timestamps load as datetimes, which JSON has no type for.
FINE_YAML = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: fine-, creationTimestamp: 2024-01-02T03:04:05Z}
spec:
  entrypoint: main
  templates:
    - name: main
      container: {image: alpine}
"""
YAML_PROBLEMS = {
    "deep-json": TOO_DEEP,
    "deep-flow": TOO_DEEP,
    "deep-block": TOO_DEEP,
    "billion-laughs": f"more than {safejson.MAX_NODES} values",
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("manifests")
    args = []
    for name, text in {**YAML_MANIFESTS, "fine": FINE_YAML}.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
        args += ["--kfp-pipeline", f"{name}={folder / name}.yaml={name}"]
    with ServerProcess(args) as process:
        yield process


@pytest.mark.parametrize("name", YAML_MANIFESTS)
def test_hostile_yaml_pipeline_is_invalid_argument(seeded: ServerProcess, name: str) -> None:
    with grpc.insecure_channel(seeded.grpc_address) as channel:
        outcome = call(channel, "CreateRun", {"run": {"name": name, "pipeline_spec": {"pipeline_id": name}}})
        assert_invalid(outcome, f"manifest of pipeline version {name}", YAML_PROBLEMS[name])
        fine = call(channel, "CreateRun", {"run": {"name": "fine", "pipeline_spec": {"pipeline_id": "fine"}}})
        assert not isinstance(fine, grpc.RpcError), fine


# -- ArmoniK compatibility mode: POST /calls.json ----------------------------------


def test_deep_calls_json_body_is_refused() -> None:
    with ServerProcess(["--api", "armonik", "--armonik-compat", "reference-mock"]) as process:
        url = f"{process.http_url}/calls.json"
        for body in [*HOSTILE.values(), '{"Results": 5}', '{"Results": [["WatchResults"]]}', b"\xff"]:
            response = requests.post(url, data=body, timeout=30)
            assert response.status_code == 400, (response.status_code, response.text[:300])
            assert response.text.startswith("body: "), response.text[:300]
        assert TOO_DEEP in requests.post(url, data=HOSTILE["array"], timeout=30).text
        assert requests.post(url, json={"Results": ["WatchResults"]}, timeout=30).status_code == 200
