"""``protoconform proxy`` in front of a TLS server (a real cluster's usual face), and secured itself.

One CA signs the targets' certificates (127.0.0.1 and localhost; one for a name
only, as behind a load balancer), the proxy's own and a client certificate.
Targets are mocks started with TLS, mutual TLS and tokens; proxies run
in-process (one as a user starts it, from the command line); every check goes
through the real gRPC and HTTP surfaces on loopback ports picked at run time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from armonik.protogen.common import sessions_common_pb2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fault_support import VERSIONS, Armonik, ProxyProcess
from protoconform.conformance.control import ControlClient, ControlError
from protoconform.mockserver.auth import AuthConfig
from protoconform.mockserver.cli import build_parser
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.mockserver.proxy import FaultProxy
from protoconform.mockserver.tls import ClientTlsConfig, TlsConfig
from tls_support import certificate, pem_certificate, pem_key

API_TOKEN = "cluster-api-token"
CONTROL_TOKEN = "proxy-control-token"
CLUSTER_NAME = "armonik.cluster.internal"  # the only name on the load-balanced target's certificate
LOOPBACK = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


@dataclass
class Pki:
    ca: Path
    server_cert: Path  # 127.0.0.1 and localhost: the targets' and the proxy's
    server_key: Path
    named_cert: Path  # CLUSTER_NAME only
    named_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # signed nothing here

    def channel(self, address: str, client_cert: bool = False) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.client_key.read_bytes() if client_cert else None,
            certificate_chain=self.client_cert.read_bytes() if client_cert else None,
        )
        return grpc.secure_channel(address, credentials)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("proxy-pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("proxy test CA", ca_key, ca=True)
    issuer = (ca.subject, ca_key)
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("server", "named", "client", "other")}
    files = {
        "ca.pem": pem_certificate(ca),
        "server.pem": pem_certificate(certificate("localhost", keys["server"], issuer, san=LOOPBACK)),
        "named.pem": pem_certificate(
            certificate(CLUSTER_NAME, keys["named"], issuer, san=[x509.DNSName(CLUSTER_NAME)])
        ),
        "client.pem": pem_certificate(certificate("proxy client", keys["client"], issuer)),
        "other-ca.pem": pem_certificate(certificate("nobody's CA", keys["other"], ca=True)),
        **{f"{name}.key": pem_key(keys[name]) for name in ("server", "named", "client")},
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return Pki(*(folder / n for n in ("ca.pem", "server.pem", "server.key", "named.pem", "named.key")),
               folder / "client.pem", folder / "client.key", folder / "other-ca.pem")  # fmt: skip


def _mock(tls: TlsConfig, auth: AuthConfig | None = None) -> ThreadedServer:
    config = ServerConfig(
        families=("armonik",), clock_speed=0, grace_seconds=0.2, tls=tls, auth=auth or AuthConfig()
    )
    return ThreadedServer(config).start()


@pytest.fixture(scope="module")
def tls_target(pki: Pki) -> Iterator[ThreadedServer]:
    """A cluster's face: TLS, and a bearer token on every call."""
    server = _mock(TlsConfig(str(pki.server_cert), str(pki.server_key)), AuthConfig(tokens=(API_TOKEN,)))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_target(pki: Pki) -> Iterator[ThreadedServer]:
    server = _mock(TlsConfig(str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca)))
    yield server
    server.stop()


@contextmanager
def running(target: str, **options: Any) -> Iterator[FaultProxy]:
    """An in-process proxy on its own event loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = FaultProxy(target, **options)
    try:
        asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(30)
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def _failure(channel: grpc.Channel, metadata: list[tuple[str, str]] | None = None) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as caught:
        Armonik(channel).versions(timeout=20, metadata=metadata)
    return caught.value.code(), caught.value.details()


# -- dialing the target over TLS ---------------------------------------------------------------


def test_a_proxy_dialing_a_tls_target_answers_like_it(tls_target: ThreadedServer, pki: Pki) -> None:
    with (
        running(tls_target.grpc_address, target_tls=ClientTlsConfig(ca=str(pki.ca))) as proxy,
        grpc.insecure_channel(proxy.grpc_address) as proxied,
        pki.channel(tls_target.grpc_address) as direct,
    ):
        assert proxy.ready_line().endswith(f"target={tls_target.grpc_address} target-tls=on")
        answer = Armonik(proxied).versions(timeout=20, metadata=_bearer(API_TOKEN))
        assert answer == Armonik(direct).versions(timeout=20, metadata=_bearer(API_TOKEN))
        assert answer.core
        # the client's authorization passes through as it is: none, or a wrong one, is refused upstream
        refused = _failure(proxied)
        assert refused == _failure(direct) and refused[0] == grpc.StatusCode.UNAUTHENTICATED
        assert _failure(proxied, _bearer("wrong")) == _failure(direct, _bearer("wrong"))


def test_the_target_certificate_is_verified(tls_target: ThreadedServer, pki: Pki) -> None:
    # the system's roots (--target-tls alone), or another CA: the test CA's certificate is refused
    for target_tls in (ClientTlsConfig(), ClientTlsConfig(ca=str(pki.other_ca))):
        with (
            running(tls_target.grpc_address, target_tls=target_tls) as proxy,
            grpc.insecure_channel(proxy.grpc_address) as proxied,
        ):
            assert _failure(proxied, _bearer(API_TOKEN))[0] == grpc.StatusCode.UNAVAILABLE
    # a plaintext proxy in front of a TLS target gets nothing either
    with running(tls_target.grpc_address) as proxy, grpc.insecure_channel(proxy.grpc_address) as proxied:
        assert _failure(proxied, _bearer(API_TOKEN))[0] == grpc.StatusCode.UNAVAILABLE


def test_the_target_token_goes_only_on_calls_without_one(tls_target: ThreadedServer, pki: Pki) -> None:
    target_tls = ClientTlsConfig(ca=str(pki.ca))
    with (
        running(tls_target.grpc_address, target_tls=target_tls, target_token=API_TOKEN) as proxy,
        grpc.insecure_channel(proxy.grpc_address) as proxied,
    ):
        assert Armonik(proxied).versions(timeout=20).core  # no token: the proxy's
        assert Armonik(proxied).versions(timeout=20, metadata=_bearer(API_TOKEN)).core
        code, details = _failure(proxied, _bearer("wrong"))  # the client's own wins, even a wrong one
        assert code == grpc.StatusCode.UNAUTHENTICATED and "not one of the server's tokens" in details


def test_a_mutual_tls_target_needs_the_client_certificate(mtls_target: ThreadedServer, pki: Pki) -> None:
    mutual = ClientTlsConfig(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))
    with (
        running(mtls_target.grpc_address, target_tls=mutual) as proxy,
        grpc.insecure_channel(proxy.grpc_address) as proxied,
        pki.channel(mtls_target.grpc_address, client_cert=True) as direct,
    ):
        assert proxy.ready_line().endswith(" target-tls=mutual")
        assert Armonik(proxied).versions(timeout=20) == Armonik(direct).versions(timeout=20)
        session_id = Armonik(proxied).session()
        request = sessions_common_pb2.GetSessionRequest(session_id=session_id)  # made through it
        assert Armonik(direct).sessions.GetSession(request, timeout=20).session.session_id == session_id
    with (
        running(mtls_target.grpc_address, target_tls=ClientTlsConfig(ca=str(pki.ca))) as proxy,
        grpc.insecure_channel(proxy.grpc_address) as proxied,
    ):
        assert _failure(proxied)[0] == grpc.StatusCode.UNAVAILABLE


@pytest.fixture(scope="module")
def named_target(pki: Pki) -> Iterator[str]:
    """A TLS server whose certificate names CLUSTER_NAME only, reached at 127.0.0.1: a load balancer."""

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request[::-1]

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "echo.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)}
    )
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials([(pki.named_key.read_bytes(), pki.named_cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_the_server_name_overrides_the_address_for_the_certificate(named_target: str, pki: Pki) -> None:
    def echo(target_tls: ClientTlsConfig) -> Any:
        with (
            running(named_target, target_tls=target_tls) as proxy,
            grpc.insecure_channel(proxy.grpc_address) as ch,
        ):
            try:
                return ch.unary_unary("/echo.Echo/Unary")(b"abc", timeout=20)
            except grpc.RpcError as exc:
                return exc.code()

    assert echo(ClientTlsConfig(ca=str(pki.ca), server_name=CLUSTER_NAME)) == b"cba"
    assert echo(ClientTlsConfig(ca=str(pki.ca))) == grpc.StatusCode.UNAVAILABLE  # 127.0.0.1 is not on it
    assert (
        echo(ClientTlsConfig(ca=str(pki.ca), server_name="elsewhere.internal")) == grpc.StatusCode.UNAVAILABLE
    )


# -- the proxy's own ports ---------------------------------------------------------------------


def test_the_proxy_from_the_command_line_listens_with_tls_and_guards_its_control_port(
    tls_target: ThreadedServer, pki: Pki
) -> None:
    """As a user starts it: TLS on both of its ports, a TLS target, a control token; faults apply."""
    options = [
        "--target-ca",
        str(pki.ca),
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
    ]
    with ProxyProcess(tls_target.grpc_address, *options, "--control-token", CONTROL_TOKEN) as proxy:
        assert proxy.fields == {"tls": "on", "target-tls": "on", "control": "token"}
        assert proxy.http_url.startswith("https://")
        with pki.channel(proxy.grpc_address) as secured:
            assert Armonik(secured).versions(timeout=20, metadata=_bearer(API_TOKEN)).core
        with grpc.insecure_channel(proxy.grpc_address) as plain:
            assert _failure(plain, _bearer(API_TOKEN))[0] == grpc.StatusCode.UNAVAILABLE

        for token in ("", "wrong", API_TOKEN):  # no token, a wrong one, the API's: refused
            with pytest.raises(ControlError, match="HTTP 401"):
                ControlClient(proxy.http_url, token=token, ca=str(pki.ca)).faults()
        refused = requests.get(f"{proxy.http_url}/control", verify=str(pki.ca), timeout=10)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        with pytest.raises(requests.ConnectionError):  # plaintext HTTP gets no answer
            requests.get(proxy.http_url.replace("https://", "http://") + "/control", timeout=10)

        control = ControlClient(proxy.http_url, token=CONTROL_TOKEN, ca=str(pki.ca))
        assert control.faults()["rules"] == []
        control.add_faults(
            {"name": "down", "method": VERSIONS, "status": "UNAVAILABLE", "message": "down", "times": 1}
        )
        with pki.channel(proxy.grpc_address) as secured:
            assert _failure(secured, _bearer(API_TOKEN)) == (grpc.StatusCode.UNAVAILABLE, "down")
            assert Armonik(secured).versions(timeout=20, metadata=_bearer(API_TOKEN)).core
        rule = control.faults()["rules"][0]
        assert (rule["hits"], rule["spent"]) == (1, True)
        control.close()


def test_a_proxy_with_mutual_tls_refuses_clients_without_a_certificate(
    mtls_target: ThreadedServer, pki: Pki
) -> None:
    listen = TlsConfig(str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca))
    mutual = ClientTlsConfig(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))
    with running(mtls_target.grpc_address, target_tls=mutual, tls_config=listen) as proxy:
        assert " tls=mutual target-tls=mutual" in proxy.ready_line()
        with pki.channel(proxy.grpc_address, client_cert=True) as channel:
            assert Armonik(channel).versions(timeout=20).core
        with pki.channel(proxy.grpc_address) as channel:
            assert _failure(channel)[0] == grpc.StatusCode.UNAVAILABLE
        cert = (str(pki.client_cert), str(pki.client_key))
        control = f"{proxy.control_url}/control/faults"
        assert requests.get(control, verify=str(pki.ca), cert=cert, timeout=10).status_code == 200
        with pytest.raises(requests.ConnectionError):  # SSLError or a reset, as the handshake ends
            requests.get(control, verify=str(pki.ca), timeout=10)


def test_a_control_token_guards_a_plaintext_proxy_too(tls_target: ThreadedServer, pki: Pki) -> None:
    with running(
        tls_target.grpc_address, target_tls=ClientTlsConfig(ca=str(pki.ca)), control_token=CONTROL_TOKEN
    ) as proxy:
        assert proxy.ready_line().endswith(" target-tls=on control=token")
        faults = f"{proxy.control_url}/control/faults"
        assert requests.get(faults, timeout=10).status_code == 401
        bad_rule = requests.post(faults, json={"status": "FINE"}, timeout=10)
        assert bad_rule.status_code == 401 and proxy.faults.rules == []  # refused before it is read
        good = requests.get(faults, headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}, timeout=10)
        assert good.status_code == 200 and good.json()["rules"] == []


# -- options -----------------------------------------------------------------------------------


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["proxy", "--target", "127.0.0.1:1", *argv])
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_bad_tls_and_control_options_are_usage_errors_naming_the_option(
    pki: Pki, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "missing.pem")
    cert, key, ca = str(pki.server_cert), str(pki.server_key), str(pki.ca)
    cases = [
        (["--target-ca", missing], "--target-ca", "cannot read"),
        (["--target-ca", key], "--target-ca", "no CA certificate in it"),
        (["--target-cert", str(pki.client_cert)], "--target-cert and --target-key go together", ""),
        (
            ["--target-cert", str(pki.client_cert), "--target-key", key],
            "--target-cert",
            "matching private key",
        ),
        (["--target-cert", str(pki.client_cert), "--target-key", missing], "--target-key", "cannot read"),
        (["--target-server-name", "a b"], "--target-server-name", ""),
        (["--target-token", "two words"], "--target-token", "without spaces"),
        (["--tls-cert", missing, "--tls-key", key], "--tls-cert", "cannot read"),
        (["--tls-cert", cert], "--tls-cert and --tls-key go together", ""),
        (["--tls-client-ca", ca], "--tls-client-ca", "needs --tls-cert"),
        (["--listen", "0.0.0.0:0"], "--control-token", "open to the network"),
        (["--listen", "[::]:0"], "--control-token", "open to the network"),
        (["--open-control", "--control-token", "t"], "--open-control", "contradict"),
    ]
    for argv, option, said in cases:
        last = _usage_error(capsys, *argv)
        assert last.startswith("protoconform proxy: error: ") and option in last and said in last, (
            argv,
            last,
        )


def test_a_loopback_or_guarded_proxy_parses(pki: Pki) -> None:
    parse = build_parser().parse_args
    base = ["proxy", "--target", "127.0.0.1:1"]
    for listen in ("127.0.0.1:0", "localhost:0", "[::1]:0"):
        assert parse([*base, "--listen", listen]).control_token is None
    assert parse([*base, "--listen", "0.0.0.0:0", "--control-token", "t"]).control_token == "t"
    assert parse([*base, "--listen", "0.0.0.0:0", "--open-control"]).open_control
    args = parse([*base, "--target-server-name", CLUSTER_NAME, "--target-ca", str(pki.ca)])
    assert args.target_tls_config == ClientTlsConfig(ca=str(pki.ca), server_name=CLUSTER_NAME)
    assert parse([*base, "--target-tls"]).target_tls_config == ClientTlsConfig()
    assert parse(base).target_tls_config is None


def test_the_target_token_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROTOCONFORM_TARGET_TOKEN", "from-env")
    parse = build_parser().parse_args
    assert parse(["proxy", "--target", "127.0.0.1:1"]).target_token == "from-env"
    assert parse(["proxy", "--target", "127.0.0.1:1", "--target-token", "given"]).target_token == "given"
