"""Tasks, workflows and launch plans: create, get, list, list ids; launch plan activation.

Registration is immutable: the same id again is ALREADY_EXISTS when the compiled
entity is identical (clients such as flytekit treat that as success) and
INVALID_ARGUMENT listing the differences when it is not.  A workflow is compiled
against the registered tasks; a launch plan is checked against its workflow's
interface, created INACTIVE, and activating a version deactivates the one that
was active under the same name.
"""

from __future__ import annotations

import re
from typing import Any

import grpc
from protoconform.mockserver.apis.flyte import (
    columns,
    compiler,
    defects,
    diffs,
    identifiers,
    listing,
    literals,
)
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.projects import check_labels
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import (
    DescriptionRecord,
    LaunchPlanRecord,
    State,
    TaskRecord,
    WorkflowRecord,
    key_of,
)
from protoconform.mockserver.apis.flyte.wire import copy, stamp, text
from protoconform.mockserver.rpc import ApiError, CallContext

NOT_FOUND = "flyte.entities.not-found"
IDENTICAL = "flyte.register.identical"
DIFFERENT = "flyte.register.different"
TASK_COMPILE = "flyte.tasks.create.compile"
TASK_POD_SPEC = "flyte.tasks.create.pod-spec"
WORKFLOW_COMPILE = "flyte.workflows.create.compile"
WORKFLOW_NODES = "flyte.workflows.create.node-limit"
LP_LABELS = "flyte.launch-plans.create.labels"
LP_FIXED_KEY = "flyte.launch-plans.create.fixed-input-key"
LP_FIXED_LITERAL = "flyte.launch-plans.create.fixed-input-literal"
LP_PARAMETER_TYPE = "flyte.launch-plans.create.parameter-type"
LP_PARAMETER_BEHAVIOUR = "flyte.launch-plans.create.parameter-behaviour"
LP_PARAMETER_MISMATCH = "flyte.launch-plans.create.parameter-default-type"
LP_ARTIFACT = "flyte.launch-plans.create.artifact-query"
LP_EXPECTED_NONE = "flyte.launch-plans.create.inputs-expected-none"
LP_UNEXPECTED = "flyte.launch-plans.create.unexpected-input"
LP_WRONG_TYPE = "flyte.launch-plans.create.input-wrong-type"
LP_SCHEDULE_UNBOUND = "flyte.launch-plans.create.schedule-unbound"
LP_SCHEDULE_KICKOFF = "flyte.launch-plans.create.schedule-kickoff"
LP_SCHEDULE_CRON = "flyte.launch-plans.create.schedule-cron"
LP_NOTIFICATION = "flyte.launch-plans.create.notification"
LP_UPDATE_STATE = "flyte.launch-plans.update.state"
LP_ACTIVE_NOT_FOUND = "flyte.launch-plans.active.not-found"
IDS_PARAMETERS = "flyte.lists.ids-parameters"

KINDS = {"TASK": "task", "WORKFLOW": "workflow", "LAUNCH_PLAN": "launch plan"}
TABLE_OF = {"TASK": "tasks", "WORKFLOW": "workflows", "LAUNCH_PLAN": "launch_plans"}
ENTITY_OF = {"TASK": "t", "WORKFLOW": "w", "LAUNCH_PLAN": "l"}
_CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_FIELD = re.compile(
    r"(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?|\*/[0-9]+|[0-9]+(-[0-9]+)?/[0-9]+|[0-9A-Z]+[LW#]?[0-9]*)(,.+)?"
)


def not_found(kind: str, ident: Any, field: str = "id") -> Violation:
    return Violation(NOT_FOUND, field=field, type=kind, id=text(ident))


def _duplicate(
    state: State, resource: str, ident: Any, old: Any, new: Any, details: tuple[Any, ...] = ()
) -> Violation:
    kind = KINDS[resource]
    if diffs.digest(old) == diffs.digest(new):
        if resource == "WORKFLOW":
            reason = state.wire.new("admin.CreateWorkflowFailureReason")
            reason.exists_identical_structure.id.CopyFrom(ident)
            details = (reason,)
        return Violation(IDENTICAL, kind=kind, details=details)
    if resource == "WORKFLOW":
        reason = state.wire.new("admin.CreateWorkflowFailureReason")
        reason.exists_different_structure.id.CopyFrom(ident)
        details = (reason,)
    return Violation(DIFFERENT, kind=kind, id=text(ident), diff=diffs.difference(old, new), details=details)


def _description(state: State, resource: str, ident: Any, description: Any) -> None:
    """The description entity a registration with a description creates."""
    entity = copy(description)
    entity.id.CopyFrom(ident)
    entity.id.resource_type = state.wire.number("core.ResourceType", resource)
    key = (entity.id.resource_type, key_of(ident))
    table = state.table("descriptions")
    if table.get(key) is None:
        now = state.now()
        record = DescriptionRecord(
            row=state.store.next_row(),
            created_at=now,
            updated_at=now,
            resource_type=entity.id.resource_type,
            key=key_of(ident),
            entity=entity,
        )
        table.insert(key, (ident.project, ident.domain), record)


# -- tasks ----------------------------------------------------------------------------------------


def _validate_task_spec(state: State, request: Any) -> None:
    spec = request.spec
    if not request.HasField("spec") or not spec.HasField("template"):
        raise identifiers.missing("spec", "spec")
    template = spec.template
    if not template.type:
        raise identifiers.missing("spec.template.type", "type")
    if not template.HasField("metadata"):
        raise identifiers.missing("spec.template.metadata", "metadata")
    if template.metadata.HasField("runtime") and not template.metadata.runtime.version:
        raise identifiers.missing("spec.template.metadata.runtime.version", "runtime version")
    if not template.HasField("interface"):
        raise identifiers.missing("spec.template.interface", "typed interface")
    target = template.WhichOneof("target")
    if target == "container" and not template.container.image:
        raise identifiers.missing("spec.template.container.image", "image")
    if target == "k8s_pod" and not template.k8s_pod.HasField("pod_spec"):
        raise Violation(TASK_POD_SPEC)
    has_io = bool(template.interface.inputs.variables or template.interface.outputs.variables)
    if target == "container" and has_io and not (template.container.command or template.container.args):
        raise Violation(
            TASK_COMPILE,
            error=compiler.render(
                [compiler.CompileError("ValueRequired", "root", "Value required [command].")]
            ),
        )


@admin("CreateTask")
def create_task(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = request.id
    identifiers.project_and_domain(state, ident.project, ident.domain, "id")
    _validate_task_spec(state, request)
    compiled = state.wire.new("core.CompiledTask")
    compiled.template.CopyFrom(request.spec.template)
    compiled.template.id.CopyFrom(ident)
    key = key_of(ident)
    table = state.table("tasks")
    existing: TaskRecord | None = table.get(key)
    if existing is not None:
        duplicate = _duplicate(state, "TASK", ident, existing.task.closure.compiled_task, compiled)
        if duplicate.rule_id == IDENTICAL and ctx.defect(defects.IDENTICAL_REGISTRATION_REFUSED):
            duplicate = Violation(DIFFERENT, kind="task", id=text(ident), diff="")
        raise duplicate
    now = state.now()
    task = state.wire.new("admin.Task", id=ident)
    task.closure.compiled_task.CopyFrom(compiled)
    task.closure.created_at.CopyFrom(stamp(now))
    if request.spec.HasField("description"):
        task.short_description = request.spec.description.short_description
        _description(state, "TASK", ident, request.spec.description)
    record = TaskRecord(
        row=state.store.next_row(),
        created_at=now,
        updated_at=now,
        key=key,
        task=task,
        digest=diffs.digest(compiled),
    )
    table.insert(key, (key.project, key.domain), record)
    return state.wire.new("admin.TaskCreateResponse")


def find_task(state: State, ident: Any) -> TaskRecord | None:
    return state.table("tasks").get(key_of(ident))


@admin("GetTask")
def get_task(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    # flyteadmin only logs a bad task id here: whatever is missing, an absent task is NOT_FOUND.
    record = find_task(state, request.id)
    if record is None:
        if ctx.defect(defects.GET_TASK_WRONG_STATUS):
            raise ApiError(grpc.StatusCode.INTERNAL, f"failed to get task {text(request.id)}")
        shown = copy(request.id)
        shown.resource_type = shown.resource_type or state.wire.number("core.ResourceType", "TASK")
        raise not_found("TASK", shown)
    return copy(record.task)


# -- workflows ----------------------------------------------------------------------------------------


def store_workflow(state: State, ident: Any, spec: Any, now: Any, closure: Any) -> WorkflowRecord:
    key = key_of(ident)
    workflow = state.wire.new("admin.Workflow", id=ident)
    workflow.closure.compiled_workflow.CopyFrom(closure)
    workflow.closure.created_at.CopyFrom(stamp(now))
    if spec.HasField("description"):
        workflow.short_description = spec.description.short_description
        _description(state, "WORKFLOW", ident, spec.description)
    record = WorkflowRecord(
        row=state.store.next_row(),
        created_at=now,
        updated_at=now,
        key=key,
        workflow=workflow,
        digest=diffs.digest(closure),
    )
    state.table("workflows").insert(key, (key.project, key.domain), record)
    return record


def compile_spec(state: State, ident: Any, spec: Any) -> Any:
    template = copy(spec.template)
    template.id.CopyFrom(ident)
    try:
        closure = compiler.compile_workflow(
            state.wire,
            template,
            list(spec.sub_workflows),
            lambda ref: found.task.closure.compiled_task if (found := find_task(state, ref)) else None,
        )
    except compiler.CompileFailed as failed:
        raise Violation(WORKFLOW_COMPILE, field="spec", id=text(ident), error=str(failed)) from None
    limit = state.config["max_workflow_nodes"]
    count = len(template.nodes)
    if count > limit:
        raise Violation(WORKFLOW_NODES, field="spec.template.nodes", id=text(ident), count=count, limit=limit)
    return closure


@admin("CreateWorkflow")
def create_workflow(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = request.id
    identifiers.project_and_domain(state, ident.project, ident.domain, "id")
    if not request.HasField("spec") or not request.spec.HasField("template"):
        raise identifiers.missing("spec", "spec")
    closure = compile_spec(state, ident, request.spec)
    key = key_of(ident)
    existing: WorkflowRecord | None = state.table("workflows").get(key)
    if existing is not None:
        raise _duplicate(state, "WORKFLOW", ident, existing.workflow.closure.compiled_workflow, closure)
    store_workflow(state, ident, request.spec, state.now(), closure)
    return state.wire.new("admin.WorkflowCreateResponse")


def find_workflow(state: State, ident: Any) -> WorkflowRecord | None:
    return state.table("workflows").get(key_of(ident))


@admin("GetWorkflow")
def get_workflow(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = identifiers.identifier(state, request, "id", "WORKFLOW")
    record = find_workflow(state, ident)
    if record is None:
        raise not_found("WORKFLOW", ident)
    return copy(record.workflow)


def listed_workflow(state: State, record: WorkflowRecord) -> Any:
    """ListWorkflows returns only the creation time and the primary template's interface."""
    workflow = state.wire.new(
        "admin.Workflow", id=record.workflow.id, short_description=record.workflow.short_description
    )
    workflow.closure.created_at.CopyFrom(record.workflow.closure.created_at)
    primary = record.workflow.closure.compiled_workflow.primary
    workflow.closure.compiled_workflow.primary.template.interface.CopyFrom(primary.template.interface)
    return workflow


# -- launch plans ---------------------------------------------------------------------------------------


def _check_parameters(state: State, spec: Any, interface: Any) -> None:
    wire = state.wire
    for name, literal in spec.fixed_inputs.literals.items():
        if not name:
            raise Violation(LP_FIXED_KEY)
        if literal.WhichOneof("value") is None:
            raise Violation(LP_FIXED_LITERAL, name=name)
    for name, parameter in spec.default_inputs.parameters.items():
        if not parameter.HasField("var") or not parameter.var.HasField("type"):
            raise Violation(LP_PARAMETER_TYPE, name=name)
        behaviour = parameter.WhichOneof("behavior")
        if behaviour in ("artifact_query", "artifact_id"):
            raise Violation(LP_ARTIFACT, name=name)
        if behaviour is None or (behaviour == "required" and not parameter.required):
            raise Violation(LP_PARAMETER_BEHAVIOUR, name=name)
        if behaviour == "default" and not literals.fits(wire, parameter.default, parameter.var.type):
            raise Violation(
                LP_PARAMETER_MISMATCH,
                name=name,
                given=literals.type_text(literals.infer_type(wire, parameter.default)),
                expected=literals.type_text(parameter.var.type),
            )
    inputs = interface.inputs.variables
    for what, names in (("default", spec.default_inputs.parameters), ("fixed", spec.fixed_inputs.literals)):
        if names and not inputs:
            raise Violation(LP_EXPECTED_NONE, field=f"spec.{what}_inputs", what=what, count=len(names))
    for name, parameter in spec.default_inputs.parameters.items():
        if name not in inputs:
            raise Violation(LP_UNEXPECTED, field="spec.default_inputs", what="default_input", name=name)
        if parameter.var.type != inputs[name].type:
            raise Violation(
                LP_WRONG_TYPE,
                field="spec.default_inputs",
                what="default_input",
                name=name,
                expected=literals.type_text(inputs[name].type),
                given=literals.type_text(parameter.var.type),
            )
    for name, literal in spec.fixed_inputs.literals.items():
        if name not in inputs:
            raise Violation(LP_UNEXPECTED, field="spec.fixed_inputs", what="fixed_input", name=name)
        if not literals.fits(wire, literal, inputs[name].type):
            raise Violation(
                LP_WRONG_TYPE,
                field="spec.fixed_inputs",
                what="fixed_input",
                name=name,
                expected=literals.type_text(inputs[name].type),
                given=literals.type_text(literals.infer_type(wire, literal)),
            )


def expected_inputs(state: State, spec: Any, interface: Any) -> Any:
    """The launch plan's defaults plus every workflow input it leaves unbound (required)."""
    expected = state.wire.new("core.ParameterMap")
    for name, parameter in spec.default_inputs.parameters.items():
        expected.parameters[name].CopyFrom(parameter)
    for name, variable in interface.inputs.variables.items():
        if name in spec.fixed_inputs.literals or name in expected.parameters:
            continue
        expected.parameters[name].var.CopyFrom(variable)
        expected.parameters[name].required = True
    return expected


def _valid_cron(expression: str) -> bool:
    fields = expression.split()
    if len(fields) == 1 and fields[0] in _CRON_ALIASES:
        return True
    return len(fields) in (5, 6) and all(_CRON_FIELD.fullmatch(f) for f in fields)


def _check_schedule(state: State, spec: Any, expected: Any, interface: Any) -> None:
    schedule = spec.entity_metadata.schedule
    kind = schedule.WhichOneof("ScheduleExpression")
    if kind is None:
        return
    for name, parameter in expected.parameters.items():
        if (
            parameter.WhichOneof("behavior") == "required"
            and parameter.required
            and name != schedule.kickoff_time_input_arg
        ):
            raise Violation(LP_SCHEDULE_UNBOUND, field="spec.entity_metadata.schedule", name=name)
    argument = schedule.kickoff_time_input_arg
    if argument:
        variable = interface.inputs.variables.get(argument)
        datetime_type = state.wire.number("core.SimpleType", "DATETIME")
        if (
            variable is None
            or variable.type.simple != datetime_type
            or argument in spec.fixed_inputs.literals
        ):
            raise Violation(
                LP_SCHEDULE_KICKOFF,
                field="spec.entity_metadata.schedule.kickoff_time_input_arg",
                name=argument,
            )
    cron = (
        schedule.cron_schedule.schedule
        if kind == "cron_schedule"
        else schedule.cron_expression
        if kind == "cron_expression"
        else ""
    )
    if kind in ("cron_schedule", "cron_expression") and not _valid_cron(cron):
        raise Violation(LP_SCHEDULE_CRON, field="spec.entity_metadata.schedule", expression=cron)


def check_notifications(state: State, notifications: Any, field: str) -> None:
    terminal = {
        state.wire.number("core.WorkflowExecution.Phase", p)
        for p in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
    }
    for notification in notifications:
        kind = notification.WhichOneof("type")
        if kind is None:
            raise Violation(LP_NOTIFICATION, field=field, what="invalid value for notification type")
        if not getattr(notification, kind).recipients_email:
            raise Violation(LP_NOTIFICATION, field=field, what="missing recipients")
        if any(phase not in terminal for phase in notification.phases):
            raise Violation(LP_NOTIFICATION, field=field, what="invalid value for phase")


def build_launch_plan(
    state: State, ident: Any, spec: Any, workflow: WorkflowRecord | None, interface: Any = None
) -> Any:
    """A launch plan of ``workflow`` (or of a workflow with ``interface`` not stored yet), INACTIVE."""
    if workflow is not None:
        interface = workflow.workflow.closure.compiled_workflow.primary.template.interface
    expected = expected_inputs(state, spec, interface)
    plan = state.wire.new("admin.LaunchPlan", id=ident)
    plan.spec.CopyFrom(spec)
    plan.spec.default_inputs.CopyFrom(expected)
    plan.closure.expected_inputs.CopyFrom(expected)
    plan.closure.expected_outputs.CopyFrom(interface.outputs)
    plan.closure.state = state.wire.number("admin.LaunchPlanState", "INACTIVE")
    return plan


def store_launch_plan(state: State, plan: Any, workflow: WorkflowRecord) -> LaunchPlanRecord:
    now = state.now()
    plan.closure.created_at.CopyFrom(stamp(now))
    plan.closure.updated_at.CopyFrom(stamp(now))
    key = key_of(plan.id)
    record = LaunchPlanRecord(
        row=state.store.next_row(),
        created_at=now,
        updated_at=now,
        key=key,
        launch_plan=plan,
        digest=diffs.digest(_digested(plan)),
        workflow_row=workflow.row,
    )
    state.table("launch_plans").insert(key, (key.project, key.domain), record)
    return record


def _digested(plan: Any) -> Any:
    """What flyteadmin hashes: id, spec and closure, without the times the database sets."""
    shown = copy(plan)
    shown.closure.ClearField("created_at")
    shown.closure.ClearField("updated_at")
    shown.closure.ClearField("state")
    return shown


@admin("CreateLaunchPlan")
def create_launch_plan(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    spec = request.spec
    workflow_id = identifiers.identifier(
        state,
        spec if request.HasField("spec") else None,
        "workflow_id",
        "WORKFLOW",
        "spec.workflow_id",
        fill=False,
    )
    workflow = find_workflow(state, workflow_id)
    if workflow is None:
        raise not_found("WORKFLOW", workflow_id, "spec.workflow_id")
    ident = identifiers.identifier(state, request, "id", "LAUNCH_PLAN", fill=False)
    identifiers.project_and_domain(state, ident.project, ident.domain, "id")
    if len(spec.labels.values) > state.config["max_labels"]:
        raise Violation(LP_LABELS, limit=state.config["max_labels"])
    check_labels(spec.labels, "spec.labels")
    interface = workflow.workflow.closure.compiled_workflow.primary.template.interface
    _check_parameters(state, spec, interface)
    expected = expected_inputs(state, spec, interface)
    _check_schedule(state, spec, expected, interface)
    check_notifications(state, spec.entity_metadata.notifications, "spec.entity_metadata.notifications")
    plan = build_launch_plan(state, ident, spec, workflow)
    existing: LaunchPlanRecord | None = state.table("launch_plans").get(key_of(ident))
    if existing is not None:
        raise _duplicate(state, "LAUNCH_PLAN", ident, _digested(existing.launch_plan), _digested(plan))
    store_launch_plan(state, plan, workflow)
    return state.wire.new("admin.LaunchPlanCreateResponse")


def find_launch_plan(state: State, ident: Any) -> LaunchPlanRecord | None:
    return state.table("launch_plans").get(key_of(ident))


@admin("GetLaunchPlan")
def get_launch_plan(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = identifiers.identifier(state, request, "id", "LAUNCH_PLAN")
    record = find_launch_plan(state, ident)
    if record is None:
        raise not_found("LAUNCH_PLAN", ident)
    return copy(record.launch_plan)


def _versions(state: State, table: str, project: str, domain: str, name: str) -> list[Any]:
    return [r for r in state.table(table).scan((project, domain)) if r.key.name == name]


@admin("UpdateLaunchPlan")
def update_launch_plan(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = identifiers.identifier(state, request, "id", "LAUNCH_PLAN")
    active = state.wire.number("admin.LaunchPlanState", "ACTIVE")
    inactive = state.wire.number("admin.LaunchPlanState", "INACTIVE")
    if request.state not in (active, inactive):
        raise Violation(LP_UPDATE_STATE, state=request.state, id=text(ident))
    record = find_launch_plan(state, ident)
    if record is None:
        raise not_found("LAUNCH_PLAN", ident)
    now = state.now()
    table = state.table("launch_plans")
    if request.state == active and not ctx.defect(defects.ACTIVATION_KEEPS_PREVIOUS):
        for other in _versions(state, "launch_plans", ident.project, ident.domain, ident.name):
            if other is not record and other.launch_plan.closure.state == active:
                other.launch_plan.closure.state = inactive
                other.launch_plan.closure.updated_at.CopyFrom(stamp(now))
                other.updated_at = now
                table.update(other.key, other)
    record.launch_plan.closure.state = request.state
    record.launch_plan.closure.updated_at.CopyFrom(stamp(now))
    record.updated_at = now
    table.update(record.key, record)
    return state.wire.new("admin.LaunchPlanUpdateResponse")


@admin("GetActiveLaunchPlan")
def get_active_launch_plan(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = request.id
    active = state.wire.number("admin.LaunchPlanState", "ACTIVE")
    for record in _versions(state, "launch_plans", ident.project, ident.domain, ident.name):
        if record.launch_plan.closure.state == active:
            return copy(record.launch_plan)
    raise Violation(LP_ACTIVE_NOT_FOUND, project=ident.project, domain=ident.domain, name=ident.name)


@admin("ListActiveLaunchPlans")
def list_active_launch_plans(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    active = state.wire.number("admin.LaunchPlanState", "ACTIVE")
    filters = [
        listing.equality("l", "project", request.project),
        listing.equality("l", "domain", request.domain),
        listing.equality("l", "state", active),
    ]
    sort = listing.parse_sort(state, request.sort_by, "l", request.HasField("sort_by"))
    offset = listing.parse_token(request.token, "ListActiveLaunchPlans")
    records = listing.select(
        state, "launch_plans", (request.project, request.domain), columns.model(state, "l"), filters, sort
    )
    chosen, token = listing.page(records, offset, request.limit)
    response = state.wire.new("admin.LaunchPlanList", token=token)
    response.launch_plans.extend(r.launch_plan for r in chosen)  # extend copies each message
    return response


# -- lists ----------------------------------------------------------------------------------------------


def _list(ctx: CallContext, request: Any, resource: str, operation: str) -> tuple[list[Any], str]:
    state: State = ctx.state
    entity = ENTITY_OF[resource]
    ident = request.id
    filters = [
        listing.equality(entity, "project", ident.project),
        listing.equality(entity, "domain", ident.domain),
    ]
    if ident.name:
        filters.append(listing.equality(entity, "name", ident.name))
    if request.filters:
        requested = listing.parse_filters(state, request.filters, entity)
        filters += [] if ctx.defect(defects.FILTERS_IGNORED) else requested
    sort = listing.parse_sort(state, request.sort_by, entity, request.HasField("sort_by"))
    offset = listing.parse_token(request.token, operation)
    if ctx.defect(defects.TOKEN_NEVER_ADVANCES):
        offset = 0
    records = listing.select(
        state, TABLE_OF[resource], (ident.project, ident.domain), columns.model(state, entity), filters, sort
    )
    return listing.page(records, offset, request.limit)


@admin("ListTasks")
def list_tasks(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    chosen, token = _list(ctx, request, "TASK", "ListTasks")
    response = state.wire.new("admin.TaskList", token=token)
    response.tasks.extend(r.task for r in chosen)  # extend copies each message
    return response


@admin("ListWorkflows")
def list_workflows(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    chosen, token = _list(ctx, request, "WORKFLOW", "ListWorkflows")
    response = state.wire.new("admin.WorkflowList", token=token)
    response.workflows.extend(listed_workflow(state, r) for r in chosen)
    return response


@admin("ListLaunchPlans")
def list_launch_plans(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    chosen, token = _list(ctx, request, "LAUNCH_PLAN", "ListLaunchPlans")
    response = state.wire.new("admin.LaunchPlanList", token=token)
    response.launch_plans.extend(r.launch_plan for r in chosen)  # extend copies each message
    return response


def _ids(state: State, request: Any, resource: str, operation: str) -> Any:
    """Distinct (project, domain, name) of one resource type in a project and domain."""
    entity = ENTITY_OF[resource]
    sort = listing.parse_sort(state, request.sort_by, entity, request.HasField("sort_by"))
    if sort is not None and sort.column not in ("project", "domain", "name"):
        # the query groups by project, domain and name: the database refuses other sort columns
        raise Violation(listing.SORT_UNGROUPED, key=sort.column)
    offset = listing.parse_token(request.token, operation)
    names: dict[tuple[str, str, str], None] = {}
    for record in state.table(TABLE_OF[resource]).scan((request.project, request.domain)):
        names.setdefault((record.key.project, record.key.domain, record.key.name), None)
    ordered = list(names)
    if sort is not None:
        index = ("project", "domain", "name").index(sort.column)
        ordered.sort(key=lambda k: k[index], reverse=sort.descending)
    chosen, token = listing.page(ordered, offset, request.limit)
    response = state.wire.new("admin.NamedEntityIdentifierList", token=token)
    for project, domain, name in chosen:
        response.entities.add(project=project, domain=domain, name=name)
    return response


@admin("ListTaskIds")
def list_task_ids(request: Any, ctx: CallContext) -> Any:
    return _ids(ctx.state, request, "TASK", "ListUniqueTaskIdentifiers")


@admin("ListWorkflowIds")
def list_workflow_ids(request: Any, ctx: CallContext) -> Any:
    return _ids(ctx.state, request, "WORKFLOW", "ListWorkflowIdentifiers")


@admin("ListLaunchPlanIds")
def list_launch_plan_ids(request: Any, ctx: CallContext) -> Any:
    # Only the repository checks this request: its wording differs from the other id lists.
    if request.limit == 0:
        raise Violation(IDS_PARAMETERS, field="limit", what="limit")
    if not request.project and not request.domain:
        raise Violation(IDS_PARAMETERS, field="project", what="filters")
    return _ids(ctx.state, request, "LAUNCH_PLAN", "")
