"""gRPC plumbing: descriptor-driven method handlers, server reflection (v1 and v1alpha), health.

Requests arrive as raw bytes and are decoded here, so a malformed body becomes
INVALID_ARGUMENT naming the expected message type instead of a crash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import cache
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer
from grpc_status import rpc_status
from protoconform.mockserver.dispatch import Dispatcher
from protoconform.mockserver.rpc import ApiError
from protoconform.specs.registry import Method, Registry

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = reflection.SERVICE_NAME
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


def call_metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """The call's text metadata (binary ``-bin`` values are left out), as the dispatcher takes it."""
    return {key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)}


def decoder(dispatcher: Dispatcher, method: Method) -> Callable[[bytes], message.Message]:
    request_class = dispatcher.registry.message_class(method.request_type)

    def decode(raw: bytes) -> message.Message:
        try:
            return request_class.FromString(raw)
        except Exception as exc:  # DecodeError, or anything the parser trips on
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body is not a valid {method.request_type} message: {exc}",
            ) from None

    return decode


def status_of(error: ApiError) -> status_pb2.Status:
    """The rich status of ``error``: code, message and its details packed."""
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    for detail in error.details:
        status.details.add().Pack(detail)
    return status


async def _abort(context: grpc.aio.ServicerContext, error: ApiError) -> None:
    if error.details:
        await context.abort_with_status(rpc_status.to_status(status_of(error)))
    await context.abort(error.code, error.message)


async def empty_stream() -> AsyncIterator[message.Message]:
    return
    yield  # an async generator that yields nothing


def method_handler(dispatcher: Dispatcher, method: Method) -> grpc.RpcMethodHandler:
    """Requests arrive as bytes and responses leave as bytes the dispatcher encoded: the
    journal keeps the same bytes, so no message is encoded twice."""
    decode = decoder(dispatcher, method)

    async def decoded_stream(
        first: message.Message, rest: AsyncIterator[bytes]
    ) -> AsyncIterator[message.Message]:
        yield first
        async for raw in rest:
            yield decode(raw)

    async def request_stream(raw: Any) -> Any:
        # Decode the first message before any handler runs, so a malformed
        # stream is refused the same way whatever the method does.
        stream = raw.__aiter__()
        try:
            first = decode(await stream.__anext__())
        except StopAsyncIteration:
            return empty_stream()
        return decoded_stream(first, stream)

    if method.server_streaming:

        async def streaming(raw: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            try:
                request = await request_stream(raw) if method.client_streaming else decode(raw)
                async for response in dispatcher.stream(
                    method, request, call_metadata(context), context.peer(), encode=True
                ):
                    yield response
            except ApiError as error:
                await _abort(context, error)

        factory = (
            grpc.stream_stream_rpc_method_handler
            if method.client_streaming
            else grpc.unary_stream_rpc_method_handler
        )
        return factory(streaming)

    if method.client_streaming:

        async def gathering(raw: Any, context: grpc.aio.ServicerContext) -> bytes:
            try:
                request = await request_stream(raw)
                return await dispatcher.call(
                    method, request, call_metadata(context), context.peer(), encode=True
                )
            except ApiError as error:
                await _abort(context, error)
                raise  # unreachable: abort raises

        return grpc.stream_unary_rpc_method_handler(gathering)

    async def single(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            return await dispatcher.call(
                method, decode(raw), call_metadata(context), context.peer(), raw=raw, encode=True
            )
        except ApiError as error:
            await _abort(context, error)
            raise  # unreachable: abort raises

    return grpc.unary_unary_rpc_method_handler(single)


def add_services(
    server: grpc.aio.Server,
    registry: Registry,
    service_names: list[str],
    handler_of: Callable[[Method], grpc.RpcMethodHandler],
) -> None:
    """Every method of the services, with the handler ``handler_of`` makes for it."""
    handlers = []
    for service_name in service_names:
        methods = {
            m.name: handler_of(registry.method(f"/{service_name}/{m.name}"))
            for m in registry.service(service_name).methods
        }
        handlers.append(grpc.method_handlers_generic_handler(service_name, methods))
    # Generic, not registered (add_registered_method_handlers): with grpcio 1.85's aio
    # server every registered method costs each call (about 40 us a call with 120 of
    # them), a generic lookup about 0.3 us per service.
    server.add_generic_rpc_handlers(tuple(handlers))


def add_api_services(server: grpc.aio.Server, dispatcher: Dispatcher, service_names: list[str]) -> None:
    add_services(server, dispatcher.registry, service_names, lambda m: method_handler(dispatcher, m))


def listen(server: grpc.aio.Server, target: str, credentials: grpc.ServerCredentials | None) -> int:
    """Bind ``target`` (TLS with ``credentials``); the port bound, or OSError saying why not."""
    try:
        if credentials is not None:
            port = server.add_secure_port(target, credentials)
        else:
            port = server.add_insecure_port(target)
    except RuntimeError as exc:  # grpcio reports a failed bind this way
        raise OSError(f"cannot listen for gRPC on {target}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {target}")
    return port


@cache
def _register_reflection_v1_descriptor() -> None:
    """Put ``grpc.reflection.v1`` in the default pool so reflection can describe itself.

    Its messages are those of v1alpha under another package (same fields and
    numbers), so the descriptor is derived from the v1alpha one rather than restated.
    """
    pool = descriptor_pool.Default()
    file_proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file_proto)
    file_proto.name = "grpc/reflection/v1/reflection.proto"
    file_proto.package = "grpc.reflection.v1"
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    for message_type in file_proto.message_type:
        for field in message_type.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(old, new)
    for service in file_proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    try:
        pool.FindFileByName(file_proto.name)
    except KeyError:
        pool.AddSerializedFile(file_proto.SerializeToString())


def add_reflection(server: grpc.aio.Server, service_names: list[str]) -> None:
    _register_reflection_v1_descriptor()
    names = [*service_names, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA]
    reflection.enable_server_reflection(names, server)
    servicer = ReflectionServicer(names)

    async def v1_info(
        raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async def decoded() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            async for raw in raw_requests:
                yield reflection_pb2.ServerReflectionRequest.FromString(raw)

        async for response in servicer.ServerReflectionInfo(decoded(), context):
            yield response.SerializeToString()  # same wire format as v1

    handler = grpc.stream_stream_rpc_method_handler(v1_info)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


async def add_health(server: grpc.aio.Server, service_names: list[str]) -> HealthServicer:
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ["", *service_names]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return health
