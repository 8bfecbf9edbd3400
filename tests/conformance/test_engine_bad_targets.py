"""A target that cannot be tested gets one clear line and a non-zero exit, never a traceback.

Cases: nothing listening, a server that accepts and never answers, a TLS server told
plaintext, a plaintext server told TLS, and a server that answers random bytes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from engine_support import Engine, engine_server  # noqa: F401
from grpc_health.v1 import health, health_pb2_grpc
from protoconform.conformance.target import Target, TargetError, probe


def check(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "protoconform.mockserver", "check", "--connect-timeout", "1.5", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ})


def assert_one_clear_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("protoconform check: error: ")
    for word in words:
        assert word in line, line
    return line


class _Listener:
    """A TCP server on a free loopback port running ``serve(conn)`` for each connection."""

    def __init__(self, serve) -> None:  # type: ignore[no-untyped-def]
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.serve = serve
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def listener() -> Iterator[type[_Listener]]:
    made: list[_Listener] = []

    def make(serve):  # type: ignore[no-untyped-def]
        made.append(_Listener(serve))
        return made[-1]

    yield make  # type: ignore[misc]
    for item in made:
        item.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1, and its key."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(certificate: tuple[Path, Path]) -> Iterator[str]:
    """A real gRPC server speaking TLS (health service only)."""
    cert_path, key_path = certificate
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    credentials = grpc.ssl_server_credentials([(key_path.read_bytes(), cert_path.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_target_down() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens there any more
    assert_one_clear_line(check("--target", address), address, "connection refused")


def test_target_hangs(listener) -> None:  # type: ignore[no-untyped-def]
    quiet = listener(lambda conn: None)  # accepts, reads nothing, says nothing
    assert_one_clear_line(check("--target", quiet.address), quiet.address, "did not answer")


def test_target_answers_garbage(listener) -> None:  # type: ignore[no-untyped-def]
    noise = random.Random(7).randbytes(256)

    def babble(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(noise)

    garbage = listener(babble)
    assert_one_clear_line(check("--target", garbage.address), garbage.address, "not HTTP/2")


def test_tls_server_told_plaintext(tls_server: str) -> None:
    assert_one_clear_line(check("--target", tls_server), tls_server, "speaks TLS", "--tls")


def test_plaintext_server_told_tls(engine_server: Engine) -> None:  # noqa: F811
    line = assert_one_clear_line(check("--target", engine_server.grpc, "--tls"), engine_server.grpc, "TLS")
    assert "plaintext" in line


def test_tls_server_with_its_ca_passes_the_probe(tls_server: str, certificate: tuple[Path, Path]) -> None:
    probe(Target(tls_server, tls=True, ca=str(certificate[0])))  # no error
    with pytest.raises(TargetError, match="not trusted"):
        probe(Target(tls_server, tls=True))


def test_bad_address_is_a_usage_error() -> None:
    """Refused while parsing: check's usage, then one error line naming the option."""
    done = check("--target", "http://example:80")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.startswith("usage: protoconform check ")
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("protoconform check: error: argument --target: "), last
    assert "HOST:PORT" in last


def test_tls_target_is_checked_over_tls(tls_server: str, certificate: tuple[Path, Path]) -> None:
    """With --tls --ca the run reaches the server (which has no reflection: a failure, not an error)."""
    done = check(
        "--target", tls_server, "--tls", "--ca", str(certificate[0]), "--api", "kfp", "--suite", "surface"
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert "the target serves no reflection service (UNIMPLEMENTED)" in done.stdout
