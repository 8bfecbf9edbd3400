"""A worker written with the official ``armonik.worker`` SDK, attached to ``protoconform serve``.

The worker listens on a Unix socket, as ArmoniK workers do; the server is started
with ``--armonik-worker unix://...`` and the worker's agent channel points at the
server.  The client side uses the official client classes.  Tasks are processed
by the user's code: leaves write their output, a "split" task creates results and
subtasks from inside the task and hands its own output to a joining subtask, a
failing task answers an error, a crashing one is retried.
"""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Output, Result, Task, TaskDefinition, TaskOptions, TaskStatus
from armonik.protogen.worker.worker_service_pb2_grpc import add_WorkerServicer_to_server
from armonik.worker import ArmoniKWorker, ClefLogger, TaskHandler
from protoconform.mockserver.launcher import ServerProcess


def processor(handler: TaskHandler) -> Output:
    """The user's code: what each payload asks for."""
    payload = handler.payload
    if payload.startswith(b"split:"):
        # Two subtasks upper-case the two halves; a third joins them into this task's own output.
        left, right = payload[len(b"split:") :].split(b"|")
        payloads = handler.create_results({"left-in": left, "right-in": right, "join-in": b"join"})
        parts = handler.create_results_metadata(["left-out", "right-out"])
        handler.submit_tasks(
            [
                TaskDefinition(payloads["left-in"].result_id, [parts["left-out"].result_id]),
                TaskDefinition(payloads["right-in"].result_id, [parts["right-out"].result_id]),
                TaskDefinition(
                    payloads["join-in"].result_id,
                    handler.expected_results,
                    data_dependencies=[parts["left-out"].result_id, parts["right-out"].result_id],
                ),
            ]
        )
        return Output()
    if payload == b"join":
        joined = b"+".join(handler.data_dependencies[d] for d in handler.data_dependencies)
        handler.send_results({handler.expected_results[0]: joined})
        return Output()
    if payload == b"fail":
        return Output("the payload asked to fail")
    if payload == b"crash":
        raise RuntimeError("the payload asked to crash")
    handler.send_results({out: payload.upper() for out in handler.expected_results})
    return Output()


@dataclass
class Cluster:
    server: ServerProcess
    channel: grpc.Channel

    @property
    def sessions(self) -> ArmoniKSessions:
        return ArmoniKSessions(self.channel)

    @property
    def results(self) -> ArmoniKResults:
        return ArmoniKResults(self.channel)

    @property
    def tasks(self) -> ArmoniKTasks:
        return ArmoniKTasks(self.channel)

    @property
    def events(self) -> ArmoniKEvents:
        return ArmoniKEvents(self.channel)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="ak-worker-") as folder:
        socket = f"unix://{os.path.join(folder, 'worker.sock')}"
        args = [
            "--api",
            "armonik",
            "--armonik-worker",
            socket,
            "--armonik-data-root",
            os.path.join(folder, "data"),
        ]
        with ServerProcess(args) as server, grpc.insecure_channel(server.grpc_address) as channel:
            # What ArmoniKWorker.start(endpoint) does, keeping the server handle so the test can stop it.
            agent_channel = grpc.insecure_channel(server.grpc_address)
            worker = ArmoniKWorker(
                agent_channel, processor, logger=ClefLogger("worker", level=logging.CRITICAL)
            )
            worker_server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
            add_WorkerServicer_to_server(worker, worker_server)
            worker_server.add_insecure_port(socket)
            worker_server.start()
            try:
                yield Cluster(server, channel)
            finally:
                worker_server.stop(0)
                agent_channel.close()


def options(max_retries: int = 1) -> TaskOptions:
    return TaskOptions(max_duration=datetime.timedelta(seconds=30), priority=1, max_retries=max_retries)


def submit(
    cluster: Cluster, session_id: str, payloads: dict[str, bytes]
) -> tuple[dict[str, str], dict[str, str]]:
    """One task per payload; returns (name -> output id, name -> task id)."""
    inputs = cluster.results.create_results({f"{n}-payload": p for n, p in payloads.items()}, session_id)
    outputs = cluster.results.create_results_metadata([f"{n}-output" for n in payloads], session_id)
    definitions = [
        TaskDefinition(inputs[f"{n}-payload"].result_id, [outputs[f"{n}-output"].result_id]) for n in payloads
    ]
    tasks = cluster.tasks.submit_tasks(session_id, definitions)
    names = list(payloads)
    return (
        {n: outputs[f"{n}-output"].result_id for n in names},
        {n: t.id for n, t in zip(names, tasks, strict=True)},
    )


def test_worker_processes_tasks_and_subtasks(cluster: Cluster) -> None:
    session_id = cluster.sessions.create_session(options())
    outputs, task_ids = submit(cluster, session_id, {"leaf": b"hello", "split": b"split:left|right"})

    cluster.events.wait_for_result_availability(list(outputs.values()), session_id)

    assert cluster.results.download_result_data(outputs["leaf"], session_id) == b"HELLO"
    # The split task's own output was produced by its joining subtask, from the two other subtasks.
    assert cluster.results.download_result_data(outputs["split"], session_id) == b"LEFT+RIGHT"

    split = cluster.tasks.get_task(task_ids["split"])
    assert split.status == TaskStatus.COMPLETED
    total, children = cluster.tasks.list_tasks(Task.created_by == task_ids["split"])
    assert total == 3
    for child in children:
        assert child.status == TaskStatus.COMPLETED
        assert child.session_id == session_id
        assert child.parent_task_ids[-1] == task_ids["split"]
    # Results created from inside the task belong to the session, are COMPLETED and name their creator.
    total, created = cluster.results.list_results(Result.created_by == task_ids["split"])
    assert sorted(r.name for r in created) == ["join-in", "left-in", "left-out", "right-in", "right-out"]
    assert all(r.status == 2 for r in created)  # COMPLETED
    assert (
        cluster.results.download_result_data(
            next(r.result_id for r in created if r.name == "left-out"), session_id
        )
        == b"LEFT"
    )


def test_worker_error_fails_the_task_and_a_crash_is_retried(cluster: Cluster) -> None:
    session_id = cluster.sessions.create_session(options(max_retries=2))
    outputs, task_ids = submit(cluster, session_id, {"bad": b"fail", "boom": b"crash"})

    with pytest.raises(RuntimeError, match="aborted"):
        cluster.events.wait_for_result_availability(outputs["bad"], session_id)
    bad = cluster.tasks.get_task(task_ids["bad"])
    assert bad.status == TaskStatus.ERROR
    assert "the payload asked to fail" in bad.output.error
    assert bad.retry_of_ids == []  # an Output error is not retried

    with pytest.raises(RuntimeError, match="aborted"):
        cluster.events.wait_for_result_availability(outputs["boom"], session_id)
    # max_retries=2: the first attempt and one retry are RETRIED, the last retry is ERROR.
    first = cluster.tasks.get_task(task_ids["boom"])
    assert first.status == TaskStatus.RETRIED
    second = cluster.tasks.get_task(f"{task_ids['boom']}###1")
    assert second.status == TaskStatus.RETRIED
    last = cluster.tasks.get_task(f"{task_ids['boom']}###2")
    assert last.status == TaskStatus.ERROR
    assert last.retry_of_ids == [task_ids["boom"], f"{task_ids['boom']}###1"]
    assert cluster.results.get_result(outputs["boom"]).owner_task_id == last.id
