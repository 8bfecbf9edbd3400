"""TLS material for both ports: one set of PEM files, read and checked once, used by gRPC and HTTP.

``serve --tls-cert PEM --tls-key PEM`` turns TLS on for the gRPC port and the
HTTP port (REST gateway, health, OpenAPI, control API) alike; ``--tls-client-ca
PEM`` also requires every client to present a certificate signed by that CA
(mutual TLS).  The files are read while the command line is parsed, so a
missing file, a key that does not match the certificate or a CA file without a
certificate is a usage error naming the option, before anything listens.

``protoconform proxy`` listens with the same options and also dials its target
over TLS (:class:`ClientTlsConfig`, ``--target-ca``/``--target-cert``/
``--target-key``), its files checked the same way.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

MAX_PEM_BYTES = 1024 * 1024  # a certificate chain is a few KiB; more is not a PEM file for this


@dataclass(frozen=True)
class TlsConfig:
    """Paths of the PEM files (``serve`` options)."""

    cert: str
    key: str
    client_ca: str = ""  # set: clients must present a certificate signed by it (mTLS)

    @property
    def mutual(self) -> bool:
        return bool(self.client_ca)


@dataclass(frozen=True)
class TlsMaterial:
    """The files' contents, checked: what the two servers are built from."""

    config: TlsConfig
    cert: bytes
    key: bytes
    client_ca: bytes | None

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )

    def self_credentials(self) -> grpc.ChannelCredentials:
        """How this server calls itself (e.g. ArmoniK's built-in Worker notifying the Agent it
        serves): trusting its own certificate (gRPC accepts it as the anchor even when a CA signed
        it) and, with mutual TLS, presenting it as the client certificate (accepted when the
        client CA signed it, as it does in the usual one-CA test setup)."""
        mutual = self.client_ca is not None
        return grpc.ssl_channel_credentials(
            root_certificates=self.cert,
            private_key=self.key if mutual else None,
            certificate_chain=self.cert if mutual else None,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The HTTP port's context: same certificate, same client CA, same requirement."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.cert, self.config.key)
        if self.client_ca is not None:
            context.load_verify_locations(cadata=self.client_ca.decode("ascii", errors="replace"))
            context.verify_mode = ssl.CERT_REQUIRED
        return context


# Servers of this process listening with TLS, by loopback port: a call the server makes to an
# address that is one of them (see :func:`outbound_credentials`) goes over TLS too.
_SELF: dict[int, grpc.ChannelCredentials] = {}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _loopback_port(address: str) -> int | None:
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    return int(port) if host in _LOOPBACK and port.isdigit() else None


def serving(address: str, credentials: grpc.ChannelCredentials | None) -> None:
    """Record (or with None forget) that this process serves TLS at ``address``."""
    port = _loopback_port(address)
    if port is not None and credentials is not None:
        _SELF[port] = credentials
    elif port is not None:
        _SELF.pop(port, None)


def outbound_credentials(address: str) -> grpc.ChannelCredentials | None:
    """Credentials for a call from the server to ``address``: its own when that is itself, else None
    (plaintext, as for a worker or agent on loopback)."""
    port = _loopback_port(address)
    return _SELF.get(port) if port is not None else None


def _read(option: str, path: str) -> bytes:
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_PEM_BYTES:
        raise ValueError(f"{option} {path}: larger than {MAX_PEM_BYTES} bytes, not a PEM file")
    if b"-----BEGIN " not in data:
        raise ValueError(f"{option} {path}: not a PEM file (no -----BEGIN line)")
    return data


def _check_pair(cert_option: str, cert: str, key_option: str, key: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ValueError(
            f"{cert_option} {cert} / {key_option} {key}: not a certificate and its matching "
            f"private key ({exc.reason or exc})"
        ) from None


def _check_ca(option: str, path: str, data: bytes) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ValueError(f"{option} {path}: no CA certificate in it ({reason})") from None


def load(config: TlsConfig) -> TlsMaterial:
    """The files of ``config``, read and checked; ValueError naming the option otherwise."""
    cert = _read("--tls-cert", config.cert)
    key = _read("--tls-key", config.key)
    client_ca = _read("--tls-client-ca", config.client_ca) if config.client_ca else None
    _check_pair("--tls-cert", config.cert, "--tls-key", config.key)
    if client_ca is not None:
        _check_ca("--tls-client-ca", config.client_ca, client_ca)
    return TlsMaterial(config, cert, key, client_ca)


# -- the client side: a proxy dialing a server over TLS -----------------------------------------


@dataclass(frozen=True)
class ClientTlsConfig:
    """How to dial a TLS server (``proxy --target-*`` options): paths of PEM files, "" when unset."""

    ca: str = ""  # "": the system's roots
    cert: str = ""  # with key: a client certificate, for a server that requires one (mTLS)
    key: str = ""
    server_name: str = ""  # the name the certificate must have, and the authority sent

    @property
    def mutual(self) -> bool:
        return bool(self.cert)


@dataclass(frozen=True)
class ClientTlsMaterial:
    config: ClientTlsConfig
    ca: bytes | None
    cert: bytes | None
    key: bytes | None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def channel_options(self) -> list[tuple[str, str]]:
        """A server name overrides the target's host for the certificate check, SNI and
        ``:authority`` alike: a cluster reached through a load balancer's address."""
        name = self.config.server_name
        return [("grpc.ssl_target_name_override", name), ("grpc.default_authority", name)] if name else []


def load_client(config: ClientTlsConfig, prefix: str = "--target") -> ClientTlsMaterial:
    """The files of ``config``, read and checked; ValueError naming the option (``{prefix}-ca``...)."""
    ca_option, cert_option, key_option = f"{prefix}-ca", f"{prefix}-cert", f"{prefix}-key"
    if bool(config.cert) != bool(config.key):
        raise ValueError(f"{cert_option} and {key_option} go together")
    ca = _read(ca_option, config.ca) if config.ca else None
    if ca is not None:
        _check_ca(ca_option, config.ca, ca)
    cert = key = None
    if config.cert:
        cert = _read(cert_option, config.cert)
        key = _read(key_option, config.key)
        _check_pair(cert_option, config.cert, key_option, config.key)
    return ClientTlsMaterial(config, ca, cert, key)
