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

A real cluster is usually behind TLS: ``--target-tls`` dials it over TLS (the
system's roots, or ``--target-ca``), with a client certificate for a cluster
that requires one (``--target-cert``/``--target-key``) and ``--target-server-name``
for a certificate that names something else than the address dialed (a load
balancer's).  The client's own ``authorization`` passes through untouched;
``--target-token`` is sent only on calls that carry none.  The proxy itself
listens with the mock's options and files (:mod:`.tls`): ``--tls-cert``,
``--tls-key``, ``--tls-client-ca``, for its gRPC and control ports alike, and
``--control-token`` guards the control port as it does the mock's
(:func:`.auth.control_guard`).  A control port on a non-loopback address needs
that token, or ``--open-control`` said on purpose: whoever reaches it can fail
every call.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

import grpc
from aiohttp import web
from protoconform.mockserver import tls
from protoconform.mockserver.auth import TOKEN_KEYS, AuthConfig, control_guard
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
TARGET_TOKEN_ENV = "PROTOCONFORM_TARGET_TOKEN"


def _forwardable(metadata: Any) -> list[tuple[str, str | bytes]]:
    return [
        (key, value)
        for key, value in (metadata or ())
        if not key.startswith(":")
        and key not in _HOP_HEADERS
        and (not key.startswith("grpc-") or key == RICH_STATUS)
    ]


def _with_token(metadata: list[tuple[str, str | bytes]], token: str) -> list[tuple[str, str | bytes]]:
    """The proxy's token on a call that has none of its own (a client's token always wins)."""
    if not token or any(key in TOKEN_KEYS for key, _ in metadata):
        return metadata
    return [*metadata, ("authorization", f"Bearer {token}")]


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
        target_tls: tls.ClientTlsConfig | None = None,
        target_token: str = "",
        tls_config: tls.TlsConfig | None = None,
        control_token: str = "",
    ) -> None:
        """``target_tls``: dial the target over TLS (None: plaintext); ``tls_config``: listen over
        TLS on both ports; ``control_token``: the control port's bearer token ("" leaves it open)."""
        self.target = target
        # read and checked here too (a usage error when from the command line): ValueError
        self.target_tls = tls.load_client(target_tls) if target_tls is not None else None
        self.target_token = target_token
        self.tls = tls.load(tls_config) if tls_config is not None else None
        self.control_token = control_token
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
        if self.target_tls is not None:
            self._channel = grpc.aio.secure_channel(
                self.target,
                self.target_tls.credentials(),
                options=[*sizes, *self.target_tls.channel_options()],
            )
        else:
            self._channel = grpc.aio.insecure_channel(self.target, options=sizes)
        self._server = grpc.aio.server(
            handlers=[_Forward(self)],
            maximum_concurrent_rpcs=self.max_concurrent_calls,
            options=[*sizes, ("grpc.so_reuseport", 0)],
        )
        try:
            if self.tls is not None:
                bound = self._server.add_secure_port(self.listen, self.tls.grpc_credentials())
            else:
                bound = self._server.add_insecure_port(self.listen)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {self.listen}: {exc}") from None
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {self.listen}")
        await self._server.start()
        host = self.listen.rsplit(":", 1)[0]
        self.grpc_address = f"{host}:{bound}"

        # the mock's guard: with a token, /control needs it; without one the port stays open
        guards = [control_guard(AuthConfig(control_token=self.control_token))] if self.control_token else []
        app = web.Application(middlewares=guards)
        app[LIMITS_KEY] = Limits()  # bodies within the mock's defaults: a control body is small
        lines = fault_endpoints.install(app, self.faults)

        async def index(request: web.Request) -> web.Response:
            return web.json_response({"endpoints": lines, "target": self.target})

        app.router.add_get("/control", index)
        self._http = web.AppRunner(app, access_log=None)
        await self._http.setup()
        ssl_context = self.tls.ssl_context() if self.tls is not None else None
        site = web.TCPSite(self._http, self.control_host, self.control_port, ssl_context=ssl_context)
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

    @property
    def control_url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://{self.control_address}"

    def ready_line(self) -> str:
        """As the mock's: addresses first, then what secures them, only when something does."""
        line = (
            f"protoconform proxy ready grpc={self.grpc_address} http={self.control_address} "
            f"target={self.target}"
        )
        if self.tls is not None:
            line += " tls=mutual" if self.tls.config.mutual else " tls=on"
        if self.target_tls is not None:
            line += " target-tls=mutual" if self.target_tls.config.mutual else " target-tls=on"
        if self.control_token:
            line += " control=token"
        return line

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
            metadata=_with_token(_forwardable(context.invocation_metadata()), self.target_token),
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


def _is_loopback(name: str) -> bool:
    name = name.removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may well resolve to an outside address


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from protoconform.mockserver.cli import add_control_token_argument, add_fault_arguments, add_tls_arguments

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
    target = parser.add_argument_group("the target over TLS (any of these turns TLS on; README: Faults)")
    target.add_argument(
        "--target-tls", action="store_true", help="dial --target over TLS, trusting the system's roots"
    )
    target.add_argument(
        "--target-ca", default="", metavar="PEM", help="CA to trust for the target's certificate instead"
    )
    target.add_argument(
        "--target-cert",
        default="",
        metavar="PEM",
        help="client certificate (chain) to present, for a target that requires one (mutual TLS)",
    )
    target.add_argument("--target-key", default="", metavar="PEM", help="private key of --target-cert")
    target.add_argument(
        "--target-server-name",
        default=None,  # not "": argparse would pass a string default through host()
        type=host,
        metavar="NAME",
        help="name the target's certificate must hold, also sent as SNI and :authority "
        "(a cluster behind a load balancer's address)",
    )
    target.add_argument(
        "--target-token",
        default=None,
        metavar="TOKEN",
        help="send 'authorization: Bearer TOKEN' on calls that carry no token of their own "
        f"(visible to ps: prefer ${TARGET_TOKEN_ENV})",
    )
    own = parser.add_argument_group("security of the proxy's own ports (README: Faults)")
    add_tls_arguments(own)
    add_control_token_argument(
        own, "bearer token of the control port; required when --listen is not a loopback address"
    )
    own.add_argument(
        "--open-control",
        action="store_true",
        help="leave the control port open on a non-loopback --listen address (anyone reaching it "
        "can fail every call)",
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


def _target_tls(args: argparse.Namespace) -> tls.ClientTlsConfig | None:
    config = tls.ClientTlsConfig(
        args.target_ca, args.target_cert, args.target_key, args.target_server_name or ""
    )
    if not (args.target_tls or config != tls.ClientTlsConfig()):
        return None
    tls.load_client(config)
    return config


def check_args(args: argparse.Namespace) -> None:
    """Files read and options checked while parsing: a usage error names the option."""
    from protoconform.mockserver.auth import check_token_text
    from protoconform.mockserver.cli import faults_from_args, tls_from_args

    args.fault_rules, args.fault_seed = faults_from_args(args)
    args.tls_config = tls_from_args(args)
    args.target_tls_config = _target_tls(args)
    if args.target_token is not None:
        check_token_text(args.target_token, "--target-token")
    else:
        args.target_token = os.environ.get(TARGET_TOKEN_ENV, "")
        if args.target_token:
            check_token_text(args.target_token, TARGET_TOKEN_ENV)
    if args.open_control and args.control_token:
        raise ValueError("--open-control and --control-token contradict each other")
    listen_host = args.listen.rpartition(":")[0]
    if not (_is_loopback(listen_host) or args.control_token or args.open_control):
        raise ValueError(
            f"--listen {args.listen}: the control port would be open to the network; give it a "
            "--control-token TOKEN (or --open-control to leave it open on purpose)"
        )


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
    try:
        proxy = FaultProxy(
            args.target,
            listen=args.listen,
            control_host=args.listen.rsplit(":", 1)[0].strip("[]"),
            control_port=args.control_port,
            faults=FaultSet(args.fault_rules, seed=args.fault_seed, family_of=family_of),
            max_message_bytes=args.max_message_bytes,
            max_concurrent_calls=args.max_concurrent_calls,
            target_tls=args.target_tls_config,
            target_token=args.target_token,
            tls_config=args.tls_config,
            control_token=args.control_token or "",
        )
        asyncio.run(serve(proxy))
    except (OSError, ValueError) as exc:  # ValueError: a TLS file changed since the options were read
        print(f"protoconform proxy: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
