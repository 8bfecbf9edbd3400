"""Handlers never crash on odd but well-formed requests.

Every served ArmoniK and KFP method gets requests drawn from its descriptor (edge
integers, undefined enum numbers, extreme Timestamps/Durations, empty and long
strings, a few repeated items), some of them naming entities that exist, over a
real gRPC channel; the KFP REST routes get the same through the gateway.  A real
server answers such requests with INVALID_ARGUMENT, NOT_FOUND,
FAILED_PRECONDITION or success: INTERNAL, UNKNOWN or DATA_LOSS (HTTP 500) means a
handler raised.  A call observer also reads every call's final status on the
server side, so a crash after the client's deadline is caught too.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import grpc
import pytest
import requests
from google.api import annotations_pb2
from google.protobuf import descriptor, json_format, message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protoconform.conformance import examples, strategies
from protoconform.conformance.caller import Caller
from protoconform.conformance.control import ControlClient
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch
from protoconform.mockserver.apis.armonik import dataroot
from protoconform.mockserver.dispatch import CallRecord
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs import rules
from protoconform.specs.registry import Method, default_registry

FD = descriptor.FieldDescriptor
REGISTRY = default_registry()
METHODS = [m for family in ("armonik", "kfp") for m in REGISTRY.methods(family)]
CRASHES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}

# Small and wild, plus a few big ones: long strings and more repeated items.
WILD = strategies.Options(max_depth=3, max_size=3, max_text=16, invalid_enums=True)
BIG = strategies.Options(max_depth=2, max_size=12, max_text=2000, invalid_enums=True)
FUZZ = settings(
    max_examples=int(os.environ.get("PROTOCONFORM_FUZZ_EXAMPLES", "30")),  # raise it for a longer hunt
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
DEADLINE = 0.25  # seconds; blocking calls (waits, event streams) may run out, that is no crash
# A watch stays open until its deadline: a crash shows at once, so a stream needs less time than a call.
STREAM_DEADLINE = 0.1
MAX_RESPONSES = 3


RULES = {family: rules.load(family) for family in ("armonik", "kfp")}


def requests_of(method: Method, example: message.Message | None) -> st.SearchStrategy[message.Message]:
    """Any request; one keeping the method's request-shape rules (so it reaches the handler's
    own logic) with every other field as wild as ever; or the method's valid example with
    some of its fields swapped for wild ones."""
    desc = method.descriptor.input_type
    wild = strategies.messages(desc, WILD)
    shaped = wild.flatmap(
        lambda base: strategies.valid_requests(
            method.descriptor, RULES[method.family], base=base, options=WILD
        )
    )
    choices = [wild, strategies.messages(desc, BIG), shaped]
    if example is not None:
        choices.append(
            st.builds(lambda w, p: strategies.graft(example, w, p), wild, st.randoms(use_true_random=False))
        )
    return st.one_of(*choices)


def example_request(scenario: examples.Scenario, method: Method, known: list[str]) -> message.Message | None:
    """The method's valid example (its steps run on the server), its ids added to ``known``."""
    try:
        data = scenario.prepare(method.path)
    except (Mismatch, examples.ExampleError, KeyError):
        return None
    built = scenario.message(method.path, data)
    msg = built[0] if isinstance(built, list) else built
    known.extend(v for f, v in msg.ListFields() if f.type == FD.TYPE_STRING and not f.is_repeated and v)
    return msg


def prescribed(method: Method) -> set[grpc.StatusCode]:
    """Codes a rule of the method's spec answers on purpose (the built-in worker's requested
    crash is UNKNOWN, as a crashed worker's is)."""
    return {rule.status for rule in RULES[method.family].for_method(f"{method.service}.{method.name}")}


# -- entities that exist, so requests reach past "not found" ----------------------------


def _call(channel: grpc.Channel, name: str, value: dict[str, Any]) -> Any:
    method = REGISTRY.method(name)
    request = json_format.ParseDict(value, REGISTRY.message_class(method.request_type)())
    stub = channel.unary_unary(
        method.path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=REGISTRY.message_class(method.response_type).FromString,
    )
    return stub(request, timeout=10)


def _seed_armonik(channel: grpc.Channel) -> list[str]:
    options = {"maxDuration": "60s", "maxRetries": 1, "priority": 1}
    session = _call(
        channel, "armonik.api.grpc.v1.sessions.Sessions.CreateSession", {"defaultTaskOption": options}
    ).session_id
    data = _call(
        channel,
        "armonik.api.grpc.v1.results.Results.CreateResults",
        {"sessionId": session, "results": [{"name": "payload", "data": "eA=="}]},
    ).results
    meta = _call(
        channel,
        "armonik.api.grpc.v1.results.Results.CreateResultsMetaData",
        {"sessionId": session, "results": [{"name": "out"}]},
    ).results
    task = _call(
        channel,
        "armonik.api.grpc.v1.tasks.Tasks.SubmitTasks",
        {
            "sessionId": session,
            "taskCreations": [{"payloadId": data[0].result_id, "expectedOutputKeys": [meta[0].result_id]}],
        },
    ).task_infos[0]
    partitions = _call(
        channel,
        "armonik.api.grpc.v1.partitions.Partitions.ListPartitions",
        {
            "pageSize": 5,
            "filters": {},
            "sort": {
                "field": {"partitionRawField": {"field": "PARTITION_RAW_ENUM_FIELD_ID"}},
                "direction": "SORT_DIRECTION_ASC",
            },
        },
    )
    return [
        session,
        data[0].result_id,
        meta[0].result_id,
        task.task_id,
        *(p.id for p in partitions.partitions),
    ]


def _seed_kfp(channel: grpc.Channel) -> list[str]:
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "fuzz-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "dag": {"tasks": [{"name": "step", "template": "work"}]}},
                {"name": "work", "container": {"image": "alpine"}},
            ],
        },
    }
    run = _call(
        channel,
        "api.RunService.CreateRun",
        {"run": {"name": "fuzz", "pipeline_spec": {"workflow_manifest": json.dumps(manifest)}}},
    ).run
    return [run.id, "step"]


def plant(draw: Callable[[st.SearchStrategy[Any]], Any], msg: message.Message, known: list[str]) -> None:
    """Put known ids into some string fields (at any depth) of ``msg``."""
    for field, value in list(msg.ListFields()):
        if strategies.is_map(field):
            continue
        if field.type == FD.TYPE_STRING:
            if field.is_repeated:
                for index in range(len(value)):
                    if draw(st.booleans()):
                        value[index] = draw(st.sampled_from(known))
            elif draw(st.booleans()):
                setattr(msg, field.name, draw(st.sampled_from(known)))
        elif strategies.is_message(field):
            for item in value if field.is_repeated else [value]:
                plant(draw, item, known)
    # An unset id field may be the one that matters: fill some top-level ones.
    for field in msg.DESCRIPTOR.fields:
        top_id = field.type == FD.TYPE_STRING and field.name.endswith("id") and not field.is_repeated
        if top_id and not getattr(msg, field.name) and draw(st.booleans()):
            setattr(msg, field.name, draw(st.sampled_from(known)))


def scenario_for(server: ThreadedServer, channel: grpc.Channel) -> examples.Scenario:
    caller = Caller(channel, REGISTRY, Target(address=server.grpc_address, control=server.http_url))
    return examples.Scenario(caller, "fz", random.Random(0), [], ControlClient(server.http_url))


# -- watching the server side ----------------------------------------------------------------


class CrashWatch:
    """A dispatcher observer keeping every call that ended in a crash status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.crashes: list[tuple[str, str, str]] = []

    async def before(self, record: CallRecord) -> None:
        return None

    def after(self, record: CallRecord) -> None:
        if record.code in CRASHES and record.code not in prescribed(record.method):
            shown = [str(r)[:400] for r in record.requests[:3]]
            with self._lock:
                self.crashes.append((record.method.path, record.error, " | ".join(shown)))

    def take(self) -> list[tuple[str, str, str]]:
        with self._lock:
            found, self.crashes = self.crashes, []
        return found


@pytest.fixture
def watched(fresh_server: ThreadedServer) -> Iterator[tuple[ThreadedServer, CrashWatch]]:
    watch = CrashWatch()
    observers = fresh_server.server.dispatcher.observers
    fresh_server.run(lambda: observers.append(watch))
    try:
        yield fresh_server, watch
    finally:
        fresh_server.run(lambda: observers.remove(watch))


@pytest.fixture
def fuzz_channel(watched: tuple[ThreadedServer, CrashWatch]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(watched[0].grpc_address) as channel:
        yield channel


def assert_alive(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def assert_no_crash(watch: CrashWatch, what: str) -> None:
    crashes = watch.take()
    assert not crashes, f"{what}: handler crashed: {crashes}"


# -- gRPC --------------------------------------------------------------------------------------


def send(channel: grpc.Channel, method: Method, messages: list[message.Message]) -> grpc.StatusCode:
    """One call of ``method`` with ``messages`` (one for unary requests); the final status."""
    kwargs: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": REGISTRY.message_class(method.response_type).FromString,
    }
    factory = getattr(channel, method.kind)
    request: Any = iter(messages) if method.client_streaming else messages[0]
    try:
        if method.server_streaming:
            call = factory(method.path, **kwargs)(request, timeout=STREAM_DEADLINE)
            for count, _ in enumerate(call, 1):
                if count >= MAX_RESPONSES:
                    call.cancel()
                    break
            return grpc.StatusCode.OK
        factory(method.path, **kwargs)(request, timeout=DEADLINE)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()


@pytest.mark.parametrize("method", METHODS, ids=[m.path for m in METHODS])
def test_grpc_method_never_crashes(
    method: Method, watched: tuple[ThreadedServer, CrashWatch], fuzz_channel: grpc.Channel
) -> None:
    watch = watched[1]
    known = _seed_armonik(fuzz_channel) if method.family == "armonik" else _seed_kfp(fuzz_channel)
    example = example_request(scenario_for(watched[0], fuzz_channel), method, known)
    assert_no_crash(watch, "seeding")
    count = st.integers(1, 3) if method.client_streaming else st.just(1)

    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        messages = [data.draw(requests_of(method, example)) for _ in range(data.draw(count))]
        for msg in messages:
            plant(data.draw, msg, known)
        code = send(fuzz_channel, method, messages)
        assert code not in CRASHES - prescribed(method), f"{method.path} answered {code.name} to {messages}"
        assert_no_crash(watch, method.path)

    check()
    assert_alive(fuzz_channel)
    assert_no_crash(watch, method.path)


# -- KFP over REST -------------------------------------------------------------------------------


def kfp_bindings() -> list[tuple[Method, str, str, str]]:
    """(method, HTTP method, path template, body) of every KFP route."""
    found = []
    for method in REGISTRY.methods("kfp"):
        options = method.descriptor.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule = options.Extensions[annotations_pb2.http]
        for binding in [rule, *rule.additional_bindings]:
            kind = binding.WhichOneof("pattern")
            verb, path = (
                (binding.custom.kind, binding.custom.path)
                if kind == "custom"
                else (kind, getattr(binding, kind))
            )
            found.append((method, verb.upper(), path, binding.body))
    return found


BINDINGS = kfp_bindings()
VARIABLE = re.compile(r"(\{([^}=]+)(?:=[^}]*)?\})")


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Query pairs of a protojson dict: nested objects as dotted names, lists repeated."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for item in value:
            if not isinstance(item, (dict, list)):
                yield from _flatten(item, prefix)
    elif isinstance(value, bool):
        yield prefix, "true" if value else "false"
    else:
        yield prefix, str(value)


def rest_case(
    template: str, body_field: str, msg: message.Message, data: st.DataObject
) -> tuple[str, list[tuple[str, str]], Any]:
    """URL path, query pairs and JSON body carrying ``msg`` (and sometimes odd raw text)."""
    path = template
    for whole_var, var in VARIABLE.findall(template):
        holder: Any = msg
        for step in var.split("."):
            holder = getattr(holder, step)
        path = path.replace(whole_var, quote(str(holder), safe=""))
    whole = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    body: Any = None
    pairs: list[tuple[str, str]] = []
    if body_field == "*":
        body = whole
    else:
        if body_field:
            body = whole.pop(body_field, {})
        pairs = [(k, v) for k, v in _flatten(whole)]
    if data.draw(st.booleans()):  # a raw value of the wrong type for some field
        names = [f.name for f in msg.DESCRIPTOR.fields] or ["x"]
        pairs.append((data.draw(st.sampled_from(names)), data.draw(strategies.texts(0, 40))))
    if body is not None and data.draw(st.integers(0, 4)) == 0:
        body = data.draw(strategies.json_values())
    return path, pairs, body


@pytest.mark.parametrize("binding", BINDINGS, ids=[f"{b[0].name}:{b[1]} {b[2]}" for b in BINDINGS])
def test_kfp_rest_route_never_answers_500(
    binding: tuple[Method, str, str, str],
    watched: tuple[ThreadedServer, CrashWatch],
    fuzz_channel: grpc.Channel,
) -> None:
    method, verb, template, body_field = binding
    server, watch = watched
    known = _seed_kfp(fuzz_channel)
    example = example_request(scenario_for(server, fuzz_channel), method, known)
    session = requests.Session()

    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        msg = data.draw(requests_of(method, example))
        plant(data.draw, msg, known)
        path, pairs, body = rest_case(template, body_field, msg, data)
        url = server.http_url + path + ("?" + urlencode(pairs) if pairs else "")
        response = session.request(
            verb,
            url,
            data=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code != 500, (
            f"{verb} {url} {body!r}: {response.status_code} {response.text[:500]}"
        )
        assert_no_crash(watch, f"{verb} {template}")

    check()
    assert_alive(fuzz_channel)


# -- crashes found here once, pinned ---------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "outputs", "code", "field"),
    [
        ("\x00", [], grpc.StatusCode.INVALID_ARGUMENT, "data_folder"),
        ("", ["sub"], grpc.StatusCode.FAILED_PRECONDITION, "expected_output_keys[0]"),
    ],
    ids=["nul-in-data-folder", "output-is-a-directory"],
)
def test_worker_process_names_the_unusable_path(
    folder: str,
    outputs: list[str],
    code: grpc.StatusCode,
    field: str,
    watched: tuple[ThreadedServer, CrashWatch],
    fuzz_channel: grpc.Channel,
) -> None:
    server = watched[0]
    root = server.run(lambda: dataroot.data_root(server.server.states["armonik"]))
    work = Path(tempfile.mkdtemp(dir=root))  # inside the server's data root, the only place it uses
    (work / "payload").write_bytes(b"x")
    (work / "sub").mkdir()
    request = {
        "communicationToken": "t",
        "sessionId": "s",
        "taskId": "task",
        "payloadId": "payload",
        "dataFolder": folder or str(work),
        "expectedOutputKeys": outputs,
        "taskOptions": {"options": {"mock.duration": "0"}},  # no wait on the manual clock
    }
    with pytest.raises(grpc.RpcError) as caught:
        _call(fuzz_channel, "armonik.api.grpc.v1.worker.Worker.Process", request)
    assert caught.value.code() == code
    assert (caught.value.details() or "").startswith(f"{field}: ")
