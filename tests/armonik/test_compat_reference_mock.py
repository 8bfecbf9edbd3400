"""Compatibility mode: the ArmoniK.Api Python test suite's calls and checks, against our server.

Each test below makes the calls one test module of that suite makes, with the
official ``armonik`` client, and asserts the same values and call counts (read
from ``/calls.json`` exactly as that suite reads them).  The only check left out
is the one that reads the ArmoniK.Api repository layout (its versions test reads
``packages/web/package.json``); here the API version is compared with the
installed wheel's.  Counters are reset at the start of each module's replay so
the replays do not depend on each other's order.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from armonik.client import (
    ArmoniKEvents,
    ArmoniKHealthChecks,
    ArmoniKPartitions,
    ArmoniKResults,
    ArmoniKSessions,
    ArmoniKTasks,
    ArmoniKVersions,
    PartitionFieldFilter,
    ResultFieldFilter,
    SessionFieldFilter,
    TaskFieldFilter,
)
from armonik.common import (
    EventTypes,
    NewResultEvent,
    Output,
    Partition,
    Result,
    ResultStatus,
    ServiceHealthCheckStatus,
    Session,
    SessionStatus,
    Task,
    TaskDefinition,
    TaskOptions,
    TaskStatus,
)
from armonik.protogen.common.objects_pb2 import Configuration, Empty
from armonik.protogen.common.worker_common_pb2 import ProcessRequest
from armonik.protogen.worker.agent_service_pb2_grpc import AgentStub
from armonik.worker import ArmoniKWorker, ClefLogger, TaskHandler
from protoconform.mockserver.launcher import ServerProcess


class Mock:
    """The server in compatibility mode, with the suite's two HTTP helpers."""

    def __init__(self, process: ServerProcess) -> None:
        self.process = process
        self.channel = grpc.insecure_channel(process.grpc_address)

    def calls(self) -> dict[str, dict[str, int]]:
        response = requests.get(f"{self.process.http_url}/calls.json", timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        requests.post(f"{self.process.http_url}/reset", timeout=10).raise_for_status()

    def rpc_called(self, service: str, rpc: str, n_calls: int = 1) -> bool:
        return self.calls()[service][rpc] == n_calls

    def all_rpc_called(self, service: str, missings: list[str] | None = None) -> bool:
        # Same rule as the suite: the never-called methods, in /calls.json order, must be exactly `missings`.
        missing = [name for name, count in self.calls()[service].items() if count == 0]
        return not missing or missing == (missings or [])


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    with ServerProcess(["--api", "armonik", "--armonik-compat", "reference-mock"]) as process:
        server = Mock(process)
        yield server
        server.channel.close()


@pytest.fixture
def fresh(mock: Mock) -> Mock:
    mock.reset()
    return mock


@pytest.fixture
def data_folder(tmp_path: Path) -> str:
    # The suite writes these two files into its working directory before any test.
    (tmp_path / "payload-id").write_bytes(b"payload")
    (tmp_path / "dd-id").write_bytes(b"dd")
    return str(tmp_path)


def test_calls_json_shape_and_reset(fresh: Mock) -> None:
    response = requests.get(f"{fresh.process.http_url}/calls.json", timeout=10)
    assert response.headers["Content-Type"].startswith("application/json")
    data = response.json()
    assert list(data) == [
        "Agent",
        "Applications",
        "Authentication",
        "Events",
        "HealthChecks",
        "Partitions",
        "Results",
        "Sessions",
        "Submitter",
        "Tasks",
        "Versions",
    ]
    assert all(count == 0 for methods in data.values() for count in methods.values())
    assert len(data["Submitter"]) == 16 and len(data["Results"]) == 11 and len(data["Agent"]) == 8
    ArmoniKVersions(fresh.channel).list_versions()
    assert fresh.rpc_called("Versions", "ListVersions")
    # POST /calls.json with a body excludes the named methods.
    excluded = requests.post(
        f"{fresh.process.http_url}/calls.json", json={"Results": ["WatchResults"]}, timeout=10
    ).json()
    assert "WatchResults" not in excluded["Results"] and "GetResult" in excluded["Results"]
    fresh.reset()
    assert fresh.calls()["Versions"]["ListVersions"] == 0


def test_events(fresh: Mock) -> None:
    seen: list[NewResultEvent] = []

    def handler(session_id: str, event_type: object, event: object) -> bool:
        assert session_id == "session-id"
        assert event_type == EventTypes.NEW_RESULT
        assert isinstance(event, NewResultEvent)
        assert event.result_id == "result-id"
        assert event.owner_id == "owner-id"
        assert event.status == ResultStatus.CREATED
        seen.append(event)
        return False

    ArmoniKEvents(fresh.channel).get_events("session-id", [EventTypes.TASK_STATUS_UPDATE], [handler])
    assert len(seen) == 1  # one event, then the stream ends
    assert fresh.rpc_called("Events", "GetEvents")
    assert fresh.all_rpc_called("Events")


def test_healthcheck(fresh: Mock) -> None:
    services_health = ArmoniKHealthChecks(fresh.channel).check_health()
    assert fresh.rpc_called("HealthChecks", "CheckHealth")
    assert services_health == {
        "mock": {"message": "Mock is healthy", "status": ServiceHealthCheckStatus.HEALTHY}
    }
    assert fresh.all_rpc_called("HealthChecks")


def test_partitions(fresh: Mock) -> None:
    client = ArmoniKPartitions(fresh.channel)
    partition = client.get_partition("partition-id")
    assert fresh.rpc_called("Partitions", "GetPartition")
    assert isinstance(partition, Partition)
    assert partition.id == "partition-id"
    assert partition.parent_partition_ids == []
    assert partition.pod_reserved == 1
    assert partition.pod_max == 1
    assert partition.pod_configuration == {}
    assert partition.preemption_percentage == 0
    assert partition.priority == 1

    assert client.list_partitions() == (0, [])
    assert fresh.rpc_called("Partitions", "ListPartitions")
    assert client.list_partitions(PartitionFieldFilter.PRIORITY == 1) == (0, [])
    assert fresh.rpc_called("Partitions", "ListPartitions", 2)
    assert fresh.all_rpc_called("Partitions")


def _check_mock_result(result: Result) -> None:
    assert isinstance(result, Result)
    assert result.session_id == "session-id"
    assert result.name == "result-name"
    assert result.owner_task_id == "owner-task-id"
    assert result.status == 2
    assert result.created_at is None
    assert result.completed_at is None
    assert result.result_id == "result-id"
    assert result.size == 0
    assert result.opaque_id == b"opaque-id"


def test_results(fresh: Mock) -> None:
    client = ArmoniKResults(fresh.channel)
    _check_mock_result(client.get_result("result-name"))
    assert fresh.rpc_called("Results", "GetResult")

    assert client.get_owner_task_id(["result-id"], "session-id") == {}
    assert fresh.rpc_called("Results", "GetOwnerTaskId")

    assert client.list_results() == (0, [])
    assert fresh.rpc_called("Results", "ListResults")
    assert client.list_results(ResultFieldFilter.STATUS == ResultStatus.COMPLETED) == (0, [])
    assert fresh.rpc_called("Results", "ListResults", 2)

    assert client.create_results_metadata(["result-name"], "session-id") == {}
    assert fresh.rpc_called("Results", "CreateResultsMetaData")
    assert client.create_results({"result-name": b"test data"}, "session-id") == {}
    assert fresh.rpc_called("Results", "CreateResults")

    chunk_size = client.get_service_config()
    assert fresh.rpc_called("Results", "GetServiceConfiguration")
    assert isinstance(chunk_size, int) and chunk_size == 81920

    assert client.upload_result_data("result-name", "session-id", b"test data") is None
    assert fresh.rpc_called("Results", "UploadResultData")
    assert client.download_result_data("result-name", "session-id") == b""
    assert fresh.rpc_called("Results", "DownloadResultData")
    assert client.delete_result_data(["result-name"], "session-id") is None
    assert fresh.rpc_called("Results", "DeleteResultsData")

    with pytest.raises(NotImplementedError):
        client.watch_results()
    assert fresh.rpc_called("Results", "WatchResults", 0)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert client.get_results_ids("session-id", ["result_1"]) == {}
        assert issubclass(caught[-1].category, DeprecationWarning)
    assert fresh.rpc_called("Results", "CreateResultsMetaData", 2)

    _check_mock_result(client.import_data("session-id", [("result-id", b"opaque-id")])["result-id"])
    assert fresh.rpc_called("Results", "ImportResultsData")
    assert fresh.all_rpc_called("Results", missings=["WatchResults"])


def test_sessions(fresh: Mock) -> None:
    client = ArmoniKSessions(fresh.channel)
    options = TaskOptions(max_duration=datetime.timedelta(seconds=1), priority=1, max_retries=1)
    assert client.create_session(options) == "session-id"
    assert fresh.rpc_called("Sessions", "CreateSession")

    session = client.get_session("session-id")
    assert fresh.rpc_called("Sessions", "GetSession")
    assert isinstance(session, Session)
    assert session.session_id == "session-id"
    assert session.status == SessionStatus.CANCELLED
    assert session.partition_ids == []
    assert session.options == TaskOptions(
        max_duration=datetime.timedelta(0),
        priority=0,
        max_retries=0,
        partition_id="",
        application_name="",
        application_version="",
        application_namespace="",
        application_service="",
        engine_type="",
        options={},
    )
    assert session.created_at is None
    assert session.cancelled_at is None
    assert session.duration == datetime.timedelta(0)

    assert client.list_sessions() == (0, [])
    assert fresh.rpc_called("Sessions", "ListSessions")
    assert client.list_sessions(SessionFieldFilter.STATUS == SessionStatus.RUNNING) == (0, [])
    assert fresh.rpc_called("Sessions", "ListSessions", 2)

    for call, rpc in (
        (client.cancel_session, "CancelSession"),
        (client.pause_session, "PauseSession"),
        (client.resume_session, "ResumeSession"),
        (client.purge_session, "PurgeSession"),
        (client.close_session, "CloseSession"),
        (client.delete_session, "DeleteSession"),
    ):
        call("session-id")
        assert fresh.rpc_called("Sessions", rpc)
    client.stop_submission_session("session-id", True, True)
    assert fresh.rpc_called("Sessions", "StopSubmission")
    assert fresh.all_rpc_called("Sessions")


def _task_handler_request(data_folder: str) -> ProcessRequest:
    return ProcessRequest(
        communication_token="token",
        session_id="session-id",
        task_id="task-id",
        expected_output_keys=["result-id"],
        payload_id="payload-id",
        data_dependencies=["dd-id"],
        data_folder=data_folder,
        configuration=Configuration(data_chunk_max_size=8000),
        task_options=TaskOptions(
            max_duration=datetime.timedelta(seconds=1), priority=1, max_retries=1
        ).to_message(),
    )


def test_taskhandler(fresh: Mock, data_folder: str) -> None:
    request = _task_handler_request(data_folder)
    agent = AgentStub(fresh.channel)

    handler = TaskHandler(request, agent)
    assert handler.session_id == "session-id" and handler.task_id == "task-id"
    assert handler.token == "token"
    assert handler.expected_results == ["result-id"]
    assert handler.configuration == Configuration(data_chunk_max_size=8000)
    assert handler.payload == b"payload"
    assert dict(handler.data_dependencies) == {"dd-id": b"dd"}

    tasks = TaskHandler(request, agent).submit_tasks(
        [TaskDefinition(payload_id="payload-id", expected_output_ids=["result-id"], data_dependencies=[])]
    )
    assert fresh.rpc_called("Agent", "SubmitTasks")
    assert tasks is not None

    TaskHandler(request, agent).send_results({"result-id": b"result data"})
    assert fresh.rpc_called("Agent", "NotifyResultData")
    assert (Path(data_folder) / "result-id").read_bytes() == b"result data"

    assert TaskHandler(request, agent).create_results_metadata(["result-name"]) == {}
    assert fresh.rpc_called("Agent", "CreateResultsMetaData")
    assert TaskHandler(request, agent).create_results({"result-name": b"test data"}) == {}
    assert fresh.rpc_called("Agent", "CreateResults")

    assert fresh.all_rpc_called(
        "Agent", missings=["CreateTask", "GetCommonData", "GetDirectData", "GetResourceData"]
    )


def test_tasks(fresh: Mock) -> None:
    mock_task = Task(
        id="task-id",
        session_id="session-id",
        owner_pod_id="",
        initial_task_id="",
        created_by="",
        parent_task_ids=[],
        data_dependencies=[],
        expected_output_ids=[],
        retry_of_ids=[],
        status=4,
        status_message="",
        options=TaskOptions(
            max_duration=datetime.timedelta(seconds=1),
            priority=1,
            max_retries=1,
            partition_id="partition-id",
            application_name="application-name",
            application_version="application-version",
            application_namespace="application-namespace",
            application_service="application-service",
            engine_type="engine-type",
            options={},
        ),
        created_at=None,
        submitted_at=None,
        received_at=None,
        acquired_at=None,
        fetched_at=None,
        started_at=None,
        processed_at=None,
        ended_at=None,
        pod_ttl=None,
        creation_to_end_duration=datetime.timedelta(0),
        processing_to_end_duration=datetime.timedelta(0),
        received_to_end_duration=datetime.timedelta(0),
        output=Output(error=""),
        pod_hostname="",
        payload_id="",
    )
    client = ArmoniKTasks(fresh.channel)
    task = client.get_task("task-id")
    assert fresh.rpc_called("Tasks", "GetTask")
    assert isinstance(task, Task) and task == mock_task

    assert client.list_tasks() == (1, [mock_task])
    assert fresh.rpc_called("Tasks", "ListTasksDetailed")
    assert client.list_tasks(TaskFieldFilter.STATUS == TaskStatus.COMPLETED) == (1, [mock_task])
    assert fresh.rpc_called("Tasks", "ListTasksDetailed", 2)
    assert client.list_tasks(detailed=False) == (1, [])
    assert fresh.rpc_called("Tasks", "ListTasks")

    assert client.cancel_tasks(["task-id-1", "task-id-2"]) is None
    assert fresh.rpc_called("Tasks", "CancelTasks")
    assert client.get_result_ids(["task-id-1", "task-id-2"]) == {}
    assert fresh.rpc_called("Tasks", "GetResultIds")

    expected_counts = {TaskStatus.COMPLETED: 2, TaskStatus.SUBMITTED: 5}
    assert client.count_tasks_by_status() == expected_counts
    assert fresh.rpc_called("Tasks", "CountTasksByStatus")
    assert client.count_tasks_by_status(TaskFieldFilter.STATUS == TaskStatus.COMPLETED) == expected_counts
    assert fresh.rpc_called("Tasks", "CountTasksByStatus", 2)

    options = TaskOptions(max_duration=datetime.timedelta(seconds=1), priority=1, max_retries=1)
    tasks = client.submit_tasks(
        "session-id",
        [
            TaskDefinition(
                payload_id="payload-id",
                expected_output_ids=["result-id"],
                data_dependencies=[],
                options=options,
            )
        ],
        default_task_options=options,
    )
    assert fresh.rpc_called("Tasks", "SubmitTasks")
    assert tasks is not None
    assert fresh.all_rpc_called("Tasks")


def test_versions(fresh: Mock) -> None:
    versions = ArmoniKVersions(fresh.channel).list_versions()
    assert fresh.rpc_called("Versions", "ListVersions")
    assert versions["core"] == "Unknown"
    # The suite compares with its repository's package version + ".0"; the wheel carries the same version.
    assert versions["api"] == importlib.metadata.version("armonik") + ".0"
    assert fresh.all_rpc_called("Versions")


def _worker(mock: Mock, processor: object) -> ArmoniKWorker:
    return ArmoniKWorker(mock.channel, processor, logger=ClefLogger("TestLogger", level=logging.CRITICAL))


def _output_of(reply: object) -> Output:
    output = reply.output  # type: ignore[attr-defined]
    return Output(output.error.details if output.WhichOneof("type") == "error" else None)


def test_worker(fresh: Mock, data_folder: str) -> None:
    request = _task_handler_request(data_folder)

    def do_nothing(_: TaskHandler) -> Output:
        return Output()

    def throw_error(_: TaskHandler) -> Output:
        raise ValueError("TestError")

    def return_error(_: TaskHandler) -> Output:
        return Output("TestError")

    def return_and_send(handler: TaskHandler) -> Output:
        handler.send_results({handler.expected_results[0]: b"result"})
        return Output()

    worker = _worker(fresh, do_nothing)
    assert _output_of(worker.Process(request, None)).success
    worker.HealthCheck(Empty(), None)

    assert _worker(fresh, throw_error).Process(request, None) is None

    output = _output_of(_worker(fresh, return_error).Process(request, None))
    assert not output.success and output.error == "TestError"

    reply = _worker(fresh, return_and_send).Process(request, None)
    assert reply is not None and _output_of(reply).success
    written = os.path.join(data_folder, request.expected_output_keys[0])
    assert os.path.exists(written) and len(Path(written).read_bytes()) > 0
    assert fresh.rpc_called("Agent", "NotifyResultData")


def test_off_by_default(server_process: ServerProcess) -> None:
    """Without the option the stateful handlers answer and the counting routes are absent."""
    assert requests.get(f"{server_process.http_url}/calls.json", timeout=10).status_code == 404
    with grpc.insecure_channel(server_process.grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as error:
            ArmoniKSessions(channel).get_session("session-id")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
