"""The built-in Worker service: what an agent implementation sees when it drives it.

The test plays the agent: it prepares a data folder inside the server's data
root (``--armonik-data-root``), calls ``Worker.Process`` on the server, and
serves a small Agent of its own that records the ``NotifyResultData`` calls the
worker makes (``--armonik-worker-agent``).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from akutil import (
    Stubs,
    advance,
    create_data,
    create_metadata,
    create_session,
    download,
    rpc_error,
    servicer_port,
    submit,
    task_options,
)
from armonik.protogen.common import agent_common_pb2 as ag
from armonik.protogen.common.objects_pb2 import Configuration, Empty
from armonik.protogen.common.worker_common_pb2 import HealthCheckReply, ProcessRequest
from armonik.protogen.worker.agent_service_pb2_grpc import AgentServicer, add_AgentServicer_to_server
from armonik.protogen.worker.worker_service_pb2_grpc import WorkerStub
from protoconform.mockserver.launcher import ThreadedServer


class RecordingAgent(AgentServicer):
    def __init__(self) -> None:
        self.notified: list[ag.NotifyResultDataRequest] = []

    def NotifyResultData(
        self, request: ag.NotifyResultDataRequest, context: grpc.ServicerContext
    ) -> ag.NotifyResultDataResponse:
        if request.communication_token == "refused":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Wrong communication token")
        self.notified.append(request)
        return ag.NotifyResultDataResponse(result_ids=[i.result_id for i in request.ids])


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[RecordingAgent, int]]:
    servicer = RecordingAgent()
    with servicer_port(add_AgentServicer_to_server, servicer, max_workers=4) as port:
        yield servicer, port


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data-root")


@pytest.fixture(scope="module")
def server_options(agent: tuple[RecordingAgent, int], data_root: Path) -> dict[str, Any]:
    return {"agent_address": f"127.0.0.1:{agent[1]}", "data_root": str(data_root)}


@pytest.fixture
def folder(data_root: Path) -> Path:
    """A fresh data folder inside the server's data root."""
    return Path(tempfile.mkdtemp(dir=data_root))


@pytest.fixture
def worker(fresh_channel: grpc.Channel, agent: tuple[RecordingAgent, int]) -> WorkerStub:
    agent[0].notified.clear()
    return WorkerStub(fresh_channel)


def process_request(
    folder: Path, token: str = "token-1", task_id: str = "task-1", **options: str
) -> ProcessRequest:
    (folder / "payload").write_bytes(b"payload;")
    (folder / "dep-a").write_bytes(b"A;")
    (folder / "dep-b").write_bytes(b"B;")
    return ProcessRequest(
        communication_token=token,
        session_id="session-1",
        task_id=task_id,
        task_options=task_options(options={"mock.duration": "0", **options}),
        expected_output_keys=["out-1", "out-2"],
        payload_id="payload",
        data_dependencies=["dep-a", "dep-b"],
        data_folder=str(folder),
        configuration=Configuration(data_chunk_max_size=1024),
    )


def test_health_check(worker: WorkerStub) -> None:
    assert worker.HealthCheck(Empty()).status == HealthCheckReply.SERVING


def test_process_writes_outputs_and_notifies_the_agent(
    worker: WorkerStub, agent: tuple[RecordingAgent, int], folder: Path
) -> None:
    reply = worker.Process(process_request(folder))
    assert reply.output.WhichOneof("type") == "ok"
    for output in ("out-1", "out-2"):
        assert (folder / output).read_bytes() == b"payload;A;B;"
    [notify] = agent[0].notified
    assert notify.communication_token == "token-1"
    assert [(i.session_id, i.result_id) for i in notify.ids] == [
        ("session-1", "out-1"),
        ("session-1", "out-2"),
    ]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("payload", b"payload;"),
        ("concat", b"payload;A;B;"),
        ("sha256", hashlib.sha256(b"payload;A;B;").hexdigest().encode()),
    ],
)
def test_output_modes(worker: WorkerStub, folder: Path, mode: str, expected: bytes) -> None:
    worker.Process(process_request(folder, **{"mock.output": mode}))
    assert (folder / "out-1").read_bytes() == expected


def test_same_outputs_as_the_engine(server: ThreadedServer, worker: WorkerStub, folder: Path) -> None:
    """A task run by the engine's built-in processing and the Worker service compute the same bytes."""
    with grpc.insecure_channel(server.grpc_address) as channel:
        stubs = Stubs(channel)
        sid = create_session(stubs)
        data = create_data(stubs, sid, payload=b"payload;", a=b"A;", b=b"B;")
        out = create_metadata(stubs, sid, "out")["out"]
        submit(
            stubs,
            sid,
            data["payload"],
            [out],
            deps=[data["a"], data["b"]],
            options=task_options(options={"mock.output": "sha256"}),
        )
        advance(server, 3.0)
        from_engine = download(stubs, sid, out)
    worker.Process(process_request(folder, **{"mock.output": "sha256"}))
    assert (folder / "out-1").read_bytes() == from_engine


def test_failures_on_request(worker: WorkerStub, folder: Path) -> None:
    reply = worker.Process(process_request(folder, **{"mock.fail": "error"}))
    assert reply.output.WhichOneof("type") == "error"
    assert "mock.fail=error" in reply.output.error.details
    assert not (folder / "out-1").exists()

    error = rpc_error(worker.Process, process_request(folder, **{"mock.fail": "crash"}))
    assert error.code() == grpc.StatusCode.UNKNOWN and error.details().startswith("task_options.options:")

    # Only the first attempt fails: the retry "<id>###1" succeeds.
    once = {"mock.fail": "crash", "mock.fail_attempts": "1"}
    assert rpc_error(worker.Process, process_request(folder, **once)).code() == grpc.StatusCode.UNKNOWN
    reply = worker.Process(process_request(folder, task_id="task-1###1", **once))
    assert reply.output.WhichOneof("type") == "ok"


def test_processing_time_runs_on_the_virtual_clock(
    server: ThreadedServer, worker: WorkerStub, folder: Path
) -> None:
    call: Any = worker.Process.future(process_request(folder, **{"mock.duration": "5"}))
    time.sleep(0.3)
    assert not call.done()  # the manual clock has not moved
    advance(server, 5.0)
    assert call.result(timeout=10).output.WhichOneof("type") == "ok"


def test_bad_input(worker: WorkerStub, agent: tuple[RecordingAgent, int], folder: Path) -> None:
    request = process_request(folder)
    request.data_folder = ""
    error = rpc_error(worker.Process, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("data_folder:")

    request = process_request(folder)
    (folder / "payload").unlink()
    error = rpc_error(worker.Process, request)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and error.details().startswith("payload_id:")

    request = process_request(folder)
    (folder / "dep-b").unlink()
    error = rpc_error(worker.Process, request)
    assert error.details().startswith("data_dependencies[1]:")
    assert not (folder / "out-1").exists() and agent[0].notified == []

    # The agent refusing the notification fails the call like a crashed worker.
    error = rpc_error(worker.Process, process_request(folder, token="refused"))
    assert error.code() == grpc.StatusCode.UNKNOWN
    assert (
        error.details().startswith("communication_token:") and "Wrong communication token" in error.details()
    )


def test_command_line_options() -> None:
    from protoconform.mockserver.apis.armonik.options import parse
    from protoconform.mockserver.cli import build_parser, config_from_args

    args = build_parser().parse_args(
        ["serve", "--armonik-worker", "unix:///tmp/w.sock", "--armonik-worker-agent", "127.0.0.1:5001"]
    )
    options = parse(config_from_args(args).options("armonik"))
    assert options.worker_address == "unix:///tmp/w.sock"
    assert options.extra["agent_address"] == "127.0.0.1:5001"
    assert options.data_root == ""  # a private temporary folder
    for flag in ("--armonik-data-root", "--armonik-data-folder"):  # the second is an alias
        args = build_parser().parse_args(["serve", flag, "/srv/ak"])
        assert parse(config_from_args(args).options("armonik")).data_root == "/srv/ak"
