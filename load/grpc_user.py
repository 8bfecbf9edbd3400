"""A locust ``User`` for gRPC: one channel per user, every call a locust request event.

Locust ships no gRPC user. This one calls any method of the served families by name
(``"Sessions.CreateSession"``, a full name or a ``/pkg.Svc/M`` path) with a protojson dict or a
message; request and response classes come from the descriptor registry, so no generated stubs
are needed. Each call -- unary, server stream, client stream, bidirectional -- fires one request
event: ``request_type="grpc"``, ``name`` the full method path, the time until the last response in
ms, the bytes of every response, and on failure a :class:`GrpcCallError` naming the status code
and details.

Locust runs users as greenlets on gevent; grpcio blocks the whole process unless its gevent
integration is switched on before the first channel is made (:func:`init_gevent`, done on import).
Connection options (TLS, client certificate, bearer token, call deadline) come from the
``PROTOCONFORM_LOAD_*`` environment that ``protoconform load`` sets (:class:`Connection`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent
from google.protobuf import json_format, message
from locust import User
from locust.exception import LocustError
from protoconform.conformance.caller import parse_request, resolve_method
from protoconform.load.params import env_name
from protoconform.specs.registry import Method, Registry, default_registry

# grpcio's own threads must yield to gevent's loop, or one blocked call stalls every user.
grpc_gevent.init_gevent()

ENV_PREFIX = "PROTOCONFORM_LOAD_"


class ReportedError(Exception):
    """A call that failed and was reported as such: it ends a workflow's iteration, nothing more."""


class GrpcCallError(ReportedError):
    """A call's failure as locust records it: ``CODE: details``."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    def __repr__(self) -> str:
        # locust's failure tables show repr(error): the status, not the class name around it
        return str(self)


@dataclass(frozen=True)
class Connection:
    """How users reach the target (``PROTOCONFORM_LOAD_*`` environment)."""

    target: str
    tls: bool = False
    ca: str = ""  # PEM of the CA that signed the server certificate
    cert: str = ""  # client certificate (mutual TLS), with ``key``
    key: str = ""
    token: str = ""  # sent as ``authorization: Bearer <token>``
    timeout: float = 30.0  # deadline of one call, seconds

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Connection:
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(ENV_PREFIX + name, "")

        return cls(
            target=get("TARGET"),
            tls=get("TLS") == "1" or bool(get("CA") or get("CERT")),
            ca=get("CA"),
            cert=get("CERT"),
            key=get("KEY"),
            token=get("TOKEN"),
            timeout=float(get("TIMEOUT") or 30.0),
        )

    def channel(self) -> grpc.Channel:
        if not self.target:
            raise LocustError("no gRPC target: protoconform load --target HOST:PORT (or --mock)")
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if not self.tls:
            return grpc.insecure_channel(self.target, options=options)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(self.ca).read_bytes() if self.ca else None,
            private_key=Path(self.key).read_bytes() if self.key else None,
            certificate_chain=Path(self.cert).read_bytes() if self.cert else None,
        )
        return grpc.secure_channel(self.target, credentials, options=options)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


@cache
def registry() -> Registry:
    return default_registry()


@cache
def method_of(name: str) -> Method:
    return resolve_method(registry(), name)


def build(method: Method, data: Any = None) -> message.Message:
    """A request message of ``method`` from a message, a protojson dict or None (empty)."""
    if isinstance(data, message.Message):
        return data
    cls = registry().message_class(method.request_type)
    return cls() if data is None else parse_request(data, cls())


def as_dict(msg: message.Message) -> dict[str, Any]:
    """A response as protojson with the proto field names (what the request builders read)."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


class GrpcClient:
    """Calls over one channel, each reported to ``environment.events.request``."""

    def __init__(self, connection: Connection, request_event: Any) -> None:
        self.connection = connection
        self.channel = connection.channel()
        self.metadata = connection.metadata()
        self._fire = request_event.fire
        self._callables: dict[str, Any] = {}
        # ``--param label=NAME``: a suffix to every request name, to tell load generators apart
        label = os.environ.get(env_name("label"), "")
        self.suffix = f" [{label}]" if label else ""

    def close(self) -> None:
        self.channel.close()

    def _callable(self, method: Method) -> Any:
        found = self._callables.get(method.path)
        if found is None:
            response_class = registry().message_class(method.response_type)
            factory = getattr(self.channel, method.kind)
            found = factory(
                method.path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_class.FromString,
                _registered_method=True,
            )
            self._callables[method.path] = found
        return found

    def call(
        self,
        name: str,
        request: Any = None,
        *,
        requests: Iterable[Any] | None = None,
        timeout: float | None = None,
        max_responses: int | None = None,
        until: Callable[[message.Message], bool] | None = None,
        report_name: str = "",
    ) -> list[message.Message]:
        """Call ``name`` and return its responses (one for a unary response).

        ``request`` is the request of a unary-request method; ``requests`` the stream of a
        client-streaming one. A server stream is read to its end, or until ``max_responses``
        came or ``until(response)`` is true (then cancelled: what a client waiting for an event
        does). Raises
        :class:`GrpcCallError` after reporting the failure.
        """
        method = method_of(name)
        stub = self._callable(method)
        deadline = self.connection.timeout if timeout is None else timeout
        if method.client_streaming:
            argument: Any = (build(method, r) for r in (requests or ()))
        else:
            argument = build(method, request)
        started = time.perf_counter()
        size = 0
        responses: list[message.Message] = []
        error: Exception | None = None
        try:
            if method.server_streaming:
                stream = stub(argument, timeout=deadline, metadata=self.metadata)
                try:
                    for reply in stream:
                        responses.append(reply)
                        size += reply.ByteSize()
                        if max_responses is not None and len(responses) >= max_responses:
                            break
                        if until is not None and until(reply):
                            break
                finally:
                    stream.cancel()
            else:
                reply = stub(argument, timeout=deadline, metadata=self.metadata)
                responses.append(reply)
                size = reply.ByteSize()
        except grpc.RpcError as exc:
            error = GrpcCallError(exc.code(), exc.details() or "")
        self.report(report_name or method.path, started, size, error)
        if error is not None:
            raise error
        return responses

    def enum_name(self, enum: str, number: int) -> str:
        value = registry().enum(enum).values_by_number.get(number)
        return value.name if value is not None else str(number)

    def report(self, name: str, started: float, size: int, error: Exception | None) -> None:
        """Fire one request event (``started``: the call's ``time.perf_counter()``)."""
        self._fire(
            request_type="grpc",
            name=name + self.suffix,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=size,
            exception=error,
            context={},
        )

    def unary(self, name: str, request: Any = None, **kwargs: Any) -> message.Message:
        """The one response of a unary-response method."""
        return self.call(name, request, **kwargs)[0]

    def stream(self, name: str, request: Any = None, **kwargs: Any) -> Iterator[message.Message]:
        return iter(self.call(name, request, **kwargs))


class GrpcUser(User):
    """Base class of gRPC users: ``self.client`` is a :class:`GrpcClient` on the user's own channel.

    The target comes from ``--host`` when given, else from ``PROTOCONFORM_LOAD_TARGET``.
    """

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        connection = Connection.from_env()
        if self.host:
            connection = Connection(**{**connection.__dict__, "target": self.host.removeprefix("grpc://")})
        self.client = GrpcClient(connection, environment.events.request)

    def on_stop(self) -> None:
        self.client.close()


@contextlib.contextmanager
def workflow(request_event: Any, name: str) -> Iterator[None]:
    """One iteration of a workflow. A failed call ends it (it is reported already); any other error
    -- a check of the flow itself, such as a run that never finished or a page that lost an item --
    is reported as a failed request of type ``flow`` named ``name``, so thresholds see it too."""
    started = time.perf_counter()
    try:
        yield
    except ReportedError:
        pass
    except Exception as exc:
        request_event.fire(
            request_type="flow",
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=0,
            exception=exc,
            context={},
        )
