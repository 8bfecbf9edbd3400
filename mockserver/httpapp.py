"""The HTTP side of the server: health and version here; other modules add their routes.

Route providers (REST gateway, OpenAPI, control API) are functions
``install(app, server)`` listed in :data:`ROUTE_PROVIDERS`; each owns its own
URL space so they can evolve independently.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from protoconform.mockserver.server import MockServer

# "module:function" so a provider that is not there yet does not break the others.
ROUTE_PROVIDERS: list[str] = [
    "protoconform.mockserver.control:install",
    "protoconform.mockserver.gateway:install",
    "protoconform.mockserver.apis.armonik.compat:install_routes",  # no-op unless --armonik-compat
]


def versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {name: version(name) for name in ("protoconform", "flyteidl", "armonik", "grpcio", "protobuf")}


def build_app(server: MockServer) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "SERVING", "families": list(server.config.families)})

    async def version(request: web.Request) -> web.Response:
        return web.json_response(versions())

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/version", version)
    for provider in ROUTE_PROVIDERS:
        module_name, _, function = provider.partition(":")
        getattr(importlib.import_module(module_name), function)(app, server)
    return app
