"""Helpers for the ArmoniK tests: servers on ephemeral ports, stubs of the official package."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from armonik.protogen.client import (
    applications_service_pb2_grpc,
    auth_service_pb2_grpc,
    events_service_pb2_grpc,
    health_checks_service_pb2_grpc,
    partitions_service_pb2_grpc,
    results_service_pb2_grpc,
    sessions_service_pb2_grpc,
    tasks_service_pb2_grpc,
    versions_service_pb2_grpc,
)
from armonik.protogen.common import objects_pb2, results_common_pb2, sessions_common_pb2, tasks_common_pb2
from google.protobuf.duration_pb2 import Duration
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer

# Whole virtual seconds per step, so tests can step the manual clock through a lifecycle.
STEP_OPTIONS = {"dispatch_delay": 1.0, "start_delay": 1.0, "processing_time": 1.0, "cancel_delay": 1.0}


@contextmanager
def manual_server(**options: Any) -> Iterator[ThreadedServer]:
    """An in-process ArmoniK-only server on a manual clock (time moves only with :func:`advance`)."""
    config = ServerConfig(
        families=("armonik",),
        clock_speed=0,
        grace_seconds=0.2,
        family_options={"armonik": {**STEP_OPTIONS, **options}},
    )
    with ThreadedServer(config) as server:
        yield server


@contextmanager
def servicer_port(add: Callable[[Any, grpc.Server], None], servicer: Any, max_workers: int) -> Iterator[int]:
    """``servicer`` served on an ephemeral loopback port (``add`` is its ``add_*_to_server``)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


def advance(server: ThreadedServer, seconds: float) -> None:
    server.run(lambda: server.server.clock.advance(seconds))


def state(server: ThreadedServer) -> Any:
    return server.server.states["armonik"]


@dataclass
class Stubs:
    channel: grpc.Channel

    def __post_init__(self) -> None:
        self.sessions = sessions_service_pb2_grpc.SessionsStub(self.channel)
        self.results = results_service_pb2_grpc.ResultsStub(self.channel)
        self.tasks = tasks_service_pb2_grpc.TasksStub(self.channel)
        self.events = events_service_pb2_grpc.EventsStub(self.channel)
        self.partitions = partitions_service_pb2_grpc.PartitionsStub(self.channel)
        self.applications = applications_service_pb2_grpc.ApplicationsStub(self.channel)
        self.versions = versions_service_pb2_grpc.VersionsStub(self.channel)
        self.health = health_checks_service_pb2_grpc.HealthChecksServiceStub(self.channel)
        self.auth = auth_service_pb2_grpc.AuthenticationStub(self.channel)


def task_options(
    max_retries: int = 1,
    priority: int = 1,
    seconds: int = 60,
    options: dict[str, str] | None = None,
    **fields: Any,
) -> objects_pb2.TaskOptions:
    return objects_pb2.TaskOptions(
        max_duration=Duration(seconds=seconds),
        max_retries=max_retries,
        priority=priority,
        options=options or {},
        **fields,
    )


def client_options(**fields: Any) -> Any:
    """Task options of the official client's object model."""
    from armonik.common import TaskOptions

    return TaskOptions(max_duration=datetime.timedelta(seconds=60), priority=1, max_retries=1, **fields)


def create_session(stubs: Stubs, partitions: list[str] | None = None, **option_fields: Any) -> str:
    request = sessions_common_pb2.CreateSessionRequest(
        default_task_option=task_options(**option_fields), partition_ids=partitions or []
    )
    return stubs.sessions.CreateSession(request).session_id


def create_data(stubs: Stubs, session_id: str, **named: bytes) -> dict[str, str]:
    """Results holding data, by name -> id."""
    reply = stubs.results.CreateResults(
        results_common_pb2.CreateResultsRequest(
            session_id=session_id,
            results=[
                results_common_pb2.CreateResultsRequest.ResultCreate(name=n, data=d) for n, d in named.items()
            ],
        )
    )
    return {r.name: r.result_id for r in reply.results}


def create_metadata(stubs: Stubs, session_id: str, *names: str) -> dict[str, str]:
    reply = stubs.results.CreateResultsMetaData(
        results_common_pb2.CreateResultsMetaDataRequest(
            session_id=session_id,
            results=[results_common_pb2.CreateResultsMetaDataRequest.ResultCreate(name=n) for n in names],
        )
    )
    return {r.name: r.result_id for r in reply.results}


def submit(
    stubs: Stubs,
    session_id: str,
    payload: str,
    outputs: list[str],
    deps: list[str] | None = None,
    options: objects_pb2.TaskOptions | None = None,
) -> str:
    creation = tasks_common_pb2.SubmitTasksRequest.TaskCreation(
        payload_id=payload, expected_output_keys=outputs, data_dependencies=deps or []
    )
    if options is not None:
        creation.task_options.CopyFrom(options)
    reply = stubs.tasks.SubmitTasks(
        tasks_common_pb2.SubmitTasksRequest(session_id=session_id, task_creations=[creation])
    )
    return reply.task_infos[0].task_id


def task_status(stubs: Stubs, task_id: str) -> int:
    return stubs.tasks.GetTask(tasks_common_pb2.GetTaskRequest(task_id=task_id)).task.status


def result_status(stubs: Stubs, result_id: str) -> int:
    return stubs.results.GetResult(results_common_pb2.GetResultRequest(result_id=result_id)).result.status


def download(stubs: Stubs, session_id: str, result_id: str) -> bytes:
    request = results_common_pb2.DownloadResultDataRequest(session_id=session_id, result_id=result_id)
    return b"".join(chunk.data_chunk for chunk in stubs.results.DownloadResultData(request))


def rpc_error(call: Any, *args: Any) -> grpc.RpcError:
    """The RpcError a call raises (fails the test when it succeeds)."""
    try:
        reply = call(*args)
        if hasattr(reply, "__iter__") and not hasattr(reply, "DESCRIPTOR"):
            list(reply)
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"{call} succeeded")
