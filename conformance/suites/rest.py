"""Suite *rest*: the REST (grpc-gateway) face of a target, against its gRPC face and its OpenAPI.

For every family whose methods carry ``google.api.http`` annotations, with ``--rest URL``:

- ``errors[<method>]``: each ``not_found`` rule, over REST: the HTTP status grpc-gateway
  maps the rule's code to, and an error body carrying that code;
- ``parity[<method>]``: methods that change nothing answer the same over REST and
  gRPC (the REST answer must equal a gRPC answer taken just before or just after);
- ``created[<method>]``: what REST creates reads back the same over gRPC, and what
  gRPC creates reads back the same over REST;
- ``schemathesis[<family>]``: generated requests for every operation of the served
  OpenAPI document (``<rest>/openapi/<family>.json``): no server error, documented
  status codes and content types, responses matching their schema.

REST requests are built here from the annotations (path template, body, query
parameters), independently of any gateway implementation.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import requests
from google.api import annotations_pb2
from google.protobuf import json_format, message
from hypothesis import Phase, given, note
from protoconform.conformance import examples as ex
from protoconform.conformance import json_convention as rest_json
from protoconform.conformance import strategies
from protoconform.conformance.caller import Caller, Reply
from protoconform.conformance.hypothesis_profile import harness_settings
from protoconform.conformance.models import family_model
from protoconform.conformance.models.base import Env, run_property
from protoconform.conformance.plugin.recording import checked_too
from protoconform.conformance.suites._shared import parametrize_cases
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch, short_method
from protoconform.specs import FAMILIES
from protoconform.specs.registry import Method, default_registry
from protoconform.specs.rules import Rule, load

SUITE = "rest"
# grpc-gateway's runtime.HTTPStatusFromCode (the same in v1 and v2 but for CANCELLED).
HTTP_STATUS: dict[str, int] = {
    "OK": 200,
    "CANCELLED": 408,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}
VARIABLE = re.compile(r"\{([\w.]+)(?:=([^}]*))?\}")


# -- transcoding, from the annotations -------------------------------------------------------------


def http_rule(method: Method) -> Any:
    options = method.descriptor.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    return options.Extensions[annotations_pb2.http]


def _verb_and_template(rule: Any) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return kind.upper(), getattr(rule, kind)


def _pop(data: dict[str, Any], dotted: str) -> Any:
    parts = dotted.split(".")
    holder = data
    for part in parts[:-1]:
        holder = holder.get(part, {})
    return holder.pop(parts[-1], None)


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [
            pair
            for key, item in value.items()
            for pair in _flatten(f"{prefix}.{key}" if prefix else key, item)
        ]
    if isinstance(value, list):
        return [pair for item in value for pair in _flatten(prefix, item)]
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    return [(prefix, str(value))]


def path_variables(method: Method) -> list[str]:
    """Request fields the method's URL template carries."""
    rule = http_rule(method)
    return [m.group(1) for m in VARIABLE.finditer(_verb_and_template(rule)[1])] if rule is not None else []


@dataclass
class HttpCall:
    verb: str
    path: str
    query: list[tuple[str, str]]
    body: Any

    def curl(self, base: str) -> str:
        url = base.rstrip("/") + self.path + (f"?{urllib.parse.urlencode(self.query)}" if self.query else "")
        data = (
            f" -H 'Content-Type: application/json' -d '{json.dumps(self.body)}'"
            if self.body is not None
            else ""
        )
        return f"curl -X {self.verb}{data} '{url}'"


def _zero_text(request: message.Message, dotted: str) -> str | None:
    """The text of a scalar field left at its zero value (``0``, ``false``, the zero enum's name)."""
    holder: Any = request
    parts = dotted.split(".")
    for part in parts[:-1]:
        if part not in holder.DESCRIPTOR.fields_by_name:
            return None
        holder = getattr(holder, part)
    field = holder.DESCRIPTOR.fields_by_name.get(parts[-1])
    if field is None or field.message_type is not None or field.is_repeated:
        return None
    value = getattr(holder, parts[-1])
    if field.enum_type is not None:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else None


def _peek(data: dict[str, Any], dotted: str) -> Any:
    holder: Any = data
    for part in dotted.split("."):
        holder = holder.get(part) if isinstance(holder, dict) else None
    return holder


def binding_for(method: Method, request: message.Message) -> Any:
    """The route a client would pick for ``request``: the first of the rule and its
    ``additional_bindings`` whose URL variables the request all sets (e.g. Flyte's routes with and
    without ``org``), else the rule itself."""
    rule = http_rule(method)
    data = json_format.MessageToDict(request, preserving_proto_field_name=True)
    for candidate in (rule, *rule.additional_bindings):
        names = [m.group(1) for m in VARIABLE.finditer(_verb_and_template(candidate)[1])]
        if all(_peek(data, name) not in (None, "") or _zero_text(request, name) for name in names):
            return candidate
    return rule


def transcode(method: Method, request: message.Message) -> HttpCall:
    rule = binding_for(method, request)
    verb, template = _verb_and_template(rule)
    data = json_format.MessageToDict(request, preserving_proto_field_name=True)

    def fill(match: re.Match[str]) -> str:
        value = _pop(data, match.group(1))
        if value is None:  # protojson leaves zero values out, but a URL segment still carries them
            value = _zero_text(request, match.group(1))
        text = "" if value is None else str(value)
        keep = "/" if match.group(2) and "**" in match.group(2) else ""
        return urllib.parse.quote(text, safe=keep)

    path = VARIABLE.sub(fill, template)
    body: Any = None
    if rule.body == "*":
        body, data = data, {}
    elif rule.body:
        body = _pop(data, rule.body) or {}
    return HttpCall(verb, path, _flatten("", data), body)


@dataclass
class HttpReply:
    call: HttpCall
    status: int
    text: str

    def json(self) -> Any:
        """The body as JSON; None when it is none (or nested past the parser's stack: a hostile
        target's answer is a finding, never a crash of the harness)."""
        try:
            return json.loads(self.text) if self.text else {}
        except (ValueError, RecursionError):
            return None


MAX_BODY_BYTES = 64 << 20  # far above any answer of these APIs; a target cannot fill the harness's memory


def _read_capped(response: requests.Response) -> bytes | None:
    """The body, or None once it passes :data:`MAX_BODY_BYTES`."""
    chunks, size = [], 0
    for chunk in response.iter_content(1 << 16):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class Rest:
    def __init__(self, target: Target) -> None:
        self.base = target.rest.rstrip("/")
        self.session = requests.Session()
        # The JSON that gateways document: Flyte's answers lowerCamelCase keys without it
        self.session.headers["Accept"] = "application/json"
        if target.token:
            self.session.headers["Authorization"] = f"Bearer {target.token}"
        if target.ca:
            self.session.verify = target.ca
        if target.cert:
            self.session.cert = (target.cert, target.key)
        self.timeout = target.timeout
        # Given on every request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE win over a
        # session's own ``verify``, which would drop --ca wherever those variables are set.
        self.verify: str | bool = target.ca or True

    def send(self, call: HttpCall) -> HttpReply:
        try:
            with self.session.request(
                call.verb,
                self.base + call.path,
                params=call.query,
                json=call.body,
                timeout=self.timeout,
                verify=self.verify,
                stream=True,
            ) as response:
                body = _read_capped(response)
        except requests.RequestException as exc:
            raise Mismatch("an HTTP answer", type(exc).__name__, reproducer=self.reproducer(call)) from None
        if body is None:
            raise Mismatch(
                f"an HTTP answer of at most {MAX_BODY_BYTES} bytes",
                "a longer body (not read to its end)",
                reproducer=self.reproducer(call),
            )
        return HttpReply(call, response.status_code, body.decode(response.encoding or "utf-8", "replace"))

    def reproducer(self, call: HttpCall, method: str = "") -> dict[str, str]:
        body = json.dumps(call.body, indent=2) if call.body is not None else "{}"
        return {"method": method or call.path, "request": body, "command": call.curl(self.base)}


def rest_fail(
    rest: Rest, reply: HttpReply, method: Method, rule: str, expected: str, actual: str
) -> Mismatch:
    return Mismatch(
        expected,
        actual,
        rule=rule,
        method=short_method(method.path),
        reproducer=rest.reproducer(reply.call, f"{method.service}.{method.name}"),
    )


def check_convention(family: str, rest: Rest, reply: HttpReply, method: Method) -> str:
    """The raw JSON of a 200 reply, held to the family's documented key, enum and integer style;
    the convention's rule when it was checked ("" when the family documents none)."""
    rules = rest_json.convention(family)
    if rules is None:
        return ""
    body = reply.json()
    response_type = default_registry().message_class(method.response_type).DESCRIPTOR
    field_name = http_rule(method).response_body
    if field_name:  # the body is that one field of the response
        field = response_type.fields_by_name[field_name]
        problem = rest_json.value_violation(field, body, rules, field.name)
    else:
        problem = rest_json.message_violation(response_type, body, rules)
    if problem:
        expected = (
            f"{family} REST JSON: keys as {rules.keys}, enums as {rules.enums}, "
            f"64-bit integers as {rules.int64}, zero values {rules.unpopulated}"
        )
        raise rest_fail(rest, reply, method, rules.rule, expected, problem)
    return rules.rule


def parse_json(method: Method, data: Any, response: bool = True) -> message.Message:
    registry = default_registry()
    cls = registry.message_class(method.response_type if response else method.request_type)
    return json_format.ParseDict(data, cls(), ignore_unknown_fields=True)


# -- cases ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    family: str
    kind: str  # errors | parity | created | schemathesis
    method: str = ""  # full method name ("" for schemathesis)
    service: str = ""
    rule: str = ""
    calls: tuple[str, ...] = ()
    mutating: bool | None = None

    @property
    def id(self) -> str:
        what = short_method(self.method) if self.method else self.family
        return f"{self.family}:{self.kind}[{what}]{('/' + self.rule) if self.kind == 'errors' else ''}"


def annotated(family: str) -> list[Method]:
    return [
        m for m in default_registry().methods(family) if http_rule(m) is not None and not m.client_streaming
    ]


def cases() -> list[Case]:
    found: list[Case] = []
    for family in FAMILIES:
        methods = annotated(family)
        if not methods:
            continue
        rules = load(family)
        if not rules.rules:
            continue
        services = sorted({m.service for m in methods})
        everything = tuple(f"{m.service}.{m.name}" for m in default_registry().methods(family))
        found.append(Case(family, "schemathesis", "", services[0], "", everything, True))
        try:
            book = ex.book(family)
        except (ex.ExampleError, KeyError, ValueError):
            book = None
        for method in methods:
            full = f"{method.service}.{method.name}"
            example = book.example(full) if book else None
            steps = book.calls(example.given) if book and example else set()
            calls = tuple(sorted({full} | steps))
            in_path = set(path_variables(method))
            for rule in rules.for_method(full, "not_found"):
                if rule.field in in_path:  # a missing resource named in the URL
                    found.append(Case(family, "errors", full, method.service, rule.id, calls))
            if book and example and not book.mutating(full) and not method.server_streaming:
                found.append(Case(family, "parity", full, method.service, "", calls))
        offline = Env.offline(family)
        for spec in family_model(family).roundtrips():
            method = default_registry().method(offline.full(spec.create))
            if http_rule(method) is not None:
                full = f"{method.service}.{method.name}"
                found.append(Case(family, "created", full, method.service, spec.rule, everything, True))
    return found


def _mark(case: Case) -> dict[str, Any]:
    return {
        "service": case.service,
        "method": case.method.rpartition(".")[2],
        "rule": case.rule,
        "calls": case.calls,
        "mutating": case.mutating,
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_cases(metafunc, SUITE, cases, _mark)


@pytest.fixture
def rest(target: Target) -> Iterator[Rest]:
    if not target.rest:
        pytest.skip("no --rest URL given")
    client = Rest(target)
    yield client
    client.session.close()


def test_rest(
    case: Case,
    rest: Rest,
    rpc: Caller,
    target: Target,
    scenario: ex.Scenario,
    control: Any,
    request: pytest.FixtureRequest,
) -> None:
    conventions: list[str] = []  # the JSON convention rules the case held replies to (coverage)
    if case.kind == "errors":
        conventions = check_error(case, rest, rpc, target, scenario)
    elif case.kind == "parity":
        conventions = check_parity(case, rest, rpc, scenario)
    elif case.kind == "created":
        conventions = check_created(case, rest, rpc, target, control)
    else:
        check_schemathesis(case, rest, target)
    checked_too(request.node, *conventions)


# -- errors -------------------------------------------------------------------------------------------


def check_error(case: Case, rest: Rest, rpc: Caller, target: Target, scenario: ex.Scenario) -> list[str]:
    rule: Rule = load(case.family).rule(case.rule)
    method = default_registry().method(case.method)
    try:
        base = scenario.prepare(case.method)
    except Mismatch as exc:
        if "no example" in exc.detail:
            pytest.skip(
                f"no valid example for {short_method(case.method)} in specs/{case.family}/examples.yaml"
            )
        raise
    request = rpc.build(method, base)
    try:
        chain = strategies.path_fields(request.DESCRIPTOR, rule.field)
    except KeyError:
        pytest.skip(f"{rule.field} is not a field of {method.request_type}")
    if any(f.is_repeated for f in chain) or strategies.is_message(chain[-1]):
        pytest.skip(f"{rule.field} is not a single id")
    strategies.set_path(request, rule.field, str(uuid.UUID(int=scenario.rng.getrandbits(128), version=4)))
    reply = rest.send(transcode(method, request))
    codes = rule.accepted_codes(target.strict)
    convention = rest_json.convention(case.family)
    status_of = {**HTTP_STATUS, "CANCELLED": convention.cancelled_status} if convention else HTTP_STATUS
    statuses = {status_of[c] for c in codes}
    expected = " or ".join(f"HTTP {s}" for s in sorted(statuses)) + " with an error body"
    body = reply.json()
    numbers = {grpc.StatusCode[c].value[0] for c in codes}
    if reply.status not in statuses:
        raise rest_fail(rest, reply, method, rule.id, expected, f"HTTP {reply.status}: {reply.text[:120]}")
    if reply.status != 200 and (not isinstance(body, dict) or body.get("code") not in numbers):
        raise rest_fail(
            rest, reply, method, rule.id, f"an error body with code {sorted(numbers)}", reply.text[:120]
        )
    if convention is None or reply.status == 200:
        return []
    problem = rest_json.error_violation(body, convention)
    if problem:
        expected = f"a {case.family} error body ({', '.join(convention.error_keys)})"
        raise rest_fail(rest, reply, method, convention.rule, expected, problem)
    return [convention.rule]


# -- parity -----------------------------------------------------------------------------------------------


def _same(a: message.Message, b: message.Message) -> bool:
    return strategies.canonical(a) == strategies.canonical(b)


def _without(reply: message.Message, fields: tuple[str, ...]) -> message.Message:
    """``reply`` without the top-level ``fields`` (those that differ on every call by design)."""
    if not fields:
        return reply
    trimmed = type(reply)()
    trimmed.CopyFrom(reply)
    for name in fields:
        trimmed.ClearField(name)
    return trimmed


def check_parity(case: Case, rest: Rest, rpc: Caller, scenario: ex.Scenario) -> list[str]:
    method = default_registry().method(case.method)
    base = scenario.prepare(case.method)
    request = rpc.build(method, base)
    before = rpc(method, request)
    if not before.ok:
        raise Mismatch("OK for the valid example over gRPC", before.status(), reply=before)
    over_rest = rest.send(transcode(method, request))
    after = rpc(method, request)
    if over_rest.status != 200:
        raise rest_fail(
            rest, over_rest, method, "", "HTTP 200 as gRPC answered OK", f"HTTP {over_rest.status}"
        )
    convention = check_convention(case.family, rest, over_rest, method)
    try:
        parsed = parse_json(method, over_rest.json())
    except (json_format.ParseError, TypeError) as exc:
        raise rest_fail(
            rest, over_rest, method, "", "a JSON body of the response type", str(exc)[:120]
        ) from None
    fresh = scenario.book_of(case.method).per_call.get(case.method, ())
    if not any(r.ok and _same(_without(parsed, fresh), _without(r.response, fresh)) for r in (before, after)):
        rest_dict = json_format.MessageToDict(parsed, preserving_proto_field_name=True)
        grpc_dict = json_format.MessageToDict(after.response, preserving_proto_field_name=True)
        differing = sorted(k for k in set(rest_dict) | set(grpc_dict) if rest_dict.get(k) != grpc_dict.get(k))
        raise rest_fail(
            rest,
            over_rest,
            method,
            "",
            "the gRPC answer over REST",
            f"differences in {', '.join(differing) or 'values'}",
        )
    return [convention]


def check_created(case: Case, rest: Rest, rpc: Caller, target: Target, control: Any) -> list[str]:
    model = family_model(case.family)
    env = Env(rpc=rpc, rules=load(case.family), namespace=f"{target.namespace}-rest", control=control)
    spec = next(s for s in model.roundtrips() if env.full(s.create) == case.method)
    method = default_registry().method(case.method)
    request = rpc.build(method, spec.base(env))
    created = rest.send(transcode(method, request))
    if created.status != 200:
        raise rest_fail(
            rest, created, method, spec.rule, "HTTP 200 for a valid request", f"HTTP {created.status}"
        )
    response = parse_json(method, created.json())
    grpc_reply = rpc(method, request)  # the other way round: made over gRPC, read over REST
    conventions: list[str] = []
    try:
        conventions.append(check_convention(case.family, rest, created, method))
        from_rest = _reply_like(method, response)
        read = spec.read(env, from_rest)
        if not read.ok:
            raise Mismatch(
                "OK reading over gRPC what REST created", read.status(), rule=spec.rule, reply=read
            )
        _compare(spec, response, read.response, rest, created, method, "created over REST, read over gRPC")
        if grpc_reply.ok:
            read_again = spec.read(env, grpc_reply)
            read_method = read_again.method
            call = transcode(read_method, read_again.requests[0])
            over_rest = rest.send(call)
            if over_rest.status != 200:
                raise rest_fail(
                    rest, over_rest, read_method, spec.rule, "HTTP 200", f"HTTP {over_rest.status}"
                )
            conventions.append(check_convention(case.family, rest, over_rest, read_method))
            parsed = parse_json(read_method, over_rest.json())
            _compare(
                spec,
                grpc_reply.response,
                parsed,
                rest,
                over_rest,
                read_method,
                "created over gRPC, read over REST",
            )
    finally:
        if spec.undo is not None:
            with contextlib.suppress(Exception):
                spec.undo(env, _reply_like(method, response))
            if grpc_reply.ok:
                with contextlib.suppress(Exception):
                    spec.undo(env, grpc_reply)
    return conventions


def _reply_like(method: Method, response: message.Message) -> Reply:
    """A reply object for what another protocol answered (the model's read functions take replies)."""
    return Reply(method, grpc.StatusCode.OK, "", [], [response])


def _compare(
    spec: Any,
    made: message.Message,
    read: message.Message,
    rest: Rest,
    reply: HttpReply,
    method: Method,
    how: str,
) -> None:
    for _, read_path in spec.pairs:
        try:
            want = strategies.values_at(made, read_path)
            got = strategies.values_at(read, read_path)
        except KeyError:
            continue
        if [strategies.canonical(v) if isinstance(v, message.Message) else v for v in want] != [
            strategies.canonical(v) if isinstance(v, message.Message) else v for v in got
        ]:
            raise rest_fail(rest, reply, method, spec.rule, f"{read_path} {want!r} ({how})", repr(got))


# -- schemathesis -----------------------------------------------------------------------------------------


def check_schemathesis(case: Case, rest: Rest, target: Target) -> None:
    import schemathesis
    from schemathesis import checks

    url = f"{rest.base}/openapi/{case.family}.json"
    document = rest.session.get(url, timeout=rest.timeout, verify=rest.verify)
    if document.status_code != 200:
        pytest.skip(f"no OpenAPI document at {url} (HTTP {document.status_code})")
    schema = schemathesis.openapi.from_dict(document.json())
    wanted = [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
    ]
    names = {m.name.lower(): m for m in annotated(case.family)}
    specified = load(case.family).services
    examples = max(1, min(target.max_examples, 5))
    for result in schema.get_all_operations():
        operation = result.ok()
        operation_id = (
            (operation.definition.raw or {}).get("operationId", "")
            if hasattr(operation, "definition")
            else ""
        )
        method = names.get(operation_id.rpartition("_")[2].lower())
        if method is not None and method.service not in specified:
            continue  # no rule describes its service yet: the score line names it as unchecked
        label = short_method(method.path) if method else f"{operation.method.upper()} {operation.path}"

        probe_operation(operation, label, rest, wanted, examples)


def probe_operation(operation: Any, label: str, rest: Rest, wanted: list[Any], examples: int) -> None:
    """Generated requests for one OpenAPI operation, each response checked by schemathesis."""

    @harness_settings(examples, phases=(Phase.explicit, Phase.generate))  # no shrinking of HTTP probes
    @given(generated=operation.as_strategy())
    def probe(generated: Any) -> None:
        # schemathesis' cases print as nothing in hypothesis' falsifying example: say what was sent.
        sent = generated_request(operation, generated)
        note(f"request: {json.dumps(sent, default=str, ensure_ascii=False)}")
        response = generated.call(
            base_url=rest.base, session=rest.session, timeout=rest.timeout, verify=rest.verify
        )
        try:
            generated.validate_response(response, checks=wanted)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis reports findings as an exception group
            raise openapi_mismatch(operation, generated, response, exc, label) from None

    run_property(probe)


EXCERPT = 160  # characters of a response body shown in a failure


def _findings(exc: BaseException) -> list[str]:
    """What schemathesis found: each failure's title, with the first line of its message."""
    found = []
    for failure in getattr(exc, "exceptions", None) or [exc]:
        title = str(getattr(failure, "title", "") or type(failure).__name__)
        message = str(getattr(failure, "message", "") or "").strip().splitlines()
        found.append(f"{title}: {message[0]}" if message and message[0] != title else title)
    return found


def generated_request(operation: Any, generated: Any) -> dict[str, Any]:
    """The values of a generated request, by where they go (only the parts it has)."""
    from schemathesis.core import NotSet

    parts: dict[str, Any] = {"operation": f"{operation.method.upper()} {operation.path}"}
    for key in ("path_parameters", "query", "headers", "cookies"):
        value = getattr(generated, key, None)
        if value:
            parts[key] = dict(value)
    body = getattr(generated, "body", None)
    if body is not None and not isinstance(body, NotSet):
        parts["body"] = body
    return parts


def openapi_mismatch(
    operation: Any, generated: Any, response: Any, exc: BaseException, label: str
) -> Mismatch:
    """A response schemathesis finds at odds with the OpenAPI document: the operation (as the
    document writes it), the request values that triggered it and the response's status and body."""
    where = f"{operation.method.upper()} {operation.path}"
    request = generated_request(operation, generated)
    sent = {k: v for k, v in request.items() if k != "operation"}
    body = (response.text or "").strip()
    excerpt = body if len(body) <= EXCERPT else f"{body[:EXCERPT]}… [{len(body)} characters]"
    values = json.dumps(sent, default=str, ensure_ascii=False)
    return Mismatch(
        f"a response to {where} that keeps the OpenAPI document",
        f"HTTP {response.status_code} ({'; '.join(_findings(exc))}): {excerpt or '(empty body)'}",
        rule="",
        method=label,
        detail=f"request {values}" if sent else "request without values",
        reproducer={
            "method": f"{label} ({where})" if label != where else where,
            "request": json.dumps(request, indent=2, default=str, ensure_ascii=False),
            "command": generated.as_curl_command(),
        },
    )
