"""The REST gateway on the server's HTTP port.

Requests that no other HTTP route of the app claims come here.  Each family's
mux routes them; a matched request is transcoded into the request message and
sent through the server's dispatcher with ``protocol="rest"``, so REST and
gRPC share handlers, state, observers and defect modes.  Unary and
client-streaming calls answer one body; server-streaming and bidi calls answer
newline-delimited ``{"result": ...}`` chunks, as grpc-gateway streams them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

import grpc
from aiohttp import web
from google.protobuf import message
from protoconform.mockserver import faults, rpc
from protoconform.mockserver.gateway import defects, errors, transcode
from protoconform.mockserver.gateway.conventions import Convention, Marshaler
from protoconform.mockserver.gateway.routes import Mux, Route, compile_routes
from protoconform.mockserver.httpbody import read_body

if TYPE_CHECKING:
    from protoconform.mockserver.server import MockServer

log = logging.getLogger(__name__)

ERROR_AS_200 = defects.ERROR_AS_200
CAMEL_CASE_KEYS = defects.CAMEL_CASE_KEYS

# HTTP headers grpc-gateway forwards as "grpcgateway-<name>" metadata (isPermanentHTTPHeader).
_PERMANENT_HEADERS = frozenset(
    [
        "accept",
        "accept-charset",
        "accept-language",
        "accept-ranges",
        "authorization",
        "cache-control",
        "content-type",
        "cookie",
        "date",
        "expect",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-schedule-tag-match",
        "if-unmodified-since",
        "max-forwards",
        "origin",
        "pragma",
        "referer",
        "user-agent",
        "via",
        "warning",
    ]
)
_METADATA_PREFIX = "grpc-metadata-"


def incoming_metadata(request: web.Request) -> dict[str, str]:
    """gRPC metadata for a REST call, following grpc-gateway's default header matcher."""
    metadata: dict[str, str] = {}
    for key, value in request.headers.items():
        lowered = key.lower()
        if lowered in _PERMANENT_HEADERS:
            metadata[f"grpcgateway-{lowered}"] = value
        elif lowered.startswith(_METADATA_PREFIX) and len(lowered) > len(_METADATA_PREFIX):
            metadata[lowered[len(_METADATA_PREFIX) :]] = value
        if lowered == "authorization":
            metadata["authorization"] = value
    if request.host:
        metadata.setdefault("x-forwarded-host", request.host)
    if request.remote:
        metadata.setdefault("x-forwarded-for", request.remote)
    return metadata


def _peer(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
    return ""


class Gateway:
    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.registry = server.registry
        self.muxes: dict[str, Mux] = compile_routes(server.registry, server.service_names)

    @property
    def routes(self) -> list[Route]:
        return [route for mux in self.muxes.values() for route in mux.routes]

    def _error_status(self, status: int) -> int:
        return 200 if ERROR_AS_200 in self.server.dispatcher.defects else status

    # -- entry ---------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse | None:
        """The gateway's answer, or None when the path belongs to no family (the app answers 404)."""
        path = request.path
        not_allowed: Mux | None = None
        for mux in self.muxes.values():
            resolution = mux.resolve(request.method, path)
            if resolution.outcome == "match" and resolution.route is not None:
                return await self._serve(request, resolution.route, resolution.params)
            if resolution.outcome == "method_not_allowed" and not_allowed is None:
                not_allowed = mux
        if not_allowed is not None:
            return self._routing_error(request, not_allowed.convention, 405)
        owner = next((mux for mux in self.muxes.values() if mux.owns(path)), None)
        if owner is not None:
            return self._routing_error(request, owner.convention, 404)
        return None

    def _marshalers(self, request: web.Request, convention: Convention) -> tuple[Marshaler, Marshaler]:
        inbound = convention.inbound(request.headers.getall("Content-Type", []))
        outbound = convention.outbound(request.headers.getall("Accept", []), inbound)
        if CAMEL_CASE_KEYS in self.server.dispatcher.defects and outbound.kind == "json":
            outbound = dataclasses.replace(outbound, proto_names=False)
        return inbound, outbound

    def _routing_error(self, request: web.Request, convention: Convention, status: int) -> web.Response:
        _, outbound = self._marshalers(request, convention)
        status, body, content_type = errors.routing_error(status, convention, outbound)
        headers = {"X-Content-Type-Options": "nosniff"} if convention.version == 1 else {}
        return web.Response(status=status, body=body, headers={"Content-Type": content_type, **headers})

    def _failure_response(
        self, failure: errors.Failure, convention: Convention, marshaler: Marshaler
    ) -> web.Response:
        body, content_type = errors.error_body(failure, convention, marshaler)
        headers = {"Content-Type": content_type}
        if failure.code == grpc.StatusCode.UNAUTHENTICATED:
            # grpc-gateway v2 puts the status message there; v1 sets nothing, but a 401 names its scheme
            headers["WWW-Authenticate"] = failure.message if convention.version == 2 else "Bearer"
        status = self._error_status(errors.http_status(failure.code, convention))
        return web.Response(status=status, body=body, headers=headers)

    # -- one call ------------------------------------------------------------
    async def _serve(self, request: web.Request, route: Route, params: dict[str, str]) -> web.StreamResponse:
        # A reset fault rule cuts this request's own connection (its task's context only).
        token = faults.connection_resetter.set(_resetter(request))
        try:
            return await self._serve_call(request, route, params)
        finally:
            faults.connection_resetter.reset(token)

    async def _serve_call(
        self, request: web.Request, route: Route, params: dict[str, str]
    ) -> web.StreamResponse:
        convention = route.convention
        inbound, outbound = self._marshalers(request, convention)
        method = route.method
        cls = self.registry.message_class(method.request_type)
        body = await read_body(request)
        metadata = incoming_metadata(request)
        peer = _peer(request)
        dispatcher = self.server.dispatcher
        try:
            if method.client_streaming:
                items = transcode.stream_requests(body, cls, inbound, convention)
                request_message: message.Message | AsyncIterator[message.Message] = _aiter(items)
            else:
                request_message = transcode.build_request(
                    route, cls, params, request.query.items(), body, inbound
                )
        except transcode.TranscodeError as exc:
            return self._failure_response(
                errors.Failure(grpc.StatusCode.INVALID_ARGUMENT, str(exc)), convention, outbound
            )

        if method.server_streaming:
            return await self._stream(request, route, request_message, metadata, peer, outbound)
        try:
            response = await dispatcher.call(method, request_message, metadata, peer, protocol="rest")
        except rpc.ApiError as exc:
            return self._failure_response(_failure(exc), convention, outbound)
        try:
            payload = transcode.encode_response(route, response, outbound)
        except Exception as exc:  # a response protobuf's JSON mapping refuses (e.g. an unresolvable Any)
            log.exception("cannot write the response of %s", method.path)
            failure = errors.Failure(grpc.StatusCode.INTERNAL, f"cannot write the response: {exc}")
            return self._failure_response(failure, convention, outbound)
        return web.Response(status=200, body=payload, headers={"Content-Type": outbound.content_type})

    async def _stream(
        self,
        request: web.Request,
        route: Route,
        request_message: message.Message | AsyncIterator[message.Message],
        metadata: Mapping[str, str],
        peer: str,
        marshaler: Marshaler,
    ) -> web.StreamResponse:
        convention = route.convention
        responses = self.server.dispatcher.stream(
            route.method, request_message, metadata, peer, protocol="rest"
        )
        try:
            first = await anext(responses)
        except StopAsyncIteration:
            return web.Response(status=200)
        except rpc.ApiError as exc:
            # Failed before any message: grpc-gateway answers the call like a unary one.
            return self._failure_response(_failure(exc), convention, marshaler)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            failure: errors.Failure | None = None
            try:
                await response.write(transcode.encode_stream_chunk(route, first, marshaler))
                async for item in responses:
                    await response.write(transcode.encode_stream_chunk(route, item, marshaler))
            except rpc.ApiError as exc:
                failure = _failure(exc)
            except ConnectionResetError:
                raise
            except Exception as exc:  # a message the JSON mapping refuses
                log.exception("cannot write a message of the %s stream", route.method.path)
                failure = errors.Failure(grpc.StatusCode.INTERNAL, f"cannot write the response: {exc}")
            if failure is not None:
                await response.write(errors.stream_error_chunk(failure, convention, marshaler) + b"\n")
            await response.write_eof()
        except ConnectionResetError:
            log.debug("client left a %s stream", route.method.path)
        finally:
            await responses.aclose()
        return response


def _failure(exc: rpc.ApiError) -> errors.Failure:
    return errors.Failure(exc.code, exc.message, tuple(getattr(exc, "details", ()) or ()))


async def _aiter(items: list[message.Message]) -> AsyncIterator[message.Message]:
    for item in items:
        yield item


def middleware(gateway: Gateway) -> object:
    """An aiohttp middleware giving the gateway every request no other route of the app matched."""

    @web.middleware
    async def gateway_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if getattr(request.match_info, "http_exception", None) is None:
            return await handler(request)
        answer = await gateway.handle(request)
        if answer is None:
            return await handler(request)
        return answer

    return gateway_middleware


def _resetter(request: web.Request) -> Callable[[str], bool]:
    """Resets the TCP connection of ``request``: SO_LINGER 0, then abort (the client sees a reset).

    Answers False, "the call is not cancelled by it": aiohttp goes on running a handler whose
    connection closed, so the call ends at once (its answer goes nowhere) rather than waiting.
    """

    def reset(peer: str) -> bool:
        transport = request.transport
        if transport is None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        return False

    return reset
