"""Executions: create (from a launch plan or a task), relaunch, recover, get, data, list, update,
terminate, metrics.

An execution starts UNDEFINED and moves only by workflow events: the simulated
propeller's (:mod:`.propeller`), or an outside producer's when the simulation is
off.  TerminateExecution makes it ABORTING at once; ABORTED comes from the
producer.  Archived executions (UpdateExecution state ARCHIVED) leave the default
listing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from protoconform.mockserver.apis.flyte import (
    columns,
    defects,
    events,
    identifiers,
    listing,
    literals,
    registration,
)
from protoconform.mockserver.apis.flyte.entities import set_metadata
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.projects import check_labels
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import (
    ExecKey,
    ExecutionRecord,
    LaunchPlanRecord,
    State,
    exec_key_of,
)
from protoconform.mockserver.apis.flyte.wire import copy, stamp, text, to_datetime
from protoconform.mockserver.rpc import CallContext

NOT_FOUND = "flyte.executions.not-found"
ALREADY_EXISTS = "flyte.executions.create.already-exists"
REFERENCE_TYPE = "flyte.executions.create.reference-type"
INPUT_KEY = "flyte.executions.create.input-key"
INPUT_LITERAL = "flyte.executions.create.input-literal"
INPUT_UNKNOWN = "flyte.executions.create.input-unknown"
INPUT_MISSING = "flyte.executions.create.input-missing"
INPUT_TYPE = "flyte.executions.create.input-type"
INPUT_FIXED = "flyte.executions.create.input-fixed"
CONCURRENCY = "flyte.executions.create.concurrency"
LABELS = "flyte.executions.create.labels"
TERMINATED = "flyte.executions.terminate.terminal"
FLYTEGEN = ".flytegen."


def generated_name(state: State) -> str:
    """``"a"`` and 19 characters of flyteadmin's alphabet (no vowels, no easily confused digits)."""
    alphabet = state.config["execution_name_alphabet"]
    return "a" + "".join(random.choice(alphabet) for _ in range(state.config["execution_name_length"] - 1))


def find(state: State, ident: Any, field: str = "id") -> ExecutionRecord:
    record = state.table("executions").get(exec_key_of(ident))
    if record is None:
        raise Violation(NOT_FOUND, field=field, type="execution", id=text(ident))
    return record


def phase_name(state: State, record: ExecutionRecord) -> str:
    return state.wire.name_of("core.WorkflowExecution.Phase", record.execution.closure.phase)


# -- inputs -------------------------------------------------------------------------------------------


def _check_literal_map(inputs: Any) -> None:
    for name, literal in inputs.literals.items():
        if not name:
            raise Violation(INPUT_KEY)
        if literal.WhichOneof("value") is None:
            raise Violation(INPUT_LITERAL, name=name)


def resolve_inputs(state: State, user_inputs: Any, plan: Any) -> Any:
    """``CheckAndFetchInputsForExecution``: known names, required ones given, types fit, fixed ones kept."""
    wire = state.wire
    expected = plan.closure.expected_inputs.parameters
    resolved = wire.new("core.LiteralMap")
    for name in sorted(user_inputs.literals):
        if name not in expected:
            raise Violation(INPUT_UNKNOWN, name=name)
        resolved.literals[name].CopyFrom(user_inputs.literals[name])
    for name in sorted(expected):
        parameter = expected[name]
        if name not in resolved.literals:
            if parameter.WhichOneof("behavior") == "required" and parameter.required:
                raise Violation(INPUT_MISSING, name=name)
            resolved.literals[name].CopyFrom(parameter.default)
        elif not literals.fits(wire, resolved.literals[name], parameter.var.type):
            raise Violation(
                INPUT_TYPE,
                name=name,
                expected=literals.type_text(parameter.var.type),
                given=literals.type_text(literals.infer_type(wire, resolved.literals[name])),
            )
    for name in sorted(plan.spec.fixed_inputs.literals):
        if name in resolved.literals:
            raise Violation(INPUT_FIXED, name=name)
        resolved.literals[name].CopyFrom(plan.spec.fixed_inputs.literals[name])
    return resolved


# -- the launch plan of a task execution ---------------------------------------------------------------


def _single_task_plan(state: State, task_id: Any) -> tuple[Any, Callable[[], LaunchPlanRecord]]:
    """The launch plan ``.flytegen.<task>`` that runs one task, and how to store it and its workflow.

    Nothing is stored until the execution is known to be valid: the caller commits then.
    """
    task = registration.find_task(state, task_id)
    if task is None:
        raise registration.not_found("TASK", task_id, "spec.launch_plan")
    name = FLYTEGEN + task_id.name
    wire = state.wire
    workflow_id = wire.new(
        "core.Identifier", project=task_id.project, domain=task_id.domain, name=name, version=task_id.version
    )
    workflow_id.resource_type = wire.number("core.ResourceType", "WORKFLOW")
    plan_id = copy(workflow_id)
    plan_id.resource_type = wire.number("core.ResourceType", "LAUNCH_PLAN")
    existing = registration.find_launch_plan(state, plan_id)
    if existing is not None:
        return existing.launch_plan, lambda: existing
    template = task.task.closure.compiled_task.template
    workflow = registration.find_workflow(state, workflow_id)
    spec = wire.new("admin.WorkflowSpec")
    body = spec.template
    body.id.CopyFrom(workflow_id)
    body.interface.CopyFrom(template.interface)
    node = body.nodes.add(id=task_id.name.rpartition(".")[2] or "n0")
    node.metadata.name = task_id.name
    node.task_node.reference_id.CopyFrom(template.id)
    for input_name in template.interface.inputs.variables:
        binding = node.inputs.add(var=input_name)
        binding.binding.promise.node_id = "start-node"
        binding.binding.promise.var = input_name
    for output_name in template.interface.outputs.variables:
        binding = body.outputs.add(var=output_name)
        binding.binding.promise.node_id = node.id
        binding.binding.promise.var = output_name
    closure = registration.compile_spec(state, workflow_id, spec) if workflow is None else None
    plan_spec = wire.new("admin.LaunchPlanSpec", workflow_id=workflow_id)
    plan = registration.build_launch_plan(state, plan_id, plan_spec, workflow, template.interface)

    def commit() -> LaunchPlanRecord:
        stored = workflow or registration.store_workflow(state, workflow_id, spec, state.now(), closure)
        record = registration.store_launch_plan(state, plan, stored)
        _system_generated(state, wire.number("core.ResourceType", "WORKFLOW"), workflow_id)
        _system_generated(state, wire.number("core.ResourceType", "LAUNCH_PLAN"), plan_id)
        return record

    return plan, commit


def _system_generated(state: State, resource_type: int, ident: Any) -> None:
    set_metadata(
        state, resource_type, ident, state.wire.number("admin.NamedEntityState", "SYSTEM_GENERATED"), ""
    )


# -- create ----------------------------------------------------------------------------------------------


def _launch(
    state: State,
    key: ExecKey,
    spec: Any,
    user_inputs: Any,
    mode: str,
    reference: Any = None,
    source: ExecutionRecord | None = None,
) -> ExecutionRecord:
    """The create path every execution takes: launch plan, inputs, the stored record, the propeller."""
    wire = state.wire
    reference_type = wire.name_of("core.ResourceType", spec.launch_plan.resource_type)
    if reference_type not in ("LAUNCH_PLAN", "TASK"):
        raise Violation(REFERENCE_TYPE, value=reference_type, allowed="[LAUNCH_PLAN TASK]")
    task_row = None
    if reference_type == "TASK":
        launch_plan, commit = _single_task_plan(state, spec.launch_plan)
        task = registration.find_task(state, spec.launch_plan)
        task_row = task.row if task is not None else None
    else:
        found = registration.find_launch_plan(state, spec.launch_plan)
        if found is None:
            raise registration.not_found("LAUNCH_PLAN", spec.launch_plan, "spec.launch_plan")
        launch_plan, commit = found.launch_plan, lambda: found
    inputs = resolve_inputs(state, user_inputs, launch_plan)
    policy = launch_plan.spec.concurrency_policy
    if (
        policy.max > 0
        and wire.name_of("admin.ConcurrencyLimitBehavior", policy.behavior)
        == "CONCURRENCY_LIMIT_BEHAVIOR_SKIP"
    ):
        running = {wire.number("core.WorkflowExecution.Phase", p) for p in ("QUEUED", "RUNNING")}
        same = registration.find_launch_plan(state, launch_plan.id)
        active = sum(
            1
            for r in state.table("executions").scan((key.project, key.domain))
            if same is not None and r.launch_plan_row == same.row and r.execution.closure.phase in running
        )
        if active >= policy.max:
            raise Violation(CONCURRENCY, limit=policy.max, name=launch_plan.id.name)
    table = state.table("executions")
    if table.get(key) is not None:
        raise Violation(
            ALREADY_EXISTS, id=text(wire.new("core.WorkflowExecutionIdentifier", **key._asdict()))
        )
    plan = commit()  # every check passed: from here on things are stored
    now = state.now()
    ident = wire.new(
        "core.WorkflowExecutionIdentifier", project=key.project, domain=key.domain, name=key.name
    )
    stored_spec = copy(spec)
    if reference_type == "TASK":
        stored_spec.launch_plan.CopyFrom(launch_plan.id)
    metadata = stored_spec.metadata
    metadata.mode = wire.number("admin.ExecutionMetadata.ExecutionMode", mode)
    metadata.principal = ""  # no authentication: flyteadmin records no principal
    metadata.system_metadata.namespace = f"{key.project}-{key.domain}"
    if reference is not None:
        metadata.reference_execution.CopyFrom(reference)
    stored_spec.security_context.SetInParent()
    if not stored_spec.max_parallelism:
        stored_spec.max_parallelism = launch_plan.spec.max_parallelism or state.config["max_parallelism"]
    for name in ("labels", "annotations", "raw_output_data_config"):
        if not stored_spec.HasField(name) and launch_plan.spec.HasField(name):
            getattr(stored_spec, name).CopyFrom(getattr(launch_plan.spec, name))
    execution = wire.new("admin.Execution", id=ident, spec=stored_spec)
    closure = execution.closure
    closure.phase = wire.number("core.WorkflowExecution.Phase", "UNDEFINED")
    closure.created_at.CopyFrom(stamp(now))
    closure.updated_at.CopyFrom(stamp(now))
    closure.workflow_id.CopyFrom(launch_plan.spec.workflow_id)
    closure.state_change_details.state = wire.number("admin.ExecutionState", "EXECUTION_ACTIVE")
    closure.state_change_details.occurred_at.CopyFrom(stamp(now))
    closure.state_change_details.principal = ""
    if spec.WhichOneof("notification_overrides") == "notifications":
        closure.notifications.extend(spec.notifications.notifications)
    elif spec.WhichOneof("notification_overrides") is None:
        closure.notifications.extend(launch_plan.spec.entity_metadata.notifications)
    inputs_uri = state.put_literals(
        state.storage("metadata", key.project, key.domain, key.name, "inputs"), inputs
    )
    user_uri = state.put_literals(
        state.storage("metadata", key.project, key.domain, key.name, "user_inputs"), user_inputs
    )
    record = ExecutionRecord(
        row=state.store.next_row(),
        created_at=now,
        updated_at=now,
        key=key,
        execution=execution,
        launch_plan_row=plan.row,
        workflow_row=plan.workflow_row,
        task_row=task_row,
        inputs_uri=inputs_uri,
        user_inputs_uri=user_uri,
        source_row=source.row if source is not None else None,
    )
    table.insert(key, (key.project, key.domain), record)
    state.propeller.start(record, source)
    return record


def _created(state: State, record: ExecutionRecord) -> Any:
    response = state.wire.new("admin.ExecutionCreateResponse")
    response.id.CopyFrom(record.execution.id)
    return response


@admin("CreateExecution")
def create_execution(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    identifiers.project_and_domain(state, request.project, request.domain)
    if not request.HasField("spec"):
        raise identifiers.missing("spec", "spec")
    spec = request.spec
    if not spec.HasField("launch_plan"):
        raise identifiers.missing("spec.launch_plan", "id")
    for part in ("project", "domain", "name", "version"):
        if not getattr(spec.launch_plan, part):
            raise identifiers.missing(f"spec.launch_plan.{part}", part)
    user_inputs = request.inputs if request.inputs.literals else spec.inputs
    _check_literal_map(user_inputs)
    if len(spec.labels.values) > state.config["max_labels"]:
        raise Violation(LABELS, limit=state.config["max_labels"])
    check_labels(spec.labels, "spec.labels")
    if spec.WhichOneof("notification_overrides") == "notifications":
        registration.check_notifications(state, spec.notifications.notifications, "spec.notifications")
    name = request.name or generated_name(state)
    key = ExecKey(request.project, request.domain, name)
    record = _launch(state, key, spec, user_inputs, "MANUAL")
    return _created(state, record)


def _again(state: State, request: Any, mode: str) -> Any:
    source = find(state, request.id)
    spec = copy(source.execution.spec)
    spec.ClearField("metadata")  # the new execution says how it came to be
    if mode == "RELAUNCH":
        spec.overwrite_cache = request.overwrite_cache
    elif request.HasField("metadata"):
        spec.metadata.CopyFrom(request.metadata)
    user_inputs = state.get_literals(source.user_inputs_uri)
    key = ExecKey(source.key.project, source.key.domain, request.name or generated_name(state))
    record = _launch(state, key, spec, user_inputs, mode, reference=source.execution.id, source=source)
    return _created(state, record)


@admin("RelaunchExecution")
def relaunch_execution(request: Any, ctx: CallContext) -> Any:
    return _again(ctx.state, request, "RELAUNCH")


@admin("RecoverExecution")
def recover_execution(request: Any, ctx: CallContext) -> Any:
    return _again(ctx.state, request, "RECOVERED")


# -- read ---------------------------------------------------------------------------------------------


@admin("GetExecution")
def get_execution(request: Any, ctx: CallContext) -> Any:
    return copy(find(ctx.state, request.id).execution)


def output_literals(state: State, closure: Any) -> Any:
    kind = closure.WhichOneof("output_result")
    if kind == "output_data":
        return copy(closure.output_data)
    if kind == "outputs":
        if closure.outputs.WhichOneof("data") == "values":
            return copy(closure.outputs.values)
        return state.get_literals(closure.outputs.uri)
    return state.wire.new("core.LiteralMap")


@admin("GetExecutionData")
def get_execution_data(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    record = find(state, request.id)
    response = state.wire.new("admin.WorkflowExecutionGetDataResponse")
    response.inputs.SetInParent()  # no signed URLs (remote data scheme "none"): empty blobs
    response.outputs.SetInParent()
    response.full_inputs.CopyFrom(state.get_literals(record.inputs_uri))
    response.full_outputs.CopyFrom(output_literals(state, record.execution.closure))
    return response


def listed(state: State, record: ExecutionRecord) -> Any:
    """ListExecutions trims what it returns: no inputs, error messages cut to 100 bytes."""
    execution = copy(record.execution)
    execution.spec.ClearField("inputs")
    execution.closure.ClearField("computed_inputs")
    if execution.closure.HasField("error"):
        cut = state.config["list_error_message_bytes"]
        execution.closure.error.message = execution.closure.error.message.encode()[:cut].decode(
            errors="ignore"
        )
    return execution


@admin("ListExecutions")
def list_executions(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = request.id
    filters = [
        listing.equality("e", "execution_project", ident.project),
        listing.equality("e", "execution_domain", ident.domain),
    ]
    if ident.name:
        filters.append(listing.equality("e", "execution_name", ident.name))
    requested = listing.parse_filters(state, request.filters, "e") if request.filters else []
    names_state = any(f.entity == "e" and f.column == "state" for f in requested)
    if not names_state and not ctx.defect(defects.ARCHIVED_STILL_LISTED):
        filters.append(
            listing.equality("e", "state", state.wire.number("admin.ExecutionState", "EXECUTION_ACTIVE"))
        )
    filters += [] if ctx.defect(defects.FILTERS_IGNORED) else requested
    sort = listing.parse_sort(state, request.sort_by, "e", request.HasField("sort_by"))
    offset = listing.parse_token(request.token, "ListExecutions")
    if ctx.defect(defects.TOKEN_NEVER_ADVANCES):
        offset = 0
    records = listing.select(
        state, "executions", (ident.project, ident.domain), columns.model(state, "e"), filters, sort
    )
    chosen, token = listing.page(records, offset, request.limit)
    response = state.wire.new("admin.ExecutionList", token=token)
    response.executions.extend(listed(state, r) for r in chosen)
    return response


# -- change ----------------------------------------------------------------------------------------------


@admin("UpdateExecution")
def update_execution(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    record = find(state, request.id)
    details = record.execution.closure.state_change_details
    details.state = request.state
    details.occurred_at.CopyFrom(stamp(state.now()))
    details.principal = ""
    state.table("executions").update(record.key, record)
    return state.wire.new("admin.ExecutionUpdateResponse")


@admin("TerminateExecution")
def terminate_execution(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    record = find(state, request.id)
    closure = record.execution.closure
    enum = "core.WorkflowExecution.Phase"
    if events.terminal(state, "workflow", closure.phase, enum) and not ctx.defect(
        defects.TERMINATE_TERMINAL_ACCEPTED
    ):
        phase = state.wire.name_of(enum, closure.phase)
        reason = state.wire.new("admin.EventFailureReason")
        reason.already_in_terminal_state.current_phase = phase
        raise Violation(TERMINATED, details=(reason,), phase=phase)
    closure.abort_metadata.cause = request.cause
    closure.abort_metadata.principal = ""
    closure.phase = state.wire.number(enum, "ABORTING")
    state.table("executions").update(record.key, record)
    state.propeller.abort(record)
    return state.wire.new("admin.ExecutionTerminateResponse")


# -- metrics ----------------------------------------------------------------------------------------------


def _span(state: State, start: datetime, end: datetime) -> Any:
    found = state.wire.new("core.Span")
    found.start_time.CopyFrom(stamp(start))
    found.end_time.CopyFrom(stamp(max(start, end)))
    return found


@admin("GetExecutionMetrics")
def get_execution_metrics(request: Any, ctx: CallContext) -> Any:
    """A span per execution, node (depth 2) and task attempt (depth 3), from creation to last update."""
    state: State = ctx.state
    record = find(state, request.id)
    closure = record.execution.closure
    root = _span(state, to_datetime(closure.created_at), to_datetime(closure.updated_at))
    root.workflow_id.CopyFrom(record.execution.id)
    depth = request.depth if request.depth > 0 else state.config["metrics_depth"]
    if depth > 1:
        for node in state.table("node_executions").scan(record.key):
            if node.parent_row is not None:
                continue
            node_span = root.spans.add()
            node_span.CopyFrom(_span(state, node.created_at, node.updated_at))
            node_span.node_id.CopyFrom(node.node.id)
            if depth > 2:
                for attempt in state.table("task_executions").scan(node.key):
                    task_span = node_span.spans.add()
                    task_span.CopyFrom(_span(state, attempt.created_at, attempt.updated_at))
                    task_span.task_id.CopyFrom(attempt.task_execution.id)
    response = state.wire.new("admin.WorkflowExecutionGetMetricsResponse")
    response.span.CopyFrom(root)
    return response
