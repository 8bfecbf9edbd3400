"""The database columns of flyteadmin's models, read from this mock's records.

Each entity (by the short code flyteadmin's filters use) maps every column that
``specs/flyte/lists.yaml`` lists for it to a getter; a test keeps the two in step.
Values have the column's type: text, int, timestamp (aware datetime), duration
(seconds) or bytes; phases are stored by name, as flyteadmin does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protoconform.mockserver.apis.flyte.listing import Getter, Model
from protoconform.mockserver.apis.flyte.state import State
from protoconform.mockserver.apis.flyte.wire import Wire, deterministic, to_datetime


def _times(extra: dict[str, Getter]) -> dict[str, Getter]:
    return {
        "id": lambda r: r.row,
        "created_at": lambda r: r.created_at,
        "updated_at": lambda r: r.updated_at,
        "deleted_at": lambda r: None,
        **extra,
    }


def _versioned() -> dict[str, Getter]:
    return {
        "project": lambda r: r.key.project,
        "domain": lambda r: r.key.domain,
        "name": lambda r: r.key.name,
        "version": lambda r: r.key.version,
    }


def _time_of(holder: Any, name: str) -> Any:
    return to_datetime(getattr(holder, name)) if holder.HasField(name) else None


def _seconds_of(holder: Any, name: str) -> float | None:
    if not holder.HasField(name):
        return None
    duration = getattr(holder, name)
    return duration.seconds + duration.nanos / 1e9


def getters(wire: Wire, storage: Callable[..., str]) -> dict[str, dict[str, Getter]]:
    def phase(enum: str) -> Callable[[Any], str]:
        return lambda closure: wire.name_of(enum, closure.phase)

    workflow_phase = phase("core.WorkflowExecution.Phase")
    node_phase = phase("core.NodeExecution.Phase")
    task_phase = phase("core.TaskExecution.Phase")

    def schedule_type(record: Any) -> str:
        schedule = record.launch_plan.spec.entity_metadata.schedule
        kind = schedule.WhichOneof("ScheduleExpression")
        # flyteadmin's column: NONE without a schedule (models.LaunchPlanScheduleTypeNONE)
        return {"cron_expression": "CRON", "cron_schedule": "CRON", "rate": "RATE"}.get(kind or "", "NONE")

    def launch_entity(record: Any) -> str:
        reference = record.execution.spec.launch_plan
        return wire.name_of("core.ResourceType", reference.resource_type).lower()

    def error_field(closure: Any, name: str) -> str:
        return getattr(closure.error, name) if closure.HasField("error") else ""

    return {
        "t": _times(
            {
                **_versioned(),
                "closure": lambda r: deterministic(r.task.closure),
                "digest": lambda r: r.digest,
                "type": lambda r: r.task.closure.compiled_task.template.type,
                "short_description": lambda r: r.task.short_description,
            }
        ),
        "w": _times(
            {
                **_versioned(),
                "typed_interface": lambda r: deterministic(
                    r.workflow.closure.compiled_workflow.primary.template.interface
                ),
                "remote_closure_identifier": lambda r: storage("admin", *r.key),
                "digest": lambda r: r.digest,
                "short_description": lambda r: r.workflow.short_description,
            }
        ),
        "l": _times(
            {
                **_versioned(),
                "spec": lambda r: deterministic(r.launch_plan.spec),
                "workflow_id": lambda r: r.workflow_row,
                "closure": lambda r: deterministic(r.launch_plan.closure),
                "state": lambda r: r.launch_plan.closure.state,
                "digest": lambda r: r.digest,
                "schedule_type": schedule_type,
                "launch_condition_type": lambda r: "",
            }
        ),
        "e": _times(
            {
                "execution_project": lambda r: r.key.project,
                "execution_domain": lambda r: r.key.domain,
                "execution_name": lambda r: r.key.name,
                "launch_plan_id": lambda r: r.launch_plan_row,
                "workflow_id": lambda r: r.workflow_row,
                "task_id": lambda r: r.task_row,
                "phase": lambda r: workflow_phase(r.execution.closure),
                "closure": lambda r: deterministic(r.execution.closure),
                "spec": lambda r: deterministic(r.execution.spec),
                "started_at": lambda r: _time_of(r.execution.closure, "started_at"),
                "execution_created_at": lambda r: r.created_at,
                "execution_updated_at": lambda r: _time_of(r.execution.closure, "updated_at"),
                "duration": lambda r: _seconds_of(r.execution.closure, "duration"),
                "abort_cause": lambda r: r.execution.closure.abort_metadata.cause,
                "mode": lambda r: r.execution.spec.metadata.mode,
                "source_execution_id": lambda r: r.source_row,
                "parent_node_execution_id": lambda r: None,
                "cluster": lambda r: r.cluster,
                "inputs_uri": lambda r: r.inputs_uri,
                "user_inputs_uri": lambda r: r.user_inputs_uri,
                "error_kind": lambda r: (
                    wire.name_of("core.ExecutionError.ErrorKind", r.execution.closure.error.kind)
                    if r.execution.closure.HasField("error")
                    else ""
                ),
                "error_code": lambda r: error_field(r.execution.closure, "code"),
                "user": lambda r: r.execution.spec.metadata.principal,
                "state": lambda r: r.execution.closure.state_change_details.state,
                "launch_entity": launch_entity,
            }
        ),
        "ne": _times(
            {
                "execution_project": lambda r: r.key.execution.project,
                "execution_domain": lambda r: r.key.execution.domain,
                "execution_name": lambda r: r.key.execution.name,
                "node_id": lambda r: r.key.node_id,
                "phase": lambda r: node_phase(r.node.closure),
                "input_uri": lambda r: r.node.input_uri,
                "closure": lambda r: deterministic(r.node.closure),
                "started_at": lambda r: _time_of(r.node.closure, "started_at"),
                "node_execution_created_at": lambda r: r.created_at,
                "node_execution_updated_at": lambda r: _time_of(r.node.closure, "updated_at"),
                "duration": lambda r: _seconds_of(r.node.closure, "duration"),
                "node_execution_metadata": lambda r: deterministic(r.node.metadata),
                "parent_id": lambda r: r.parent_row,
                "parent_task_execution_id": lambda r: r.parent_task_row,
                "error_kind": lambda r: r.error_kind,
                "error_code": lambda r: r.error_code,
                "cache_status": lambda r: (
                    wire.name_of("core.CatalogCacheStatus", r.node.closure.task_node_metadata.cache_status)
                    if r.node.closure.HasField("task_node_metadata")
                    else None
                ),
                "dynamic_workflow_remote_closure_reference": lambda r: "",
                "internal_data": lambda r: b"",
            }
        ),
        "te": _times(
            {
                "project": lambda r: r.key.task.project,
                "domain": lambda r: r.key.task.domain,
                "name": lambda r: r.key.task.name,
                "version": lambda r: r.key.task.version,
                "execution_project": lambda r: r.key.node.execution.project,
                "execution_domain": lambda r: r.key.node.execution.domain,
                "execution_name": lambda r: r.key.node.execution.name,
                "node_id": lambda r: r.key.node.node_id,
                "retry_attempt": lambda r: r.key.retry_attempt,
                "phase": lambda r: task_phase(r.task_execution.closure),
                "phase_version": lambda r: r.phase_version,
                "input_uri": lambda r: r.task_execution.input_uri,
                "closure": lambda r: deterministic(r.task_execution.closure),
                "started_at": lambda r: _time_of(r.task_execution.closure, "started_at"),
                "task_execution_created_at": lambda r: r.created_at,
                "task_execution_updated_at": lambda r: _time_of(r.task_execution.closure, "updated_at"),
                "duration": lambda r: _seconds_of(r.task_execution.closure, "duration"),
            }
        ),
        # Named entities are a view: (resource type, project, domain, name) with optional metadata.
        "nen": {
            "resource_type": lambda r: r.resource_type,
            "project": lambda r: r.project,
            "domain": lambda r: r.domain,
            "name": lambda r: r.name,
            "description": lambda r: r.description,
            "state": lambda r: r.state or 0,  # COALESCE(state, 0)
        },
        "nem": {
            "resource_type": lambda r: r.resource_type,
            "project": lambda r: r.project,
            "domain": lambda r: r.domain,
            "name": lambda r: r.name,
            "description": lambda r: r.description,
            "state": lambda r: r.state or 0,
        },
        "p": _times(
            {
                "identifier": lambda r: r.project.id,
                "name": lambda r: r.project.name,
                "description": lambda r: r.project.description,
                "labels": lambda r: deterministic(r.project.labels),
                "state": lambda r: r.project.state,
            }
        ),
        "at": {"name": lambda tag: tag},
        "d": _times(
            {
                "resource_type": lambda r: r.resource_type,
                **_versioned(),
                "short_description": lambda r: r.entity.short_description,
                "long_description": lambda r: deterministic(r.entity.long_description),
                "link": lambda r: r.entity.source_code.link,
            }
        ),
        "s": _times(
            {
                "execution_project": lambda r: r.key.execution.project,
                "execution_domain": lambda r: r.key.execution.domain,
                "execution_name": lambda r: r.key.execution.name,
                "signal_id": lambda r: r.key.signal_id,
                "type": lambda r: r.type_bytes,
                "value": lambda r: deterministic(r.signal.value) if r.signal.HasField("value") else None,
            }
        ),
    }


# The columns the parts of a table's scope are (see the inserts of each table), in order.
SCOPED = {
    "t": ("project", "domain"),
    "w": ("project", "domain"),
    "l": ("project", "domain"),
    "d": ("project", "domain"),
    "e": ("execution_project", "execution_domain"),
    "ne": ("execution_project", "execution_domain", "execution_name"),
}


def model(state: State, primary: str) -> Model:
    """The listing model of a primary entity, with the joins flyteadmin's listings allow."""
    found = state.caches.setdefault("models", {}).get(primary)
    if found is not None:
        return found
    table = getters(state.wire, state.storage)
    store = state.store

    def by_row(name: str) -> Callable[[int | None], list[Any]]:
        def lookup(row: int | None) -> list[Any]:
            if row is None:
                return []
            index = state.caches.setdefault("rows", {})
            version = store.table(name).version()
            cached = index.get(name)
            if cached is None or cached[0] != version:
                cached = (version, {r.row: r for r in store.table(name).scan()})
                index[name] = cached
            hit = cached[1].get(row)
            return [hit] if hit is not None else []

        return lookup

    tasks, workflows, launch_plans = by_row("tasks"), by_row("workflows"), by_row("launch_plans")

    def execution_of(node_key: Any) -> list[Any]:
        found = store.table("executions").get(node_key.execution)
        return [found] if found is not None else []

    joins: dict[str, dict[str, Callable[[Any], Any]]] = {
        "e": {
            "l": lambda r: launch_plans(r.launch_plan_row),
            "w": lambda r: workflows(r.workflow_row),
            "t": lambda r: tasks(r.task_row),
            "at": lambda r: list(r.execution.spec.tags),
        },
        "l": {"w": lambda r: workflows(r.workflow_row)},
        "ne": {"e": lambda r: execution_of(r.key)},
        "te": {
            "t": lambda r: [t] if (t := store.table("tasks").get(r.key.task)) is not None else [],
            "e": lambda r: execution_of(r.key.node),
            "ne": lambda r: [n] if (n := store.table("node_executions").get(r.key.node)) else [],
        },
        "nen": {"nem": lambda r: [r]},
    }
    found = Model(primary, table, joins.get(primary, {}), SCOPED.get(primary, ()))
    state.caches["models"][primary] = found
    return found
