"""The one call path from a decoded request to a handler and back.

Both the gRPC server and the REST gateway call :class:`Dispatcher`, so the two
protocols share handlers, state, observers (request journal, fault rules) and
defect modes.  Nothing here knows about wire encodings.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from google.protobuf import message
from protoconform.mockserver import rpc
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.validation import check_request
from protoconform.specs.registry import Method, Registry

if TYPE_CHECKING:
    from protoconform.mockserver.auth import Authenticator

log = logging.getLogger(__name__)

JOURNAL_LIMIT = 100  # messages kept per call and direction, so long streams stay bounded


@dataclass
class CallRecord:
    """One call as observers see it; filled in as the call progresses."""

    method: Method
    protocol: str
    metadata: Mapping[str, str]
    peer: str
    started: float = field(default_factory=time.time)
    requests: list[message.Message] = field(default_factory=list)
    responses: list[message.Message] = field(default_factory=list)
    code: grpc.StatusCode = grpc.StatusCode.OK
    error: str = ""
    duration: float = 0.0
    identity: Mapping[str, Any] | None = None  # set by the authenticator, when auth is on
    faults: list[dict[str, str]] = field(default_factory=list)  # fault rules that fired: name, kind
    # Set by a fault rule: called with the count of response messages sent so
    # far, it raises ApiError to end the stream there.
    stream_cut: Callable[[int], None] | None = None


class CallObserver(Protocol):
    """Sees every call: the journal records, fault rules may delay or fail it in ``before``
    (and cut its response stream by setting ``record.stream_cut``)."""

    async def before(self, record: CallRecord) -> None: ...

    def after(self, record: CallRecord) -> None: ...


def unimplemented(method: Method) -> rpc.ApiError:
    return rpc.ApiError(
        grpc.StatusCode.UNIMPLEMENTED, f"method {method.path} is not implemented by this mock server"
    )


class Dispatcher:
    def __init__(
        self, registry: Registry, states: dict[str, Any], clock: Clock, defects: frozenset[str] = frozenset()
    ) -> None:
        self.registry = registry
        self.states = states
        self.clock = clock
        self.defects: set[str] = set(defects)
        self.observers: list[CallObserver] = []
        # Makes what a call changed last before it is answered (a durable store's commit).
        self.commit: Callable[[], None] = lambda: None
        # Checks bearer tokens (mockserver/auth.py) for gRPC and REST calls alike; None = auth off.
        self.authenticator: Authenticator | None = None

    def _context(self, record: CallRecord) -> rpc.CallContext:
        return rpc.CallContext(
            method=record.method.path,
            state=self.states.get(record.method.family),
            clock=self.clock,
            metadata=record.metadata,
            defects=frozenset(self.defects),
            peer=record.peer,
            protocol=record.protocol,
            identity=record.identity,
        )

    def _check_response(self, record: CallRecord, response: Any) -> message.Message:
        expected = record.method.response_type
        if not isinstance(response, message.Message) or response.DESCRIPTOR.full_name != expected:
            got = type(response).__name__
            raise rpc.ApiError(
                grpc.StatusCode.INTERNAL, f"{record.method.path} produced {got}, not {expected}"
            )
        return response

    async def _begin(self, record: CallRecord) -> tuple[rpc.Handler, bool]:
        for observer in self.observers:
            await observer.before(record)
        if self.authenticator is not None:  # after the observers: the journal sees refused calls too
            record.identity = self.authenticator.check(record.method.path, record.metadata)
        state = self.states.get(record.method.family)
        found = rpc.lookup(record.method.path, getattr(state, "handler_variant", rpc.DEFAULT_VARIANT))
        if found is None:
            raise unimplemented(record.method)
        return found

    def _finish(self, record: CallRecord, error: BaseException | None) -> None:
        record.duration = time.time() - record.started
        if isinstance(error, rpc.ApiError):
            record.code, record.error = error.code, error.message
        elif error is not None:
            record.code, record.error = grpc.StatusCode.CANCELLED, type(error).__name__
        for observer in self.observers:
            try:
                observer.after(record)
            except Exception:
                log.exception("call observer failed")

    def _as_api_error(self, record: CallRecord, exc: Exception) -> rpc.ApiError:
        if isinstance(exc, rpc.ApiError):
            error = exc
        else:
            log.exception("handler for %s failed", record.method.path)
            error = rpc.ApiError(
                grpc.StatusCode.INTERNAL, f"{record.method.path} failed: {type(exc).__name__}: {exc}"
            )
        # a family may dress every error as its server does (e.g. KFP's api.Error detail)
        decorate = getattr(self.states.get(record.method.family), "decorate_error", None)
        return decorate(error) if decorate is not None else error

    def _record(
        self,
        method: Method,
        request: message.Message | AsyncIterator[message.Message],
        metadata: Mapping[str, str] | None,
        peer: str,
        protocol: str,
    ) -> tuple[CallRecord, Any]:
        """A new call record, and the request as the handler will see it (streams are recorded as read)."""
        record = CallRecord(method, protocol, dict(metadata or {}), peer)
        if isinstance(request, message.Message):
            record.requests.append(request)
            return record, request

        async def recorded() -> AsyncIterator[message.Message]:
            async for item in request:
                if len(record.requests) < JOURNAL_LIMIT:
                    record.requests.append(item)
                yield item

        return record, recorded()

    async def _invoke(self, record: CallRecord, request: Any) -> Any:
        fn, validate = await self._begin(record)
        context = self._context(record)
        rules = getattr(context.state, "rules", None)
        if validate and rules is not None and isinstance(request, message.Message):
            # Request-shape rules (required, range, pattern...) hold for every handler of every
            # family; a streamed request is checked by its handler, message by message.
            check_request(rules, record.method.path, request)
        result = fn(request, context)
        return await result if inspect.isawaitable(result) else result

    def _saved(self, record: CallRecord) -> None:
        """Commit what the call changed before the client hears of it; a failed write fails the call."""
        try:
            self.commit()
        except Exception as exc:
            log.exception("saving the changes of %s failed", record.method.path)
            raise rpc.ApiError(
                grpc.StatusCode.UNAVAILABLE, f"{record.method.path}: the change could not be saved: {exc}"
            ) from None

    def _observed(self, record: CallRecord) -> _Observed:
        return _Observed(self, record)

    async def call(
        self,
        method: Method,
        request: message.Message | AsyncIterator[message.Message],
        metadata: Mapping[str, str] | None = None,
        peer: str = "",
        protocol: str = "grpc",
    ) -> message.Message:
        """A call with a single response (unary or client-streaming)."""
        record, request = self._record(method, request, metadata, peer, protocol)
        async with self._observed(record):
            response = self._check_response(record, await self._invoke(record, request))
            record.responses.append(response)
            self._saved(record)
            return response
        raise AssertionError("unreachable")  # for type checkers: the block returns or raises

    async def stream(
        self,
        method: Method,
        request: message.Message | AsyncIterator[message.Message],
        metadata: Mapping[str, str] | None = None,
        peer: str = "",
        protocol: str = "grpc",
    ) -> AsyncIterator[message.Message]:
        """A call with a response stream (server-streaming or bidi)."""
        record, request = self._record(method, request, metadata, peer, protocol)
        async with self._observed(record):
            items = await self._invoke(record, request)
            sent = 0
            async for item in items if hasattr(items, "__aiter__") else _aiter(items):
                response = self._check_response(record, item)
                if len(record.responses) < JOURNAL_LIMIT:
                    record.responses.append(response)
                self._saved(record)
                yield response
                sent += 1
                if record.stream_cut is not None:
                    record.stream_cut(sent)
            self._saved(record)


class _Observed:
    """Turns any handler failure into an ApiError and tells the observers how the call ended.

    A class rather than a generator-based context manager: an open stream holds
    one, and every object an open stream holds lengthens each full garbage collection.
    """

    __slots__ = ("dispatcher", "record")

    def __init__(self, dispatcher: Dispatcher, record: CallRecord) -> None:
        self.dispatcher = dispatcher
        self.record = record

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        if isinstance(exc, Exception):
            error = self.dispatcher._as_api_error(self.record, exc)
            self.dispatcher._finish(self.record, error)
            raise error from None
        self.dispatcher._finish(self.record, exc)  # None, or cancellation


async def _aiter(items: Any) -> AsyncIterator[Any]:
    """Handlers may also stream with a plain generator."""
    for item in items:
        yield item
