"""Hostile HTTP clients: bad control inputs, huge, slow and malformed requests, long echoed ids.

Each refused input gets a 4xx (or the right gRPC status) naming the problem, and
the server serves the next caller as before.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import grpc
import pytest
import requests
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.common.sessions_common_pb2 import GetSessionRequest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from protoconform.load.benchmarks.hostile_clients import post, rss_mb
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ServerProcess, ThreadedServer

MiB = 1024 * 1024


def _serving(grpc_address: str, http_url: str) -> None:
    """The server answers health, a stateful call and the clock after whatever came before."""
    with grpc.insecure_channel(grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as missing:
            SessionsStub(channel).GetSession(GetSessionRequest(session_id="nope"), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert requests.get(f"{http_url}/healthz", timeout=5).json()["status"] == "SERVING"
    assert requests.get(f"{http_url}/control/clock", timeout=5).status_code == 200


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(ServerConfig(clock_speed=0, grace_seconds=0.2)) as srv:
        yield srv


BAD_CONTROL_CALLS = [
    ("/control/clock/advance", b'{"seconds": 1e12}', "headroom"),
    ("/control/clock/advance", b'{"seconds": 1e400}', "finite"),
    ("/control/clock/advance", b'{"seconds": Infinity}', "finite"),
    ("/control/clock/advance", b'{"seconds": -Infinity}', "finite"),
    ("/control/clock/advance", b'{"seconds": NaN}', "finite"),
    ("/control/clock/advance", b'{"seconds": -1}', "finite"),
    ("/control/clock/advance", b'{"seconds": "60"}', "finite"),
    ("/control/clock/advance", b'{"seconds": true}', "finite"),
    ("/control/clock/advance", b'{"seconds": ' + b"9" * 5000 + b"}", "not JSON"),
    ("/control/clock/advance", b"{}", "seconds"),
    ("/control/clock/advance", b"[1]", "JSON object"),
    ("/control/clock/advance", b"\xff\xfe{}", "UTF-8"),
    ("/control/clock/advance", b"[" * 100_000 + b"]" * 100_000, "nested"),
    ("/control/reset", b"\xff\xfe", "UTF-8"),
    ("/control/reset", b"{not json", "not JSON"),
    ("/control/reset", b'{"journal": "no"}', "journal"),
    ("/control/reset", b'{"defects": 1}', "defects"),
    ("/control/reset", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested"),
    ("/control/defects", b'{"active": "x"}', "active"),
]


@pytest.mark.parametrize(("path", "body", "named"), BAD_CONTROL_CALLS)
def test_bad_control_input_is_a_400_naming_it_and_changes_nothing(
    server: ThreadedServer, path: str, body: bytes, named: str
) -> None:
    before = requests.get(f"{server.http_url}/control/clock", timeout=5).json()
    method = requests.put if path == "/control/defects" else requests.post
    answer = method(f"{server.http_url}{path}", data=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert named in answer.text
    after = requests.get(f"{server.http_url}/control/clock", timeout=5).json()
    assert after["elapsed"] == before["elapsed"]
    _serving(server.grpc_address, server.http_url)


def test_a_control_body_over_its_limit_is_refused_unread(server: ThreadedServer) -> None:
    answer = requests.post(f"{server.http_url}/control/reset", data=b" " * (2 * MiB), timeout=30)
    assert answer.status_code == 413
    _serving(server.grpc_address, server.http_url)


def test_a_clock_at_its_limit_is_not_serving_until_reset(server: ThreadedServer) -> None:
    url = server.http_url
    headroom = requests.get(f"{url}/control/clock", timeout=5).json()["headroom"]
    moved = requests.post(f"{url}/control/clock/advance", json={"seconds": headroom}, timeout=30)
    assert moved.status_code == 200, moved.text
    assert moved.json()["headroom"] == 0
    # every timestamp stays representable: calls that read the clock still answer
    with grpc.insecure_channel(server.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as missing:
            SessionsStub(channel).GetSession(GetSessionRequest(session_id="nope"), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    healthz = requests.get(f"{url}/healthz", timeout=5)
    assert healthz.status_code == 503
    assert "virtual clock" in healthz.json()["problems"][0]
    further = requests.post(f"{url}/control/clock/advance", json={"seconds": 1}, timeout=5)
    assert further.status_code == 400 and "headroom" in further.text

    reset = requests.post(f"{url}/control/reset", timeout=5)
    assert reset.status_code == 200
    clock = reset.json()["clock"]
    assert clock["elapsed"] == 0 and clock["headroom"] > 3e9
    _serving(server.grpc_address, url)


@pytest.fixture(scope="module")
def kfp_process() -> Iterator[ServerProcess]:
    """``serve`` with its default limits, in a process of its own so its memory and log are its own."""
    with ServerProcess(["--api", "kfp,armonik"]) as process:
        yield process


@pytest.fixture(scope="module")
def impatient_process() -> Iterator[ServerProcess]:
    """``serve`` with one-second body and idle timeouts."""
    args = ["--body-timeout-seconds", "1", "--http-idle-seconds", "1", "--idle-connection-seconds", "1"]
    with ServerProcess(["--api", "kfp,armonik", *args]) as process:
        yield process


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_refused_bodies_leave_no_memory_behind(kfp_process: ServerProcess, chunked: bool) -> None:
    """Three rounds of eight concurrent 100 MiB POSTs: each a 413, and the server's RSS back where it was."""
    assert kfp_process.process is not None
    pid = kfp_process.process.pid
    before = rss_mb(pid)

    async def rounds() -> set[str]:
        statuses: set[str] = set()
        for _ in range(3):
            answers = await asyncio.gather(
                *(post(kfp_process.http_address, 100 * MiB, chunked) for _ in range(8))
            )
            statuses.update(answers)
        return statuses

    assert asyncio.run(rounds()) == {"HTTP/1.1 413 Request Entity Too Large"}
    time.sleep(0.5)
    assert rss_mb(pid) - before < 100
    _serving(kfp_process.grpc_address, kfp_process.http_url)


def test_a_body_that_never_arrives_is_a_408(impatient_process: ServerProcess) -> None:
    host, port = impatient_process.http_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /apis/v1beta1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        answer = sock.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "opening", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"], ids=["idle", "unfinished-headers"]
)
def test_idle_and_slow_header_connections_are_closed(
    impatient_process: ServerProcess, opening: bytes
) -> None:
    host, port = impatient_process.http_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(opening)
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server, no answer
        assert time.monotonic() - started < 5


def test_an_idle_grpc_connection_is_closed_by_the_server(impatient_process: ServerProcess) -> None:
    with grpc.insecure_channel(impatient_process.grpc_address) as channel:
        states: list[grpc.ChannelConnectivity] = []
        with pytest.raises(grpc.RpcError):
            SessionsStub(channel).GetSession(GetSessionRequest(session_id="nope"), timeout=5)
        channel.subscribe(states.append)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and grpc.ChannelConnectivity.IDLE not in states:
            time.sleep(0.05)
        assert grpc.ChannelConnectivity.IDLE in states  # the server said goodbye; the client reconnects
        with pytest.raises(grpc.RpcError) as missing:
            SessionsStub(channel).GetSession(GetSessionRequest(session_id="nope"), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_malformed_request_is_one_warning_line(kfp_process: ServerProcess) -> None:
    host, port = kfp_process.http_address.rsplit(":", 1)
    seen = len(kfp_process.output)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
        assert sock.recv(4096).split(b"\r\n")[0].endswith(b" 400 Bad Request")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        "malformed HTTP request" in line for line in kfp_process.output[seen:]
    ):
        time.sleep(0.05)
    logged = kfp_process.output[seen:]
    assert sum("malformed HTTP request" in line for line in logged) == 1, logged
    assert not any("Traceback" in line for line in logged), logged
    _serving(kfp_process.grpc_address, kfp_process.http_url)


def test_echoed_input_is_shortened_in_errors(kfp_process: ServerProcess) -> None:
    """A 5,000-character id: the client still sees NOT_FOUND, with the id's length, not RESOURCE_EXHAUSTED."""
    long_id = "x" * 5000
    with grpc.insecure_channel(kfp_process.grpc_address) as channel, pytest.raises(grpc.RpcError) as missing:
        SessionsStub(channel).GetSession(GetSessionRequest(session_id=long_id), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "[5000 characters]" in missing.value.details()
    assert len(missing.value.details()) < 1024

    rest = requests.get(f"{kfp_process.http_url}/apis/v1beta1/runs/{long_id}", timeout=5)
    assert rest.status_code == 404
    assert len(rest.content) < 4096
    assert "[5000 characters]" in json.dumps(rest.json())
