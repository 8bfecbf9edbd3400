"""Matchable attributes at project, project-domain and workflow level.

A row is (project, domain, workflow, launch plan, resource type) with ``''`` for
the levels it does not name.  Get answers the most specific row that matches
(so a project-domain Get may answer project-level data, with an empty domain);
Delete always succeeds and treats empty fields as wildcards; List answers every
row of a type, most specific first.  Plugin overrides merge by task type.
"""

from __future__ import annotations

from typing import Any

from protoconform.mockserver.apis.flyte import identifiers
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import AttributeRecord, State
from protoconform.mockserver.apis.flyte.wire import copy
from protoconform.mockserver.rpc import CallContext

UNRECOGNIZED = "flyte.attributes.unrecognized-type"
NOT_FOUND = "flyte.attributes.not-found"
PROJECT_NOT_REGISTERED = "flyte.attributes.project-not-registered"

# The MatchableResource each member of the matching_attributes oneof stands for.
RESOURCE_OF = {
    "task_resource_attributes": "TASK_RESOURCE",
    "cluster_resource_attributes": "CLUSTER_RESOURCE",
    "execution_queue_attributes": "EXECUTION_QUEUE",
    "execution_cluster_label": "EXECUTION_CLUSTER_LABEL",
    "plugin_overrides": "PLUGIN_OVERRIDE",
    "workflow_execution_config": "WORKFLOW_EXECUTION_CONFIG",
    "cluster_assignment": "CLUSTER_ASSIGNMENT",
}


def _level(record: AttributeRecord) -> int:
    """flyteadmin's priority: project 5, project-domain 10, workflow 100 (launch plan more)."""
    if record.launch_plan:
        return 1000
    if record.workflow:
        return 100
    return 10 if record.domain else 5


def _resource(state: State, attributes: Any, holder: str) -> int:
    if not attributes.HasField("matching_attributes"):
        raise identifiers.missing(f"{holder}.matching_attributes", "matching_attributes")
    which = attributes.matching_attributes.WhichOneof("target")
    if which not in RESOURCE_OF:
        raise Violation(UNRECOGNIZED, field=f"{holder}.matching_attributes", request=holder)
    return state.wire.number("admin.MatchableResource", RESOURCE_OF[which])


def _project_only(state: State, project: str, field: str) -> None:
    record = identifiers.project_record(state, project)
    if record is None:
        raise Violation(PROJECT_NOT_REGISTERED, field=field, project=project)
    if record.project.state != state.wire.number("admin.Project.ProjectState", "ACTIVE"):
        detail = state.wire.new("admin.InactiveProject", id=project)
        raise Violation(identifiers.PROJECT_INACTIVE, field=field, details=(detail,), project=project)


def _upsert(state: State, record: AttributeRecord) -> None:
    table = state.table("attributes")
    existing: AttributeRecord | None = table.get(record.key)
    plugin = state.wire.number("admin.MatchableResource", "PLUGIN_OVERRIDE")
    if existing is not None and record.resource_type == plugin:
        merged = {o.task_type: o for o in existing.attributes.plugin_overrides.overrides}
        merged.update({o.task_type: o for o in record.attributes.plugin_overrides.overrides})
        attributes = copy(record.attributes)
        del attributes.plugin_overrides.overrides[:]
        attributes.plugin_overrides.overrides.extend(merged[k] for k in sorted(merged))
        record.attributes = attributes
    if existing is None:
        table.insert(record.key, record.resource_type, record)
    else:
        table.update(record.key, record)


def _most_specific(
    state: State, resource_type: int, project: str, domain: str, workflow: str
) -> AttributeRecord | None:
    candidates = [
        r
        for r in state.table("attributes").scan(resource_type)
        if r.project in ("", project)
        and r.domain in ("", domain)
        and r.workflow in ("", workflow)
        and r.launch_plan == ""
        and (project or not r.project)
    ]
    return max(candidates, key=_level, default=None)


def _not_found(state: State, project: str, domain: str, workflow: str, resource_type: int) -> Violation:
    name = state.wire.name_of("admin.MatchableResource", resource_type)
    return Violation(
        NOT_FOUND,
        resource=f"{{Project:{project} Domain:{domain} Workflow:{workflow} LaunchPlan: ResourceType:{name}}}",
    )


def _default_execution_config(state: State, resource_type: int) -> Any | None:
    """WORKFLOW_EXECUTION_CONFIG falls back to the configured defaults instead of NOT_FOUND."""
    if state.wire.name_of("admin.MatchableResource", resource_type) != "WORKFLOW_EXECUTION_CONFIG":
        return None
    attributes = state.wire.new("admin.MatchingAttributes")
    attributes.workflow_execution_config.max_parallelism = state.config["max_parallelism"]
    return attributes


def _delete(state: State, resource_type: int, project: str, domain: str, workflow: str) -> None:
    table = state.table("attributes")
    for record in list(table.scan(resource_type)):
        if (
            record.project == project
            and (not domain or record.domain == domain)
            and (not workflow or record.workflow == workflow)
        ):
            table.delete(record.key)


# -- project-domain ------------------------------------------------------------------------------


@admin("UpdateProjectDomainAttributes")
def update_project_domain_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    attributes = request.attributes
    identifiers.project_and_domain(state, attributes.project, attributes.domain, "attributes")
    resource_type = _resource(state, attributes, "attributes")
    _upsert(
        state,
        AttributeRecord(
            attributes.project,
            attributes.domain,
            "",
            "",
            resource_type,
            copy(attributes.matching_attributes),
            attributes.org,
        ),
    )
    return state.wire.new("admin.ProjectDomainAttributesUpdateResponse")


@admin("GetProjectDomainAttributes")
def get_project_domain_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    identifiers.project_and_domain(state, request.project, request.domain)
    record = _most_specific(state, request.resource_type, request.project, request.domain, "")
    response = state.wire.new("admin.ProjectDomainAttributesGetResponse")
    if record is None:
        fallback = _default_execution_config(state, request.resource_type)
        if fallback is None:
            raise _not_found(state, request.project, request.domain, "", request.resource_type)
        response.attributes.project, response.attributes.domain = request.project, request.domain
        response.attributes.matching_attributes.CopyFrom(fallback)
        return response
    response.attributes.project = record.project
    response.attributes.domain = record.domain
    response.attributes.matching_attributes.CopyFrom(record.attributes)
    response.attributes.org = record.org
    return response


@admin("DeleteProjectDomainAttributes")
def delete_project_domain_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    identifiers.project_and_domain(state, request.project, request.domain)
    _delete(state, request.resource_type, request.project, request.domain, "")
    return state.wire.new("admin.ProjectDomainAttributesDeleteResponse")


# -- project -------------------------------------------------------------------------------------------


@admin("UpdateProjectAttributes")
def update_project_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    attributes = request.attributes
    _project_only(state, attributes.project, "attributes.project")
    resource_type = _resource(state, attributes, "attributes")
    _upsert(
        state,
        AttributeRecord(
            attributes.project,
            "",
            "",
            "",
            resource_type,
            copy(attributes.matching_attributes),
            attributes.org,
        ),
    )
    return state.wire.new("admin.ProjectAttributesUpdateResponse")


@admin("GetProjectAttributes")
def get_project_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    if identifiers.project_record(state, request.project) is None:
        raise Violation(PROJECT_NOT_REGISTERED, field="project", project=request.project)
    record = state.table("attributes").get((request.project, "", "", "", request.resource_type))
    response = state.wire.new("admin.ProjectAttributesGetResponse")
    if record is None:
        fallback = _default_execution_config(state, request.resource_type)
        if fallback is None:
            raise _not_found(state, request.project, "", "", request.resource_type)
        response.attributes.project = request.project
        response.attributes.matching_attributes.CopyFrom(fallback)
        return response
    response.attributes.project = record.project
    response.attributes.matching_attributes.CopyFrom(record.attributes)
    response.attributes.org = record.org
    return response


@admin("DeleteProjectAttributes")
def delete_project_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    _project_only(state, request.project, "project")
    table = state.table("attributes")
    table.delete((request.project, "", "", "", request.resource_type))
    return state.wire.new("admin.ProjectAttributesDeleteResponse")


# -- workflow ---------------------------------------------------------------------------------------------


def _workflow_level(state: State, project: str, domain: str, workflow: str, field: str) -> None:
    identifiers.project_and_domain(state, project, domain, field)
    if not workflow:
        raise identifiers.missing(f"{field}.workflow" if field else "workflow", "name")


@admin("UpdateWorkflowAttributes")
def update_workflow_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    attributes = request.attributes
    _workflow_level(state, attributes.project, attributes.domain, attributes.workflow, "attributes")
    resource_type = _resource(state, attributes, "attributes")
    record = AttributeRecord(
        attributes.project,
        attributes.domain,
        attributes.workflow,
        "",
        resource_type,
        copy(attributes.matching_attributes),
        attributes.org,
    )
    _upsert(state, record)
    return state.wire.new("admin.WorkflowAttributesUpdateResponse")


@admin("GetWorkflowAttributes")
def get_workflow_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    _workflow_level(state, request.project, request.domain, request.workflow, "")
    record = _most_specific(state, request.resource_type, request.project, request.domain, request.workflow)
    response = state.wire.new("admin.WorkflowAttributesGetResponse")
    if record is None:
        fallback = _default_execution_config(state, request.resource_type)
        if fallback is None:
            raise _not_found(state, request.project, request.domain, request.workflow, request.resource_type)
        response.attributes.project, response.attributes.domain = request.project, request.domain
        response.attributes.workflow = request.workflow
        response.attributes.matching_attributes.CopyFrom(fallback)
        return response
    response.attributes.project = record.project
    response.attributes.domain = record.domain
    response.attributes.workflow = record.workflow
    response.attributes.matching_attributes.CopyFrom(record.attributes)
    response.attributes.org = record.org
    return response


@admin("DeleteWorkflowAttributes")
def delete_workflow_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    _workflow_level(state, request.project, request.domain, request.workflow, "")
    _delete(state, request.resource_type, request.project, request.domain, request.workflow)
    return state.wire.new("admin.WorkflowAttributesDeleteResponse")


@admin("ListMatchableAttributes")
def list_matchable_attributes(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    records = sorted(state.table("attributes").scan(request.resource_type), key=_level, reverse=True)
    response = state.wire.new("admin.ListMatchableAttributesResponse")
    for record in records:
        response.configurations.add(
            attributes=record.attributes,
            project=record.project,
            domain=record.domain,
            workflow=record.workflow,
            launch_plan=record.launch_plan,
            org=record.org,
        )
    return response
