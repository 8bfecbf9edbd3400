"""``serve --workers N``: front-end processes share the gRPC port over one state.

Every call shape goes through a front-end to the serving process and back;
errors keep their status details byte for byte; a cancelled call ends
CANCELLED in the serving process's journal; fault rules (status, reset) reach
the client; reflection and health are served by the front-ends; a front-end
killed is restarted, and front-ends do not outlive the serving process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import queue
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import sessions_fields_pb2 as sf
from armonik.protogen.common import sessions_filters_pb2 as sfl
from armonik.protogen.common import versions_common_pb2
from armonik.protogen.common.sort_direction_pb2 import SORT_DIRECTION_ASC
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fault_support import CHUNK, DATA, VERSIONS, Armonik, assert_reset_and_reconnect, clean_control
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from protoconform.conformance.control import ControlClient
from protoconform.mockserver import workers as workers_module
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ServerProcess, ThreadedServer
from tls_support import certificate, pem_certificate, pem_key

SESSIONS = "armonik.api.grpc.v1.sessions.Sessions"
KFP_GET_RUN = "/api.RunService/GetRun"
RICH_STATUS = "grpc-status-details-bin"
ARGS = ["--api", "armonik,kfp", "--clock-speed", "0", "--armonik-chunk-size", str(CHUNK)]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess([*ARGS, "--workers", "2", "--log-level", "WARNING"]) as process:
        yield process
    log = "\n".join(process.output)
    assert process.process is not None and process.process.returncode == 0, log
    assert "Traceback" not in log and "never retrieved" not in log, log  # every call ended cleanly


def workers(server: ServerProcess) -> dict:
    response = requests.get(f"{server.http_url}/control/workers", timeout=10)
    response.raise_for_status()
    return response.json()


def channels(address: str, count: int) -> list[grpc.Channel]:
    """Separate connections: SO_REUSEPORT spreads connections (not calls) among the front-ends."""
    return [
        grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(count)
    ]


def sessions_by_id(page_size: int) -> sc.ListSessionsRequest:
    return sc.ListSessionsRequest(
        page_size=page_size,
        filters=sfl.Filters(),
        sort=sc.ListSessionsRequest.Sort(
            field=sf.SessionField(
                session_raw_field=sf.SessionRawField(field=sf.SESSION_RAW_ENUM_FIELD_SESSION_ID)
            ),
            direction=SORT_DIRECTION_ASC,
        ),
    )


def wait_for(check, seconds: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_the_ready_line_and_the_front_ends(server: ServerProcess) -> None:
    assert server.fields["workers"] == "2"
    described = workers(server)
    assert described["workers"] == 2 and len(described["front_ends"]) == 2
    pids = {front["pid"] for front in described["front_ends"]}
    assert len(pids) == 2 and server.process is not None and server.process.pid not in pids
    assert all(front["alive"] for front in described["front_ends"])
    assert described["port"] == int(server.grpc_address.rsplit(":", 1)[1])


def test_one_state_whichever_front_end_answers(server: ServerProcess, control: ControlClient) -> None:
    before = {front["index"]: front["calls"] for front in workers(server)["front_ends"]}
    writers, readers = channels(server.grpc_address, 8), channels(server.grpc_address, 8)
    try:
        created = [Armonik(channel).session() for channel in writers]
        for channel, session_id in zip(readers, created, strict=True):
            stub = Armonik(channel).sessions
            got = stub.GetSession(sc.GetSessionRequest(session_id=session_id), timeout=10)
            assert got.session.session_id == session_id
        listing = sessions_by_id(100)
        listed = Armonik(readers[0]).sessions.ListSessions(listing, timeout=10)
        assert {s.session_id for s in listed.sessions} == set(created)
    finally:
        for channel in writers + readers:
            channel.close()
    after = {front["index"]: front["calls"] for front in workers(server)["front_ends"]}
    # 16 connections spread by hash: each front-end forwarded some of the 17 calls
    assert sum(after.values()) - sum(before.values()) == 17
    assert all(after[index] > before[index] for index in after), (before, after)
    entries = control.journal(method="Sessions.CreateSession")
    assert [entry["responses"][0]["session_id"] for entry in entries] == created
    peers = {entry["peer"] for entry in entries}
    # each client's own address (not the link's): 8 connections, 8 ports on loopback
    assert len(peers) == 8 and all(peer.startswith("ipv4:127.0.0.1:") for peer in peers), peers


def test_server_client_and_bidi_streams(server: ServerProcess, control: ControlClient, ak: Armonik) -> None:
    # server streaming: the data comes back in CHUNK-byte messages
    session_id, result_id = ak.result_with_data()
    chunks, error = ak.download(session_id, result_id)
    assert error is None and b"".join(chunks) == DATA and len(chunks) == len(DATA) // CHUNK
    # client streaming: an upload in several messages, read back
    created = ak.results.CreateResultsMetaData(
        rc.CreateResultsMetaDataRequest(
            session_id=session_id, results=[rc.CreateResultsMetaDataRequest.ResultCreate(name="up")]
        ),
        timeout=10,
    )
    up = created.results[0].result_id
    ident = rc.UploadResultDataRequest.ResultIdentifier(session_id=session_id, result_id=up)
    pieces = [b"abc", b"defg"] + [b"%04d" % i for i in range(50)]  # more than the owner holds unread
    messages = [rc.UploadResultDataRequest(id=ident)] + [
        rc.UploadResultDataRequest(data_chunk=p) for p in pieces
    ]
    assert ak.results.UploadResultData(iter(messages), timeout=10).result.result_id == up
    chunks, error = ak.download(session_id, up)
    assert error is None and b"".join(chunks) == b"".join(pieces)
    # bidi: a watch answers each request with the statuses of its results
    requests_: queue.Queue = queue.Queue()

    def feed() -> Iterator[rc.WatchResultRequest]:
        while (item := requests_.get()) is not None:
            yield item

    call = ak.results.WatchResults(feed(), timeout=20)
    try:
        requests_.put(rc.WatchResultRequest(result_ids=[up, "nope"]))
        replies = {(reply.status, tuple(reply.result_ids)) for reply in (next(call), next(call))}
        assert {ids for _, ids in replies} == {(up,), ("nope",)}
    finally:
        requests_.put(None)
        call.cancel()

    def methods() -> list[str]:
        return [entry["method"].rsplit(".", 1)[1] for entry in control.journal()]

    # the watch is in the journal once the serving process saw its cancellation
    assert "WatchResults" in wait_for(lambda: "WatchResults" in methods() and methods())
    assert "UploadResultData" in methods()


def test_a_malformed_request_and_an_unknown_method(ak: Armonik) -> None:
    get = ak.channel.unary_unary(f"/{SESSIONS}/GetSession")
    with pytest.raises(grpc.RpcError) as caught:
        get(b"\xff\xff\xff", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GetSessionRequest" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        ak.channel.unary_unary(f"/{SESSIONS}/NoSuchMethod")(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _kfp_error(address: str) -> tuple[grpc.StatusCode, str, bytes]:
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(KFP_GET_RUN)(b"\n\x07missing", timeout=10)  # run_id: "missing"
    error = caught.value
    rich = dict(error.trailing_metadata() or ())[RICH_STATUS]
    return error.code(), error.details(), rich


def test_error_details_are_those_of_one_process(server: ServerProcess) -> None:
    with ServerProcess([*ARGS, "--log-level", "WARNING"]) as single:
        expected = _kfp_error(single.grpc_address)
    got = _kfp_error(server.grpc_address)
    assert got[0] == grpc.StatusCode.NOT_FOUND and got[2]
    assert got == expected


def test_error_details_carry_the_kfp_api_error(server: ServerProcess) -> None:
    from google.rpc import status_pb2

    code, details, rich = _kfp_error(server.grpc_address)
    status = status_pb2.Status.FromString(rich)
    assert code == grpc.StatusCode.NOT_FOUND and status.message == details
    assert [d.type_url for d in status.details] == ["type.googleapis.com/api.Error"]


def test_a_cancelled_call_ends_cancelled_in_the_journal(control: ControlClient, ak: Armonik) -> None:
    control.add_faults({"name": "slow", "method": VERSIONS, "latency": 30})
    with pytest.raises(grpc.RpcError) as caught:
        ak.versions(timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    entries = wait_for(lambda: control.journal(method="Versions.ListVersions"))
    assert [entry["code"] for entry in entries] == ["CANCELLED"]
    assert entries[0]["faults"] == [{"name": "slow", "kind": "latency"}]
    control.clear_faults()
    assert ak.code() == grpc.StatusCode.OK  # the front-end's link to the owner still works


def test_status_and_reset_rules_reach_the_client(control: ControlClient, ak: Armonik) -> None:
    control.add_faults({"method": VERSIONS, "status": "RESOURCE_EXHAUSTED", "message": "busy", "times": 1})
    with pytest.raises(grpc.RpcError) as caught:
        ak.versions(timeout=10)
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
    assert_reset_and_reconnect(control, ak)

    def by_fault() -> dict[str, str]:
        entries = control.journal(method="Versions.ListVersions")
        return {e["faults"][0]["kind"]: e["code"] for e in entries if e["faults"]}

    # the reset call ends with its connection (the front-end's), maybe after the next call
    assert wait_for(lambda: len(by_fault()) == 2 and by_fault()) == {
        "status": "RESOURCE_EXHAUSTED",
        "reset": "CANCELLED",
    }


def test_reflection_and_health_from_the_front_ends(server: ServerProcess) -> None:
    for channel in channels(server.grpc_address, 4):  # whichever front-end answers
        with channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            (answer,) = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            names = {service.name for service in answer.list_services_response.service}
            assert {SESSIONS, "api.RunService", "grpc.health.v1.Health"} <= names
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", SESSIONS):
                reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_auth_token_checked_in_the_serving_process_and_reflection_guarded() -> None:
    args = ["--api", "armonik", "--workers", "2", "--auth-token", "s3cret"]
    with ServerProcess(args) as server, grpc.insecure_channel(server.grpc_address) as channel:
        ak = Armonik(channel)
        assert ak.code() == grpc.StatusCode.UNAUTHENTICATED
        assert ak.code(metadata=[("authorization", "Bearer s3cret")]) == grpc.StatusCode.OK
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.ServerReflectionInfo(iter([request]), timeout=10))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        (answer,) = stub.ServerReflectionInfo(
            iter([request]), timeout=10, metadata=[("authorization", "Bearer s3cret")]
        )
        assert answer.list_services_response.service


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(RuntimeError) as caught:
            ServerProcess(["--api", "armonik", "--workers", "2", "--port", str(port)]).start()
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in str(caught.value)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_front_end_is_restarted() -> None:
    with ServerProcess(["--api", "armonik", "--workers", "2"]) as server:
        victim = workers(server)["front_ends"][0]
        os.kill(victim["pid"], signal.SIGKILL)

        def restarted() -> dict | None:
            front = workers(server)["front_ends"][0]
            return (
                front if front["restarts"] == 1 and front["ready"] and front["pid"] != victim["pid"] else None
            )

        front = wait_for(restarted)
        assert front and front["pid"] != victim["pid"]
        for channel in channels(server.grpc_address, 6):
            with channel:
                assert Armonik(channel).code() == grpc.StatusCode.OK
        health = requests.get(f"{server.http_url}/healthz", timeout=10)
        assert health.status_code == 200


def test_front_ends_do_not_outlive_the_serving_process() -> None:
    server = ServerProcess(["--api", "armonik", "--workers", "2"]).start()
    try:
        pids = [front["pid"] for front in workers(server)["front_ends"]]
        assert all(_alive(pid) for pid in pids)
        server.stop(signal.SIGKILL)
        assert wait_for(lambda: not any(_alive(pid) for pid in pids), 10), "front-ends outlived the owner"
    finally:
        server.stop()


@pytest.mark.slow
def test_sigterm_lets_an_in_flight_call_finish() -> None:
    server = ServerProcess(["--api", "armonik", "--workers", "2"]).start()
    pids = [front["pid"] for front in workers(server)["front_ends"]]
    with clean_control(server.http_url) as control:
        control.add_faults({"method": VERSIONS, "latency": 2.0})
    outcome: list[grpc.StatusCode] = []
    with grpc.insecure_channel(server.grpc_address) as channel:
        calling = threading.Thread(target=lambda: outcome.append(Armonik(channel).code()))
        calling.start()
        time.sleep(0.8)  # the call is in flight (held by its latency)
        assert server.stop(signal.SIGTERM) == 0
        calling.join(10)
    assert outcome == [grpc.StatusCode.OK]
    assert not any(_alive(pid) for pid in pids)


# -- the link itself, from inside (a server in this process) ----------------------------------


@pytest.fixture(scope="module")
def threaded() -> Iterator[ThreadedServer]:
    config = ServerConfig(families=("armonik",), clock_speed=0, grace_seconds=0.5, workers=2)
    with ThreadedServer(config) as srv:
        yield srv


def _link(threaded: ThreadedServer) -> socket.socket:
    front_ends = threaded.server.front_ends
    assert front_ends is not None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(front_ends.fronts[0].call_path)
    return sock


def _frames(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Every frame until the owner's END (included), or until it closes the connection."""
    got: list[tuple[int, bytes]] = []
    buffer = b""
    while not got or got[-1][0] != workers_module.END:
        data = sock.recv(65536)
        if not data:
            break
        buffer += data
        while len(buffer) >= 5:
            length, kind = struct.unpack(">IB", buffer[:5])
            if len(buffer) < 5 + length:
                break
            got.append((kind, buffer[5 : 5 + length]))
            buffer = buffer[5 + length :]
    return got


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _head(path: str) -> bytes:
    return workers_module.frame(workers_module.HEAD, json.dumps([path, "ipv4:127.0.0.1:1", {}]).encode())


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(workers_module.frame(99, b"x"), id="unknown-kind"),
        pytest.param(workers_module.frame(workers_module.MSG, b"x"), id="message-outside-a-call"),
        pytest.param(workers_module.frame(workers_module.HALF), id="half-outside-a-call"),
        pytest.param(struct.pack(">IB", 1 << 30, workers_module.HEAD), id="oversized-head"),
        pytest.param(workers_module.frame(workers_module.HEAD, b"{not json"), id="head-not-json"),
        pytest.param(workers_module.frame(workers_module.HEAD, b'["/a/b", 1, {}]'), id="head-wrong-types"),
        pytest.param(_head(VERSIONS) + workers_module.frame(workers_module.HALF), id="no-request"),
        pytest.param(_head(VERSIONS) + workers_module.frame(workers_module.MSG) * 2, id="two-unary-requests"),
    ],
)
def test_the_owner_closes_a_link_that_breaks_the_protocol(threaded: ThreadedServer, sent: bytes) -> None:
    with _link(threaded) as sock:
        sock.sendall(sent)
        assert _closed(sock)
    with grpc.insecure_channel(threaded.grpc_address) as channel:
        assert Armonik(channel).code() == grpc.StatusCode.OK  # nothing else is hurt


def test_the_owner_answers_calls_on_a_link_in_turn(threaded: ThreadedServer) -> None:
    from google.rpc import status_pb2

    with _link(threaded) as sock:
        # a malformed body: INVALID_ARGUMENT, and the connection stays for the next call
        sock.sendall(
            _head(f"/{SESSIONS}/GetSession")
            + workers_module.frame(workers_module.MSG, b"\xff\xff")
            + workers_module.frame(workers_module.HALF)
        )
        ((kind, payload),) = _frames(sock)
        status = status_pb2.Status.FromString(payload)
        assert kind == workers_module.END and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        sock.sendall(
            _head(VERSIONS)
            + workers_module.frame(workers_module.MSG)
            + workers_module.frame(workers_module.HALF)
        )
        (kind, answer), (end, payload) = _frames(sock)
        assert (kind, end, payload) == (workers_module.MSG, workers_module.END, b"")  # an OK status
        assert versions_common_pb2.ListVersionsResponse.FromString(answer).api
        # a method not served: grpcio's answer, then the connection closes
        sock.sendall(_head("/no.Such/Method"))
        ((kind, payload),) = _frames(sock)
        assert status_pb2.Status.FromString(payload).code == grpc.StatusCode.UNIMPLEMENTED.value[0]
        assert _closed(sock)


def test_health_set_in_the_owner_reaches_every_front_end(threaded: ThreadedServer) -> None:
    front_ends = threaded.server.front_ends
    assert front_ends is not None

    def set_health(status: int) -> None:
        asyncio.run_coroutine_threadsafe(front_ends.health.set(SESSIONS, status), threaded.loop).result(10)

    def statuses() -> set[int]:
        found = set()
        for channel in channels(threaded.grpc_address, 6):
            with channel:
                stub = health_pb2_grpc.HealthStub(channel)
                found.add(stub.Check(health_pb2.HealthCheckRequest(service=SESSIONS), timeout=10).status)
        return found

    set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        assert wait_for(lambda: statuses() == {health_pb2.HealthCheckResponse.NOT_SERVING})
        # a front-end started later hears the statuses set before it
        front = front_ends.fronts[0]
        old_pid = front.pid
        os.kill(old_pid, signal.SIGKILL)
        assert wait_for(lambda: front.restarts == 1 and front.control is not None and front.pid != old_pid)
        assert statuses() == {health_pb2.HealthCheckResponse.NOT_SERVING}
    finally:
        set_health(health_pb2.HealthCheckResponse.SERVING)
    assert wait_for(lambda: statuses() == {health_pb2.HealthCheckResponse.SERVING})


def test_each_front_end_terminates_tls(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = pem_certificate(certificate("localhost", key, san=san))
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(pem_key(key))
    args = ["--api", "armonik", "--workers", "2", "--tls-cert", str(tmp_path / "cert.pem")]
    with ServerProcess([*args, "--tls-key", str(tmp_path / "key.pem")]) as server:
        assert server.fields["tls"] == "on" and server.fields["workers"] == "2"
        credentials = grpc.ssl_channel_credentials(root_certificates=cert)
        for _ in range(4):  # separate connections: both front-ends, most likely
            options = [("grpc.use_local_subchannel_pool", 1)]
            with grpc.secure_channel(server.grpc_address, credentials, options=options) as channel:
                assert Armonik(channel).code() == grpc.StatusCode.OK
        calls = [
            front["calls"]
            for front in requests.get(
                f"{server.http_url}/control/workers", timeout=10, verify=str(tmp_path / "cert.pem")
            ).json()["front_ends"]
        ]
        assert sum(calls) == 4


@pytest.mark.slow
def test_a_front_end_dying_too_often_is_left_down_and_health_says_so() -> None:
    with ServerProcess(["--api", "armonik", "--workers", "2"]) as server:
        for restarts in range(1, workers_module.MAX_RESTARTS + 1):
            pid = workers(server)["front_ends"][0]["pid"]
            os.kill(pid, signal.SIGKILL)

            def restarted(pid: int = pid, restarts: int = restarts) -> bool:
                front = workers(server)["front_ends"][0]
                return front["restarts"] == restarts and front["ready"] and front["pid"] != pid

            assert wait_for(restarted), workers(server)
        os.kill(workers(server)["front_ends"][0]["pid"], signal.SIGKILL)
        assert wait_for(lambda: workers(server)["front_ends"][0]["down"])
        health = requests.get(f"{server.http_url}/healthz", timeout=10)
        assert health.status_code == 503
        assert any("front-end 0" in problem for problem in health.json()["problems"])
        with grpc.insecure_channel(server.grpc_address) as channel:  # the other front-end serves
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert Armonik(channel).code() == grpc.StatusCode.OK
    assert "left down" in "\n".join(server.output)


def test_one_process_has_no_front_ends() -> None:
    with ThreadedServer(ServerConfig(families=("armonik",), clock_speed=0, grace_seconds=0.2)) as server:
        described = requests.get(f"{server.http_url}/control/workers", timeout=10).json()
        assert described == {"workers": 1, "front_ends": []}
        index = requests.get(f"{server.http_url}/control", timeout=10).json()["endpoints"]
        assert "GET /control/workers" in index
        assert "workers=" not in server.server.ready_line()


def test_a_response_past_the_message_limit_fails_resource_exhausted() -> None:
    args = ["--api", "armonik", "--max-message-bytes", "2048", "--workers", "2"]
    with ServerProcess(args) as server, grpc.insecure_channel(server.grpc_address) as channel:
        ak = Armonik(channel)
        for _ in range(60):
            ak.session()
        listing = sessions_by_id(100)
        with pytest.raises(grpc.RpcError) as caught:
            ak.sessions.ListSessions(listing, timeout=10)  # 60 sessions: about 4 KiB, twice the limit
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
        assert "larger than max" in caught.value.details()
        assert ak.code() == grpc.StatusCode.OK


def test_a_request_stream_refused_early_leaves_its_link_usable(threaded: ThreadedServer) -> None:
    from google.rpc import status_pb2

    upload = "/armonik.api.grpc.v1.results.Results/UploadResultData"
    bad = workers_module.frame(workers_module.MSG, b"\xff\xff")
    with _link(threaded) as sock:
        # more messages than the serving process holds unread, all sent before it refuses the first
        sock.sendall(
            _head(upload) + bad * (workers_module.FEED_HIGH * 3) + workers_module.frame(workers_module.HALF)
        )
        ((kind, payload),) = _frames(sock)
        assert kind == workers_module.END
        assert status_pb2.Status.FromString(payload).code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        sock.sendall(
            _head(VERSIONS)
            + workers_module.frame(workers_module.MSG)
            + workers_module.frame(workers_module.HALF)
        )
        assert [kind for kind, _ in _frames(sock)] == [workers_module.MSG, workers_module.END]
