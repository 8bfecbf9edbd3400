"""CreateWorkflowEvent, CreateNodeEvent, CreateTaskEvent: how flyteadmin records what propeller reports.

The rules are flyteadmin's, looser than one would guess: the same phase again is
ALREADY_EXISTS (a task event with a higher ``phase_version`` updates instead);
an event for a record in a terminal phase is FAILED_PRECONDITION with an
``EventFailureReason``; a producer other than the execution's cluster is
FAILED_PRECONDITION; everything else moves the record, backwards included.  The
first node or task event creates the record, whatever its phase.

The simulated propeller (:mod:`.propeller`) sends its events through the same
functions, so its records are exactly the ones these events make.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from protoconform.mockserver.apis.flyte import defects, identifiers
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import (
    ExecutionRecord,
    NodeRecord,
    State,
    TaskExecRecord,
    exec_key_of,
    node_key_of,
    task_exec_key_of,
)
from protoconform.mockserver.apis.flyte.wire import span, stamp, text, to_datetime
from protoconform.mockserver.rpc import CallContext

OUTPUT_SIZE = "flyte.events.output-size"
EVENT_TIME = "flyte.events.time"
EXECUTION_NOT_FOUND = "flyte.executions.not-found"
NODE_EXECUTION_NOT_FOUND = "flyte.node-executions.not-found"
TASK_EXECUTION_NOT_FOUND = "flyte.task-executions.not-found"
CLUSTER = "flyte.events.cluster"
WORKFLOW_SAME_PHASE = "flyte.events.workflow.same-phase"
WORKFLOW_TERMINAL = "flyte.events.workflow.terminal"
WORKFLOW_BACK_TO_QUEUED = "flyte.events.workflow.running-to-queued"
WORKFLOW_ABORTING = "flyte.events.workflow.aborting"
WORKFLOW_CLUSTER_REASSIGN = "flyte.events.workflow.cluster-mismatch"
NODE_EXECUTION_MISSING = "flyte.events.node.execution-not-found"
NODE_SAME_PHASE = "flyte.events.node.same-phase"
NODE_TERMINAL = "flyte.events.node.terminal"
NODE_PARENT_TASK = "flyte.events.node.parent-task-not-found"
NODE_PARENT_NODE = "flyte.events.node.parent-node-not-found"
NODE_CHILD_EXECUTION = "flyte.events.node.child-execution-not-found"
TASK_SAME_PHASE = "flyte.events.task.same-phase"
TASK_TERMINAL = "flyte.events.task.terminal"
TASK_NODE_MISSING = "flyte.events.task.node-not-found"

DEFAULT_PRODUCER = "propeller"


def machine(state: State, name: str) -> Any:
    return state.rules.state_machines[name]


def terminal(state: State, name: str, number: int, enum: str) -> bool:
    return state.wire.name_of(enum, number) in machine(state, name).terminal


def _size(state: State, event: Any) -> None:
    if event.WhichOneof("output_result") == "output_data":
        size = event.output_data.ByteSize()
        limit = state.config["max_output_bytes"]
        if size > limit:
            raise Violation(OUTPUT_SIZE, size=size, limit=limit)


def _time(ts: Any, fallback: datetime) -> datetime:
    return to_datetime(ts) if ts.ByteSize() else fallback


def _check_times(event: Any) -> None:
    """Event times must be representable (years 1 to 9999), checked before anything changes."""
    for name in ("occurred_at", "reported_at"):
        if name not in event.DESCRIPTOR.fields_by_name or not event.HasField(name):
            continue
        try:
            to_datetime(getattr(event, name))
        except (ValueError, OverflowError):
            raise Violation(EVENT_TIME, field=f"event.{name}", what=name) from None


def find_execution(state: State, ident: Any) -> ExecutionRecord | None:
    return state.table("executions").get(exec_key_of(ident))


def _check_cluster(state: State, stored: str, producer: str) -> None:
    """``ValidateCluster``: a named producer other than the default must be the execution's cluster."""
    if producer and producer != DEFAULT_PRODUCER and producer != stored:
        reason = state.wire.new("admin.EventFailureReason")
        reason.incompatible_cluster.cluster = stored
        raise Violation(CLUSTER, details=(reason,), producer=producer, cluster=stored)


def _terminal_reason(state: State, phase: str) -> Any:
    reason = state.wire.new("admin.EventFailureReason")
    reason.already_in_terminal_state.current_phase = phase
    return reason


def _offload(state: State, uri: str, literals: Any) -> str:
    return state.put_literals(uri, literals)


# -- workflow events ------------------------------------------------------------------------------


def apply_workflow_event(state: State, event: Any, after_terminal: bool = False) -> ExecutionRecord:
    """Record a workflow event (``after_terminal``: a defect mode that skips the terminal-phase check)."""
    wire = state.wire
    _size(state, event)
    _check_times(event)
    record = find_execution(state, event.execution_id)
    if record is None:
        raise Violation(
            EXECUTION_NOT_FOUND, field="event.execution_id", type="execution", id=text(event.execution_id)
        )
    closure = record.execution.closure
    enum = "core.WorkflowExecution.Phase"
    old, new = wire.name_of(enum, closure.phase), wire.name_of(enum, event.phase)
    ident = text(event.execution_id)
    if new != "QUEUED":
        if event.phase == closure.phase:
            raise Violation(WORKFLOW_SAME_PHASE, phase=new, id=ident)
        _check_cluster(state, record.cluster, event.producer_id)
    if terminal(state, "workflow", closure.phase, enum) and not after_terminal:
        raise Violation(
            WORKFLOW_TERMINAL, details=(_terminal_reason(state, old),), old=old, new=new, id=ident
        )
    if old == "RUNNING" and new == "QUEUED":
        raise Violation(WORKFLOW_BACK_TO_QUEUED, old=old, new=new, id=ident)
    if old == "ABORTING" and not terminal(state, "workflow", event.phase, enum):
        raise Violation(WORKFLOW_ABORTING, new=new, id=ident)
    producer = event.producer_id
    if producer and producer != DEFAULT_PRODUCER and producer != record.cluster:
        if new in ("UNDEFINED", "QUEUED"):
            record.cluster = producer  # a new cluster picks the execution up
        else:
            raise Violation(WORKFLOW_CLUSTER_REASSIGN, id=ident, producer=producer, cluster=record.cluster)
    occurred = _time(event.occurred_at, state.now())
    closure.phase = event.phase
    closure.updated_at.CopyFrom(stamp(occurred))
    if new == "RUNNING":
        closure.started_at.CopyFrom(stamp(occurred))
    if terminal(state, "workflow", event.phase, enum) and closure.HasField("started_at"):
        closure.duration.CopyFrom(span((occurred - to_datetime(closure.started_at)).total_seconds()))
    kind = event.WhichOneof("output_result")
    if kind == "output_uri":
        closure.outputs.uri = event.output_uri
    elif kind == "output_data":
        key = record.key
        uri = state.storage("metadata", key.project, key.domain, key.name, "offloaded_outputs")
        closure.outputs.uri = _offload(state, uri, event.output_data)
    elif kind == "error":
        closure.error.CopyFrom(event.error)
    state.table("executions").update(record.key, record)
    return record


@admin("CreateWorkflowEvent")
def create_workflow_event(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    apply_workflow_event(state, request.event, ctx.defect(defects.EVENT_AFTER_TERMINAL_ACCEPTED))
    return state.wire.new("admin.WorkflowExecutionEventResponse")


# -- node events ------------------------------------------------------------------------------------


def find_node(state: State, ident: Any) -> NodeRecord | None:
    return state.table("node_executions").get(node_key_of(ident))


def _node_fields(state: State, record: NodeRecord, event: Any, occurred: datetime, fresh: bool) -> None:
    node = record.node
    closure = node.closure
    phase = state.wire.name_of("core.NodeExecution.Phase", event.phase)
    closure.phase = event.phase
    reported = _time(event.reported_at, occurred)
    closure.updated_at.CopyFrom(stamp(reported))
    record.updated_at = reported
    key = record.key
    base = ("metadata", key.execution.project, key.execution.domain, key.execution.name, key.node_id)
    if not node.input_uri:
        if event.WhichOneof("input_value") == "input_uri":
            node.input_uri = event.input_uri
        elif event.WhichOneof("input_value") == "input_data":
            node.input_uri = _offload(state, state.storage(*base, "offloaded_inputs"), event.input_data)
    if phase == "RUNNING":
        closure.started_at.CopyFrom(stamp(occurred))
        if event.deck_uri:
            closure.deck_uri = event.deck_uri
    if terminal(state, "node", event.phase, "core.NodeExecution.Phase"):
        if closure.HasField("started_at"):
            closure.duration.CopyFrom(span((occurred - to_datetime(closure.started_at)).total_seconds()))
        if event.deck_uri:
            closure.deck_uri = event.deck_uri
        kind = event.WhichOneof("output_result")
        if kind == "output_uri":
            closure.output_uri = event.output_uri
        elif kind == "output_data":
            closure.output_uri = _offload(state, state.storage(*base, "offloaded_outputs"), event.output_data)
        elif kind == "error":
            closure.error.CopyFrom(event.error)
            record.error_kind = state.wire.name_of("core.ExecutionError.ErrorKind", event.error.kind)
            record.error_code = event.error.code
    target = event.WhichOneof("target_metadata")
    if target == "task_node_metadata":
        metadata = event.task_node_metadata
        closure.task_node_metadata.checkpoint_uri = metadata.checkpoint_uri
        if metadata.HasField("catalog_key"):
            closure.task_node_metadata.cache_status = metadata.cache_status
            closure.task_node_metadata.catalog_key.CopyFrom(metadata.catalog_key)
        if metadata.HasField("dynamic_workflow"):
            dynamic = state.wire.new("admin.DynamicWorkflowNodeMetadata")
            dynamic.id.CopyFrom(metadata.dynamic_workflow.id)
            dynamic.compiled_workflow.CopyFrom(metadata.dynamic_workflow.compiled_workflow)
            dynamic.dynamic_job_spec_uri = metadata.dynamic_workflow.dynamic_job_spec_uri
            record.dynamic_workflow = dynamic
            closure.dynamic_job_spec_uri = metadata.dynamic_workflow.dynamic_job_spec_uri
    elif target == "workflow_node_metadata" and not fresh:  # checked by the caller before any change
        closure.workflow_node_metadata.executionId.CopyFrom(event.workflow_node_metadata.execution_id)
    meta = node.metadata
    meta.retry_group = event.retry_group or meta.retry_group
    meta.spec_node_id = event.spec_node_id or meta.spec_node_id
    meta.is_parent_node = meta.is_parent_node or event.is_parent
    meta.is_dynamic = meta.is_dynamic or event.is_dynamic
    meta.is_array = meta.is_array or event.is_array
    meta.is_eager = meta.is_eager or event.is_eager


def apply_node_event(state: State, event: Any) -> NodeRecord:
    # flyteadmin only logs what is wrong with a node event, output size included.
    _check_times(event)
    record_of_execution = find_execution(state, event.id.execution_id)
    if record_of_execution is None:
        raise Violation(
            NODE_EXECUTION_MISSING,
            id=text(event.id.execution_id),
            error=f"missing entity of type execution with identifier {text(event.id.execution_id)}",
        )
    _check_cluster(state, record_of_execution.cluster, event.producer_id)
    table = state.table("node_executions")
    key = node_key_of(event.id)
    record: NodeRecord | None = table.get(key)
    occurred = _time(event.occurred_at, state.now())
    enum = "core.NodeExecution.Phase"
    new = state.wire.name_of(enum, event.phase)
    if record is not None:
        if record.node.closure.phase == event.phase:
            raise Violation(NODE_SAME_PHASE, phase=new, id=text(event.id))
        if terminal(state, "node", record.node.closure.phase, enum):
            old = state.wire.name_of(enum, record.node.closure.phase)
            raise Violation(
                NODE_TERMINAL, details=(_terminal_reason(state, new),), old=old, new=new, row=record.row
            )
        if event.WhichOneof("target_metadata") == "workflow_node_metadata":
            child = event.workflow_node_metadata.execution_id
            if find_execution(state, child) is None:
                raise Violation(NODE_CHILD_EXECUTION, type="execution", id=text(child))
        _node_fields(state, record, event, occurred, fresh=False)
        table.update(key, record)
        return record
    parent_task_row = parent_row = None
    parent = None
    if event.HasField("parent_task_metadata"):
        parent = state.table("task_executions").get(task_exec_key_of(event.parent_task_metadata.id))
        if parent is None:
            raise Violation(NODE_PARENT_TASK, type="task execution", id=text(event.parent_task_metadata.id))
        parent_task_row = parent.row
    if event.HasField("parent_node_metadata"):
        parent_key = key._replace(node_id=event.parent_node_metadata.node_id)
        parent_node = table.get(parent_key)
        if parent_node is None:
            raise Violation(NODE_PARENT_NODE, type="node execution", id=event.parent_node_metadata.node_id)
        parent_row = parent_node.row
    if parent is not None and not parent.task_execution.is_parent:  # every check passed: now change things
        parent.task_execution.is_parent = True
        state.table("task_executions").update(parent.key, parent)
    node = state.wire.new("admin.NodeExecution", id=event.id)
    node.closure.created_at.CopyFrom(stamp(occurred))
    record = NodeRecord(
        row=state.store.next_row(),
        created_at=occurred,
        updated_at=occurred,
        key=key,
        node=node,
        parent_row=parent_row,
        parent_task_row=parent_task_row,
    )
    _node_fields(state, record, event, occurred, fresh=True)
    table.insert(key, key.execution, record)
    return record


@admin("CreateNodeEvent")
def create_node_event(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    if not request.HasField("event"):
        raise identifiers.missing("event", "event")
    apply_node_event(state, request.event)
    return state.wire.new("admin.NodeExecutionEventResponse")


# -- task events ---------------------------------------------------------------------------------------


def _merge_patch(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386), as flyteadmin merges custom_info."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


def _logs(state: State, closure: Any, event: Any) -> None:
    """Logs merged by uri and name; pending phases keep only show-while-pending logs, terminal ones
    drop hide-once-finished logs."""
    merged = {(log.uri, log.name): log for log in closure.logs}
    for log in event.logs:
        merged[(log.uri, log.name)] = log
    phase = state.wire.name_of("core.TaskExecution.Phase", event.phase)
    kept = list(merged.values())
    if phase in ("QUEUED", "INITIALIZING"):
        kept = [log for log in kept if log.ShowWhilePending]
    elif terminal(state, "task", event.phase, "core.TaskExecution.Phase"):
        kept = [log for log in kept if not log.HideOnceFinished]
    del closure.logs[:]
    closure.logs.extend(kept)


def _task_fields(state: State, record: TaskExecRecord, event: Any, occurred: datetime) -> None:
    execution = record.task_execution
    closure = execution.closure
    closure.phase = event.phase
    record.phase_version = event.phase_version
    reported = _time(event.reported_at, occurred)
    closure.updated_at.CopyFrom(stamp(reported))
    record.updated_at = reported
    _logs(state, closure, event)
    if event.HasField("custom_info"):
        merged = _merge_patch(
            json_format.MessageToDict(closure.custom_info), json_format.MessageToDict(event.custom_info)
        )
        closure.custom_info.Clear()
        json_format.ParseDict(json.loads(json.dumps(merged)), closure.custom_info)
    if event.task_type:
        closure.task_type = event.task_type
    if event.HasField("metadata"):
        metadata = closure.metadata
        metadata.CopyFrom(event.metadata)
        resources = sorted(metadata.external_resources, key=lambda r: (r.index, r.retry_attempt))
        del metadata.external_resources[:]
        metadata.external_resources.extend(resources)
    closure.event_version = max(closure.event_version, event.event_version)
    for reason in event.reasons:
        closure.reasons.add(occurred_at=reason.occurred_at, message=reason.reason)
    if event.reason:
        closure.reasons.add(occurred_at=stamp(occurred), message=event.reason)
    if closure.reasons:
        closure.reason = closure.reasons[-1].message
    if event.HasField("log_context"):
        closure.log_context.CopyFrom(event.log_context)
    if not execution.input_uri:
        if event.WhichOneof("input_value") == "input_uri":
            execution.input_uri = event.input_uri
        elif event.WhichOneof("input_value") == "input_data":
            key = record.key
            uri = state.storage(
                "metadata",
                key.node.execution.project,
                key.node.execution.domain,
                key.node.execution.name,
                key.node.node_id,
                "task_inputs",
                str(key.retry_attempt),
            )
            execution.input_uri = _offload(state, uri, event.input_data)
    phase = state.wire.name_of("core.TaskExecution.Phase", event.phase)
    if phase == "RUNNING" and not closure.HasField("started_at"):
        closure.started_at.CopyFrom(stamp(occurred))
    if terminal(state, "task", event.phase, "core.TaskExecution.Phase") or phase == "RETRYABLE_FAILED":
        if closure.HasField("started_at"):
            closure.duration.CopyFrom(span((occurred - to_datetime(closure.started_at)).total_seconds()))
        kind = event.WhichOneof("output_result")
        if kind == "output_uri":
            closure.output_uri = event.output_uri
        elif kind == "output_data":
            key = record.key
            task = key.task
            uri = state.storage(
                "metadata",
                key.node.execution.project,
                key.node.execution.domain,
                key.node.execution.name,
                key.node.node_id,
                task.project,
                task.domain,
                task.name,
                task.version,
                str(key.retry_attempt),
                "offloaded_outputs",
            )
            closure.output_uri = _offload(state, uri, event.output_data)
        elif kind == "error":
            closure.error.CopyFrom(event.error)


def apply_task_event(state: State, event: Any) -> TaskExecRecord:
    _size(state, event)
    _check_times(event)
    execution = find_execution(state, event.parent_node_execution_id.execution_id)
    if execution is None:
        raise Violation(
            EXECUTION_NOT_FOUND,
            field="event.parent_node_execution_id.execution_id",
            type="execution",
            id=text(event.parent_node_execution_id.execution_id),
        )
    _check_cluster(state, execution.cluster, event.producer_id)
    ident = state.wire.new(
        "core.TaskExecutionIdentifier",
        task_id=event.task_id,
        node_execution_id=event.parent_node_execution_id,
        retry_attempt=event.retry_attempt,
    )
    key = task_exec_key_of(ident)
    table = state.table("task_executions")
    record: TaskExecRecord | None = table.get(key)
    occurred = _time(event.occurred_at, state.now())
    enum = "core.TaskExecution.Phase"
    new = state.wire.name_of(enum, event.phase)
    if record is None:
        if state.table("node_executions").get(key.node) is None:
            raise Violation(TASK_NODE_MISSING, id=text(event.parent_node_execution_id))
        task_execution = state.wire.new("admin.TaskExecution", id=ident)
        task_execution.closure.created_at.CopyFrom(stamp(occurred))
        record = TaskExecRecord(
            row=state.store.next_row(),
            created_at=occurred,
            updated_at=occurred,
            key=key,
            task_execution=task_execution,
        )
        _task_fields(state, record, event, occurred)
        table.insert(key, key.node, record)
        return record
    closure = record.task_execution.closure
    old = state.wire.name_of(enum, closure.phase)
    if closure.phase == event.phase and record.phase_version >= event.phase_version:
        raise Violation(TASK_SAME_PHASE, phase=new, version=record.phase_version, id=text(ident))
    if terminal(state, "task", closure.phase, enum):
        raise Violation(
            TASK_TERMINAL, details=(_terminal_reason(state, new),), old=old, new=new, id=text(ident)
        )
    _task_fields(state, record, event, occurred)
    table.update(key, record)
    return record


@admin("CreateTaskEvent")
def create_task_event(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    apply_task_event(state, request.event)
    return state.wire.new("admin.TaskExecutionEventResponse")
