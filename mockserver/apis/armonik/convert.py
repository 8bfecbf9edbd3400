"""Entities -> wire messages (``SessionRaw``, ``TaskSummary``, ``TaskDetailed``, ``ResultRaw``, ...).

Message classes come from the ``armonik`` wheel's generated modules, which are
the descriptors the registry serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from armonik.protogen.common.applications_common_pb2 import ApplicationRaw
from armonik.protogen.common.partitions_common_pb2 import PartitionRaw
from armonik.protogen.common.results_common_pb2 import ResultRaw
from armonik.protogen.common.sessions_common_pb2 import SessionRaw
from armonik.protogen.common.tasks_common_pb2 import TaskDetailed, TaskSummary
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from protoconform.mockserver.apis.armonik.state import Partition, Result, Session, Task


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def duration(value: timedelta) -> Duration:
    out = Duration()
    out.FromTimedelta(value)
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def _set_time(message: object, name: str, value: datetime | None) -> None:
    """``FromDatetime`` (a naive value is UTC), by integer arithmetic: it is on every read's path."""
    if value is not None:
        since = value - (_NAIVE_EPOCH if value.tzinfo is None else _EPOCH)
        stamp = getattr(message, name)
        stamp.seconds = since.days * 86400 + since.seconds
        stamp.nanos = since.microseconds * 1000


def _set_duration(message: object, name: str, value: timedelta | None) -> None:
    if value is not None:
        getattr(message, name).FromTimedelta(value)


def session_raw(session: Session, with_options: bool = True, into: SessionRaw | None = None) -> SessionRaw:
    """The session as the API shows it; filled ``into`` a reply's field when given (no copy)."""
    raw = SessionRaw() if into is None else into
    raw.session_id = session.session_id
    raw.status = session.status
    raw.client_submission = session.client_submission
    raw.worker_submission = session.worker_submission
    raw.partition_ids.extend(session.partition_ids)
    if with_options:
        raw.options.CopyFrom(session.options)
    _set_time(raw, "created_at", session.created_at)
    _set_time(raw, "cancelled_at", session.cancelled_at)
    _set_time(raw, "closed_at", session.closed_at)
    _set_time(raw, "purged_at", session.purged_at)
    _set_time(raw, "deleted_at", session.deleted_at)
    _set_duration(raw, "duration", session.duration)
    return raw


def task_durations(task: Task) -> dict[str, timedelta | None]:
    """The derived durations of a task (None until it ended)."""
    end = task.ended_at

    def since(start: datetime | None) -> timedelta | None:
        return end - start if end is not None and start is not None else None

    return {
        "creation_to_end_duration": since(task.created_at),
        "processing_to_end_duration": since(task.started_at),
        "received_to_end_duration": since(task.received_at),
    }


_TASK_TIMES = (
    "created_at",
    "submitted_at",
    "received_at",
    "acquired_at",
    "fetched_at",
    "started_at",
    "processed_at",
    "ended_at",
    "pod_ttl",
)


def task_summary(task: Task) -> TaskSummary:
    summary = TaskSummary(
        id=task.task_id,
        session_id=task.session_id,
        owner_pod_id=task.owner_pod_id,
        initial_task_id=task.initial_task_id,
        count_parent_task_ids=len(task.parent_task_ids),
        count_data_dependencies=len(task.data_dependencies),
        count_expected_output_ids=len(task.expected_output_ids),
        count_retry_of_ids=len(task.retry_of_ids),
        status=task.status,
        status_message=task.status_message,
        payload_id=task.payload_id,
        created_by=task.created_by,
        error=task.output_error,
        pod_hostname=task.pod_hostname,
    )
    summary.options.CopyFrom(task.options)
    _set_task_times(summary, task)
    return summary


def _set_task_times(reply: Any, task: Task) -> None:
    """Timestamps and durations, shared by the summary and the detailed task views."""
    for name in _TASK_TIMES:
        _set_time(reply, name, getattr(task, name))
    for name, value in task_durations(task).items():
        _set_duration(reply, name, value)


def task_detailed(task: Task) -> TaskDetailed:
    detailed = TaskDetailed(
        id=task.task_id,
        session_id=task.session_id,
        owner_pod_id=task.owner_pod_id,
        initial_task_id=task.initial_task_id,
        parent_task_ids=task.parent_task_ids,
        data_dependencies=task.data_dependencies,
        expected_output_ids=task.expected_output_ids,
        retry_of_ids=task.retry_of_ids,
        status=task.status,
        status_message=task.status_message,
        payload_id=task.payload_id,
        created_by=task.created_by,
        pod_hostname=task.pod_hostname,
    )
    detailed.options.CopyFrom(task.options)
    _set_task_times(detailed, task)
    if task.final or task.output_error:
        detailed.output.success = task.output_success
        detailed.output.error = task.output_error
    return detailed


def result_raw(result: Result, with_created_at: bool = True) -> ResultRaw:
    raw = ResultRaw(
        session_id=result.session_id,
        name=result.name,
        owner_task_id=result.owner_task_id,
        status=result.status,
        result_id=result.result_id,
        size=result.size,
        created_by=result.created_by,
        opaque_id=result.opaque_id,
        manual_deletion=result.manual_deletion,
    )
    if with_created_at:
        _set_time(raw, "created_at", result.created_at)
    _set_time(raw, "completed_at", result.completed_at)
    return raw


def partition_raw(partition: Partition) -> PartitionRaw:
    return PartitionRaw(
        id=partition.id,
        parent_partition_ids=partition.parent_partition_ids,
        pod_reserved=partition.pod_reserved,
        pod_max=partition.pod_max,
        pod_configuration=partition.pod_configuration,
        preemption_percentage=partition.preemption_percentage,
        priority=partition.priority,
    )


def application_raw(name: str, namespace: str, version: str, service: str) -> ApplicationRaw:
    return ApplicationRaw(name=name, namespace=namespace, version=version, service=service)


def submitted_infos(info_class: Any, tasks: Iterable[Task]) -> list[Any]:
    """``SubmitTasksResponse.TaskInfo`` of each task (Tasks and Agent answer the same shape)."""
    return [
        info_class(
            task_id=task.task_id,
            expected_output_ids=task.expected_output_ids,
            data_dependencies=task.data_dependencies,
            payload_id=task.payload_id,
        )
        for task in tasks
    ]


def creation_reply(reply_class: Any, tasks: Iterable[Task]) -> Any:
    """A ``CreateTaskReply`` listing the created tasks (Submitter and Agent answer the same shape)."""
    return reply_class(
        creation_status_list=reply_class.CreationStatusList(
            creation_statuses=[
                reply_class.CreationStatus(
                    task_info=reply_class.TaskInfo(
                        task_id=task.task_id,
                        expected_output_keys=task.expected_output_ids,
                        data_dependencies=task.data_dependencies,
                        payload_id=task.payload_id,
                    )
                )
                for task in tasks
            ]
        )
    )
