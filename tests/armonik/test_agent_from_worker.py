"""Routing a partition's tasks to a worker: the partition key ``worker=`` and the control API.

A small worker of the test records the ``Process`` calls it gets and answers ``Output.ok``;
the server runs on a manual clock, so each task is dispatched when the test moves time on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import requests
from akutil import (
    Stubs,
    advance,
    create_data,
    create_session,
    servicer_port,
    submit,
    task_status,
)
from armonik.protogen.common import objects_pb2, partitions_common_pb2
from armonik.protogen.common.task_status_pb2 import TaskStatus as TS
from armonik.protogen.common.worker_common_pb2 import HealthCheckReply, ProcessReply, ProcessRequest
from armonik.protogen.worker.worker_service_pb2_grpc import WorkerServicer, add_WorkerServicer_to_server
from protoconform.conformance.control import ControlClient, ControlError
from protoconform.mockserver.apis.armonik import options_from_args
from protoconform.mockserver.apis.armonik.options import PartitionSpec, parse
from protoconform.mockserver.launcher import ThreadedServer


class RecordingWorker(WorkerServicer):
    def __init__(self) -> None:
        self.tasks: list[str] = []
        self.lock = threading.Lock()

    def Process(self, request: ProcessRequest, context: grpc.ServicerContext) -> ProcessReply:
        with self.lock:
            self.tasks.append(request.task_id)
        return ProcessReply(output=objects_pb2.Output(ok=objects_pb2.Empty()))

    def HealthCheck(self, request: objects_pb2.Empty, context: grpc.ServicerContext) -> HealthCheckReply:
        return HealthCheckReply(status=HealthCheckReply.SERVING)


@pytest.fixture(scope="module")
def worker() -> Iterator[tuple[RecordingWorker, str]]:
    servicer = RecordingWorker()
    with servicer_port(add_WorkerServicer_to_server, servicer, max_workers=4) as port:
        yield servicer, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server_options(worker: tuple[RecordingWorker, str]) -> dict[str, Any]:
    return {"partitions": ["default", f"configured:worker={worker[1]}"]}


@pytest.fixture
def control(server: ThreadedServer, fresh_channel: grpc.Channel) -> Iterator[ControlClient]:
    client = ControlClient(server.http_url)
    yield client
    client.close()


def wait_for(condition: Callable[[], bool], what: str, server: ThreadedServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        advance(server, 1.0)
        time.sleep(0.02)


def run_task(stubs: Stubs, server: ThreadedServer, partition: str) -> str:
    """Submit a task to ``partition`` and step the clock until it ends; its id."""
    session = create_session(stubs, partitions=[partition], partition_id=partition)
    payload = create_data(stubs, session, payload=b"x")["payload"]
    task = submit(stubs, session, payload, [])
    final = {TS.TASK_STATUS_COMPLETED, TS.TASK_STATUS_ERROR, TS.TASK_STATUS_RETRIED}
    wait_for(lambda: task_status(stubs, task) in final, f"task {task} to end", server)
    return task


def test_partition_worker_key() -> None:
    spec = PartitionSpec.parse("gpu:priority=2,worker=127.0.0.1:7000")
    assert (spec.id, spec.priority, spec.worker) == ("gpu", 2, "127.0.0.1:7000")
    assert PartitionSpec.parse("local:worker=unix:///tmp/worker.sock").worker == "unix:///tmp/worker.sock"
    assert PartitionSpec.parse("plain").worker == ""
    with pytest.raises(ValueError, match="worker: 'nowhere' is not HOST:PORT"):
        PartitionSpec.parse("gpu:worker=nowhere")
    assert parse({"partitions": ["a:worker=127.0.0.1:9"]}).partitions[0].worker == "127.0.0.1:9"


def test_partition_worker_on_the_command_line() -> None:
    from protoconform.mockserver.cli import build_parser

    args = build_parser().parse_args(
        ["serve", "--armonik-partition", "default", "--armonik-partition", "agentcheck:worker=127.0.0.1:7000"]
    )
    assert options_from_args(args)["partitions"] == ["default", "agentcheck:worker=127.0.0.1:7000"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--armonik-partition", "agentcheck:worker=:x"])


def test_a_configured_partition_goes_to_its_worker_only(
    server: ThreadedServer, stubs: Stubs, worker: tuple[RecordingWorker, str]
) -> None:
    recorder = worker[0]
    routed = run_task(stubs, server, "configured")
    elsewhere = run_task(stubs, server, "default")
    assert task_status(stubs, routed) == TS.TASK_STATUS_COMPLETED
    assert task_status(stubs, elsewhere) == TS.TASK_STATUS_COMPLETED  # the built-in processing
    assert routed in recorder.tasks and elsewhere not in recorder.tasks


def test_control_routes_a_partition_at_run_time(
    server: ThreadedServer, stubs: Stubs, control: ControlClient, worker: tuple[RecordingWorker, str]
) -> None:
    recorder, address = worker
    answer = control.route_armonik_worker("late", address)
    assert answer["workers"]["late"] == {"address": address, "set_by": "control"}
    assert answer["workers"]["configured"] == {"address": address, "set_by": "option"}
    # the partition did not exist: it was created, so sessions can name it
    request = partitions_common_pb2.GetPartitionRequest(id="late")
    assert stubs.partitions.GetPartition(request).partition.id == "late"
    routed = run_task(stubs, server, "late")
    assert routed in recorder.tasks
    assert "late" not in control.unroute_armonik_worker("late")["workers"]
    after = run_task(stubs, server, "late")
    assert task_status(stubs, after) == TS.TASK_STATUS_COMPLETED and after not in recorder.tasks
    with pytest.raises(ControlError, match="404"):
        control.unroute_armonik_worker("late")  # nothing routed there at run time any more
    with pytest.raises(ControlError, match="404"):
        control.unroute_armonik_worker("configured")  # a route of the options is not the control API's
    listed = [line for line in control.info()["endpoints"] if "/control/armonik/" in line]
    assert any(line.startswith("PUT /control/armonik/workers/{partition}") for line in listed)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"address": "10.1.2.3:50051"}, "is not on this machine"),
        ({"address": "example.org:50051"}, "is not on this machine"),
        ({"address": "127.0.0.1"}, "is not HOST:PORT"),
        ({"address": "127.0.0.1:70000"}, "is not HOST:PORT"),
        ({"address": ""}, "wants a string"),
        ({"address": 50051}, "wants a string"),
        ({}, "wants a string"),
        ({"address": "unix:///var/run/some.sock"}, "routes only to loopback HOST:PORT"),
    ],
)
def test_control_routes_only_to_this_machine(
    server: ThreadedServer, fresh_channel: Any, body: Any, named: str
) -> None:
    url = f"{server.http_url}/control/armonik/workers/elsewhere"
    reply = requests.put(url, json=body, timeout=10)
    assert reply.status_code == 400
    assert reply.text.startswith("address: ") and named in reply.text
    for path in ("worker-agent",):
        refused = requests.put(f"{server.http_url}/control/armonik/{path}", json=body, timeout=10)
        assert refused.status_code == 400 and refused.text.startswith("address: ")
    state = requests.get(f"{server.http_url}/control/armonik/workers", timeout=10).json()
    assert (
        "elsewhere" not in state["workers"] and state["worker_agent"] == ""
    )  # a refused call changes nothing


def test_control_accepts_loopback_addresses(control: ControlClient) -> None:
    for address in ("127.0.0.1:9", "127.8.9.10:9", "localhost:9", "[::1]:9"):
        assert control.route_armonik_worker("p", address)["workers"]["p"]["address"] == address
    assert control.set_armonik_worker_agent("localhost:9")["worker_agent"] == "localhost:9"
    assert control.clear_armonik_worker_agent()["worker_agent"] == ""


def test_routes_set_at_run_time_are_bounded(control: ControlClient) -> None:
    from protoconform.mockserver.apis.armonik.attach import MAX_RUNTIME_ROUTES

    for index in range(MAX_RUNTIME_ROUTES):
        control.route_armonik_worker(f"bounded-{index}", "127.0.0.1:9")
    with pytest.raises(ControlError, match="at most"):
        control.route_armonik_worker("one-too-many", "127.0.0.1:9")
    control.route_armonik_worker("bounded-0", "127.0.0.1:10")  # changing a route stays possible


def test_a_partition_id_is_checked(server: ThreadedServer, fresh_channel: Any) -> None:
    reply = requests.put(
        f"{server.http_url}/control/armonik/workers/{'x' * 300}", json={"address": "127.0.0.1:9"}, timeout=10
    )
    assert reply.status_code == 400 and reply.text.startswith("partition: ")


def test_a_reset_drops_the_routes_set_at_run_time(
    server: ThreadedServer, stubs: Stubs, control: ControlClient, worker: tuple[RecordingWorker, str]
) -> None:
    control.route_armonik_worker("temporary", worker[1])
    control.set_armonik_worker_agent(worker[1])
    control.reset()
    after = control.armonik_workers()
    assert after["workers"] == {"configured": {"address": worker[1], "set_by": "option"}}
    assert after["worker_agent"] == ""
    with pytest.raises(grpc.RpcError) as missing:
        stubs.partitions.GetPartition(partitions_common_pb2.GetPartitionRequest(id="temporary"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
