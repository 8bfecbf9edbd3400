"""The HTTP side of the server: health and version here; other modules add their routes.

Route providers (REST gateway, OpenAPI, control API) are functions
``install(app, server)`` listed in :data:`ROUTE_PROVIDERS`; a served family's
package may add its own with ``install_routes(app, server)``.  Each owns its
own URL space so they can evolve independently.

Every byte a client sends is bounded: bodies are read only through
:func:`protoconform.mockserver.httpbody.read_body`, idle connections and slow
headers are closed by the runner's idle timeout, and a malformed request is
one warning line, not a traceback.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from protoconform.mockserver.auth import control_guard
from protoconform.mockserver.httpbody import LIMITS_KEY
from protoconform.mockserver.selfcheck import problems

if TYPE_CHECKING:
    from protoconform.mockserver.server import MockServer

log = logging.getLogger(__name__)

# "module:function" so a provider that is not there yet does not break the others.
ROUTE_PROVIDERS: list[str] = [
    "protoconform.mockserver.control:install",
    "protoconform.mockserver.gateway:install",
    "protoconform.mockserver.workers:install",
]


def versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {name: version(name) for name in ("protoconform", "flyteidl", "armonik", "grpcio", "protobuf")}


class _RequestLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log, with a client's malformed request as one warning line."""

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            reason = str(exc_info).splitlines()[0] if str(exc_info) else type(exc_info).__name__
            self.logger.warning(f"{msg}: malformed HTTP request: %s", *args, reason[:200])
        else:
            self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


def build_app(server: MockServer) -> web.Application:
    limits = server.config.limits
    # aiohttp's own cap, for any reader that bypasses read_body
    app = web.Application(client_max_size=limits.max_body_bytes)
    app[LIMITS_KEY] = limits
    auth = server.config.auth
    if auth.enabled or auth.control_token:
        # first middleware: the control API is refused before any route provider sees the request
        app.middlewares.append(control_guard(auth))

    async def healthz(request: web.Request) -> web.Response:
        found = problems(server)
        body = {"status": "NOT_SERVING" if found else "SERVING", "families": list(server.config.families)}
        if found:
            body["problems"] = found
        return web.json_response(body, status=503 if found else 200)

    async def version(request: web.Request) -> web.Response:
        return web.json_response(versions())

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/version", version)
    for provider in ROUTE_PROVIDERS:
        module_name, _, function = provider.partition(":")
        getattr(importlib.import_module(module_name), function)(app, server)
    for module in server.families.values():
        if hasattr(module, "install_routes"):
            module.install_routes(app, server)
    return app


def runner(server: MockServer) -> web.AppRunner:
    return web.AppRunner(
        build_app(server),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=server.config.limits.http_idle_seconds,
        logger=_RequestLog(logging.getLogger("aiohttp.server"), {}),
    )
