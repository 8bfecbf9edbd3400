"""The server under test: where it is, how to talk to it, and whether it answers at all.

:class:`Target` carries every connection and selection option of a run.
:func:`probe` checks, before any case runs, that the address speaks gRPC the
way the options say (plaintext HTTP/2 or TLS), and that the ``--rest`` and
``--control`` URLs, when given, answer HTTP; so a target that is down, hangs,
speaks the other transport or answers garbage gives one clear sentence instead
of a screenful of identical failures.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

# Messages of up to 64 MiB, like the mock (result downloads, large manifests).
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_FRAME = 0x04


class TargetError(Exception):
    """The target cannot be tested; the message is one line meant for the user."""


@dataclass
class Target:
    address: str  # HOST:PORT of the gRPC endpoint
    rest: str = ""  # base URL of a REST gateway, when there is one
    families: tuple[str, ...] = ()
    suites: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()  # optional selection: "Service.Method" or full names
    rules: tuple[str, ...] = ()  # optional selection: rule ids
    tls: bool = False
    ca: str = ""  # PEM file of the CA that signed the server certificate
    cert: str = ""  # client certificate (mTLS)
    key: str = ""  # client key (mTLS)
    server_name: str = ""  # TLS name to verify, when it differs from the host
    token: str = ""  # bearer token sent as "authorization: Bearer <token>"
    control_token: str = ""  # bearer token of the mock's control API
    seed: int = 0
    max_examples: int = 25
    read_only: bool = False
    namespace: str = "pc"
    lenient: bool = False
    control: str = ""  # URL of the mock's control API, when the target is our mock
    timeout: float = 10.0  # deadline of one call, seconds
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def strict(self) -> bool:
        return not self.lenient

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.address)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    def _read(self, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise TargetError(f"cannot read {path}: {exc.strerror}") from None

    def control_client(self) -> Any:
        """The mock's control API client with this run's token and TLS files."""
        from protoconform.conformance.control import ControlClient

        return ControlClient(self.control, token=self.control_token, ca=self.ca, cert=self.cert, key=self.key)

    def ssl_context(self) -> ssl.SSLContext:
        """For https requests outside the REST session (URLs the target hands out): --ca, --cert."""
        return _tls_context(self, http2=False)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self._read(self.ca) if self.ca else None,
            private_key=self._read(self.key) if self.key else None,
            certificate_chain=self._read(self.cert) if self.cert else None,
        )

    def channel(self) -> grpc.Channel:
        """A channel with the right transport, carrying the token on every call."""
        options = list(CHANNEL_OPTIONS)
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        if self.tls:
            channel = grpc.secure_channel(self.address, self.credentials(), options)
        else:
            channel = grpc.insecure_channel(self.address, options)
        metadata = self.metadata()
        if metadata:
            channel = grpc.intercept_channel(channel, _MetadataInterceptor(metadata))
        return channel


class _MetadataInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds fixed metadata (the bearer token) to every call; works over plaintext too."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._metadata = metadata

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or []) + self._metadata
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Callable, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(
        self,
        method: str,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]],
        credentials: Any,
        wait_for_ready: Any,
        compression: Any,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); a clear error otherwise."""
    text = address.strip()
    if "://" in text:
        raise TargetError(f"--target wants HOST:PORT, not a URL: {address!r}")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TargetError(f"--target wants HOST:PORT, got {address!r}")
    return host, int(port_text)


# -- probing ---------------------------------------------------------------------


def _describe_bytes(data: bytes) -> str:
    return data[:16].hex(" ") + (" ..." if len(data) > 16 else "")


def _classify_first_bytes(address: str, data: bytes, over_tls: bool) -> None:
    """Raise unless ``data`` starts like an HTTP/2 server's SETTINGS frame."""
    if not data:
        hint = "" if over_tls else " (a TLS-only server? try --tls)"
        raise TargetError(f"{address} closed the connection during the HTTP/2 handshake{hint}")
    if not over_tls and len(data) >= 2 and data[0] in (0x15, 0x16) and data[1] == 0x03:
        raise TargetError(f"{address} speaks TLS, but the run is plaintext: add --tls (and --ca if needed)")
    if data.startswith(b"HTTP/"):
        first = data.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        raise TargetError(f"{address} answered HTTP/1 ({first!r}), not gRPC over HTTP/2")
    if len(data) < 9 or data[3] != SETTINGS_FRAME or data[5:9] != b"\x00\x00\x00\x00":
        raise TargetError(f"{address} answered bytes that are not HTTP/2 (got {_describe_bytes(data)})")
    length = int.from_bytes(data[:3], "big")
    if length % 6 != 0 or data[4] not in (0, 1):
        raise TargetError(f"{address} answered bytes that are not HTTP/2 (got {_describe_bytes(data)})")


def _read_some(sock: socket.socket | ssl.SSLSocket, deadline: float, address: str) -> bytes:
    data = b""
    while len(data) < 9:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        except (ConnectionResetError, BrokenPipeError):
            return data
        if not chunk:
            return data
        data += chunk
    if not data:
        raise TargetError(
            f"{address} accepted the connection but did not answer the HTTP/2 handshake "
            "(hung, or not a gRPC server)"
        )
    return data


def _tls_context(target: Target, http2: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=target.ca or None)
    if target.cert:
        try:
            context.load_cert_chain(target.cert, target.key or None)
        except (OSError, ssl.SSLError) as exc:
            raise TargetError(f"cannot load client certificate {target.cert}: {exc}") from None
    if http2:  # the gRPC probe; an HTTP/1.1 request offers nothing (a strict server would refuse h2)
        context.set_alpn_protocols(["h2"])
    return context


def probe(target: Target, timeout: float = 5.0) -> None:
    """Check the gRPC transport, then the REST and control URLs when given; raise
    :class:`TargetError` with one clear line at the first that is wrong."""
    _probe_transport(target, timeout)
    if target.rest:
        _probe_rest(target, timeout)
    if target.control:
        _probe_control(target, timeout)


def _probe_transport(target: Target, timeout: float) -> None:
    host, port = split_address(target.address)
    address = target.address
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise TargetError(
            f"cannot connect to {address}: connection refused (is the server running?)"
        ) from None
    except TimeoutError:
        raise TargetError(f"cannot connect to {address}: no answer within {timeout:g}s") from None
    except socket.gaierror as exc:
        raise TargetError(f"cannot resolve {host!r}: {exc.strerror}") from None
    except OSError as exc:
        raise TargetError(f"cannot connect to {address}: {exc.strerror or exc}") from None
    with sock:
        if target.tls:
            try:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                tls = _tls_context(target).wrap_socket(sock, server_hostname=target.server_name or host)
            except TimeoutError:
                raise TargetError(f"{address} did not complete a TLS handshake within {timeout:g}s") from None
            except ssl.SSLCertVerificationError as exc:
                raise TargetError(
                    f"{address}: server certificate not trusted ({exc.verify_message}); pass its CA with --ca"
                ) from None
            except ssl.SSLError as exc:
                reason = exc.reason or str(exc)
                hint = (
                    " (a plaintext server? drop --tls)"
                    if "WRONG_VERSION" in reason or "RECORD" in reason
                    else ""
                )
                raise TargetError(f"TLS handshake with {address} failed: {reason}{hint}") from None
            except (ConnectionResetError, BrokenPipeError, EOFError, OSError) as exc:
                raise TargetError(
                    f"TLS handshake with {address} failed: {type(exc).__name__} "
                    "(a plaintext server? drop --tls)"
                ) from None
            with tls:
                tls.sendall(HTTP2_PREFACE + EMPTY_SETTINGS)
                _classify_first_bytes(address, _read_some(tls, deadline, address), over_tls=True)
        else:
            try:
                sock.sendall(HTTP2_PREFACE + EMPTY_SETTINGS)
            except OSError as exc:
                raise TargetError(f"{address} dropped the connection: {exc.strerror or exc}") from None
            first = _read_some(sock, deadline, address)
            if not first and _speaks_tls(host, port, max(0.5, deadline - time.monotonic())):
                raise TargetError(
                    f"{address} speaks TLS, but the run is plaintext: add --tls (and --ca if needed)"
                )
            _classify_first_bytes(address, first, over_tls=False)
    _probe_grpc(target, max(1.0, deadline - time.monotonic()))


def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether a TLS handshake (certificate not checked) gets anywhere with the server."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def _probe_grpc(target: Target, timeout: float) -> None:
    """One real gRPC call (health check) through the configured channel and credentials."""
    from grpc_health.v1 import health_pb2

    channel = target.channel()
    try:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise TargetError(f"{target.address} refused the credentials: {exc.details()}") from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise TargetError(
                    f"{target.address} does not answer gRPC calls ({code.name}: {exc.details()})"
                ) from None
            # UNIMPLEMENTED and the like: a server without the health service still speaks gRPC.
    finally:
        channel.close()


def _failure_reason(exc: BaseException, timeout: float) -> str:
    """Why an HTTP request got no answer, from the innermost cause (requests wraps urllib3 wraps OS)."""
    import http.client

    import requests

    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g}s"
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in causes:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in reversed(causes):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused; is the server running?"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host: {cause.strerror}"
        if isinstance(cause, TimeoutError):
            return f"no answer within {timeout:g}s"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}"
        if isinstance(cause, http.client.HTTPException):
            return "the server does not speak HTTP/1.1; a gRPC-only port?"
    return type(causes[-1]).__name__


def _http_get(option: str, given: str, url: str, timeout: float, **kwargs: Any) -> Any:
    """``GET url``, any status; :class:`TargetError` naming ``option`` and its value when nothing answers."""
    import requests

    try:
        return requests.get(url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.RequestException as exc:
        raise TargetError(f"{option} {given}: no HTTP answer ({_failure_reason(exc, timeout)})") from None


def _probe_rest(target: Target, timeout: float) -> None:
    """Any HTTP answer will do: the gateway's own paths are what the rest suite checks."""
    # The same TLS settings as the rest suite's requests.
    _http_get(
        "--rest",
        target.rest,
        target.rest,
        timeout,
        verify=target.ca or True,
        cert=(target.cert, target.key) if target.cert else None,
    )


def _probe_control(target: Target, timeout: float) -> None:
    """``GET <control>/control`` must answer 200 with JSON, as the mock's control API does."""
    import requests

    control = target.control
    client = target.control_client()  # the one the control fixture will use: same URL, token, TLS
    url = client.base_url
    try:
        response = client.index_response(timeout)
    except requests.RequestException as exc:
        raise TargetError(f"--control {control}: no HTTP answer ({_failure_reason(exc, timeout)})") from None
    finally:
        client.close()
    if response.status_code in (401, 403):
        hint = "give its token with --control-token" if response.status_code == 401 else "refused"
        raise TargetError(
            f"--control {control}: GET {url} answered HTTP {response.status_code} ({hint}): "
            f"{response.text.strip()[:200]}"
        )
    not_control = "not the control API of a protoconform mock"
    if response.status_code != 200:
        raise TargetError(
            f"--control {control}: GET {url} answered HTTP {response.status_code}, {not_control}"
        )
    try:
        response.json()
    except ValueError:
        raise TargetError(
            f"--control {control}: GET {url} answered 200 without JSON, {not_control}"
        ) from None
