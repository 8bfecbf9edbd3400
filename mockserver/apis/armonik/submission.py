"""Task creation shared by every way of submitting: Tasks.SubmitTasks, Agent.SubmitTasks,
and the legacy Submitter.CreateSmallTasks / CreateLargeTasks.

:func:`create_tasks` validates the whole batch first (so a refused request
changes nothing), then stores the tasks in CREATING and hands outputs to them.
The caller decides when they start: ``state.engine.submit(tasks)`` for a
client, ``run.children.extend(tasks)`` for a task submitting subtasks (they
start when their parent completes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from armonik.protogen.common.objects_pb2 import TaskOptions
from protoconform.mockserver.apis.armonik.state import ArmonikState, ResultStatuses, Session, Task


@dataclass
class TaskSpec:
    """One task to create, whatever request it came from."""

    payload_id: str
    expected_output_ids: list[str] = field(default_factory=list)
    data_dependencies: list[str] = field(default_factory=list)
    options: TaskOptions | None = None


def requested_tasks(request: Any) -> tuple[TaskOptions | None, list[TaskSpec]]:
    """The request-wide options and the tasks of a ``SubmitTasksRequest`` (Tasks and Agent alike)."""
    specs = [
        TaskSpec(
            payload_id=creation.payload_id,
            expected_output_ids=list(creation.expected_output_keys),
            data_dependencies=list(creation.data_dependencies),
            options=creation.task_options if creation.HasField("task_options") else None,
        )
        for creation in request.task_creations
    ]
    options = request.task_options if request.HasField("task_options") else None
    return options, specs


def merge_options(base: TaskOptions, override: TaskOptions | None) -> TaskOptions:
    """``override`` on top of ``base``: set (non-empty, non-zero) fields win, maps merge.

    Priority is taken from ``override`` as given when it is present, as the real
    server does; see rule ``armonik.tasks.options-inheritance``.
    """
    if override is None:
        return base
    merged = TaskOptions()
    merged.CopyFrom(base)
    for key, value in override.options.items():
        merged.options[key] = value
    if override.HasField("max_duration") and (override.max_duration.seconds or override.max_duration.nanos):
        merged.max_duration.CopyFrom(override.max_duration)
    if override.max_retries:
        merged.max_retries = override.max_retries
    merged.priority = override.priority
    for name in (
        "partition_id",
        "application_name",
        "application_version",
        "application_namespace",
        "application_service",
        "engine_type",
    ):
        value = getattr(override, name)
        if value:
            setattr(merged, name, value)
    return merged


def _given(options: TaskOptions | None) -> TaskOptions | None:
    """Proto3 cannot tell an absent message from an empty one on every path; empty = absent."""
    if options is None or options.ByteSize() == 0:
        return None
    return options


def create_tasks(
    state: ArmonikState,
    session: Session,
    request_options: TaskOptions | None,
    specs: list[TaskSpec],
    *,
    parent: Task | None = None,
    field_prefix: str = "task_creations",
) -> list[Task]:
    """Validate and store ``specs`` as CREATING tasks of ``session`` (see module docstring)."""
    if parent is None and not session.client_submission:
        raise state.error(
            "armonik.tasks.submission-closed",
            f"session_id: client submission is closed for session '{session.session_id}' "
            f"(status {_status_name(session.status)})",
        )
    if parent is not None and not session.worker_submission:
        raise state.error(
            "armonik.tasks.submission-closed",
            f"session_id: worker submission is closed for session '{session.session_id}'",
        )
    level = merge_options(session.options, _given(request_options))
    merged_all: list[TaskOptions] = []
    for index, spec in enumerate(specs):
        where = f"{field_prefix}[{index}]"
        merged = merge_options(level, _given(spec.options))
        if not merged.partition_id:
            merged.partition_id = state.options.default_partition
        if merged.partition_id not in session.partition_ids:
            raise state.error(
                "armonik.tasks.partition-not-in-session",
                f"{where}.task_options.partition_id: partition '{merged.partition_id}' is not one of the "
                f"partitions of session '{session.session_id}' ({', '.join(session.partition_ids)})",
            )
        if merged.priority > state.options.max_priority:
            raise state.error(
                "armonik.tasks.max-priority",
                f"{where}.task_options.priority: max priority is {state.options.max_priority}, "
                f"got {merged.priority}",
            )
        _check_input(state, session, spec.payload_id, f"{where}.payload_id")
        for dep_index, dep in enumerate(spec.data_dependencies):
            _check_input(state, session, dep, f"{where}.data_dependencies[{dep_index}]")
        for out_index, out in enumerate(spec.expected_output_ids):
            _check_output(state, session, out, f"{where}.expected_output_keys[{out_index}]")
        merged_all.append(merged)

    now = state.now()
    tasks = []
    lineage = [*parent.parent_task_ids, parent.task_id] if parent is not None else []
    for spec, merged in zip(specs, merged_all, strict=True):
        task_id = state.new_id()
        task = Task(
            task_id=task_id,
            session_id=session.session_id,
            options=merged,
            payload_id=spec.payload_id,
            created_at=now,
            data_dependencies=list(spec.data_dependencies),
            expected_output_ids=list(spec.expected_output_ids),
            initial_task_id=task_id,
            parent_task_ids=list(lineage),
            created_by=parent.task_id if parent is not None else "",
        )
        state.add_task(task)
        for result_id in task.expected_output_ids if parent is None else ():
            result = state.results.get(result_id)
            # an output another task already owns keeps its owner (as the real server does);
            # a subtask gets its outputs when its parent completes (Engine._hand_over_outputs)
            if result is not None and result.owner_task_id in ("", session.session_id):
                state.set_result_owner(result, task_id)
        tasks.append(task)
    return tasks


def _status_name(status: int) -> str:
    from protoconform.mockserver.apis.armonik.state import SessionStatuses

    return SessionStatuses.name(status)


def _check_input(state: ArmonikState, session: Session, result_id: str, where: str) -> None:
    result = state.results.get(result_id)
    if result is None:
        raise state.error(
            "armonik.tasks.dependency-not-found", f"{where}: result '{result_id}' was not found"
        )
    if result.session_id != session.session_id:
        raise state.error(
            "armonik.tasks.result-other-session",
            f"{where}: result '{result_id}' belongs to session '{result.session_id}', "
            f"not '{session.session_id}'",
        )
    if result.status in (ResultStatuses.ABORTED, ResultStatuses.DELETED):
        raise state.error(
            "armonik.tasks.dependency-unusable",
            f"{where}: result '{result_id}' is {ResultStatuses.name(result.status)} and can never be used",
        )


def _check_output(state: ArmonikState, session: Session, result_id: str, where: str) -> None:
    result = state.results.get(result_id)
    if result is None:
        raise state.error("armonik.tasks.output-not-found", f"{where}: result '{result_id}' was not found")
    if result.session_id != session.session_id:
        raise state.error(
            "armonik.tasks.result-other-session",
            f"{where}: result '{result_id}' belongs to session '{result.session_id}', "
            f"not '{session.session_id}'",
        )
