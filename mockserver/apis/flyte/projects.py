"""Projects and domains: RegisterProject, UpdateProject, GetProject, ListProjects, GetDomains.

Domains are configuration (``specs/flyte/admin.yaml``), the same for every
project; projects carry a state (ACTIVE, ARCHIVED, SYSTEM_GENERATED...) that
registration of anything in them checks.
"""

from __future__ import annotations

import re
from typing import Any

from protoconform.mockserver.apis.flyte import columns, listing
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import ProjectRecord, State
from protoconform.mockserver.apis.flyte.wire import copy
from protoconform.mockserver.rpc import CallContext

ALREADY_EXISTS = "flyte.projects.register.already-exists"
REGISTER_DOMAINS = "flyte.projects.register.domains"
NOT_FOUND = "flyte.projects.not-found"
LABEL_KEY = "flyte.labels.key"
LABEL_VALUE = "flyte.labels.value"
UPDATE_LENGTH = "flyte.projects.update.length"
UPDATE_DOMAINS = "flyte.projects.update.domains"
UPDATE_LABELS = "flyte.projects.update.labels"

_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _label_key_problem(key: str) -> str:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _LABEL_NAME.fullmatch(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character"
        )
    return ""


def _label_value_problem(value: str) -> str:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if value and not _LABEL_NAME.fullmatch(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return ""


def check_labels(labels: Any, field: str) -> None:
    """``ValidateLabelsAlphanumeric``: Kubernetes label keys and values (the count is a shape rule)."""
    for key in sorted(labels.values):
        problem = _label_key_problem(key)
        if problem:
            raise Violation(LABEL_KEY, field=field, key=key, problem=problem)
        problem = _label_value_problem(labels.values[key])
        if problem:
            raise Violation(LABEL_VALUE, field=field, value=labels.values[key], problem=problem)


def shown(state: State, record: ProjectRecord) -> Any:
    """A project as Get/List return it: with the configured domains."""
    project = copy(record.project)
    for domain in state.domains():
        project.domains.add(id=domain["id"], name=domain["name"])
    return project


@admin("RegisterProject")
def register_project(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    project = request.project
    check_labels(project.labels, "project.labels")
    if project.domains:
        raise Violation(REGISTER_DOMAINS)
    table = state.table("projects")
    if table.get(project.id) is not None:
        raise Violation(ALREADY_EXISTS, id=project.id)
    now = state.now()
    stored = copy(project)
    stored.ClearField("domains")
    table.insert(
        project.id,
        None,
        ProjectRecord(row=state.store.next_row(), created_at=now, updated_at=now, project=stored),
    )
    return state.wire.new("admin.ProjectRegisterResponse")


@admin("UpdateProject")
def update_project(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    table = state.table("projects")
    record: ProjectRecord | None = table.get(request.id)
    if record is None:
        raise Violation(NOT_FOUND, project=request.id)
    if len(request.labels.values) > state.config["max_labels"]:
        raise Violation(UPDATE_LABELS, limit=state.config["max_labels"])
    check_labels(request.labels, "labels")
    if len(request.name) > state.config["max_project_name"]:
        raise Violation(
            UPDATE_LENGTH, field="name", what="project_name", limit=state.config["max_project_name"]
        )
    if len(request.description) > state.config["max_description"]:
        raise Violation(
            UPDATE_LENGTH,
            field="description",
            what="project_description",
            limit=state.config["max_description"],
        )
    if request.domains:
        raise Violation(UPDATE_DOMAINS)
    # gorm's Updates writes no empty name or description and no absent labels; state always.
    stored = record.project
    if request.name:
        stored.name = request.name
    if request.description:
        stored.description = request.description
    if request.HasField("labels"):
        stored.labels.CopyFrom(request.labels)
    stored.state = request.state
    record.updated_at = state.now()
    table.update(request.id, record)
    return state.wire.new("admin.ProjectUpdateResponse")


@admin("GetProject")
def get_project(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    record = state.table("projects").get(request.id)
    if record is None:
        raise Violation(NOT_FOUND, project=request.id)
    return shown(state, record)


@admin("ListProjects")
def list_projects(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    filters = listing.parse_filters(state, request.filters, "p") if request.filters else []
    if not request.filters:  # archived projects are hidden unless the caller filters
        filters = [
            listing.Filter("p", "ne", "state", (state.wire.number("admin.Project.ProjectState", "ARCHIVED"),))
        ]
    sort = listing.parse_sort(state, request.sort_by, "p", request.HasField("sort_by"))
    sort = sort or listing.Sort("identifier", descending=False)
    offset = listing.parse_token(request.token, "ListProjects")
    records = listing.select(state, "projects", None, columns.model(state, "p"), filters, sort)
    chosen, token = listing.page(records, offset, request.limit)
    response = state.wire.new("admin.Projects", token=token)
    response.projects.extend(shown(state, r) for r in chosen)
    return response


@admin("GetDomains")
def get_domains(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    response = state.wire.new("admin.GetDomainsResponse")
    for domain in state.domains():
        response.domains.add(id=domain["id"], name=domain["name"])
    return response
