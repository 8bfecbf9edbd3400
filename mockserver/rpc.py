"""Handler table and the vocabulary handlers speak: ``ApiError`` and ``CallContext``.

A handler is a plain function ``fn(request, ctx) -> response`` registered for one
RPC with :func:`handler`.  It knows nothing of gRPC or HTTP: the server and the
REST gateway both call it through :mod:`protoconform.mockserver.dispatch`.

Streaming shapes:
- server streaming: a generator (sync or async) yielding responses;
- client streaming: ``request`` is an async iterator of request messages;
- bidi: both.
A handler may be ``async def`` when it has to wait.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

if TYPE_CHECKING:
    from protoconform.mockserver.clock import Clock


MAX_ECHO = 200  # characters of one echoed value kept in an error message
# UTF-8 bytes of a whole message or detail string: percent-encoded (x3) in grpc-message,
# plus the details' copy in grpc-status-details-bin, stays well under a client's 8 KiB.
MAX_MESSAGE_BYTES = 768
_LONG_WORD = re.compile(rf"[^\s'\"]{{{MAX_ECHO + 1},}}")  # quotes stay around what they quote


def bounded(text: str) -> str:
    """``text`` with every long echoed value shortened (its length said) and the whole capped.

    Errors echo what the client sent; a 5,000-character id would otherwise push
    the status past the 8 KiB of metadata a gRPC client accepts by default.
    """
    if len(text) <= MAX_ECHO:
        return text
    text = _LONG_WORD.sub(lambda m: f"{m[0][: MAX_ECHO // 2]}…[{len(m[0])} characters]", text)
    encoded = text.encode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return text
    kept = encoded[:MAX_MESSAGE_BYTES].decode(errors="ignore")
    return f"{kept}…[{len(text)} characters]"


def _bounded_strings(detail: Message) -> Message:
    """A copy of a status detail with its string fields bounded (they echo input too)."""
    copy = type(detail)()
    copy.CopyFrom(detail)
    stack = [copy]
    while stack:  # the depth is the detail type's, never the client's
        msg = stack.pop()
        for field_descriptor, value in msg.ListFields():
            if field_descriptor.type == FieldDescriptor.TYPE_STRING:
                if field_descriptor.is_repeated:
                    value[:] = [bounded(v) for v in value]
                else:
                    setattr(msg, field_descriptor.name, bounded(value))
            elif field_descriptor.type == FieldDescriptor.TYPE_MESSAGE:
                if not field_descriptor.is_repeated:
                    stack.append(value)
                elif not field_descriptor.message_type.GetOptions().map_entry:
                    stack.extend(value)
    return copy


class ApiError(Exception):
    """A call that fails with a gRPC status.  ``message`` names the offending field.

    ``details`` are messages a real server attaches to its status (e.g. KFP's
    ``api.Error``); gRPC carries them in ``grpc-status-details-bin``, the REST
    gateway in the error body.  Both are bounded (see :func:`bounded`).
    """

    def __init__(self, code: grpc.StatusCode, message: str, details: Sequence[Message] = ()) -> None:
        message = bounded(message)
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = details

    @property
    def details(self) -> tuple[Message, ...]:
        return self._details

    @details.setter
    def details(self, details: Sequence[Message]) -> None:
        self._details = tuple(_bounded_strings(d) for d in details)


def invalid_argument(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, message)


def already_exists(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.ALREADY_EXISTS, message)


def failed_precondition(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message)


@dataclass
class CallContext:
    """What a handler may know about the call besides the request."""

    method: str  # gRPC path, "/package.Service/Method"
    state: Any  # the family's state object
    clock: Clock
    metadata: Mapping[str, str] = field(default_factory=dict)
    defects: frozenset[str] = frozenset()
    peer: str = ""
    protocol: str = "grpc"  # "grpc" or "rest": the same handlers serve both
    # the caller's claims when auth is on (a JWT's, or {"sub": "token-N"}); None when anonymous
    identity: Mapping[str, Any] | None = None

    def defect(self, name: str) -> bool:
        """True when the named deliberate deviation is switched on (conformance self-test)."""
        return name in self.defects


Handler = Callable[..., Any]
DEFAULT_VARIANT = "stateful"
_HANDLERS: dict[tuple[str, str], Handler] = {}
_UNVALIDATED: set[tuple[str, str]] = set()  # handlers that see requests the rules would refuse


def handler(
    service: str, method: str, variant: str = DEFAULT_VARIANT, validate: bool = True
) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the implementation of ``service/method``.

    The dispatcher applies the method's request-shape rules from ``specs/``
    before ``fn`` runs (``validate=False`` opts out, for a variant that answers
    like a server which checks nothing).  ``variant`` names an alternative
    behaviour set (e.g. a compatibility mode that answers like another mock); a
    family's state picks its variant with a ``handler_variant`` attribute, and
    methods a variant leaves out fall back to the stateful handler.
    """

    def register(fn: Handler) -> Handler:
        key = (variant, f"/{service}/{method}")
        if key in _HANDLERS and _HANDLERS[key] is not fn:
            raise RuntimeError(f"two {variant} handlers registered for {key[1]}")
        _HANDLERS[key] = fn
        if not validate:
            _UNVALIDATED.add(key)
        return fn

    return register


def lookup(path: str, variant: str = DEFAULT_VARIANT) -> tuple[Handler, bool] | None:
    """The handler of ``path`` for ``variant`` and whether its requests are validated first."""
    for key in ((variant, path), (DEFAULT_VARIANT, path)):
        fn = _HANDLERS.get(key)
        if fn is not None:
            return fn, key not in _UNVALIDATED
    return None


def registered_paths(variant: str = DEFAULT_VARIANT) -> list[str]:
    return sorted(path for v, path in _HANDLERS if v == variant)
