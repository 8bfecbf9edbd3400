"""``protoconform proxy`` in front of a second server.

Two targets: the mock (ArmoniK and KFP), behind the proxy as a user starts it
(a child process), and a small echo server of raw bytes, behind an in-process
proxy, that shows what passes through for each call shape: metadata both ways,
trailers, status details, deadlines and cancellation.
"""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
import requests
from armonik.client import ArmoniKSessions
from armonik.common import TaskOptions
from fault_support import CHUNK, DATA, DOWNLOAD, RETRYING, VERSIONS, Armonik, ProxyProcess, clean_control
from google.protobuf import any_pb2, json_format, message_factory
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status
from protoconform.conformance.control import ControlClient
from protoconform.conformance.reflection import ReflectionClient
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.mockserver.proxy import FaultProxy

REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
CREATE_SESSION = "/armonik.api.grpc.v1.sessions.Sessions/CreateSession"


@pytest.fixture(scope="module")
def target() -> Iterator[ThreadedServer]:
    config = ServerConfig(
        families=("armonik", "kfp"),
        clock_speed=0,
        grace_seconds=0.2,
        family_options={"armonik": {"data_chunk_max_size": CHUNK}},
    )
    with ThreadedServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(target: ThreadedServer) -> Iterator[ProxyProcess]:
    with ProxyProcess(target.grpc_address) as process:
        yield process


@pytest.fixture
def faults(proxy: ProxyProcess) -> Iterator[ControlClient]:
    """The proxy's control API, no rule set before and after."""
    client = ControlClient(proxy.http_url)
    client.clear_faults()
    yield client
    client.clear_faults()
    client.close()


@pytest.fixture
def target_control(target: ThreadedServer) -> Iterator[ControlClient]:
    with clean_control(target.http_url) as client:
        yield client


@pytest.fixture
def direct(target: ThreadedServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(target.grpc_address) as channel:
        yield channel


@pytest.fixture
def proxied(proxy: ProxyProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(proxy.grpc_address) as channel:
        yield channel


def reflect(channel: grpc.Channel, *requests_: reflection_pb2.ServerReflectionRequest) -> list[bytes]:
    call = channel.stream_stream(REFLECTION)
    return list(call(iter(r.SerializeToString() for r in requests_), timeout=30))


def test_calls_errors_and_reflection_pass_through_unchanged(
    faults: ControlClient, target_control: ControlClient, direct: grpc.Channel, proxied: grpc.Channel
) -> None:
    assert Armonik(proxied).versions() == Armonik(direct).versions()
    session_id = Armonik(proxied).session()  # made through the proxy, seen directly
    assert target_control.journal(method="Sessions.CreateSession")[-1]["peer"]
    asks = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="armonik.api.grpc.v1.sessions.Sessions"
        ),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
    ]
    assert reflect(proxied, *asks) == reflect(direct, *asks)

    def failure(channel: grpc.Channel, path: str, request: bytes) -> tuple[Any, ...]:
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary(path)(request, timeout=30)
        return caught.value.code(), caught.value.details(), rpc_status.from_call(caught.value)

    get_session = "/armonik.api.grpc.v1.sessions.Sessions/GetSession"
    missing = b"\n\x07missing"  # GetSessionRequest(session_id="missing")
    assert failure(proxied, get_session, missing) == failure(direct, get_session, missing)
    # KFP's errors carry an api.Error detail in grpc-status-details-bin
    get_run = "/api.RunService/GetRun"
    code, details, status = failure(proxied, get_run, b"\n\x04nope")
    assert (code, details, status) == failure(direct, get_run, b"\n\x04nope")
    assert status is not None and status.details, "the rich status came through"
    assert session_id


@pytest.fixture(scope="module")
def echo() -> Iterator[dict[str, Any]]:
    """A raw-bytes server of every call shape that shows what it received."""
    seen: dict[str, Any] = {"cancelled": threading.Event(), "entered": threading.Event()}

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen["metadata"] = dict(context.invocation_metadata())
        seen["time_remaining"] = context.time_remaining()
        context.send_initial_metadata([("x-initial", "i"), ("x-raw-bin", b"\x00\xff")])
        context.set_trailing_metadata([("x-trailer", "t"), ("x-echo", seen["metadata"].get("x-test", ""))])
        return request[::-1]

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason="QUOTA", domain="echo"))
        status = status_pb2.Status(
            code=grpc.StatusCode.ABORTED.value[0], message="try later", details=[detail]
        )
        rich = rpc_status.to_status(status)
        context.set_trailing_metadata([("x-trailer", "t"), *rich.trailing_metadata])
        context.set_code(rich.code)
        context.set_details(rich.details)
        return b""

    def chat(requests_: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for request in requests_:
            yield request.upper()

    def collect(requests_: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return b"|".join(requests_)

    def count(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for i in range(int(request)):
            yield b"%d" % i

    def hang(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.add_callback(seen["cancelled"].set)
        seen["entered"].set()
        seen["cancelled"].wait(30)
        return b""

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Hang": grpc.unary_unary_rpc_method_handler(hang),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("echo.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    seen["address"] = f"127.0.0.1:{port}"
    yield seen
    server.stop(0)


@pytest.fixture(scope="module")
def echo_proxy(echo: dict[str, Any]) -> Iterator[FaultProxy]:
    """An in-process proxy in front of the echo server, on its own event loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = FaultProxy(echo["address"])
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(30)
    yield proxy
    asyncio.run_coroutine_threadsafe(proxy.stop(0), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def echo_channel(echo_proxy: FaultProxy) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(echo_proxy.grpc_address) as channel:
        yield channel


def test_metadata_trailers_and_deadline_pass_through(
    echo: dict[str, Any], echo_channel: grpc.Channel
) -> None:
    call = echo_channel.unary_unary("/echo.Echo/Unary")
    answer, outcome = call.with_call(
        b"abc", metadata=[("x-test", "1"), ("x-token-bin", b"\x01\x02")], timeout=20
    )
    assert answer == b"cba"
    assert echo["metadata"]["x-test"] == "1" and echo["metadata"]["x-token-bin"] == b"\x01\x02"
    # the client's deadline reached the server (grpc rounds a timeout up to its unit on the wire)
    assert echo["time_remaining"] is not None and 0 < echo["time_remaining"] < 25
    assert ("x-initial", "i") in outcome.initial_metadata()
    assert ("x-raw-bin", b"\x00\xff") in outcome.initial_metadata()
    assert {("x-trailer", "t"), ("x-echo", "1")} <= set(outcome.trailing_metadata())


def test_every_call_shape_passes_through(echo_channel: grpc.Channel) -> None:
    chat = echo_channel.stream_stream("/echo.Echo/Chat")
    assert list(chat(iter([b"a", b"b", b"c"]), timeout=20)) == [b"A", b"B", b"C"]
    collect = echo_channel.stream_unary("/echo.Echo/Collect")
    assert collect(iter([b"x", b"y"]), timeout=20) == b"x|y"
    count = echo_channel.unary_stream("/echo.Echo/Count")
    assert list(count(b"5", timeout=20)) == [b"0", b"1", b"2", b"3", b"4"]


def test_status_details_and_trailers_of_an_error_pass_through(
    echo: dict[str, Any], echo_channel: grpc.Channel
) -> None:
    def fail(channel: grpc.Channel) -> Any:
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary("/echo.Echo/Fail")(b"", timeout=20)
        return caught.value

    error = fail(echo_channel)
    with grpc.insecure_channel(echo["address"]) as direct_channel:
        direct_error = fail(direct_channel)
    assert set(error.trailing_metadata()) == set(direct_error.trailing_metadata())
    assert (error.code(), error.details()) == (grpc.StatusCode.ABORTED, "try later")
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "QUOTA"
    assert ("x-trailer", "t") in error.trailing_metadata()


def test_a_client_cancelling_cancels_the_upstream_call(
    echo: dict[str, Any], echo_channel: grpc.Channel
) -> None:
    echo["cancelled"].clear()
    echo["entered"].clear()
    future = echo_channel.unary_unary("/echo.Echo/Hang").future(b"", timeout=30)
    assert echo["entered"].wait(20), "the call never reached the echo server"
    future.cancel()
    assert echo["cancelled"].wait(20), "the echo server's call was not cancelled"


def test_the_client_deadline_ends_the_upstream_call(
    faults: ControlClient, target_control: ControlClient, proxied: grpc.Channel
) -> None:
    target_control.add_faults({"name": "hung", "method": VERSIONS, "deadline": 30})
    with pytest.raises(grpc.RpcError) as caught:
        Armonik(proxied).versions(timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    entries: list[dict[str, Any]] = []
    for _ in range(200):  # the target ends the call when the deadline it was given passes
        entries = target_control.journal(method="Versions.ListVersions")
        if entries:
            break
        time.sleep(0.1)
    # held 30 s without a deadline it would end DEADLINE_EXCEEDED; the forwarded deadline cancels it
    assert [e["code"] for e in entries] == ["CANCELLED"]


def test_latency_shows_in_the_clients_time(faults: ControlClient, proxied: grpc.Channel) -> None:
    faults.add_faults({"name": "slow", "method": VERSIONS, "latency": 0.4})
    assert Armonik(proxied).timed_versions() >= 0.3
    assert faults.faults()["rules"][0]["hits"] == 1


def test_a_stream_is_cut_at_message_n(
    faults: ControlClient, target_control: ControlClient, proxied: grpc.Channel
) -> None:
    ak = Armonik(proxied)
    session_id, result_id = ak.result_with_data()
    assert ak.download(session_id, result_id) == (
        [DATA[i : i + CHUNK] for i in range(0, len(DATA), CHUNK)],
        None,
    )
    faults.add_faults({"name": "cut", "method": DOWNLOAD, "cut_after": 4})
    chunks, error = ak.download(session_id, result_id)
    assert len(chunks) == 4 and b"".join(chunks) == DATA[: 4 * CHUNK]
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "injected fault 'cut'"


def test_a_reset_through_the_proxy(faults: ControlClient, proxied: grpc.Channel) -> None:
    faults.add_faults({"name": "reset", "method": VERSIONS, "reset": True, "times": 1})
    ak = Armonik(proxied)
    with pytest.raises(grpc.RpcError) as caught:
        ak.versions(timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ak.reconnects()


def test_the_armonik_client_sees_unavailable_then_retries_until_the_rule_is_spent(
    faults: ControlClient, target_control: ControlClient, proxy: ProxyProcess
) -> None:
    """The ``armonik`` package has no retry of its own: gRPC's, from the channel's service config."""
    faults.add_faults(
        {
            "name": "sessions-down",
            "method": CREATE_SESSION,
            "status": "UNAVAILABLE",
            "message": "down",
            "times": 3,
        }
    )
    options = TaskOptions(max_duration=datetime.timedelta(seconds=60), priority=1, max_retries=1)
    with grpc.insecure_channel(proxy.grpc_address) as plain, pytest.raises(grpc.RpcError) as caught:
        ArmoniKSessions(plain).create_session(options)
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.UNAVAILABLE, "down")

    with grpc.insecure_channel(proxy.grpc_address, options=RETRYING) as retrying:
        session_id = ArmoniKSessions(retrying).create_session(options)
    assert session_id
    rule = faults.faults()["rules"][0]
    assert (rule["matched"], rule["hits"], rule["spent"]) == (4, 3, True)
    # the refused attempts never reached the server: one session made, the last attempt's
    assert [e["code"] for e in target_control.journal(method="Sessions.CreateSession")] == ["OK"]


def test_the_proxy_refuses_a_bad_rule_naming_the_field(proxy: ProxyProcess, faults: ControlClient) -> None:
    response = requests.post(f"{proxy.http_url}/control/faults", json={"status": "FINE"}, timeout=10)
    assert response.status_code == 400 and response.text.startswith("status:")
    assert faults.faults()["rules"] == []
    # a rule may name a family: the proxy knows the documented services
    faults.add_faults(
        {"name": "ak", "family": "armonik", "method": VERSIONS, "status": "INTERNAL", "times": 1}
    )
    with grpc.insecure_channel(proxy.grpc_address) as channel:
        assert Armonik(channel).code() == grpc.StatusCode.INTERNAL


def test_the_proxy_bounds_message_sizes_and_concurrent_calls(echo: dict[str, Any]) -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = FaultProxy(echo["address"], max_message_bytes=1024, max_concurrent_calls=1)
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(30)
    try:
        with grpc.insecure_channel(proxy.grpc_address) as channel:
            unary = channel.unary_unary("/echo.Echo/Unary")
            assert unary(b"x" * 1000, timeout=20) == b"x" * 1000
            with pytest.raises(grpc.RpcError) as caught:
                unary(b"x" * 2000, timeout=20)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

            proxy.faults.add([{"name": "hold", "method": "/echo.Echo/Unary", "deadline": 30, "times": 1}])
            held = unary.future(b"a", timeout=30)
            for _ in range(200):  # until the proxy holds the first call
                if proxy.faults.rules[0].hits:
                    break
                time.sleep(0.05)
            with pytest.raises(grpc.RpcError) as caught:
                unary(b"b", timeout=20)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            held.cancel()
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_a_reflection_client_calls_through_the_proxy_knowing_nothing_else(
    direct: grpc.Channel, proxied: grpc.Channel
) -> None:
    """What grpcurl does: list services, fetch descriptors, build a request from JSON, call."""
    client = ReflectionClient(proxied)
    assert sorted(client.list_services()) == sorted(ReflectionClient(direct).list_services())
    service_name = "armonik.api.grpc.v1.versions.Versions"
    client.load_symbol(service_name)
    method = client.service(service_name).methods_by_name["ListVersions"]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = proxied.unary_unary(
        f"/{service_name}/ListVersions",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    answer = json_format.MessageToDict(call(json_format.ParseDict({}, request_class()), timeout=30))
    assert answer == json_format.MessageToDict(Armonik(direct).versions()) and answer["core"]


BAD_OPTIONS = [
    (["proxy", "--target", "nohost"], "--target"),
    (["proxy", "--target", "h:1", "--listen", "h:99999"], "--listen"),
    (["proxy", "--target", "h:1", "--control-port", "-1"], "--control-port"),
    (["proxy", "--target", "h:1", "--max-concurrent-calls", "0"], "--max-concurrent-calls"),
    (["proxy", "--target", "h:1", "--faults", "/nonexistent.yaml"], "--faults"),
    (["proxy", "--target", "h:1", "--fault-seed", "-1"], "--fault-seed"),
    (["proxy", "--target", "h:1", "--target-ca", "/nonexistent.pem"], "--target-ca"),
    (["proxy", "--target", "h:1", "--listen", "0.0.0.0:0"], "--control-token"),
    (["serve", "--faults", "/nonexistent.yaml"], "--faults"),
]


@pytest.mark.parametrize(("args", "option"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_a_bad_proxy_option_is_one_line_naming_it(args: list[str], option: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "protoconform.mockserver", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"protoconform {args[0]}: error: ") and option in last, last
