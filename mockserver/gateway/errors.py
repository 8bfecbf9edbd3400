"""gRPC status -> HTTP status and error body, per grpc-gateway generation.

v1 (Kubeflow Pipelines) writes ``{"error": msg, "code": n, "message": msg,
"details": [...]}`` with zero values omitted, and answers routing failures with
Go's plain-text ``http.Error`` ("Not Found", "Method Not Allowed").  v2 (Flyte)
writes a ``google.rpc.Status`` through the request's marshaler and routes
failures through the same error handler.  Streams report an error that
happens after the first message in-band, as an ``{"error": ...}`` chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, message
from google.rpc import status_pb2
from protoconform.mockserver.gateway import jsonmap
from protoconform.mockserver.gateway.conventions import Convention, Marshaler
from protoconform.mockserver.rpc import bounded

# runtime.HTTPStatusFromCode; the two generations differ only for CANCELLED.
_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,  # deliberately not 412, as upstream notes
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def http_status(code: grpc.StatusCode, convention: Convention) -> int:
    if code == grpc.StatusCode.CANCELLED:
        return 408 if convention.version == 1 else 499
    return _HTTP_STATUS.get(code, 500)


# Where this gateway knowingly answers differently from the real ones, and why.
DEVIATIONS: dict[str, dict[str, str]] = {
    "v2.method-not-allowed": {
        "real": "HTTP 501: v2's routing error handler turns 405 into codes.Unimplemented, then maps that",
        "ours": "HTTP 405, same body (code 12, 'Method Not Allowed'): 501 says the operation is absent",
    },
    "empty-path-variable": {
        "real": "an empty path segment binds '' and the server decides (NOT_FOUND, INVALID_ARGUMENT...)",
        "ours": "HTTP 400 INVALID_ARGUMENT 'missing parameter <field>' before the call",
    },
    "query-error-field-path": {
        "real": "'parsing field \"<last name>\": ...' (v2) or the bare strconv error (v1)",
        "ours": "'parsing field \"<whole dotted path>\": ...' in both generations",
    },
}


@dataclass(frozen=True)
class Failure:
    """A failed call as the gateway reports it."""

    code: grpc.StatusCode
    message: str
    details: Sequence[message.Message] = ()

    def __post_init__(self) -> None:
        # the gateway's own messages echo input too (a query value, a body fragment)
        object.__setattr__(self, "message", bounded(self.message))

    @property
    def number(self) -> int:
        return int(self.code.value[0])


def status_message(failure: Failure) -> status_pb2.Status:
    status = status_pb2.Status(code=failure.number, message=failure.message)
    for detail in failure.details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status


def error_body(failure: Failure, convention: Convention, marshaler: Marshaler) -> tuple[bytes, str]:
    """The body and content type grpc-gateway writes for a failed unary call."""
    status = status_message(failure)
    if marshaler.kind == "proto":
        return status.SerializeToString(), marshaler.content_type
    if convention.version == 1:
        body: dict[str, object] = {}
        if failure.message:
            body["error"] = failure.message
        if failure.number:
            body["code"] = failure.number
        if failure.message:
            body["message"] = failure.message
        if status.details:
            body["details"] = [jsonmap.message_to_json_value(d, marshaler) for d in status.details]
        return jsonmap.dump_json(body), marshaler.content_type
    return jsonmap.encode_message(status, marshaler), marshaler.content_type


def stream_error_chunk(failure: Failure, convention: Convention, marshaler: Marshaler) -> bytes:
    """The in-band ``{"error": ...}`` chunk of a response stream that fails after its first message."""
    status = status_message(failure)
    if convention.version == 1:
        chunk: dict[str, object] = {
            "grpc_code": failure.number,
            "http_code": http_status(failure.code, convention),
            "message": failure.message,
            "http_status": _REASONS.get(http_status(failure.code, convention), ""),
        }
        if status.details:
            chunk["details"] = [jsonmap.message_to_json_value(d, marshaler) for d in status.details]
        chunk = {key: value for key, value in chunk.items() if value not in ("", 0)}
        return jsonmap.dump_json({"error": chunk})
    return jsonmap.dump_json({"error": jsonmap.message_to_json_value(status, marshaler)})


def routing_error(status: int, convention: Convention, marshaler: Marshaler) -> tuple[int, bytes, str]:
    """Status, body and content type for a path no route matches (404) or a wrong method (405)."""
    reason = _REASONS[status]
    if convention.version == 1:
        # Go's http.Error: plain text, newline-terminated.
        return status, f"{reason}\n".encode(), "text/plain; charset=utf-8"
    code = grpc.StatusCode.NOT_FOUND if status == 404 else grpc.StatusCode.UNIMPLEMENTED
    body, content_type = error_body(Failure(code, reason), convention, marshaler)
    return status, body, content_type


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    429: "Too Many Requests",
    499: "",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
