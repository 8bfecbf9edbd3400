"""The server as a user meets it: install, start, discover, health, bad bytes, shutdown."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from importlib import resources

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protoconform import specs
from protoconform.mockserver.launcher import ServerProcess
from protoconform.specs.registry import default_registry
from tooling import require_tool

# Load every descriptor first: the reflection client below adds what it fetches to the same default pool.
REGISTRY = default_registry()
DOCUMENTED = {
    (s["name"], m["name"])
    for f in ("flyte", "kfp", "armonik")
    for s in specs.load_inventory(f)["services"]
    for m in s["methods"]
}


def test_inventory_has_every_documented_rpc() -> None:
    assert len(DOCUMENTED) == 143
    assert len({service for service, _ in DOCUMENTED}) == 22


def test_console_script_serves_from_any_directory(tmp_path) -> None:
    script = shutil.which("protoconform") or os.path.join(os.path.dirname(sys.executable), "protoconform")
    process = subprocess.Popen(
        [script, "serve", "--port", "0", "--http-port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("protoconform ready grpc=127.0.0.1:"), line
        grpc_address = line.split("grpc=")[1].split()[0]
        with grpc.insecure_channel(grpc_address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0


def test_package_data_travels_with_the_install() -> None:
    assert resources.files("protoconform.specs").joinpath("inventory", "kfp.json").is_file()
    assert resources.files("protoconform.protos").joinpath("backend", "api", "run.proto").is_file()


def test_sigterm_stops_cleanly() -> None:
    process = ServerProcess().start()
    assert process.stop(signal.SIGTERM) == 0


def test_reflection_with_an_independent_client_resolves_every_documented_rpc(server_process) -> None:
    from grpc_requests import Client

    client = Client.get_by_endpoint(server_process.grpc_address)
    served = set(client.service_names)
    for service, method in sorted(DOCUMENTED):
        assert service in served, f"{service} not listed by reflection"
        descriptor = client.get_method_descriptor(service, method)
        documented = next(
            m
            for s in specs.load_inventory(_family(service))["services"]
            if s["name"] == service
            for m in s["methods"]
            if m["name"] == method
        )
        assert descriptor.input_type.full_name == documented["request"], (service, method)
        assert descriptor.output_type.full_name == documented["response"], (service, method)


def _family(service: str) -> str:
    return REGISTRY.family_of_service(service)


@pytest.mark.slow
def test_buf_curl_lists_every_documented_rpc_over_reflection_v1(server_process) -> None:
    require_tool("buf")
    listed = subprocess.run(
        [
            "buf",
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--reflect-protocol",
            "grpc-v1",
            "--list-methods",
            f"http://{server_process.grpc_address}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert {tuple(line.rsplit("/", 1)) for line in listed} >= DOCUMENTED
    # and a real call through it, described by reflection alone
    called = subprocess.run(
        [
            "buf",
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "-d",
            "{}",
            f"http://{server_process.grpc_address}/grpc.health.v1.Health/Check",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(called) == {"status": "SERVING"}


def test_served_methods_cover_the_inventory_and_extras_are_listed(server_process) -> None:
    from grpc_requests import Client

    client = Client.get_by_endpoint(server_process.grpc_address)
    served = {
        (service, method)
        for service in client.service_names
        if not service.startswith("grpc.")
        for method in client.get_methods_meta(service)
    }
    assert DOCUMENTED - served == set()
    extras = sorted(f"{s}.{m}" for s, m in served - DOCUMENTED)
    known = json.loads(resources.files("protoconform.specs").joinpath("drift_known.json").read_text())
    listed = {entry["subject"] for entry in known if entry["kind"] == "undocumented-method"}
    # a whole service beyond the docs (a family's extra_services) is listed once, as a service
    services = {entry["subject"] for entry in known if entry["kind"] == "undocumented-service"}
    listed |= {extra for extra in extras if extra.rpartition(".")[0] in services}
    assert set(extras) == listed, "served methods beyond the docs must be listed in specs/drift_known.json"


def test_health_serving_overall_and_per_service(server_process) -> None:
    with grpc.insecure_channel(server_process.grpc_address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ["", *default_registry().service_names()]:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
        with pytest.raises(grpc.RpcError) as error:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def _call_raw(channel: grpc.Channel, method, body: bytes) -> grpc.RpcError | None:
    """Send raw bytes as the (first) request of any RPC, whatever its streaming shape."""
    factory = getattr(channel, method.kind)  # unary_unary, unary_stream, stream_unary, stream_stream
    try:
        call = factory(method.path)(iter([body]) if method.client_streaming else body, timeout=10)
        if method.server_streaming:
            next(iter(call), None)
            call.cancel()
    except grpc.RpcError as error:
        return error
    return None


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=st.binary(min_size=1, max_size=64))
def test_malformed_bodies_get_a_clear_status_and_the_server_keeps_serving(server_process, noise) -> None:
    registry = default_registry()
    # A truncated length-delimited field is never valid protobuf, whatever follows it.
    body = b"\x0a\x7f" + noise[:0x7E]
    with grpc.insecure_channel(server_process.grpc_address) as channel:
        for method in registry.methods():
            error = _call_raw(channel, method, body)
            assert error is not None, f"{method.path} accepted a malformed body"
            assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL), method.path
            assert method.request_type in (error.details() or ""), method.path
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_help_is_complete() -> None:
    from protoconform.mockserver.cli import SUBCOMMANDS

    def helptext(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "protoconform.mockserver", *args, "--help"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    top = helptext()
    texts = {name: helptext(name) for name in SUBCOMMANDS}
    for name, text in texts.items():
        assert name in top
        assert "usage: protoconform" in text
    version = subprocess.run(
        [sys.executable, "-m", "protoconform.mockserver", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert version.startswith("protoconform ") and "flyteidl" in version and "armonik" in version
    serve = texts["serve"]
    for option in ("--host", "--port", "--http-port", "--api", "--log-level", "--clock-speed"):
        assert option in serve


def test_a_busy_port_is_a_one_line_error_not_a_shared_port(server_process) -> None:
    for taken in (
        ["--port", server_process.grpc_address.rsplit(":", 1)[1], "--http-port", "0"],
        ["--port", "0", "--http-port", server_process.http_address.rsplit(":", 1)[1]],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "protoconform.mockserver", "serve", *taken],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert "protoconform ready" not in done.stdout
        assert "protoconform: cannot start: cannot listen for" in done.stderr
        assert "Traceback" not in done.stderr


def test_every_served_method_has_a_handler_so_the_unimplemented_fallback_is_unreachable() -> None:
    import importlib

    from protoconform.mockserver import rpc
    from protoconform.specs.families import TABLE

    for family in TABLE.values():
        importlib.import_module(family.handlers_module)  # registering the handlers
    methods = list(default_registry().methods())
    assert len(methods) >= 149
    assert [m.path for m in methods if rpc.lookup(m.path, rpc.DEFAULT_VARIANT) is None] == []
