"""Call any method of the target by name and get its outcome as data.

``rpc("Sessions.GetSession", {"session_id": "x"})`` returns a :class:`Reply`
whatever happens: a status is an answer to compare with a rule, not an
exception.  Every call is recorded so a failing case can print a reproducer
(the request as JSON and a ``buf curl`` command line).

Method names may be full (``armonik.api.grpc.v1.sessions.Sessions.GetSession``),
gRPC paths (``/pkg.Svc/M``) or ``Service.Method`` when the service name is
unique among the served families.  Requests may be messages or protojson dicts.
"""

from __future__ import annotations

import base64
import copy
import json
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format, message
from google.rpc import status_pb2
from protoconform.conformance.target import Target
from protoconform.specs.registry import Method, Registry

STATUS_DETAILS_KEY = "grpc-status-details-bin"  # where grpc-status carries a google.rpc.Status


@dataclass
class Reply:
    """The outcome of one call."""

    method: Method
    code: grpc.StatusCode
    message: str  # status details ("" when OK)
    requests: list[message.Message]
    responses: list[message.Message] = field(default_factory=list)
    elapsed: float = 0.0
    cut: bool = False  # True when the caller stopped reading an open stream (window or max_responses)
    trailing_metadata: tuple[tuple[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK

    @property
    def request(self) -> message.Message | None:
        return self.requests[0] if self.requests else None

    @property
    def response(self) -> message.Message | None:
        return self.responses[0] if self.responses else None

    @property
    def name(self) -> str:
        return f"{self.method.service}.{self.method.name}"

    def status(self) -> str:
        """``OK`` or ``CODE: message``, for failure lines."""
        return self.code.name if self.ok else f"{self.code.name} ({self.message})"

    def request_json(self) -> str:
        return "\n".join(to_json(r) for r in self.requests) or "{}"

    def error_view(self, registry: Registry) -> dict[str, Any]:
        """A refused call as data: ``{code, message, details}``, the details being the
        ``google.rpc.Status`` details of the ``grpc-status-details-bin`` trailer, each as protojson
        with its ``@type`` (the full message name; a type the registry does not know keeps its
        bytes, base64, under ``value``)."""
        details = []
        for key, value in self.trailing_metadata:
            if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
                continue
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except message.DecodeError:
                continue  # a malformed trailer is no detail; the code and message still count
            for packed in status.details:
                name = packed.type_url.rpartition("/")[2]
                try:
                    detail = registry.message_class(name)()
                    packed.Unpack(detail)
                except (KeyError, TypeError, message.DecodeError):
                    details.append({"@type": name, "value": base64.b64encode(packed.value).decode()})
                    continue
                shown = json_format.MessageToDict(detail, preserving_proto_field_name=True)
                details.append({"@type": name, **shown})
        return {"code": self.code.name, "message": self.message, "details": details}


def to_json(msg: message.Message, indent: int | None = None) -> str:
    return json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True), indent=indent)


def buf_curl(target: Target, reply: Reply) -> str:
    """A command line that sends the same request with ``buf curl`` (which uses server reflection)."""
    words = ["buf", "curl", "--protocol", "grpc"]
    if not target.tls:
        words.append("--http2-prior-knowledge")
    else:
        if target.ca:
            words += ["--cacert", target.ca]
        if target.cert:
            words += ["--cert", target.cert, "--key", target.key]
    quoted = [shlex.quote(w) for w in words]
    if target.token:
        quoted += ["-H", '"Authorization: Bearer $TOKEN"']  # left for the shell to expand
    data = " ".join(to_json(r) for r in reply.requests) or "{}"
    quoted += ["-d", shlex.quote(data), shlex.quote(f"{target.scheme}://{target.address}{reply.method.path}")]
    return " ".join(quoted)


def resolve_method(registry: Registry, name: str) -> Method:
    """A served method by full name, gRPC path or ``Service.Method`` (when the service name is unique)."""
    if name.startswith("/"):
        return registry.method(name)
    service, _, method = name.rpartition(".")
    if "." not in service:
        candidates = sorted(
            {m.service for m in registry.methods() if m.service.rpartition(".")[2] == service}
        )
        if len(candidates) > 1:
            raise KeyError(f"{name!r} is ambiguous: {', '.join(f'{c}.{method}' for c in candidates)}")
        if candidates:
            service = candidates[0]
    try:
        return registry.method(f"{service}.{method}")
    except KeyError:
        raise KeyError(f"no served method {name!r}") from None


RAW_TIME_TYPES = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})


def _take_raw_times(data: Any, desc: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], dict]]:
    """Pop every Timestamp/Duration written raw (``{seconds: N, nanos: M}`` instead of protojson's
    text) out of ``data``, with the path where it goes: protojson refuses values outside its range
    (years 1..9999), which a binary client can still send and a rule may be about."""
    found: list[tuple[tuple[Any, ...], dict]] = []
    if not isinstance(data, dict):
        return found
    by_json = {f.json_name: f for f in desc.fields}
    for key in list(data):
        field = desc.fields_by_name.get(key) or by_json.get(key)
        if field is None or field.message_type is None:
            continue
        value = data[key]
        if field.message_type.GetOptions().map_entry:
            continue
        if field.message_type.full_name in RAW_TIME_TYPES:
            if isinstance(value, dict) and not field.is_repeated:
                found.append(((*path, field.name), data.pop(key)))
            continue
        if field.is_repeated and isinstance(value, list):
            for index, item in enumerate(value):
                found += _take_raw_times(item, field.message_type, (*path, field.name, index))
        elif isinstance(value, dict):
            found += _take_raw_times(value, field.message_type, (*path, field.name))
    return found


def parse_request(data: Any, msg: message.Message) -> message.Message:
    """``msg`` filled from protojson ``data``; Timestamps and Durations may also be written raw
    (``{seconds, nanos}``) to send values protojson cannot carry."""
    if not isinstance(data, dict):
        return json_format.ParseDict(data, msg)
    data = copy.deepcopy(data)
    raw = _take_raw_times(data, msg.DESCRIPTOR)
    json_format.ParseDict(data, msg)
    for path, value in raw:
        holder: Any = msg
        for part in path[:-1]:
            holder = holder[part] if isinstance(part, int) else getattr(holder, part)
        target = getattr(holder, path[-1])
        target.seconds = int(value.get("seconds", 0))
        target.nanos = int(value.get("nanos", 0))
    return msg


class Caller:
    """The ``rpc`` fixture: calls by method name, records every reply in :attr:`history`."""

    def __init__(self, channel: grpc.Channel, registry: Registry, target: Target) -> None:
        self.channel = channel
        self.registry = registry
        self.target = target
        self.history: list[Reply] = []

    # -- names and messages ----------------------------------------------------
    def resolve(self, name: str) -> Method:
        """A method by full name, gRPC path or unambiguous ``Service.Method``."""
        return resolve_method(self.registry, name)

    def request_class(self, method: str | Method) -> type[message.Message]:
        m = method if isinstance(method, Method) else self.resolve(method)
        return self.registry.message_class(m.request_type)

    def build(self, method: str | Method, data: Any = None) -> message.Message:
        """A request message from a message, a protojson dict or None (empty)."""
        cls = self.request_class(method)
        if data is None:
            return cls()
        if isinstance(data, message.Message):
            return data
        return parse_request(data, cls())

    # -- calls -------------------------------------------------------------------
    def _callable(self, method: Method) -> Callable[..., Any]:
        response_class = self.registry.message_class(method.response_type)
        factory = {
            "unary_unary": self.channel.unary_unary,
            "unary_stream": self.channel.unary_stream,
            "stream_unary": self.channel.stream_unary,
            "stream_stream": self.channel.stream_stream,
        }[method.kind]
        return factory(
            method.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )

    def __call__(
        self,
        method: str | Method,
        request: Any = None,
        *,
        requests: Iterable[Any] | None = None,
        timeout: float | None = None,
        window: float | None = None,
        max_responses: int | None = None,
        metadata: Iterable[tuple[str, str]] = (),
    ) -> Reply:
        """One call.  ``requests`` feeds client streams; ``window`` (seconds) or ``max_responses``
        stop reading a server stream that would stay open, and mark the reply ``cut``."""
        m = method if isinstance(method, Method) else self.resolve(method)
        if m.client_streaming:
            items = [
                self.build(m, r) for r in (requests if requests is not None else [request] if request else [])
            ]
        else:
            items = [self.build(m, request)]
        reply = Reply(m, grpc.StatusCode.OK, "", items)
        self.history.append(reply)
        stub = self._callable(m)
        deadline = timeout if timeout is not None else self.target.timeout
        started = time.monotonic()
        kwargs: dict[str, Any] = {"timeout": deadline, "metadata": list(metadata) or None}
        try:
            if not m.server_streaming:
                argument = iter(items) if m.client_streaming else items[0]
                response, call = stub.with_call(argument, **kwargs)
                reply.responses.append(response)
                reply.trailing_metadata = tuple(call.trailing_metadata() or ())
            else:
                argument = iter(items) if m.client_streaming else items[0]
                call = stub(argument, **kwargs)
                self._read_stream(call, reply, window, max_responses)
        except grpc.RpcError as exc:
            if reply.cut and exc.code() == grpc.StatusCode.CANCELLED:
                pass  # we hung up ourselves
            else:
                reply.code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                reply.message = exc.details() or "" if hasattr(exc, "details") else str(exc)
                if hasattr(exc, "trailing_metadata"):  # google.rpc.Status details ride here
                    reply.trailing_metadata = tuple(exc.trailing_metadata() or ())
        reply.elapsed = time.monotonic() - started
        return reply

    def _read_stream(self, call: Any, reply: Reply, window: float | None, max_responses: int | None) -> None:
        timer = None
        if window is not None:

            def hang_up() -> None:
                reply.cut = True
                call.cancel()

            timer = threading.Timer(window, hang_up)
            timer.daemon = True
            timer.start()
        try:
            for response in call:
                reply.responses.append(response)
                if max_responses is not None and len(reply.responses) >= max_responses:
                    reply.cut = True
                    call.cancel()
                    break
        finally:
            if timer is not None:
                timer.cancel()

    def open(
        self,
        method: str | Method,
        request: Any = None,
        *,
        requests: Iterable[Any] | None = None,
        timeout: float | None = None,
    ) -> Iterator[message.Message]:
        """A raw streaming call (an iterator with ``cancel()``), for cases that steer a stream
        themselves; the request is recorded like any other call."""
        m = method if isinstance(method, Method) else self.resolve(method)
        items = [self.build(m, r) for r in requests] if requests is not None else [self.build(m, request)]
        self.history.append(Reply(m, grpc.StatusCode.OK, "", items))
        argument = iter(items) if m.client_streaming else items[0]
        return self._callable(m)(argument, timeout=timeout if timeout is not None else self.target.timeout)

    def last(self) -> Reply | None:
        return self.history[-1] if self.history else None
