"""``serve --workers N``: the gRPC port served by N front-end processes over one state.

One Python process spends most of a call's CPU in grpcio itself (HTTP/2,
framing, the aio call machinery), so past one core's worth of calls the way
on is to spread that cost: N *front-end* child processes all listen on the
gRPC port (``SO_REUSEPORT``: the kernel spreads connections among them), each
serves reflection and health itself, and forwards every API call to the
serving process, the *owner*, which keeps everything else (families' state,
store, clock, journal, fault rules, the HTTP port) and only dispatches.

The link between them is Unix sockets in a private directory (mode 0700,
removed at exit).  Each in-flight call has a connection of its own, taken
from a small pool of idle ones (a unary call connects only when none is
idle).  A frame is a 4-byte big-endian payload length, a kind byte, the payload:

=========  ===============  ===================================================================
``HEAD``   front -> owner   the call: ``[method path, peer, metadata]`` as JSON
``MSG``    either way       one message's wire bytes
``HALF``   front -> owner   the client sent its last message
``END``    owner -> front   the status: a ``google.rpc.Status`` (code, message, details), what
                            the single process would have answered
``RESET``  owner -> front   a fault rule resets the client's connection (the front-end's own)
=========  ===============  ===================================================================

A call that ends before its ``END`` (the client cancelled, its deadline
passed) closes its connection; the owner sees it close and cancels the
dispatcher call, so the journal says CANCELLED.  A connection goes back to the
pool only after a clean ``END``.  Messages stream as they come, and each
socket's buffers are the back-pressure: neither side queues more than a few.

Each front-end also holds a *control* connection (``control.sock``): it says
``HELLO`` (its index, pid and bound port, or why it could not start), the
owner pushes health changes (``HEALTH``) and, on shutdown, ``STOP``.  A
front-end exits when that connection closes (and on its parent's death, by
``PR_SET_PDEATHSIG``); the owner restarts one that dies, at most
:data:`MAX_RESTARTS` times a minute.  Frames are bounded by kind and checked:
the other side is another process of the same server, but a frame is still
only bytes from a socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from aiohttp import web
from google.protobuf import message
from google.rpc import status_pb2
from grpc_status import rpc_status
from protoconform.mockserver import faults, grpc_wiring, tls
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.rpc import ApiError
from protoconform.specs.registry import Method

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from protoconform.mockserver.server import MockServer

log = logging.getLogger(__name__)

HEAD, MSG, HALF, END, RESET = 1, 2, 3, 4, 5  # call links
HELLO, HEALTH, SHUTDOWN, STOP = 16, 17, 18, 19  # control links
_FRAME = struct.Struct(">IB")
MAX_HEAD_BYTES = 64 * 1024  # a call's method, peer and metadata (grpcio's own cap is far below)
MAX_CONTROL_BYTES = 64 * 1024
FRAME_SLACK = 64 * 1024  # an END's status details on top of the largest message
POOL_SIZE = 64  # idle call connections a front-end keeps
FEED_HIGH, FEED_LOW = 8, 2  # streamed request messages the owner holds before it stops reading
MAX_RESTARTS = 5  # per front-end and minute; past it the front-end stays down
START_SECONDS = 60.0  # a front-end not ready by then failed to start
CONTROL_PATH = "/control/workers"
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_HALF_FRAME = _FRAME.pack(0, HALF)
_OK_END = _FRAME.pack(0, END)  # an empty Status: code 0


class LinkError(Exception):
    """A frame that breaks the link protocol: the connection is closed."""


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _FRAME.pack(len(payload), kind) + payload


def _status_bytes(error: ApiError) -> bytes:
    """The status the single process would send for ``error``."""
    return grpc_wiring.status_of(error).SerializeToString()


async def read_frame(reader: asyncio.StreamReader, limit: Callable[[int], int]) -> tuple[int, bytes]:
    """One frame; ``limit(kind)`` is its largest payload (-1: a kind not expected here)."""
    length, kind = _FRAME.unpack(await reader.readexactly(_FRAME.size))
    if length > limit(kind):
        raise LinkError(f"frame of kind {kind} and {length} bytes refused")
    return kind, await reader.readexactly(length) if length else b""


def _call_limit(max_message: int) -> Callable[[int], int]:
    """Frames a front-end accepts from the owner on a call connection."""
    sizes = {MSG: max_message, END: max_message + FRAME_SLACK, RESET: 0}
    return lambda kind: sizes.get(kind, -1)


def _control_limit(kind: int) -> int:
    return MAX_CONTROL_BYTES if kind in (HELLO, HEALTH, SHUTDOWN, STOP) else -1


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise LinkError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LinkError(f"{what} is not an object")
    return value


# -- the front-end (a child process) ---------------------------------------------------------------


def _die_with_parent() -> None:
    """SIGTERM when the owner dies, whatever killed it (Linux; elsewhere the control link does it)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Pool:
    """Idle call connections to the owner, reused by later calls."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return await asyncio.open_unix_connection(self.path)

    def give_back(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        if len(self.idle) < POOL_SIZE:
            self.idle.append(connection)
        else:
            connection[1].close()

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class FrontEnd:
    """A front-end's gRPC server: reflection and health here, every API call forwarded."""

    def __init__(self, config: ServerConfig, directory: str, index: int) -> None:
        from protoconform.specs.registry import default_registry

        self.config = config
        self.index = index
        self.registry = default_registry()
        self.service_names = [s for f in config.families for s in self.registry.families[f]]
        self.pool = _Pool(os.path.join(directory, f"call-{index}.sock"))
        self.control_path = os.path.join(directory, "control.sock")
        self.limit = _call_limit(config.limits.max_message_bytes)
        self.server: grpc.aio.Server | None = None
        self.health: Any = None

    def _handler(self, method: Method) -> grpc.RpcMethodHandler:
        path = method.path
        link = self

        if method.server_streaming:

            async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
                async for item in link.forward(path, request, method.client_streaming, context):
                    yield item

            factory = (
                grpc.stream_stream_rpc_method_handler
                if method.client_streaming
                else grpc.unary_stream_rpc_method_handler
            )
            return factory(streaming)

        async def single(request: Any, context: grpc.aio.ServicerContext) -> bytes:
            answer = b""
            async for item in link.forward(path, request, method.client_streaming, context):
                answer = item
            return answer

        if method.client_streaming:
            return grpc.stream_unary_rpc_method_handler(single)
        return grpc.unary_unary_rpc_method_handler(single)

    async def forward(
        self, path: str, request: Any, streamed: bool, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """One call through the owner: its response messages, then its status (an abort when not OK)."""
        peer = context.peer()
        metadata = grpc_wiring.call_metadata(context)
        head = json.dumps([path, peer, metadata], separators=(",", ":")).encode()
        if len(head) > MAX_HEAD_BYTES:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "request metadata too large")
        try:
            connection = await self.pool.take()
        except OSError as exc:
            log.warning("front-end %d: cannot reach the serving process: %s", self.index, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the serving process is unavailable")
        reader, writer = connection
        clean = False
        pump: asyncio.Task[None] | None = None
        status: status_pb2.Status | None = None
        try:
            if streamed:
                writer.write(frame(HEAD, head))
                pump = asyncio.create_task(_pump(request, writer))
            else:
                writer.write(frame(HEAD, head) + frame(MSG, request) + _HALF_FRAME)
            while status is None:
                kind, payload = await read_frame(reader, self.limit)
                if kind == MSG:
                    yield payload
                elif kind == END:
                    status = status_pb2.Status.FromString(payload)
                elif kind == RESET:
                    faults.reset_connection(peer)  # the call ends when its transport does
                else:
                    raise LinkError(f"unexpected frame of kind {kind}")
            clean = pump is None or (pump.done() and not pump.cancelled() and pump.exception() is None)
        except (LinkError, OSError, asyncio.IncompleteReadError, message.DecodeError) as exc:
            log.warning("front-end %d: link to the serving process failed on %s: %s", self.index, path, exc)
            status = status_pb2.Status(
                code=grpc.StatusCode.UNAVAILABLE.value[0], message="the serving process is unavailable"
            )
        finally:
            if pump is not None and not pump.done():
                pump.cancel()
            if clean:
                self.pool.give_back(connection)
            else:
                writer.close()
        if status.code:
            if status.details:
                await context.abort_with_status(rpc_status.to_status(status))
            await context.abort(_CODES.get(status.code, grpc.StatusCode.UNKNOWN), status.message)

    async def start(self, port: int) -> int:
        """Listen on ``port`` (0: a free one); the port bound."""
        config = self.config
        interceptors = []
        if config.auth.enabled and not config.auth.allow_reflection:
            from protoconform.mockserver.auth import Authenticator, reflection_guard

            interceptors.append(reflection_guard(Authenticator(config.auth)))
        self.server = grpc.aio.server(options=grpc_options(config), interceptors=interceptors)
        grpc_wiring.add_services(self.server, self.registry, self.service_names, self._handler)
        grpc_wiring.add_reflection(self.server, self.service_names)
        self.health = await grpc_wiring.add_health(self.server, self.service_names)
        credentials = tls.load(config.tls).grpc_credentials() if config.tls is not None else None
        bound = grpc_wiring.listen(self.server, f"{config.host}:{port}", credentials)
        await self.server.start()
        return bound

    async def run(self, port: int) -> None:
        """Serve until the owner says stop, the control link closes, or SIGTERM."""
        reader, writer = await asyncio.open_unix_connection(self.control_path)
        try:
            bound = await self.start(port)
        except Exception as exc:
            writer.write(frame(HELLO, json.dumps({"index": self.index, "error": str(exc)}).encode()))
            await writer.drain()
            writer.close()
            raise
        hello = {"index": self.index, "pid": os.getpid(), "port": bound}
        writer.write(frame(HELLO, json.dumps(hello).encode()))
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        grace = self.config.grace_seconds

        async def listen() -> None:
            nonlocal grace
            while True:
                kind, payload = await read_frame(reader, _control_limit)
                body = _json_object(payload, "control frame")
                if kind == HEALTH:
                    await self.health.set(str(body["name"]), int(body["status"]))
                elif kind == SHUTDOWN:
                    await self.health.enter_graceful_shutdown()
                elif kind == STOP:
                    grace = float(body.get("grace", grace))
                    return

        listening = asyncio.create_task(listen())
        waiting = asyncio.create_task(stopping.wait())
        await asyncio.wait({listening, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if listening.done() and listening.exception() is not None:
            log.info("front-end %d: control link closed (%s)", self.index, listening.exception())
        for task in (listening, waiting):
            task.cancel()
        assert self.server is not None
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)  # in-flight calls finish
        self.pool.close()
        writer.close()


async def _pump(requests: Any, writer: asyncio.StreamWriter) -> None:
    """A client's streamed messages to the owner, as the socket takes them, then HALF.

    A request stream that fails closes the connection: the owner cancels the call,
    and the call's reader sees the link end.
    """
    try:
        async for raw in requests:
            writer.write(frame(MSG, raw))
            await writer.drain()
        writer.write(_HALF_FRAME)
        await writer.drain()
    except Exception as exc:
        log.debug("request stream ended by %r", exc)
        writer.close()


def front_end_main(config: ServerConfig, directory: str, index: int, port: int) -> None:
    """A front-end process's entry point (spawned by :class:`FrontEnds`)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C: the owner stops everyone in order
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s %(name)s[front-end {index}]: %(message)s",
    )
    try:
        asyncio.run(FrontEnd(config, directory, index).run(port))
    except OSError as exc:
        log.error("front-end %d: %s", index, exc)
        sys.exit(1)


def grpc_options(config: ServerConfig) -> list[tuple[str, int]]:
    """The single server's options, except that the port is shared."""
    from protoconform.mockserver.server import grpc_options as single

    return [(k, 1 if k == "grpc.so_reuseport" else v) for k, v in single(config)]


# -- the owner's side ------------------------------------------------------------------------------


class _Feed:
    """A client's streamed request messages as they arrive; reading pauses while a few wait."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.items: collections.deque[bytes] = collections.deque()
        self.done = False
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def put(self, raw: bytes) -> None:
        self.items.append(raw)
        if len(self.items) >= FEED_HIGH and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def end(self) -> None:
        self.done = True
        self._wake()

    def __aiter__(self) -> _Feed:
        return self

    async def __anext__(self) -> bytes:
        while not self.items:
            if self.done:
                raise StopAsyncIteration
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        item = self.items.popleft()
        if self.paused and len(self.items) <= FEED_LOW:
            self.paused = False
            self.transport.resume_reading()
        return item


class _CallLink(asyncio.Protocol):
    """The owner's end of one call connection: one call at a time, each run as a task.

    A call is HEAD, then (for a single request) MSG and HALF, after which it
    runs; or (for a request stream) MSG frames fed to the running call as they
    come, then HALF.  Anything else closes the connection.
    """

    def __init__(self, owner: FrontEnds, front: _Front) -> None:
        self.owner = owner
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.active = False  # a call is in progress (from HEAD to END)
        self.method: Method | None = None
        self.peer = ""
        self.metadata: dict[str, str] = {}
        self.request: bytes | None = None  # a single request, until HALF
        self.feed: _Feed | None = None  # a request stream
        self.half = False
        self.task: asyncio.Task[None] | None = None
        self.writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the client went away: the dispatcher call ends CANCELLED
        self.resume_writing()

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        try:
            while len(buffer) >= _FRAME.size:
                length, kind = _FRAME.unpack_from(buffer)
                bound = MAX_HEAD_BYTES if kind == HEAD else self.owner.max_message if kind == MSG else 0
                if length > bound or kind not in (HEAD, MSG, HALF):
                    raise LinkError(f"frame of kind {kind} and {length} bytes refused")
                end = _FRAME.size + length
                if len(buffer) < end:
                    break
                payload = bytes(buffer[_FRAME.size : end])
                del buffer[:end]
                self._frame(kind, payload)
        except LinkError as exc:
            log.warning("front-end %d: %s; closing its call link", self.front.index, exc)
            self._close()

    def _close(self) -> None:
        self.buffer.clear()
        assert self.transport is not None
        self.transport.close()

    def _frame(self, kind: int, payload: bytes) -> None:
        if kind == HEAD:
            if self.active:
                raise LinkError("a call began while another was in progress")
            self._begin(payload)
        elif not self.active or self.half:
            raise LinkError(f"frame of kind {kind} outside a call's request")
        elif kind == MSG:
            if self.feed is not None:
                self.feed.put(payload)
            elif self.request is None:
                self.request = payload
            else:
                raise LinkError("a second request message on a single-request call")
        else:  # HALF
            self.half = True
            if self.feed is not None:
                self.feed.end()
            elif self.request is None:
                raise LinkError("a single-request call ended without its request")
            else:
                assert self.method is not None
                self.task = asyncio.create_task(self._run(self._single(self.method, self.request)))
                self.request = None

    def _begin(self, payload: bytes) -> None:
        try:
            path, peer, metadata = json.loads(payload)
        except ValueError as exc:
            raise LinkError(f"call head is not [path, peer, metadata]: {exc}") from None
        if not (
            isinstance(path, str)
            and isinstance(peer, str)
            and isinstance(metadata, dict)
            and all(isinstance(v, str) for v in metadata.values())
        ):
            raise LinkError("call head is not [path, peer, metadata]")
        method = self.owner.methods.get(path)
        if method is None:
            # grpcio's answer to a method it does not serve (a front-end forwards only served
            # ones); what else this call sends is not read: the connection closes after
            assert self.transport is not None
            self.transport.write(
                frame(END, _status_bytes(ApiError(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")))
            )
            raise LinkError(f"a call of {path[:200]!r}, which is not served")
        self.front.calls += 1
        self.active, self.half, self.request = True, False, None
        self.method, self.peer, self.metadata = method, peer, metadata
        if method.client_streaming:
            assert self.transport is not None
            self.feed = _Feed(self.transport)
            self.task = asyncio.create_task(self._run(self._streamed(method, self.feed)))

    def _reset(self, peer: str) -> bool:
        """A reset rule in worker mode: the front-end holding the connection resets it."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(frame(RESET))
        return True

    async def _run(self, call: Any) -> None:
        """Runs one call, then ends it with its status (a connection closing cancels it)."""
        faults.connection_resetter.set(self._reset)  # this task's context only
        error: ApiError | None = None
        answer = b""  # a single response's frame: sent with the END, in one write
        try:
            answer = await call or b""
        except ApiError as exc:
            error = exc
        except Exception as exc:  # not the dispatcher's (it turns handler failures into ApiError)
            log.exception("forwarded call of %s failed", self.method.path if self.method else "?")
            error = ApiError(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc).__name__}: {exc}")
        transport = self.transport
        assert transport is not None
        transport.write(answer + _OK_END if error is None else frame(END, _status_bytes(error)))
        if not self.half:
            self._close()  # the client is still sending: this connection cannot be reused
        elif self.feed is not None and self.feed.paused:
            transport.resume_reading()  # the call ended with requests unread: the next call's are read
        self.active, self.method, self.feed, self.task = False, None, None, None

    def _message(self, data: bytes) -> bytes:
        """A response's MSG frame; one too large fails the call as grpcio's own limit does."""
        if len(data) > self.owner.max_message:
            raise ApiError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Sent message larger than max ({len(data)} vs. {self.owner.max_message})",
            )
        return frame(MSG, data)

    async def _single(self, method: Method, raw: bytes) -> bytes | None:
        """A call of a single request: its response's MSG frame (None for a stream, already sent)."""
        request = self.owner.decoder(method)(raw)
        if method.server_streaming:
            await self._stream(method, request)
            return None
        response = await self.owner.dispatcher.call(
            method, request, self.metadata, self.peer, raw=raw, encode=True
        )
        return self._message(response)

    async def _streamed(self, method: Method, feed: _Feed) -> bytes | None:
        decode = self.owner.decoder(method)
        # the first message is decoded before any handler runs, as grpc_wiring does
        stream = feed.__aiter__()
        try:
            first = decode(await stream.__anext__())
        except StopAsyncIteration:
            request: Any = grpc_wiring.empty_stream()
        else:
            request = _decoded(first, stream, decode)
        if method.server_streaming:
            await self._stream(method, request)
            return None
        response = await self.owner.dispatcher.call(method, request, self.metadata, self.peer, encode=True)
        return self._message(response)

    async def _stream(self, method: Method, request: Any) -> None:
        transport = self.transport
        assert transport is not None
        async for item in self.owner.dispatcher.stream(
            method, request, self.metadata, self.peer, encode=True
        ):
            transport.write(self._message(item))
            if self.writable is not None:
                await self.writable  # the front-end (and its client) is slower than the stream


async def _decoded(
    first: message.Message, rest: AsyncIterator[bytes], decode: Callable[[bytes], message.Message]
) -> AsyncIterator[message.Message]:
    yield first
    async for raw in rest:
        yield decode(raw)


@dataclass
class _Front:
    """What the owner knows of one front-end."""

    index: int
    call_path: str
    process: BaseProcess | None = None
    pid: int = 0
    calls: int = 0  # calls forwarded, counted on the owner's side of its links
    restarts: int = 0
    down: bool = False  # restarted too often: left down
    recent: list[float] = field(default_factory=list)  # restart times in the last minute
    control: asyncio.StreamWriter | None = None
    hello: asyncio.Future[dict[str, Any]] | None = None
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    supervisor: asyncio.Task[None] | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


class FrontEnds:
    """The owner's side: starts the front-ends, serves their call links, restarts the ones that die."""

    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.config = server.config
        self.dispatcher = server.dispatcher
        self.max_message = self.config.limits.max_message_bytes
        registry = server.registry
        self.methods = {
            method.path: method
            for name in server.service_names
            for method in (registry.method(f"/{name}/{m.name}") for m in registry.service(name).methods)
        }
        self._decoders: dict[str, Callable[[bytes], message.Message]] = {}
        self.directory = ""
        self.fronts: list[_Front] = []
        self.port = 0
        self.stopping = False
        self.health = FanOutHealth(self)
        self._servers: list[asyncio.AbstractServer] = []
        self._context = multiprocessing.get_context("spawn")

    def decoder(self, method: Method) -> Callable[[bytes], message.Message]:
        found = self._decoders.get(method.path)
        if found is None:
            found = self._decoders[method.path] = grpc_wiring.decoder(self.dispatcher, method)
        return found

    def _check_port_free(self) -> None:
        """An explicit port in use fails as the single process does: two servers never share it."""
        host, port = self.config.host, self.config.port
        if port == 0:
            return
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # as grpcio binds: a port left in TIME_WAIT is free, one with a listener is not
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise OSError(f"cannot listen for gRPC on {host}:{port}: {exc.strerror or exc}") from None

    async def start(self) -> int:
        """Start every front-end; the gRPC port they listen on."""
        self._check_port_free()
        self.directory = tempfile.mkdtemp(prefix="protoconform-workers-")
        os.chmod(self.directory, 0o700)
        loop = asyncio.get_running_loop()
        try:
            control = await asyncio.start_unix_server(
                self._control, path=os.path.join(self.directory, "control.sock")
            )
            self._servers.append(control)
            for index in range(self.config.workers):
                front = _Front(index, os.path.join(self.directory, f"call-{index}.sock"))
                self.fronts.append(front)
                link = await loop.create_unix_server(
                    lambda front=front: _CallLink(self, front), path=front.call_path
                )
                self._servers.append(link)
            self.port = await self._spawn(self.fronts[0], self.config.port)
            await asyncio.gather(*(self._spawn(front, self.port) for front in self.fronts[1:]))
        except BaseException:
            await self.stop(0)
            raise
        for front in self.fronts:
            front.supervisor = asyncio.create_task(self._supervise(front), name=f"front-end-{front.index}")
        return self.port

    async def _spawn(self, front: _Front, port: int) -> int:
        """Start ``front``'s process and wait until it listens; the port it bound."""
        front.gone.clear()
        front.hello = asyncio.get_running_loop().create_future()
        process = self._context.Process(
            target=front_end_main,
            args=(self.config, self.directory, front.index, port),
            name=f"protoconform-front-end-{front.index}",
            daemon=True,
        )
        # started from the loop's own thread: PR_SET_PDEATHSIG follows the thread that forked
        process.start()
        front.process, front.pid = process, process.pid or 0
        deadline = time.monotonic() + START_SECONDS
        while not front.hello.done():
            if not process.is_alive() or time.monotonic() > deadline:
                process.kill()
                raise OSError(f"gRPC front-end {front.index} did not start (exit status {process.exitcode})")
            await asyncio.wait({front.hello}, timeout=0.1)
        hello = front.hello.result()
        if "error" in hello:
            await asyncio.to_thread(process.join, 5)
            raise OSError(str(hello["error"]))
        log.info("gRPC front-end %d serving (pid %d)", front.index, front.pid)
        return int(hello["port"])

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A front-end's control link: its HELLO, then health pushed to it until it goes."""
        front: _Front | None = None
        try:
            kind, payload = await asyncio.wait_for(read_frame(reader, _control_limit), START_SECONDS)
            hello = _json_object(payload, "HELLO")
            index = hello.get("index")
            if kind != HELLO or type(index) is not int or not 0 <= index < len(self.fronts):
                raise LinkError("a control link that does not start with a valid HELLO")
            if "error" not in hello and type(hello.get("port")) is not int:
                raise LinkError("HELLO without a port")
            front = self.fronts[index]
            if front.hello is None or front.hello.done():
                raise LinkError(f"an unexpected HELLO from front-end {index}")
            if "error" in hello:
                front.hello.set_result(hello)
                return
            front.control = writer
            for name, status in self.health.statuses.items():
                writer.write(frame(HEALTH, json.dumps({"name": name, "status": status}).encode()))
            if self.health.shutting_down:
                writer.write(frame(SHUTDOWN, b"{}"))
            if self.stopping:  # started while the server stops: it stops too
                writer.write(frame(STOP, json.dumps({"grace": 0.0}).encode()))
            front.hello.set_result(hello)
            await reader.read()  # nothing more comes: EOF when the front-end exits
        except (TimeoutError, LinkError, OSError, asyncio.IncompleteReadError) as exc:
            if not self.stopping:  # a front-end closing as told to may close first
                log.warning("front-end control link failed: %s", exc)
        finally:
            writer.close()
            if front is not None and front.control is writer:
                front.control = None
                front.gone.set()

    async def _supervise(self, front: _Front) -> None:
        """Restart ``front`` when it dies, at most MAX_RESTARTS times a minute."""
        while True:
            process = front.process
            assert process is not None
            gone = asyncio.create_task(front.gone.wait())
            while not gone.done():
                await asyncio.wait({gone}, timeout=0.5)
                if not process.is_alive():
                    break  # dead without its control link closing yet (it will)
            gone.cancel()
            await asyncio.to_thread(process.join, 5)
            if self.stopping:
                return
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5)
            now = time.monotonic()
            front.recent = [t for t in front.recent if now - t < 60]
            if len(front.recent) >= MAX_RESTARTS:
                front.down = True
                log.error(
                    "gRPC front-end %d (pid %d) exited with status %s, after %d restarts in a minute: "
                    "left down",
                    front.index,
                    front.pid,
                    process.exitcode,
                    MAX_RESTARTS,
                )
                if self.server.selfcheck is not None:
                    await self.server.selfcheck.refresh()
                return
            log.warning(
                "gRPC front-end %d (pid %d) exited with status %s: restarting it",
                front.index,
                front.pid,
                process.exitcode,
            )
            front.recent.append(now)
            front.restarts += 1
            try:
                await self._spawn(front, self.port)
            except OSError as exc:
                log.error("gRPC front-end %d did not restart: %s", front.index, exc)
                front.gone.set()  # counts as another exit

    def problems(self) -> list[str]:
        """For health: front-ends left down after restarting too often."""
        return [
            f"gRPC front-end {front.index} exited {MAX_RESTARTS + 1} times in a minute and is left down"
            for front in self.fronts
            if front.down
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "workers": len(self.fronts),
            "port": self.port,
            "front_ends": [
                {
                    "index": front.index,
                    "pid": front.pid,
                    "alive": front.alive(),
                    "ready": front.control is not None,  # listening, and its control link open
                    "restarts": front.restarts,
                    "down": front.down,
                    "calls": front.calls,
                }
                for front in self.fronts
            ],
        }

    async def stop(self, grace: float | None) -> None:
        """Front-ends stop with ``grace`` (in-flight calls finish through the owner), then the links."""
        self.stopping = True
        body = json.dumps({"grace": grace or 0.0}).encode()
        for front in self.fronts:
            if front.control is not None:
                front.control.write(frame(STOP, body))
        for front in self.fronts:
            process = front.process
            if process is not None and process.pid is not None:
                await asyncio.to_thread(process.join, (grace or 0.0) + 5)
                if process.is_alive():
                    log.warning("gRPC front-end %d did not stop in time: killed", front.index)
                    process.kill()
                    await asyncio.to_thread(process.join, 5)
        for front in self.fronts:
            if front.supervisor is not None:
                front.supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await front.supervisor
        for server in self._servers:
            server.close()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


class FanOutHealth:
    """The health the owner's SelfCheck sets, pushed to every front-end (which serves it)."""

    def __init__(self, owner: FrontEnds) -> None:
        self.owner = owner
        self.statuses: dict[str, int] = {}
        self.shutting_down = False

    def _push(self, kind: int, body: dict[str, Any]) -> None:
        data = frame(kind, json.dumps(body).encode())
        for front in self.owner.fronts:
            if front.control is not None:
                front.control.write(data)

    async def set(self, name: str, status: int) -> None:
        self.statuses[name] = status
        self._push(HEALTH, {"name": name, "status": status})

    async def enter_graceful_shutdown(self) -> None:
        self.shutting_down = True
        self._push(SHUTDOWN, {})


def install(app: web.Application, server: MockServer) -> None:
    """``GET /control/workers``: each front-end's pid, whether it is alive, its restarts and calls."""

    async def workers(request: web.Request) -> web.Response:
        front_ends = getattr(server, "front_ends", None)
        if front_ends is None:
            return web.json_response({"workers": 1, "front_ends": []})  # this process serves gRPC
        return web.json_response(front_ends.describe())

    app.router.add_get(CONTROL_PATH, workers)
