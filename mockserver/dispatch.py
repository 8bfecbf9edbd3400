"""The one call path from a decoded request to a handler and back.

Both the gRPC server and the REST gateway call :class:`Dispatcher`, so the two
protocols share handlers, state, observers (request journal, fault rules) and
defect modes.  Nothing here knows about wire encodings.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from google.protobuf import message
from protoconform.mockserver import rpc
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.validation import check_rules, request_rules
from protoconform.specs.registry import Method, Registry

if TYPE_CHECKING:
    from protoconform.mockserver.auth import Authenticator
    from protoconform.specs.rules import Rule

log = logging.getLogger(__name__)

JOURNAL_LIMIT = 100  # messages kept per call and direction, so long streams stay bounded


class CallRecord:
    """One call as observers see it; filled in as the call progresses.

    A plain class with slots rather than a dataclass: one is made for every
    call, and default factories cost more than the call path can spare.
    """

    __slots__ = (
        "code",
        "duration",
        "error",
        "faults",
        "identity",
        "metadata",
        "method",
        "peer",
        "protocol",
        "request_wire",
        "requests",
        "response_wire",
        "responses",
        "started",
        "stream_cut",
    )

    def __init__(
        self,
        method: Method,
        protocol: str,
        metadata: Mapping[str, str],
        peer: str,
        started: float | None = None,
    ) -> None:
        self.method = method
        self.protocol = protocol
        self.metadata = metadata
        self.peer = peer
        self.started = time.time() if started is None else started
        self.requests: list[message.Message] = []
        self.responses: list[message.Message] = []
        # A unary call's messages as they went over the wire, when the caller has them
        # (the gRPC side): the journal keeps these rather than encoding them again.
        self.request_wire: bytes | None = None
        self.response_wire: bytes | None = None
        self.code = grpc.StatusCode.OK
        self.error = ""
        self.duration = 0.0
        self.identity: Mapping[str, Any] | None = None  # set by the authenticator, when auth is on
        self.faults: list[dict[str, str]] = []  # fault rules that fired: name, kind
        # Set by a fault rule: called with the count of response messages sent so
        # far, it raises ApiError to end the stream there.
        self.stream_cut: Callable[[int], None] | None = None


class CallObserver(Protocol):
    """Sees every call: the journal records, fault rules may delay or fail it in ``before``
    (and cut its response stream by setting ``record.stream_cut``).

    ``before`` may be ``async def``, or a plain function returning None when it
    has nothing to wait for (most calls): no coroutine is made for those.
    """

    def before(self, record: CallRecord) -> Awaitable[None] | None: ...

    def after(self, record: CallRecord) -> None: ...


def unimplemented(method: Method) -> rpc.ApiError:
    return rpc.ApiError(
        grpc.StatusCode.UNIMPLEMENTED, f"method {method.path} is not implemented by this mock server"
    )


class _Plan:
    """What a method's calls need from the state, found once: handler, validation rules."""

    __slots__ = ("checks", "handler", "rules", "state", "variant")

    def __init__(
        self, state: Any, variant: str, rules: Any, handler: rpc.Handler, checks: list[Rule]
    ) -> None:
        self.state = state
        self.variant = variant
        self.rules = rules
        self.handler = handler
        self.checks = checks  # request-shape rules applied before the handler; empty = none


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
        self._plans: dict[str, _Plan] = {}  # by gRPC path; remade when the state is replaced
        self._frozen_defects: frozenset[str] = frozenset(defects)

    def _defects(self) -> frozenset[str]:
        """The defects as a call sees them: a copy, remade only when the live set changed."""
        if self._frozen_defects != self.defects:
            self._frozen_defects = frozenset(self.defects)
        return self._frozen_defects

    def _context(self, record: CallRecord, state: Any) -> rpc.CallContext:
        return rpc.CallContext(
            record.method.path,
            state,
            self.clock,
            record.metadata,
            self._defects(),
            record.peer,
            record.protocol,
            record.identity,
        )

    def _check_response(self, record: CallRecord, response: Any) -> message.Message:
        expected = record.method.response_type
        if not isinstance(response, message.Message) or response.DESCRIPTOR.full_name != expected:
            got = type(response).__name__
            raise rpc.ApiError(
                grpc.StatusCode.INTERNAL, f"{record.method.path} produced {got}, not {expected}"
            )
        return response

    def _plan(self, method: Method) -> _Plan:
        """The handler of ``method`` and its request rules, for the state serving it now."""
        state = self.states.get(method.family)
        variant = getattr(state, "handler_variant", rpc.DEFAULT_VARIANT)
        rules = getattr(state, "rules", None)
        plan = self._plans.get(method.path)
        if plan is not None and plan.state is state and plan.variant == variant and plan.rules is rules:
            return plan
        found = rpc.lookup(method.path, variant)
        if found is None:
            raise unimplemented(method)
        fn, validate = found
        # Request-shape rules (required, range, pattern...) hold for every handler of every
        # family; a streamed request is checked by its handler, message by message.
        checks = request_rules(rules, method.path) if validate and rules is not None else []
        plan = self._plans[method.path] = _Plan(state, variant, rules, fn, checks)
        return plan

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
        raw: bytes | None,
    ) -> tuple[CallRecord, Any]:
        """A new call record, and the request as the handler will see it (streams are recorded as read).

        The record keeps ``metadata`` when it is a dict (callers build one per call).
        """
        record = CallRecord(
            method, protocol, metadata if type(metadata) is dict else dict(metadata or {}), peer
        )
        if isinstance(request, message.Message):
            record.requests.append(request)
            record.request_wire = raw
            return record, request

        async def recorded() -> AsyncIterator[message.Message]:
            async for item in request:
                if len(record.requests) < JOURNAL_LIMIT:
                    record.requests.append(item)
                yield item

        return record, recorded()

    async def _invoke(self, record: CallRecord, request: Any) -> Any:
        for observer in self.observers:  # they may delay or fail the call
            waiting = observer.before(record)
            if waiting is not None:
                await waiting
        if self.authenticator is not None:  # after the observers: the journal sees refused calls too
            record.identity = self.authenticator.check(record.method.path, record.metadata)
        plan = self._plan(record.method)
        context = self._context(record, plan.state)
        if plan.checks and isinstance(request, message.Message):
            check_rules(plan.checks, request)
        result = plan.handler(request, context)
        if isinstance(result, message.Message):  # the common case: a plain function answered
            return result
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
        raw: bytes | None = None,
        encode: bool = False,
    ) -> Any:
        """A call with a single response (unary or client-streaming): the message, or its bytes.

        ``raw``: the request's wire bytes, when the caller has them; ``encode``: answer
        the response's wire bytes.  Either way the journal keeps those bytes rather than
        encoding the message again.
        """
        record, request = self._record(method, request, metadata, peer, protocol, raw)
        # The same as ``async with self._observed(record)`` (see stream), written
        # out: this is the path of every unary call.
        try:
            response = self._check_response(record, await self._invoke(record, request))
            record.responses.append(response)
            if encode:
                response = record.response_wire = response.SerializeToString()
            self._saved(record)
        except Exception as exc:
            error = self._as_api_error(record, exc)
            self._finish(record, error)
            raise error from None
        except BaseException as exc:  # cancellation
            self._finish(record, exc)
            raise
        self._finish(record, None)
        return response

    async def stream(
        self,
        method: Method,
        request: message.Message | AsyncIterator[message.Message],
        metadata: Mapping[str, str] | None = None,
        peer: str = "",
        protocol: str = "grpc",
        encode: bool = False,
    ) -> AsyncIterator[Any]:
        """A call with a response stream (server-streaming or bidi): messages, or their bytes (``encode``)."""
        record, request = self._record(method, request, metadata, peer, protocol, None)
        async with self._observed(record):
            items = await self._invoke(record, request)
            sent = 0
            async for item in items if hasattr(items, "__aiter__") else _aiter(items):
                response = self._check_response(record, item)
                if len(record.responses) < JOURNAL_LIMIT:
                    record.responses.append(response)
                self._saved(record)
                yield response.SerializeToString() if encode else response
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
