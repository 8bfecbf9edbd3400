"""Bad input: unknown ids, results of another session, misordered and oversized upload chunks,
malformed filters and list requests.  Each gets its status and a message naming the field, and
what is stored is the same afterwards (listed before and after)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from akutil import Stubs
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Direction, Result, Session, Task, TaskDefinition, TaskOptions
from armonik.common.filter import ResultFilter, SessionFilter, TaskFilter
from armonik.protogen.common import filters_common_pb2 as fc
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from armonik.protogen.common import tasks_filters_pb2 as tflt
from protoconform.mockserver.launcher import ServerProcess

CHUNK = 1024
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@dataclass
class World:
    channel: grpc.Channel
    sessions: ArmoniKSessions
    results: ArmoniKResults
    tasks: ArmoniKTasks
    stubs: Stubs
    session_a: str
    session_b: str
    payload_a: str
    output_a: str
    payload_b: str
    task_a: str

    def snapshot(self) -> dict[str, Any]:
        """Everything stored, as the client lists it."""
        _, sessions = self.sessions.list_sessions(
            SessionFilter(), page_size=100, sort_field=Session.session_id
        )
        _, tasks = self.tasks.list_tasks(TaskFilter(), page_size=1000, sort_field=Task.id, detailed=True)
        _, results = self.results.list_results(ResultFilter(), page_size=1000, sort_field=Result.result_id)
        return {
            "sessions": [(s.session_id, s.status, s.client_submission) for s in sessions],
            "tasks": [(t.id, t.status, tuple(t.expected_output_ids)) for t in tasks],
            "results": [(r.result_id, r.status, r.size, r.owner_task_id) for r in results],
            "data": {
                r.result_id: self.results.download_result_data(r.result_id, r.session_id)
                for r in results
                if r.status == 2
            },
        }


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    args = ["--api", "armonik", "--armonik-chunk-size", str(CHUNK)]
    with ServerProcess(args) as server, grpc.insecure_channel(server.grpc_address) as channel:
        sessions, results, tasks = (
            ArmoniKSessions(channel),
            ArmoniKResults(channel),
            ArmoniKTasks(channel),
        )
        options = TaskOptions(max_duration=datetime.timedelta(seconds=30), priority=1, max_retries=1)
        a, b = sessions.create_session(options), sessions.create_session(options)
        payload_a = results.create_results({"payload": b"A" * 3000}, a)["payload"].result_id
        output_a = results.create_results_metadata(["output"], a)["output"].result_id
        payload_b = results.create_results({"payload": b"B"}, b)["payload"].result_id
        waiting = results.create_results_metadata(["never"], a)["never"].result_id
        task_a = tasks.submit_tasks(
            a,
            [
                TaskDefinition(
                    payload_id=payload_a, expected_output_ids=[output_a], data_dependencies=[waiting]
                )
            ],
        )[0].id
        yield World(
            channel,
            sessions,
            results,
            tasks,
            Stubs(channel),
            a,
            b,
            payload_a,
            output_a,
            payload_b,
            task_a,
        )


def check_refused(world: World, code: grpc.StatusCode, field: str, call, *args: Any, **kwargs: Any) -> str:
    before = world.snapshot()
    with pytest.raises(grpc.RpcError) as info:
        reply = call(*args, **kwargs)
        if hasattr(reply, "__next__"):
            list(reply)
    error = info.value
    assert error.code() == code, error.details()
    assert error.details().startswith(field), error.details()
    assert world.snapshot() == before
    return error.details()


def test_the_upload_the_client_makes_is_chunked_by_the_announced_size(world: World) -> None:
    assert world.results.get_service_config() == CHUNK
    chunks = list(
        world.stubs.results.DownloadResultData(
            rc.DownloadResultDataRequest(session_id=world.session_a, result_id=world.payload_a)
        )
    )
    assert [len(c.data_chunk) for c in chunks] == [CHUNK, CHUNK, 3000 - 2 * CHUNK]


def test_unknown_ids(world: World) -> None:
    check_refused(world, NOT_FOUND, "session_id: session 'nope'", world.sessions.get_session, "nope")
    check_refused(world, NOT_FOUND, "session_id", world.sessions.cancel_session, "nope")
    check_refused(world, NOT_FOUND, "session_id", world.results.create_results_metadata, ["x"], "nope")
    check_refused(world, NOT_FOUND, "session_id", world.results.create_results, {"x": b"1"}, "nope")
    check_refused(
        world,
        NOT_FOUND,
        "session_id",
        world.tasks.submit_tasks,
        "nope",
        [TaskDefinition(payload_id=world.payload_a, expected_output_ids=[world.output_a])],
    )
    check_refused(world, NOT_FOUND, "result_id: result 'nope'", world.results.get_result, "nope")
    check_refused(world, NOT_FOUND, "result_id", world.results.download_result_data, "nope", world.session_a)
    check_refused(
        world, NOT_FOUND, "id.result_id", world.results.upload_result_data, "nope", world.session_a, b"x"
    )
    check_refused(world, NOT_FOUND, "task_id: task 'nope'", world.tasks.get_task, "nope")
    check_refused(
        world,
        NOT_FOUND,
        "task_creations[1].payload_id: result 'nope'",
        world.tasks.submit_tasks,
        world.session_a,
        [
            TaskDefinition(payload_id=world.payload_a, expected_output_ids=[world.output_a]),
            TaskDefinition(payload_id="nope", expected_output_ids=[world.output_a]),
        ],
    )
    check_refused(
        world,
        NOT_FOUND,
        "task_creations[0].data_dependencies[0]",
        world.tasks.submit_tasks,
        world.session_a,
        [
            TaskDefinition(
                payload_id=world.payload_a, expected_output_ids=[world.output_a], data_dependencies=["nope"]
            )
        ],
    )
    check_refused(
        world,
        NOT_FOUND,
        "task_creations[0].expected_output_keys[0]",
        world.tasks.submit_tasks,
        world.session_a,
        [TaskDefinition(payload_id=world.payload_a, expected_output_ids=["nope"])],
    )


def test_results_of_another_session(world: World) -> None:
    details = check_refused(
        world,
        INVALID,
        "task_creations[0].payload_id",
        world.tasks.submit_tasks,
        world.session_a,
        [TaskDefinition(payload_id=world.payload_b, expected_output_ids=[world.output_a])],
    )
    assert world.session_b in details
    check_refused(
        world,
        INVALID,
        "task_creations[0].data_dependencies[0]",
        world.tasks.submit_tasks,
        world.session_a,
        [
            TaskDefinition(
                payload_id=world.payload_a,
                expected_output_ids=[world.output_a],
                data_dependencies=[world.payload_b],
            )
        ],
    )
    check_refused(
        world,
        INVALID,
        "id.result_id",
        world.results.upload_result_data,
        world.output_a,
        world.session_b,
        b"x",
    )
    check_refused(
        world, INVALID, "result_id", world.results.download_result_data, world.payload_b, world.session_a
    )


def _upload(world: World, messages: list[rc.UploadResultDataRequest]) -> Any:
    return world.stubs.results.UploadResultData(iter(messages))


def test_upload_chunk_order_and_size(world: World) -> None:
    ident = rc.UploadResultDataRequest(
        id=rc.UploadResultDataRequest.ResultIdentifier(session_id=world.session_a, result_id=world.output_a)
    )
    chunk = rc.UploadResultDataRequest(data_chunk=b"x" * 10)
    check_refused(world, INVALID, "id: the first message", _upload, world, [chunk, ident])
    check_refused(world, INVALID, "id: message 2 repeats", _upload, world, [ident, chunk, ident])
    check_refused(world, grpc.StatusCode.FAILED_PRECONDITION, "id:", _upload, world, [])
    big = rc.UploadResultDataRequest(data_chunk=b"x" * (CHUNK + 1))
    details = check_refused(
        world, INVALID, "data_chunk: chunk 2 has 1025 bytes", _upload, world, [ident, chunk, big]
    )
    assert str(CHUNK) in details


def _list_tasks(world: World, request: tc.ListTasksRequest) -> Any:
    return world.stubs.tasks.ListTasks(request)


def _field(enum_value: int) -> tf.TaskField:
    return tf.TaskField(task_summary_field=tf.TaskSummaryField(field=enum_value))


def _request(
    *conditions: tflt.FilterField, sort: tc.ListTasksRequest.Sort | None = None, **fields: Any
) -> Any:
    filters = tflt.Filters(**{"or": [tflt.FiltersAnd(**{"and": list(conditions)})]})
    request = tc.ListTasksRequest(filters=filters, **{"page_size": 10, **fields})
    request.sort.CopyFrom(
        sort or tc.ListTasksRequest.Sort(field=_field(tf.TASK_SUMMARY_ENUM_FIELD_TASK_ID), direction=1)
    )
    return request


def test_malformed_filters(world: World) -> None:
    status = _field(tf.TASK_SUMMARY_ENUM_FIELD_STATUS)
    task_id = _field(tf.TASK_SUMMARY_ENUM_FIELD_TASK_ID)
    at = "filters.or[0].and[0]"
    cases = [
        (tflt.FilterField(field=_field(999), filter_string=fc.FilterString(value="x")), f"{at}.field: 999"),
        (tflt.FilterField(field=tf.TaskField(), filter_string=fc.FilterString(value="x")), f"{at}.field"),
        (tflt.FilterField(field=task_id), f"{at}: the filter has no value condition"),
        (tflt.FilterField(field=status, filter_string=fc.FilterString(value="x")), f"{at}.filter_string"),
        (tflt.FilterField(field=task_id, filter_number=fc.FilterNumber(value=1)), f"{at}.filter_number"),
        (
            tflt.FilterField(field=task_id, filter_string=fc.FilterString(value="x", operator=42)),
            f"{at}.filter_string.operator",
        ),
    ]
    for condition, field in cases:
        check_refused(world, INVALID, field, _list_tasks, world, _request(condition))
    # CountTasksByStatus and GetEvents read the same filter language
    count = tc.CountTasksByStatusRequest(filters=_request(cases[3][0]).filters)
    check_refused(world, INVALID, at, world.stubs.tasks.CountTasksByStatus, count)


def test_malformed_list_requests(world: World) -> None:
    no_filters = _request()
    no_filters.ClearField("filters")
    check_refused(world, INVALID, "filters: is required", _list_tasks, world, no_filters)
    no_sort = _request()
    no_sort.ClearField("sort")
    check_refused(world, INVALID, "sort: is required", _list_tasks, world, no_sort)
    unspecified = _request(sort=tc.ListTasksRequest.Sort(field=_field(tf.TASK_SUMMARY_ENUM_FIELD_TASK_ID)))
    check_refused(world, INVALID, "sort.direction", _list_tasks, world, unspecified)
    unknown = _request(sort=tc.ListTasksRequest.Sort(field=_field(555), direction=2))
    check_refused(world, INVALID, "sort.field", _list_tasks, world, unknown)
    check_refused(world, INVALID, "page", _list_tasks, world, _request(page=-1))
    check_refused(world, INVALID, "page_size", _list_tasks, world, _request(page_size=-5))


def test_a_filter_the_client_builds_is_accepted(world: World) -> None:
    total, tasks = world.tasks.list_tasks(
        (Task.session_id == world.session_a) & (Task.options.priority >= 1), sort_direction=Direction.DESC
    )
    assert total == 1 and tasks[0].id == world.task_a
