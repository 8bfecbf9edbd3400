"""The official ``armonik`` client, used as a user would, against ``protoconform serve``.

One session, 100 tasks with dependencies between them submitted in one call,
availability awaited through events, every output downloaded and checked, counts,
filtered and sorted listings, then the session walked through pause / resume /
close / cancel / purge / delete with the expected refusals in between.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import grpc
import pytest
from armonik.client import (
    ArmoniKEvents,
    ArmoniKHealthChecks,
    ArmoniKPartitions,
    ArmoniKResults,
    ArmoniKSessions,
    ArmoniKTasks,
    ArmoniKVersions,
)
from armonik.common import (
    Direction,
    Result,
    ResultStatus,
    Session,
    SessionStatus,
    Task,
    TaskDefinition,
    TaskOptions,
    TaskStatus,
)
from protoconform.mockserver.launcher import ServerProcess

N = 100


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    with ServerProcess(["--api", "armonik"]) as server, grpc.insecure_channel(server.grpc_address) as ch:
        yield ch


def dependencies(i: int) -> list[int]:
    """Ten chains of ten; each chain's head depends on the previous chain's head."""
    if i % 10:
        return [i - 1]
    return [i - 10] if i >= 10 else []


def expected_output(i: int, cache: dict[int, bytes]) -> bytes:
    # the built-in worker's default: payload data, then each dependency's data
    if i not in cache:
        cache[i] = f"task-{i};".encode() + b"".join(expected_output(d, cache) for d in dependencies(i))
    return cache[i]


def refused(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.mark.slow
def test_hundred_tasks_with_dependencies(channel: grpc.Channel) -> None:
    sessions, results = ArmoniKSessions(channel), ArmoniKResults(channel)
    tasks, events = ArmoniKTasks(channel), ArmoniKEvents(channel)
    options = TaskOptions(max_duration=datetime.timedelta(seconds=30), priority=1, max_retries=2)
    session_id = sessions.create_session(options, partition_ids=["default"])
    assert sessions.get_session(session_id).status == SessionStatus.RUNNING

    payloads = results.create_results_metadata([f"payload-{i}" for i in range(N)], session_id)
    for i in range(N):
        results.upload_result_data(payloads[f"payload-{i}"].result_id, session_id, f"task-{i};".encode())
    outputs = results.create_results_metadata([f"output-{i:03d}" for i in range(N)], session_id)
    out = [outputs[f"output-{i:03d}"].result_id for i in range(N)]

    definitions = [
        TaskDefinition(
            payload_id=payloads[f"payload-{i}"].result_id,
            expected_output_ids=[out[i]],
            data_dependencies=[out[d] for d in dependencies(i)],
        )
        for i in range(N)
    ]
    submitted = tasks.submit_tasks(session_id, definitions, chunk_size=N)  # one SubmitTasks call
    assert len(submitted) == N and len({t.id for t in submitted}) == N

    events.wait_for_result_availability(out, session_id)

    cache: dict[int, bytes] = {}
    for i in range(N):
        assert results.download_result_data(out[i], session_id) == expected_output(i, cache), i
    assert results.get_result(out[99]).status == ResultStatus.COMPLETED

    assert tasks.count_tasks_by_status(Task.session_id == session_id) == {TaskStatus.COMPLETED: N}

    # filtered, sorted, paged listings
    mine = Task.session_id == session_id
    seen: list[str] = []
    for page in range(4):
        total, listed = tasks.list_tasks(
            mine & (Task.status == TaskStatus.COMPLETED),
            page=page,
            page_size=30,
            sort_field=Task.id,
            sort_direction=Direction.DESC,
        )
        assert total == N
        assert len(listed) == (30 if page < 3 else 10)
        seen.extend(t.id for t in listed)
    assert seen == sorted((t.id for t in submitted), reverse=True)

    pair = (Task.id == submitted[3].id) | (Task.id == submitted[7].id)
    total, detailed = tasks.list_tasks(pair, detailed=True, sort_field=Task.id)
    assert total == 2 and {t.id for t in detailed} == {submitted[3].id, submitted[7].id}
    assert all(t.output.success for t in detailed)
    assert detailed[0].expected_output_ids == [out[3]] or detailed[0].expected_output_ids == [out[7]]

    total, listed_results = results.list_results(
        (Result.session_id == session_id) & Result.name.startswith("output-"),
        sort_field=Result.name,
        sort_direction=Direction.DESC,
        page_size=5,
    )
    assert total == N
    assert [r.name for r in listed_results] == [f"output-{i:03d}" for i in range(99, 94, -1)]
    total, big = results.list_results((Result.session_id == session_id) & (Result.size > 200), page_size=0)
    assert total == sum(1 for i in range(N) if len(expected_output(i, cache)) > 200) and big == []

    total, found = sessions.list_sessions(Session.session_id == session_id)
    assert total == 1 and found[0].session_id == session_id

    # the session's life, with the refusals the real server gives
    assert sessions.pause_session(session_id).status == SessionStatus.PAUSED
    assert refused(sessions.pause_session, session_id).code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sessions.resume_session(session_id).status == SessionStatus.RUNNING
    assert sessions.close_session(session_id).status == SessionStatus.CLOSED
    error = refused(sessions.resume_session, session_id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "SESSION_STATUS_CLOSED" in error.details()
    error = refused(tasks.submit_tasks, session_id, definitions[:1])
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sessions.cancel_session(session_id).status == SessionStatus.CANCELLED
    assert refused(sessions.cancel_session, session_id).code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused(sessions.pause_session, session_id).code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sessions.purge_session(session_id).status == SessionStatus.PURGED
    assert refused(sessions.purge_session, session_id).code() == grpc.StatusCode.FAILED_PRECONDITION
    assert results.get_result(out[0]).status == ResultStatus.DELETED
    assert refused(results.download_result_data, out[0], session_id).code() == grpc.StatusCode.NOT_FOUND
    assert sessions.delete_session(session_id).status == SessionStatus.DELETED
    error = refused(sessions.get_session, session_id)
    assert error.code() == grpc.StatusCode.NOT_FOUND and session_id in error.details()
    assert tasks.count_tasks_by_status(Task.session_id == session_id) == {}


def test_service_answers_from_configuration(channel: grpc.Channel) -> None:
    partitions = ArmoniKPartitions(channel)
    total, listed = partitions.list_partitions()
    assert total == 1 and listed[0].id == "default"
    assert partitions.get_partition("default").id == "default"
    versions = ArmoniKVersions(channel).list_versions()
    assert versions["api"] and versions["core"]
    health = ArmoniKHealthChecks(channel).check_health()
    assert set(health) == {"database", "object", "queue"}
    assert ArmoniKResults(channel).get_service_config() == 2 * 1024 * 1024
