"""TLS, mutual TLS and bearer-token auth of the mock, with certificates and keys made by the test.

One CA signs the server's certificate (127.0.0.1 and localhost) and a client
certificate; an RSA key signs the JWTs the server accepts, an EC key of nobody's
signs the ones it must refuse.  Servers run in-process on loopback ports picked
at run time; every check goes through the real gRPC and HTTP surfaces.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from protoconform.conformance.control import ControlClient, ControlError
from protoconform.mockserver.auth import AuthConfig
from protoconform.mockserver.cli import build_parser
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ServerProcess, ThreadedServer
from protoconform.mockserver.tls import TlsConfig
from protoconform.specs.registry import default_registry
from tls_support import certificate as _certificate
from tls_support import pem_key as _pem_key
from tls_support import pem_public as _pem_public

ISSUER = "https://issuer.example"
AUDIENCE = "protoconform-test"
STATIC_TOKEN = "static-secret-1"
CONTROL_TOKEN = "control-secret"
LIST_RUNS = "/api.RunService/ListRuns"
USER_INFO = "/flyteidl.service.IdentityService/UserInfo"
OAUTH2_METADATA = "/flyteidl.service.AuthMetadataService/GetOAuth2Metadata"


# -- key material ------------------------------------------------------------------------------


@dataclass
class Pki:
    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    jwt_public: Path
    jwt_private: Any  # signs tokens the server accepts
    other_private: Any  # an RSA key of nobody's: its tokens must be refused
    other_ec: Any  # another signer, of another algorithm

    def token(self, signer: Any = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        key = signer or self.jwt_private
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(payload, key, algorithm=algorithm)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("protoconform test CA", ca_key, ca=True)
    issuer = (ca_cert.subject, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = _certificate("localhost", server_key, issuer, san=san)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _certificate("test client", client_key, issuer)
    jwt_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.pem": ca_cert.public_bytes(serialization.Encoding.PEM),
        "server.pem": server_cert.public_bytes(serialization.Encoding.PEM),
        "server.key": _pem_key(server_key),
        "client.pem": client_cert.public_bytes(serialization.Encoding.PEM),
        "client.key": _pem_key(client_key),
        "jwt.pub": _pem_public(jwt_key),
        "jwt.key": _pem_key(jwt_key),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return Pki(
        folder,
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
        folder / "jwt.pub",
        jwt_key,
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )


# -- servers and clients -----------------------------------------------------------------------


def _auth(pki: Pki, **changes: Any) -> AuthConfig:
    values: dict[str, Any] = {
        "tokens": (STATIC_TOKEN,),
        "jwt_key": str(pki.jwt_public),
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "control_token": CONTROL_TOKEN,
    }
    return AuthConfig(**{**values, **changes})


def _start(tls: TlsConfig | None, auth: AuthConfig, families: tuple[str, ...] = ("kfp", "flyte")) -> Any:
    config = ServerConfig(families=families, clock_speed=0, grace_seconds=0.2, tls=tls, auth=auth)
    return ThreadedServer(config).start()


@pytest.fixture(scope="module")
def secured(pki: Pki) -> Iterator[ThreadedServer]:
    """TLS (no client certificate needed) and auth with both a static token and JWTs."""
    server = _start(TlsConfig(str(pki.server_cert), str(pki.server_key)), _auth(pki))
    yield server
    server.stop()


def _channel(server: ThreadedServer, pki: Pki, client_cert: bool = False) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.client_key.read_bytes() if client_cert else None,
        certificate_chain=pki.client_cert.read_bytes() if client_cert else None,
    )
    return grpc.secure_channel(server.grpc_address, credentials)


def _call(channel: grpc.Channel, path: str, token: str | None = None, **fields: Any) -> Any:
    registry = default_registry()
    method = registry.method(path)
    request = json_format.ParseDict(fields, registry.message_class(method.request_type)())
    stub = channel.unary_unary(
        path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=registry.message_class(method.response_type).FromString,
    )
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    return stub(request, timeout=10, metadata=metadata)


def _refusal(channel: grpc.Channel, path: str, token: str | None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        _call(channel, path, token)
    return caught.value


def _rest(server: ThreadedServer, pki: Pki, path: str, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(server.http_url + path, headers=headers, verify=str(pki.ca), timeout=10)


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_serves_both_ports_and_a_plaintext_client_gets_nothing(secured: ThreadedServer, pki: Pki) -> None:
    assert secured.http_url.startswith("https://")
    with _channel(secured, pki) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(secured.grpc_address) as plain:
        with pytest.raises(grpc.RpcError) as caught:
            health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _rest(secured, pki, "/healthz").status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{secured.http_address}/healthz", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):  # a client that does not trust the CA
        requests.get(secured.http_url + "/healthz", timeout=5)


def test_mutual_tls_refuses_a_client_without_a_certificate(pki: Pki) -> None:
    tls = TlsConfig(str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca))
    server = _start(tls, AuthConfig(), families=("kfp",))
    try:
        with _channel(server, pki, client_cert=True) as channel:
            assert _call(channel, LIST_RUNS) is not None
        with _channel(server, pki) as channel, pytest.raises(grpc.RpcError) as caught:
            _call(channel, LIST_RUNS)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        cert = (str(pki.client_cert), str(pki.client_key))
        url = server.http_url + "/apis/v1beta1/runs"
        assert requests.get(url, verify=str(pki.ca), cert=cert, timeout=10).status_code == 200
        with pytest.raises(requests.ConnectionError):  # SSLError or a reset, as the handshake ends
            requests.get(url, verify=str(pki.ca), timeout=10)
    finally:
        server.stop()


# -- tokens ------------------------------------------------------------------------------------


def test_a_static_token_is_accepted_and_a_missing_or_unknown_one_refused(
    secured: ThreadedServer, pki: Pki
) -> None:
    with _channel(secured, pki) as channel:
        assert _call(channel, LIST_RUNS, STATIC_TOKEN) is not None
        missing = _refusal(channel, LIST_RUNS, None)
        assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "missing bearer token" in missing.details()
        unknown = _refusal(channel, LIST_RUNS, "not-a-token")
        assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (
            "not one of the server's tokens, nor a JWT" in unknown.details()
            and "not-a-token" not in unknown.details()
        )
    assert _rest(secured, pki, "/apis/v1beta1/runs", STATIC_TOKEN).status_code == 200
    refused = _rest(secured, pki, "/apis/v1beta1/runs")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert "missing bearer token" in refused.text
    basic_auth = requests.get(
        secured.http_url + "/apis/v1beta1/runs", auth=("u", "p"), verify=str(pki.ca), timeout=10
    )
    assert basic_auth.status_code == 401 and "not a bearer token" in basic_auth.text


def test_static_tokens_alone_name_the_token_as_unknown(pki: Pki) -> None:
    server = _start(None, AuthConfig(tokens=("one", "two")), families=("kfp",))
    try:
        with grpc.insecure_channel(server.grpc_address) as channel:
            assert _call(channel, LIST_RUNS, "two") is not None
            refused = _refusal(channel, LIST_RUNS, "three")
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "not one of the server's tokens" in refused.details()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("claims", "signer", "said"),
    [
        ({"exp": int(time.time()) - 3600}, None, "expired at"),
        ({"aud": "someone-else"}, None, f"audience is not {AUDIENCE!r}"),
        ({"iss": "https://evil.example"}, None, f"issuer is not {ISSUER!r}"),
        ({}, "other", "signature does not verify"),
        ({}, "ec", "algorithm 'ES256' not accepted"),
        ({"exp": None}, None, "no 'exp' claim"),
        ({"nbf": int(time.time()) + 3600}, None, "not valid yet"),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "wrong-signer", "ec-signer", "no-expiry", "nbf"],
)
def test_a_bad_jwt_is_unauthenticated_saying_why(
    secured: ThreadedServer, pki: Pki, claims: dict[str, Any], signer: str | None, said: str
) -> None:
    token = pki.token({"other": pki.other_private, "ec": pki.other_ec, None: None}[signer], **claims)
    with _channel(secured, pki) as channel:
        refused = _refusal(channel, LIST_RUNS, token)
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert said in refused.details()
    over_rest = _rest(secured, pki, "/apis/v1beta1/runs", token)
    assert over_rest.status_code == 401 and said in over_rest.text
    assert over_rest.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_valid_jwt_is_accepted_over_grpc_and_rest(secured: ThreadedServer, pki: Pki) -> None:
    token = pki.token()
    with _channel(secured, pki) as channel:
        assert _call(channel, LIST_RUNS, token) is not None
    assert _rest(secured, pki, "/apis/v1beta1/runs", token).status_code == 200


def test_a_token_signed_with_hmac_over_the_public_key_is_refused(secured: ThreadedServer, pki: Pki) -> None:
    """The classic algorithm confusion: the server's public key used as an HMAC secret."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 600}
    forged = _hs256(claims, pki.jwt_public.read_bytes())
    with _channel(secured, pki) as channel:
        refused = _refusal(channel, LIST_RUNS, forged)
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "algorithm 'HS256' not accepted" in refused.details()


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    import base64
    import hashlib
    import hmac
    import json

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing = part(b'{"alg":"HS256","typ":"JWT"}') + b"." + part(json.dumps(claims).encode())
    return (signing + b"." + part(hmac.new(secret, signing, hashlib.sha256).digest())).decode()


# -- what stays open, what has its own token --------------------------------------------------


def test_auth_metadata_and_health_answer_without_a_token(secured: ThreadedServer, pki: Pki) -> None:
    with _channel(secured, pki) as channel:
        metadata = _call(channel, OAUTH2_METADATA)
        assert metadata.token_endpoint
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert _rest(secured, pki, "/.well-known/oauth-authorization-server").status_code == 200
    assert _rest(secured, pki, "/healthz").status_code == 200
    assert _rest(secured, pki, "/version").status_code == 200


def _list_services(channel: grpc.Channel, token: str | None) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    metadata = [("authorization", f"Bearer {token}")] if token else None
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = stub.ServerReflectionInfo(iter([request]), timeout=10, metadata=metadata)
    return [s.name for reply in replies for s in reply.list_services_response.service]


def test_reflection_needs_a_token_unless_allowed(secured: ThreadedServer, pki: Pki) -> None:
    with _channel(secured, pki) as channel:
        assert "api.RunService" in _list_services(channel, STATIC_TOKEN)
        with pytest.raises(grpc.RpcError) as caught:
            _list_services(channel, None)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    server = _start(None, AuthConfig(tokens=("t",), allow_reflection=True), families=("kfp",))
    try:
        with grpc.insecure_channel(server.grpc_address) as channel:
            assert "api.RunService" in _list_services(channel, None)
            assert _refusal(channel, LIST_RUNS, None).code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop()


def test_the_control_api_needs_its_own_token(secured: ThreadedServer, pki: Pki) -> None:
    url = secured.http_url
    for token in (None, STATIC_TOKEN, pki.token()):  # no token, and API tokens, are refused
        refused = _rest(secured, pki, "/control/calls", token)
        assert refused.status_code == 401, token
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    with pytest.raises(ControlError, match="HTTP 401"):
        ControlClient(url, ca=str(pki.ca)).calls()
    client = ControlClient(url, token=CONTROL_TOKEN, ca=str(pki.ca))
    assert isinstance(client.calls(), dict)
    with _channel(secured, pki) as channel:  # a refused call is in the journal, its token is not
        _refusal(channel, LIST_RUNS, "wrong-token")
        stub = channel.unary_unary(USER_INFO, request_serializer=lambda m: m, response_deserializer=bytes)
        stub(b"", timeout=10, metadata=[("flyte-authorization", f"Bearer {STATIC_TOKEN}")])
    refused, flyte = client.journal(method=["api.RunService.ListRuns", "IdentityService.UserInfo"])[-2:]
    assert refused["code"] == "UNAUTHENTICATED" and refused["metadata"]["authorization"] == "<redacted>"
    assert flyte["code"] == "OK" and flyte["metadata"]["flyte-authorization"] == "<redacted>"
    client.close()
    with _channel(secured, pki) as channel:  # the control token is no API token
        assert _refusal(channel, LIST_RUNS, CONTROL_TOKEN).code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_control_api_is_refused_when_auth_is_on_without_a_control_token(pki: Pki) -> None:
    server = _start(None, AuthConfig(tokens=("t",)), families=("kfp",))
    try:
        refused = requests.get(
            server.http_url + "/control", headers={"Authorization": "Bearer t"}, timeout=10
        )
        assert refused.status_code == 403 and "--control-token" in refused.text
        assert requests.get(server.http_url + "/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


# -- identity ----------------------------------------------------------------------------------


def test_user_info_answers_the_token_claims(secured: ThreadedServer, pki: Pki) -> None:
    token = pki.token(
        name="Alice Liddell",
        preferred_username="alice",
        given_name="Alice",
        family_name="Liddell",
        email="alice@example.com",
        picture="https://example.com/alice.png",
        groups=["admins"],
    )
    with _channel(secured, pki) as channel:
        info = _call(channel, USER_INFO, token)
    assert (info.subject, info.name, info.preferred_username) == ("alice", "Alice Liddell", "alice")
    assert (info.given_name, info.family_name, info.email) == ("Alice", "Liddell", "alice@example.com")
    assert info.picture == "https://example.com/alice.png"
    extra = json_format.MessageToDict(info.additional_claims)
    assert extra["groups"] == ["admins"] and extra["aud"] == AUDIENCE and extra["iss"] == ISSUER
    me = _rest(secured, pki, "/me", token)
    assert me.status_code == 200 and me.json()["subject"] == "alice"
    with _channel(secured, pki) as channel:
        assert _call(channel, USER_INFO, STATIC_TOKEN).subject == "token-1"
        # flytekit sends the token under GetPublicClientConfig's authorization_metadata_key
        registry = default_registry()
        stub = channel.unary_unary(
            USER_INFO,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=registry.message_class("flyteidl.service.UserInfoResponse").FromString,
        )
        request = registry.message_class("flyteidl.service.UserInfoRequest")()
        flytekit_style = stub(request, timeout=10, metadata=[("flyte-authorization", f"Bearer {token}")])
        assert flytekit_style.subject == "alice"
    anonymous_me = _rest(secured, pki, "/me")
    assert anonymous_me.status_code == 401 and "missing bearer token" in anonymous_me.text


def test_user_info_is_anonymous_without_auth(threaded_server: ThreadedServer) -> None:
    with grpc.insecure_channel(threaded_server.grpc_address) as channel:
        info = _call(channel, USER_INFO)
    assert info.subject == "" and not info.additional_claims.fields


# -- serve options -----------------------------------------------------------------------------


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", *argv])
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_bad_security_files_are_usage_errors_naming_the_option(
    pki: Pki, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cert, key, ca = str(pki.server_cert), str(pki.server_key), str(pki.ca)
    missing = str(tmp_path / "missing.pem")
    assert "--tls-cert" in _usage_error(capsys, "--tls-cert", missing, "--tls-key", key)
    assert "--tls-cert and --tls-key go together" in _usage_error(capsys, "--tls-cert", cert)
    mismatch = _usage_error(capsys, "--tls-cert", cert, "--tls-key", str(pki.client_key))
    assert "matching private key" in mismatch
    assert "--tls-client-ca" in _usage_error(capsys, "--tls-client-ca", ca)
    assert "--tls-client-ca" in _usage_error(
        capsys, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", str(pki.client_key)
    )
    assert "a private key; give the public key" in _usage_error(capsys, "--auth-jwt-key", str(pki.server_key))
    assert "--auth-jwt-key" in _usage_error(capsys, "--auth-jwt-issuer", ISSUER)
    empty = tmp_path / "tokens"
    empty.write_text("# nobody\n")
    assert "no token in it" in _usage_error(capsys, "--auth-token-file", str(empty))


def test_serve_reads_a_token_file_and_says_what_secures_it(pki: Pki, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# one a line\nfirst\n\n  # indented comment\nsecond\n")
    args = build_parser().parse_args(
        ["serve", "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
         "--auth-token-file", str(tokens), "--auth-token", "third", "--control-token", "c"]
    )  # fmt: skip
    assert args.config.auth.tokens == ("third", "first", "second")
    assert "first" not in repr(args.config)  # secrets stay out of logs
    server = ThreadedServer(
        ServerConfig(families=("kfp",), clock_speed=0, tls=args.config.tls, auth=args.config.auth)
    ).start()
    try:
        assert server.server.ready_line().endswith(" tls=on auth=token")
    finally:
        server.stop()


# -- the harness against a secured mock --------------------------------------------------------


@pytest.mark.slow  # end to end: a whole check run
def test_check_passes_against_a_mock_with_tls_and_auth(pki: Pki, tmp_path: Path) -> None:
    """Every suite of one family, gRPC, REST and the control API all over TLS, with a JWT."""
    token_file = tmp_path / "tokens"
    token_file.write_text(STATIC_TOKEN + "\n")
    serve = ["--api", "kfp", "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    serve += ["--auth-token-file", str(token_file), "--control-token", CONTROL_TOKEN]
    serve += [
        "--auth-jwt-key",
        str(pki.jwt_public),
        "--auth-jwt-issuer",
        ISSUER,
        "--auth-jwt-audience",
        AUDIENCE,
    ]
    with ServerProcess(serve) as process:
        assert process.fields == {"tls": "on", "auth": "token+jwt"}
        check = [sys.executable, "-m", "protoconform.mockserver", "check", "--target", process.grpc_address]
        check += ["--api", "kfp", "--tls", "--ca", str(pki.ca), "--rest", process.http_url]
        secured = [*check, "--control", process.http_url, "--control-token", CONTROL_TOKEN]
        passed = _run([*secured, "--token", pki.token(exp=int(time.time()) + 3600)])
        assert passed.returncode == 0, passed.stdout[-3000:] + passed.stderr[-3000:]
        assert "0 failed" in passed.stdout
        wrong = _run([*check, "--suite", "surface", "--token", "wrong"])
        assert wrong.returncode == 1 and "UNAUTHENTICATED" in wrong.stdout, wrong.stdout[-3000:]
        no_control_token = _run([*check, "--control", process.http_url, "--token", STATIC_TOKEN])
    assert no_control_token.returncode == 2
    assert "answered HTTP 401 (give its token with --control-token)" in no_control_token.stderr


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=_env())


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROTOCONFORM_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def test_the_server_reaches_itself_over_its_own_tls(secured: ThreadedServer, pki: Pki) -> None:
    """Calls the server makes to its own address (ArmoniK's built-in Worker notifying the Agent a
    test pointed it at) use its certificate; other loopback addresses stay plaintext."""
    from protoconform.mockserver import tls

    credentials = tls.outbound_credentials(secured.grpc_address)
    assert credentials is not None
    assert tls.outbound_credentials("127.0.0.1:1") is None
    with grpc.secure_channel(secured.grpc_address, credentials) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    server = _start(TlsConfig(str(pki.server_cert), str(pki.server_key)), AuthConfig(), families=("kfp",))
    address = server.grpc_address
    assert tls.outbound_credentials(address) is not None
    server.stop()
    assert tls.outbound_credentials(address) is None


def test_a_jwt_key_may_be_the_signer_certificate(pki: Pki, tmp_path: Path) -> None:
    from protoconform.mockserver.auth import Authenticator
    from protoconform.mockserver.rpc import ApiError

    certificate = tmp_path / "signer.pem"
    certificate.write_bytes(
        _certificate("jwt signer", pki.jwt_private).public_bytes(serialization.Encoding.PEM)
    )
    authenticator = Authenticator(AuthConfig(jwt_key=str(certificate), jwt_audience=AUDIENCE))
    assert authenticator.identity({"authorization": f"Bearer {pki.token()}"})["sub"] == "alice"
    with pytest.raises(ApiError, match="signature does not verify"):
        authenticator.identity({"authorization": f"Bearer {pki.token(pki.other_private)}"})
