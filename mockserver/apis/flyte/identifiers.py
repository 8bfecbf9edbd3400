"""Identifier validation in flyteadmin's order (``validation.go``), and project/domain existence.

The checks that come before any lookup are request-shape rules in
``specs/flyte/identifiers.yaml``, applied by :mod:`.service`; these functions
serve the requests where flyteadmin fills in a resource type first or looks
something up on the way, and raise the same rules with the field they are about.
"""

from __future__ import annotations

from typing import Any

from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.state import ProjectRecord, State
from protoconform.mockserver.apis.flyte.wire import text

MISSING = "flyte.ids.missing"
RESOURCE_TYPE = "flyte.ids.resource-type"
PROJECT_NOT_REGISTERED = "flyte.projects.not-registered"
PROJECT_INACTIVE = "flyte.projects.inactive"
DOMAIN_UNKNOWN = "flyte.projects.domain-unknown"


def missing(field: str, what: str | None = None) -> Violation:
    """flyteadmin's ``missing <name>``; ``what`` is its own name for the field when it differs."""
    return Violation(MISSING, field=field, what=what or field.rpartition(".")[2])


def _set(holder: Any, name: str) -> bool:
    return holder is not None and holder.HasField(name)


def identifier(
    state: State, holder: Any, name: str, expected: str, field: str | None = None, fill: bool = True
) -> Any:
    """``ValidateIdentifier``: the id present, of the expected resource type, every part set.

    ``expected`` is a ``core.ResourceType`` name; with ``fill`` an UNSPECIFIED type is filled in
    with it first, as the RPC layer of flyteadmin does for reads.  Returns the identifier.
    """
    field = field or name
    if not _set(holder, name):
        raise missing(field, "id")
    ident = getattr(holder, name)
    number = state.wire.number("core.ResourceType", expected)
    if fill and ident.resource_type == 0:
        ident.resource_type = number
    if ident.resource_type != number:
        raise Violation(
            RESOURCE_TYPE,
            field=f"{field}.resource_type",
            value=state.wire.name_of("core.ResourceType", ident.resource_type).lower(),
            id=text(ident),
            expected=expected.lower(),
        )
    for part in ("project", "domain", "name", "version"):
        if not getattr(ident, part):
            raise missing(f"{field}.{part}", part)
    return ident


def named_identifier(holder: Any, name: str, field: str | None = None, parts: tuple[str, ...] = ()) -> Any:
    field = field or name
    if not _set(holder, name):
        raise missing(field, "id")
    ident = getattr(holder, name)
    for part in parts or ("project", "domain", "name"):
        if not getattr(ident, part):
            raise missing(f"{field}.{part}", part)
    return ident


def execution_identifier(holder: Any, name: str, field: str | None = None, what: str = "id") -> Any:
    """``ValidateWorkflowExecutionIdentifier``: present, then project, domain, name."""
    field = field or name
    if not _set(holder, name):
        raise missing(field, what)
    ident = getattr(holder, name)
    for part in ("project", "domain", "name"):
        if not getattr(ident, part):
            raise missing(f"{field}.{part}", part)
    return ident


def node_execution_identifier(holder: Any, name: str, field: str | None = None) -> Any:
    """``ValidateNodeExecutionIdentifier``: id, execution_id, node_id, then the execution's parts."""
    field = field or name
    if not _set(holder, name):
        raise missing(field, "id")
    ident = getattr(holder, name)
    if not ident.HasField("execution_id"):
        raise missing(f"{field}.execution_id", "execution_id")
    if not ident.node_id:
        raise missing(f"{field}.node_id", "node_id")
    execution_identifier(ident, "execution_id", f"{field}.execution_id", "execution_id")
    return ident


def project_record(state: State, project_id: str) -> ProjectRecord | None:
    return state.table("projects").get(project_id)


def project_and_domain(state: State, project: str, domain: str, field: str = "") -> None:
    """``ValidateProjectAndDomain``: the project registered and active, the domain configured."""
    record = project_record(state, project)
    prefix = f"{field}." if field else ""
    if record is None:
        raise Violation(PROJECT_NOT_REGISTERED, field=f"{prefix}project", project=project, domain=domain)
    active = state.wire.number("admin.Project.ProjectState", "ACTIVE")
    if record.project.state != active:
        detail = state.wire.new("admin.InactiveProject", id=project)
        raise Violation(PROJECT_INACTIVE, field=f"{prefix}project", details=(detail,), project=project)
    if domain not in state.domain_ids():
        raise Violation(DOMAIN_UNKNOWN, field=f"{prefix}domain", domain=domain)
