"""Node and task executions as events recorded them: get, list, data, dynamic workflows.

ListNodeExecutions returns top-level nodes unless ``unique_parent_id`` names a
parent; data calls answer the literals inline (``full_inputs``/``full_outputs``)
with ``flyte://`` URLs, as flyteadmin does without signed URLs.
"""

from __future__ import annotations

from typing import Any

from protoconform.mockserver.apis.flyte import columns, listing
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import (
    NodeRecord,
    State,
    TaskExecRecord,
    exec_key_of,
    node_key_of,
    task_exec_key_of,
)
from protoconform.mockserver.apis.flyte.wire import copy, text
from protoconform.mockserver.rpc import CallContext

NODE_NOT_FOUND = "flyte.node-executions.not-found"
TASK_NOT_FOUND = "flyte.task-executions.not-found"
PARENT_NOT_FOUND = "flyte.node-executions.list.parent-not-found"
NO_DYNAMIC = "flyte.node-executions.dynamic.none"


def find_node(state: State, ident: Any, field: str = "id") -> NodeRecord:
    record = state.table("node_executions").get(node_key_of(ident))
    if record is None:
        raise Violation(NODE_NOT_FOUND, field=field, type="node execution", id=text(ident))
    return record


def find_task_execution(state: State, ident: Any, field: str = "id") -> TaskExecRecord:
    record = state.table("task_executions").get(task_exec_key_of(ident))
    if record is None:
        raise Violation(TASK_NOT_FOUND, field=field, type="task execution", id=text(ident))
    return record


def _trimmed(state: State, node: Any) -> Any:
    shown = copy(node)
    if shown.closure.HasField("error"):
        cut = state.config["list_error_message_bytes"]
        shown.closure.error.message = shown.closure.error.message.encode()[:cut].decode(errors="ignore")
    return shown


def _flyte_url(node: Any, attempt: int | None, kind: str) -> str:
    execution = node.execution_id
    parts = ["flyte://v1", execution.project, execution.domain, execution.name, node.node_id]
    if attempt is not None:
        parts.append(str(attempt))
    return "/".join([*parts, kind])


def _outputs(state: State, closure: Any) -> Any:
    kind = closure.WhichOneof("output_result")
    if kind == "output_data":
        return copy(closure.output_data)
    if kind == "output_uri":
        return state.get_literals(closure.output_uri)
    return state.wire.new("core.LiteralMap")


@admin("GetNodeExecution")
def get_node_execution(request: Any, ctx: CallContext) -> Any:
    # flyteadmin only logs a malformed id here: an absent node is NOT_FOUND whatever is wrong.
    return copy(find_node(ctx.state, request.id).node)


@admin("GetNodeExecutionData")
def get_node_execution_data(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    record = find_node(state, request.id)
    closure = record.node.closure
    response = state.wire.new("admin.NodeExecutionGetDataResponse")
    response.inputs.SetInParent()
    response.outputs.SetInParent()
    response.full_inputs.CopyFrom(state.get_literals(record.node.input_uri))
    response.full_outputs.CopyFrom(_outputs(state, closure))
    if record.dynamic_workflow is not None:
        response.dynamic_workflow.CopyFrom(record.dynamic_workflow)
    urls = response.flyte_urls
    urls.inputs = _flyte_url(record.node.id, None, "i")
    urls.outputs = _flyte_url(record.node.id, None, "o")
    if closure.deck_uri:
        urls.deck = _flyte_url(record.node.id, None, "d")
    return response


@admin("GetDynamicNodeWorkflow")
def get_dynamic_node_workflow(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    record = find_node(state, request.id)
    if record.dynamic_workflow is None:
        raise Violation(NO_DYNAMIC)
    response = state.wire.new("admin.DynamicNodeWorkflowResponse")
    response.compiled_workflow.CopyFrom(record.dynamic_workflow.compiled_workflow)
    return response


def _nodes(state: State, execution: Any, request: Any, operation: str, where: Any, where_key: Any) -> Any:
    filters = listing.parse_filters(state, request.filters, "ne") if request.filters else []
    sort = listing.parse_sort(state, request.sort_by, "ne", request.HasField("sort_by"))
    offset = listing.parse_token(request.token, operation)
    records = listing.select(
        state,
        "node_executions",
        exec_key_of(execution),
        columns.model(state, "ne"),
        filters,
        sort,
        where,
        where_key,
    )
    chosen, token = listing.page(records, offset, request.limit)
    response = state.wire.new("admin.NodeExecutionList", token=token)
    response.node_executions.extend(_trimmed(state, r.node) for r in chosen)
    return response


@admin("ListNodeExecutions")
def list_node_executions(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    execution = request.workflow_execution_id
    parent_row: int | None = None
    if request.unique_parent_id:
        parent_id = state.wire.new(
            "core.NodeExecutionIdentifier", execution_id=execution, node_id=request.unique_parent_id
        )
        parent_row = find_node(state, parent_id, "unique_parent_id").row
    return _nodes(
        state,
        execution,
        request,
        "ListNodeExecutions",
        lambda r: r.parent_row == parent_row,
        ("parent", parent_row),
    )


@admin("ListNodeExecutionsForTask")
def list_node_executions_for_task(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    parent = find_task_execution(state, request.task_execution_id, "task_execution_id")
    execution = request.task_execution_id.node_execution_id.execution_id
    return _nodes(
        state,
        execution,
        request,
        "ListNodeExecutionsForTask",
        lambda r: r.parent_task_row == parent.row,
        ("parent-task", parent.row),
    )


@admin("GetTaskExecution")
def get_task_execution(request: Any, ctx: CallContext) -> Any:
    return copy(find_task_execution(ctx.state, request.id).task_execution)


@admin("ListTaskExecutions")
def list_task_executions(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    node = request.node_execution_id
    filters = listing.parse_filters(state, request.filters, "te") if request.filters else []
    sort = listing.parse_sort(state, request.sort_by, "te", request.HasField("sort_by"))
    offset = listing.parse_token(request.token, "ListTaskExecutions")
    records = listing.select(
        state, "task_executions", node_key_of(node), columns.model(state, "te"), filters, sort
    )
    chosen, token = listing.page(records, offset, request.limit)
    response = state.wire.new("admin.TaskExecutionList", token=token)
    response.task_executions.extend(r.task_execution for r in chosen)  # extend copies each message
    return response


@admin("GetTaskExecutionData")
def get_task_execution_data(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    record = find_task_execution(state, request.id)
    execution = record.task_execution
    response = state.wire.new("admin.TaskExecutionGetDataResponse")
    response.inputs.SetInParent()
    response.outputs.SetInParent()
    response.full_inputs.CopyFrom(state.get_literals(execution.input_uri))
    response.full_outputs.CopyFrom(_outputs(state, execution.closure))
    node = execution.id.node_execution_id
    attempt = execution.id.retry_attempt
    response.flyte_urls.inputs = _flyte_url(node, attempt, "i")
    response.flyte_urls.outputs = _flyte_url(node, attempt, "o")
    return response
