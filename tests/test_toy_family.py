"""A family added through the family table alone: its own .proto, specs and handlers, in tests/toy/.

``PROTOCONFORM_FAMILIES=toy_family`` adds one table entry; nothing generic is
edited.  The toy is then served with reflection, health and REST, its shape
rules are enforced by the dispatcher (its handlers do not check them), it
appears in the OpenAPI, and ``protoconform check --api toy`` passes — and fails
once its handler breaks a rule.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from protoconform.mockserver.launcher import ServerProcess

TOY = Path(__file__).parent / "toy"


@pytest.fixture(scope="module")
def toy_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment that adds the toy family: its descriptors compiled here, its modules importable."""
    import grpc_tools
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("toy") / "toy.binpb"
    spec = importlib.util.find_spec("google.api.annotations_pb2")
    assert spec is not None and spec.origin is not None
    includes = [TOY, Path(grpc_tools.__file__).parent / "_proto", Path(spec.origin).parents[2]]
    args = ["protoc", *(f"--proto_path={d}" for d in includes), f"--descriptor_set_out={out}"]
    assert protoc.main([*args, "--include_imports", str(TOY / "toy.proto")]) == 0
    return {
        "PROTOCONFORM_FAMILIES": "toy_family",
        "TOY_DESCRIPTOR_SET": str(out),
        "PYTHONPATH": os.pathsep.join([str(TOY), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.fixture(scope="module")
def toy_server(toy_env: dict[str, str]) -> Iterator[ServerProcess]:
    with ServerProcess(["--api", "toy", "--clock-speed", "0"], env=toy_env) as server:
        yield server


def _toy_classes(descriptor_set: str) -> dict[str, type]:
    pool = descriptor_pool.DescriptorPool()
    for file_proto in descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_set).read_bytes()).file:
        pool.Add(file_proto)
    names = ("Toy", "CreateToyRequest", "GetToyRequest")
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"toy.v1.{n}")) for n in names}


def _stub(channel: grpc.Channel, method: str, response: type) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        f"/toy.v1.Toys/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString,
    )


def test_served_with_reflection_and_health(toy_server: ServerProcess) -> None:
    with grpc.insecure_channel(toy_server.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="toy.v1.Toys"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        listed = {s.name for answer in answers for s in answer.list_services_response.service}
        assert "toy.v1.Toys" in listed


def test_shape_rules_enforced_by_the_dispatcher(toy_server: ServerProcess, toy_env: dict[str, str]) -> None:
    classes = _toy_classes(toy_env["TOY_DESCRIPTOR_SET"])
    with grpc.insecure_channel(toy_server.grpc_address) as channel:
        create = _stub(channel, "CreateToy", classes["Toy"])
        for request, field in [({"size": 3}, "name"), ({"name": "big", "size": 11}, "size")]:
            with pytest.raises(grpc.RpcError) as refused:
                create(classes["CreateToyRequest"](**request), timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert refused.value.details().startswith(f"{field}: ")
        assert create(classes["CreateToyRequest"](name="ball", size=2), timeout=5).size == 2


def test_rest_and_openapi(toy_server: ServerProcess) -> None:
    created = requests.post(f"{toy_server.http_url}/toy/v1/toys", json={"name": "kite", "size": 4}, timeout=5)
    assert created.status_code == 200, created.text
    fetched = requests.get(f"{toy_server.http_url}/toy/v1/toys/kite", timeout=5)
    assert fetched.json() == {"name": "kite", "size": 4}
    document = requests.get(f"{toy_server.http_url}/openapi/toy.json", timeout=5)
    assert document.status_code == 200
    assert "/toy/v1/toys/{name}" in document.json()["paths"]


def _check(server: ServerProcess, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "protoconform.mockserver", "check", "--api", "toy",
        "--target", server.grpc_address, "--rest", server.http_url, "--control", server.http_url,
        "--json", str(tmp_path / "check.json"),
    ]  # fmt: skip
    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False
    )


def test_check_passes_on_the_toy(toy_server: ServerProcess, toy_env: dict[str, str], tmp_path: Path) -> None:
    result = _check(toy_server, toy_env, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "toy.get.not-found" in (tmp_path / "check.json").read_text()


def test_check_fails_when_the_handler_breaks_a_rule(toy_env: dict[str, str], tmp_path: Path) -> None:
    args = ["--api", "toy", "--clock-speed", "0", "--defect", "toy.get-wrong-status"]
    with ServerProcess(args, env=toy_env) as broken:
        result = _check(broken, toy_env, tmp_path)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "toy.get.not-found" in result.stdout
