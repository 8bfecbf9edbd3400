"""REST gateway: grpc-gateway transcoding of every ``google.api.http`` route, and OpenAPI documents.

``install(app, server)`` is listed in :data:`protoconform.mockserver.httpapp.ROUTE_PROVIDERS`.
It compiles the routes of every served method from the descriptors, serves them
on the app (through a middleware, so routes other providers add always win), and
serves one OpenAPI document per family at ``/openapi/<family>.json`` with an
index page at ``/openapi/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from protoconform.mockserver.gateway import openapi
from protoconform.mockserver.gateway.handler import Gateway, middleware

if TYPE_CHECKING:
    from protoconform.mockserver.server import MockServer

__all__ = ["Gateway", "install"]

APP_KEY = web.AppKey("gateway", Gateway)


def install(app: web.Application, server: MockServer) -> None:
    gateway = Gateway(server)
    app[APP_KEY] = gateway
    app.middlewares.append(middleware(gateway))
    openapi.add_routes(app, gateway)
