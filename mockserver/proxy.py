"""``protoconform proxy``: a gRPC proxy that injects fault rules in front of any server.

Every method is forwarded as raw bytes, whatever its service: on the wire all
four call shapes are a stream of messages each way, so each call is proxied as
a bidirectional stream and the proxy needs no descriptor (reflection is
forwarded like any other method, so ``grpcurl`` works through it).  What
passes through unchanged: request and response messages, metadata both ways
(headers and trailers, ``-bin`` values included), status code, message and
details (``grpc-status-details-bin``).  The client's deadline becomes the
upstream call's timeout; a client that cancels cancels the upstream call.

Fault rules (:mod:`.faults`) apply to each call before it is forwarded
(latency, status, deadline, reset) and to its response stream (cut after N
messages); they are changed at run time on the control port, under
``/control/faults`` as on the mock.  Rules may name a ``family``: the proxy
knows the families' services from the documents.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

import grpc
from aiohttp import web
from protoconform.mockserver.config import Limits
from protoconform.mockserver.control import faults as fault_endpoints
from protoconform.mockserver.faults import FaultSet, InjectedStatus, Rule, cut_now, enact
from protoconform.mockserver.httpbody import LIMITS_KEY
from protoconform.specs.argtypes import MAX_PORT, address, host, port, positive

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_CALLS = 1000
# Set by each side's gRPC library, not by the application: never forwarded (nor any
# other grpc-* key but the rich status, which is the application's).
_HOP_HEADERS = frozenset({"user-agent", "te", "content-type", "host"})
RICH_STATUS = "grpc-status-details-bin"


def _forwardable(metadata: Any) -> list[tuple[str, str | bytes]]:
    return [
        (key, value)
        for key, value in (metadata or ())
        if not key.startswith(":")
        and key not in _HOP_HEADERS
        and (not key.startswith("grpc-") or key == RICH_STATUS)
    ]


@functools.cache
def _family_by_service() -> dict[str, str]:
    from protoconform.specs.registry import default_registry

    registry = default_registry()
    return {service: family for family, services in registry.families.items() for service in services}


def family_of(service: str) -> str:
    """The API family of a documented service ("" for any other); loaded when a rule names one."""
    return _family_by_service().get(service, "")


class _Forward(grpc.GenericRpcHandler):
    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        path = handler_call_details.method
        return grpc.stream_stream_rpc_method_handler(functools.partial(self.proxy.forward, path))


class FaultProxy:
    """Start with :meth:`start`, stop with :meth:`stop`; addresses are known once started."""

    def __init__(
        self,
        target: str,
        listen: str = "127.0.0.1:0",
        control_host: str = "127.0.0.1",
        control_port: int = 0,
        faults: FaultSet | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
    ) -> None:
        self.target = target
        self.listen = listen
        self.control_host = control_host
        self.control_port = control_port
        self.faults = faults or FaultSet(family_of=family_of)
        self.max_message_bytes = max_message_bytes
        self.max_concurrent_calls = max_concurrent_calls
        self.grpc_address = ""
        self.control_address = ""
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._http: web.AppRunner | None = None

    async def start(self) -> None:
        sizes = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
        ]
        self._channel = grpc.aio.insecure_channel(self.target, options=sizes)
        self._server = grpc.aio.server(
            handlers=[_Forward(self)],
            maximum_concurrent_rpcs=self.max_concurrent_calls,
            options=[*sizes, ("grpc.so_reuseport", 0)],
        )
        try:
            bound = self._server.add_insecure_port(self.listen)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {self.listen}: {exc}") from None
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {self.listen}")
        await self._server.start()
        host = self.listen.rsplit(":", 1)[0]
        self.grpc_address = f"{host}:{bound}"

        app = web.Application()
        app[LIMITS_KEY] = Limits()  # bodies within the mock's defaults: a control body is small
        lines = fault_endpoints.install(app, self.faults)

        async def index(request: web.Request) -> web.Response:
            return web.json_response({"endpoints": lines, "target": self.target})

        app.router.add_get("/control", index)
        self._http = web.AppRunner(app, access_log=None)
        await self._http.setup()
        site = web.TCPSite(self._http, self.control_host, self.control_port)
        try:
            await site.start()
        except OSError as exc:
            await self._server.stop(None)
            raise OSError(
                f"cannot listen for HTTP on {self.control_host}:{self.control_port}: {exc}"
            ) from None
        http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.control_address = f"{self.control_host}:{http_port}"

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
        if self._channel is not None:
            await self._channel.close()
        if self._http is not None:
            await self._http.cleanup()

    def ready_line(self) -> str:
        return (
            f"protoconform proxy ready grpc={self.grpc_address} http={self.control_address} "
            f"target={self.target}"
        )

    # -- one call --------------------------------------------------------------
    async def forward(
        self, path: str, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> None:
        cut: Rule | None = None
        plan = self.faults.plan(path)
        try:
            if plan is not None:
                cut = await enact(plan, context.peer())
        except InjectedStatus as exc:
            await context.abort(exc.code, exc.message)
        assert self._channel is not None
        remaining = context.time_remaining()
        call = self._channel.stream_stream(path)(
            requests,
            metadata=_forwardable(context.invocation_metadata()),
            timeout=remaining if remaining is not None and remaining < 1e8 else None,
        )
        try:
            await self._relay(call, context, cut)
        finally:
            call.cancel()  # the client went away, or the call is done (then a no-op)

    async def _relay(self, call: Any, context: grpc.aio.ServicerContext, cut: Rule | None) -> None:
        sent = 0
        headers_sent = False
        try:
            async for response in call:
                if not headers_sent:
                    headers = _forwardable(await call.initial_metadata())
                    if headers:
                        await context.send_initial_metadata(headers)
                    headers_sent = True
                await context.write(response)
                sent += 1
                cut_now(cut, sent)
        except InjectedStatus as exc:
            await context.abort(exc.code, exc.message)
        except grpc.aio.AioRpcError as exc:
            await self._end(
                context,
                exc.code(),
                exc.details(),
                exc.initial_metadata(),
                exc.trailing_metadata(),
                headers_sent,
            )
            return
        await self._end(
            context,
            await call.code(),
            await call.details(),
            await call.initial_metadata(),
            await call.trailing_metadata(),
            headers_sent,
        )

    async def _end(
        self,
        context: grpc.aio.ServicerContext,
        code: grpc.StatusCode,
        details: str | None,
        headers: Any,
        trailers: Any,
        headers_sent: bool,
    ) -> None:
        """The upstream status, message and trailers, as the upstream sent them."""
        if not headers_sent:
            # a trailers-only answer stays one (clients retry only those): headers go with the trailers
            trailing = [*_forwardable(headers), *_forwardable(trailers)]
        else:
            trailing = _forwardable(trailers)
        context.set_trailing_metadata(tuple(trailing))
        if code != grpc.StatusCode.OK:
            context.set_code(code)
            context.set_details(details or "")


# -- command line ------------------------------------------------------------------


def _listen(text: str) -> str:
    """``HOST:PORT`` to listen on; port 0 picks a free one."""
    name, _, number = text.rpartition(":")
    host(name.removeprefix("[").removesuffix("]") or " ")
    if not number.isdigit() or int(number) > MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (port 0..{MAX_PORT})")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from protoconform.mockserver.cli import add_fault_arguments

    parser.add_argument(
        "--target", required=True, type=address(), help="HOST:PORT of the gRPC server to forward to"
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default="127.0.0.1:50058",
        metavar="HOST:PORT",
        help="where the proxy listens for gRPC; port 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--control-port",
        type=port,
        default=8088,
        metavar="N",
        help="HTTP port of /control/faults, on the --listen host; 0 picks a free one (default: %(default)s)",
    )
    limits = parser.add_argument_group("proxy limits")
    limits.add_argument(
        "--max-message-bytes",
        type=positive(int),
        default=DEFAULT_MAX_MESSAGE_BYTES,
        metavar="N",
        help="largest gRPC message, either direction (default: %(default)s)",
    )
    limits.add_argument(
        "--max-concurrent-calls",
        type=positive(int),
        default=DEFAULT_MAX_CONCURRENT_CALLS,
        metavar="N",
        help="calls forwarded at once; past it new calls get RESOURCE_EXHAUSTED (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity, on stderr (default: %(default)s)",
    )
    add_fault_arguments(parser)


def check_args(args: argparse.Namespace) -> None:
    from protoconform.mockserver.cli import faults_from_args

    args.fault_rules, args.fault_seed = faults_from_args(args)


async def serve(proxy: FaultProxy, out: TextIO = sys.stdout) -> None:
    """Run until SIGINT or SIGTERM."""
    await proxy.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(proxy.ready_line(), file=out, flush=True)
    await stop.wait()
    await proxy.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    proxy = FaultProxy(
        args.target,
        listen=args.listen,
        control_host=args.listen.rsplit(":", 1)[0].strip("[]"),
        control_port=args.control_port,
        faults=FaultSet(args.fault_rules, seed=args.fault_seed, family_of=family_of),
        max_message_bytes=args.max_message_bytes,
        max_concurrent_calls=args.max_concurrent_calls,
    )
    try:
        asyncio.run(serve(proxy))
    except OSError as exc:
        print(f"protoconform proxy: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
