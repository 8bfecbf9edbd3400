"""The mock server: one process, one event loop, gRPC and HTTP over the same state.

With ``--workers N`` the gRPC port is served by N front-end processes that
forward every API call to this one (:mod:`.workers`); the state stays here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any, TextIO

import grpc
from aiohttp import web
from protoconform.mockserver import apis, gcpacing, grpc_wiring, httpapp, tls
from protoconform.mockserver.auth import Authenticator, reflection_guard
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.control.faults import FaultObserver
from protoconform.mockserver.dispatch import Dispatcher
from protoconform.mockserver.faults import FaultSet
from protoconform.mockserver.selfcheck import SelfCheck
from protoconform.mockserver.store import Store, open_store
from protoconform.specs.registry import Registry, default_registry

if TYPE_CHECKING:
    from protoconform.mockserver.workers import FrontEnds

log = logging.getLogger(__name__)


class MockServer:
    """Start with :meth:`start`, stop with :meth:`stop`; addresses are known once started."""

    def __init__(self, config: ServerConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.registry = registry or default_registry()
        self.families = apis.load_families(config.families)
        self.service_names = [s for f in config.families for s in self.registry.families[f]]
        self.clock = Clock(config.clock_speed)
        self.dispatcher = Dispatcher(self.registry, {}, self.clock, config.defects)
        # Read and checked here too (serve checks them while parsing): a bad file fails before listening.
        self.tls = tls.load(config.tls) if config.tls is not None else None
        if config.auth.enabled:
            self.dispatcher.authenticator = Authenticator(config.auth)
        self.faults = FaultSet(config.faults, seed=config.fault_seed)
        self.dispatcher.observers.append(FaultObserver(self.faults))
        self.store: Store = open_store(config.store, self.registry.message_class)
        self.dispatcher.commit = self.clock.after_timers = self.commit
        self._load_state()
        self.grpc_address = ""
        self.http_address = ""
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self.clock_task: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self.selfcheck: SelfCheck | None = None
        self.front_ends: FrontEnds | None = None  # with --workers N >= 2

    def _load_state(self) -> None:
        """Every family's state, from the store when it holds one (a restart goes on from there)."""
        reading = self.store.clock_state()
        if reading is not None:
            self.clock.restore(*reading)
        self.dispatcher.states = {
            name: module.create_state(
                self.config.options(name), self.clock, self.registry, self.store.family(name)
            )
            for name, module in self.families.items()
        }
        self.commit()

    def reset_state(self) -> None:
        """Fresh state for every family (control API reset, tests); a durable store is emptied too."""
        self.clock.reset()
        self.store.clear()
        self._load_state()

    def commit(self, clock_moved: bool = False) -> None:
        """Write what changed since the last commit to the store (nothing without a durable one)."""
        if self.store.durable:  # on every call's path: no clock reading for the in-memory store
            self.store.commit(self.clock.reading(), force=clock_moved)

    async def _commit_background_work(self) -> None:
        """Changes made outside calls and timers (attached workers, streams) reach the disk soon too."""
        while True:
            await asyncio.sleep(0.2)
            if self.store.pending():
                try:
                    self.commit()
                except Exception:
                    log.exception("saving background changes failed")

    @property
    def states(self) -> dict[str, Any]:
        return self.dispatcher.states

    def _grpc_options(self) -> list[tuple[str, int]]:
        return grpc_options(self.config)

    async def _start_grpc(self) -> None:
        """gRPC in this process: the API services, reflection and health."""
        authenticator = self.dispatcher.authenticator
        interceptors = []
        if authenticator is not None and not self.config.auth.allow_reflection:
            interceptors.append(reflection_guard(authenticator))  # API calls: the dispatcher checks
        self._grpc = grpc.aio.server(options=self._grpc_options(), interceptors=interceptors)
        grpc_wiring.add_api_services(self._grpc, self.dispatcher, self.service_names)
        grpc_wiring.add_reflection(self._grpc, self.service_names)
        health = await grpc_wiring.add_health(self._grpc, self.service_names)
        self.selfcheck = SelfCheck(self, health, self.service_names)
        credentials = self.tls.grpc_credentials() if self.tls is not None else None
        port = grpc_wiring.listen(self._grpc, f"{self.config.host}:{self.config.port}", credentials)
        await self._grpc.start()
        self.grpc_address = _address(self.config.host, port)

    async def _start_front_ends(self) -> None:
        """gRPC in ``workers`` front-end processes, which forward API calls here (mockserver/workers.py)."""
        from protoconform.mockserver.workers import FrontEnds

        self.front_ends = FrontEnds(self)
        port = await self.front_ends.start()
        self.selfcheck = SelfCheck(self, self.front_ends.health, self.service_names)
        self.grpc_address = _address(self.config.host, port)

    async def _stop_grpc(self) -> None:
        if self.front_ends is not None:
            await self.front_ends.stop(self.config.grace_seconds)  # in-flight calls finish
        if self._grpc is not None:
            await self._grpc.stop(grace=self.config.grace_seconds)  # in-flight calls finish

    async def start(self) -> None:
        if self.config.workers > 1:
            await self._start_front_ends()
        else:
            await self._start_grpc()
        if self.tls is not None:
            tls.serving(self.grpc_address, self.tls.self_credentials())

        self._http = httpapp.runner(self)
        await self._http.setup()
        ssl_context = self.tls.ssl_context() if self.tls is not None else None
        site = web.TCPSite(self._http, self.config.host, self.config.http_port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await self._stop_grpc()
            http_target = f"{self.config.host}:{self.config.http_port}"
            raise OSError(f"cannot listen for HTTP on {http_target}: {exc}") from None
        http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.http_address = _address(self.config.host, http_port)

        self.clock_task = asyncio.create_task(self.clock.run(), name="clock")
        if self.store.durable:
            self._committer = asyncio.create_task(self._commit_background_work(), name="store-commit")
        self.selfcheck.start()
        for name, module in self.families.items():
            if hasattr(module, "start"):
                await module.start(self.states[name])

    async def stop(self) -> None:
        if self.front_ends is not None:
            self.front_ends.stopping = True  # a front-end that exits from now on is not restarted
        if self.selfcheck is not None:
            await self.selfcheck.stop()
            await self.selfcheck.health.enter_graceful_shutdown()
        for name, module in self.families.items():
            if hasattr(module, "end_streams"):
                module.end_streams(self.states[name])  # streams that never end by themselves
        await self._stop_grpc()
        if self.tls is not None and self.grpc_address:
            tls.serving(self.grpc_address, None)
        for name, module in self.families.items():
            if hasattr(module, "stop"):
                await module.stop(self.states[name])
        if self._http is not None:
            await self._http.cleanup()
        for task in (self.clock_task, self._committer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.commit()
        self.store.close()

    @property
    def http_scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def ready_line(self) -> str:
        """Addresses stay HOST:PORT; what secures them follows, only when something does."""
        line = f"protoconform ready grpc={self.grpc_address} http={self.http_address}"
        if self.tls is not None:
            line += " tls=mutual" if self.tls.config.mutual else " tls=on"
        if self.config.auth.enabled:
            line += " auth=" + "+".join(
                kind
                for kind, used in (("token", self.config.auth.tokens), ("jwt", self.config.auth.jwt_key))
                if used
            )
        if self.front_ends is not None:
            line += f" workers={self.config.workers}"
        return line


def grpc_options(config: ServerConfig) -> list[tuple[str, int]]:
    """The gRPC server's options (the front-ends of ``--workers`` share the port, see workers.py)."""
    limits = config.limits
    return [
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_send_message_length", limits.max_message_bytes),
        # A second server on a busy port must fail, not silently share it.
        ("grpc.so_reuseport", 0),
        # Bursts: grpc-core cancels calls past 1,000 waiting for a handler by default.
        ("grpc.server.max_pending_requests", limits.max_pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", limits.max_pending_calls * 2),
        # Half-open and idle connections are found and closed.
        ("grpc.keepalive_time_ms", int(limits.keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(limits.keepalive_timeout_seconds * 1000)),
        ("grpc.max_connection_idle_ms", int(limits.idle_connection_seconds * 1000)),
        # Clients that ping to keep long streams alive are not punished for it.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ]


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(config: ServerConfig, out: TextIO = sys.stdout) -> None:
    """Run until SIGINT or SIGTERM, then stop gracefully."""
    server = MockServer(config)
    await server.start()
    pacing = asyncio.create_task(gcpacing.pace(), name="gc-pacing")  # the process is the server's
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(server.ready_line(), file=out, flush=True)
    log.info("serving %d services", len(server.service_names))
    await stop.wait()
    log.info("shutting down")
    pacing.cancel()
    await server.stop()
