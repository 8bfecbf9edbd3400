"""Named entities (a name's metadata across its versions), description entities, and GetVersion."""

from __future__ import annotations

from typing import Any

from protoconform.mockserver.apis.flyte import columns, listing
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import Key, NamedEntityRecord, State
from protoconform.mockserver.apis.flyte.wire import copy
from protoconform.mockserver.rpc import CallContext

ENTRY_NOT_FOUND = "flyte.named-entities.not-found"
STATE_NOT_UPDATABLE = "flyte.named-entities.update.state-type"
DESCRIPTION_LENGTH = "flyte.named-entities.update.description-length"
DESCRIPTION_NOT_FOUND = "flyte.description-entities.not-found"

TABLES = {"TASK": "tasks", "WORKFLOW": "workflows", "LAUNCH_PLAN": "launch_plans"}


def _table(state: State, resource_type: int) -> str:
    return TABLES[state.wire.name_of("core.ResourceType", resource_type)]


def _exists(state: State, resource_type: int, project: str, domain: str, name: str) -> bool:
    return any(r.key.name == name for r in state.table(_table(state, resource_type)).scan((project, domain)))


def _metadata(state: State, resource_type: int, project: str, domain: str, name: str) -> NamedEntityRecord:
    found = state.table("named_entities").get((resource_type, project, domain, name))
    return found or NamedEntityRecord(resource_type, project, domain, name)


def set_metadata(
    state: State, resource_type: int, ident: Any, entity_state: int | None, description: str
) -> None:
    """Upsert a name's metadata; an empty description keeps the old one."""
    key = (resource_type, ident.project, ident.domain, ident.name)
    table = state.table("named_entities")
    record: NamedEntityRecord | None = table.get(key)
    if record is None:
        record = NamedEntityRecord(resource_type, ident.project, ident.domain, ident.name)
        table.insert(key, (resource_type, ident.project, ident.domain), record)
    if description:
        record.description = description
    if entity_state is not None:
        record.state = entity_state
    table.update(key, record)


def _shown(state: State, record: NamedEntityRecord) -> Any:
    entity = state.wire.new("admin.NamedEntity", resource_type=record.resource_type)
    entity.id.project, entity.id.domain, entity.id.name = record.project, record.domain, record.name
    entity.metadata.description = record.description
    entity.metadata.state = record.state or 0
    return entity


@admin("GetNamedEntity")
def get_named_entity(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = request.id
    if not _exists(state, request.resource_type, ident.project, ident.domain, ident.name):
        raise Violation(ENTRY_NOT_FOUND)
    return _shown(state, _metadata(state, request.resource_type, ident.project, ident.domain, ident.name))


@admin("UpdateNamedEntity")
def update_named_entity(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    active = state.wire.number("admin.NamedEntityState", "NAMED_ENTITY_ACTIVE")
    kind = state.wire.name_of("core.ResourceType", request.resource_type)
    if request.metadata.state != active and kind not in ("TASK", "WORKFLOW"):
        raise Violation(STATE_NOT_UPDATABLE, resource=kind)
    if len(request.metadata.description) > state.config["max_description"]:
        raise Violation(DESCRIPTION_LENGTH, limit=state.config["max_description"])
    ident = request.id
    if not _exists(state, request.resource_type, ident.project, ident.domain, ident.name):
        raise Violation(ENTRY_NOT_FOUND)
    set_metadata(state, request.resource_type, ident, request.metadata.state, request.metadata.description)
    return state.wire.new("admin.NamedEntityUpdateResponse")


@admin("ListNamedEntities")
def list_named_entities(request: Any, ctx: CallContext) -> Any:
    """Names of one resource type; the page is cut before metadata filters apply, so it can be short."""
    state: State = ctx.state
    requested = listing.parse_filters(state, request.filters, "nen") if request.filters else []
    if not request.filters:  # system-generated single-task workflows stay out of sight by default
        requested = [listing.Filter("nen", "not_like", "name", (state.config["flytegen_pattern"],))]
    sort = listing.parse_sort(state, request.sort_by, "nen", request.HasField("sort_by"))
    offset = listing.parse_token(request.token, "ListNamedEntities")
    names: dict[str, NamedEntityRecord] = {}
    for record in state.table(_table(state, request.resource_type)).scan((request.project, request.domain)):
        if record.key.name not in names:
            names[record.key.name] = _metadata(
                state, request.resource_type, request.project, request.domain, record.key.name
            )
    entity_filters = [f for f in requested if f.entity == "nen" and f.column not in ("description", "state")]
    metadata_filters = [f for f in requested if f not in entity_filters]
    model = columns.model(state, "nen")
    found = [r for r in names.values() if model.matches(r, entity_filters)]
    if sort is not None:
        found.sort(key=lambda r: (model.value(r, sort.column), r.name), reverse=sort.descending)
    chosen, token = listing.page(found, offset, request.limit)
    response = state.wire.new("admin.NamedEntityList", token=token)
    for record in chosen:
        if all(f.holds(model.getters["nem"][f.column](record)) for f in metadata_filters):
            response.entities.append(_shown(state, record))
    return response


@admin("GetDescriptionEntity")
def get_description_entity(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = request.id
    resource_type = ident.resource_type or state.wire.number("core.ResourceType", "TASK")
    record = state.table("descriptions").get(
        (resource_type, Key(ident.project, ident.domain, ident.name, ident.version))
    )
    if record is None:
        raise Violation(DESCRIPTION_NOT_FOUND)
    return copy(record.entity)


@admin("ListDescriptionEntities")
def list_description_entities(request: Any, ctx: CallContext) -> Any:
    # flyteadmin does not filter by resource type here, and names the wrong operation in token errors.
    state: State = ctx.state
    ident = request.id
    filters = [
        listing.equality("d", "project", ident.project),
        listing.equality("d", "domain", ident.domain),
        listing.equality("d", "name", ident.name),
    ]
    if request.filters:
        filters += listing.parse_filters(state, request.filters, "d")
    sort = listing.parse_sort(state, request.sort_by, "d", request.HasField("sort_by"))
    offset = listing.parse_token(request.token, "ListWorkflows")
    records = listing.select(
        state, "descriptions", (ident.project, ident.domain), columns.model(state, "d"), filters, sort
    )
    chosen, token = listing.page(records, offset, request.limit)
    response = state.wire.new("admin.DescriptionEntityList", token=token)
    response.descriptionEntities.extend(r.entity for r in chosen)  # extend copies each message
    return response


@admin("GetVersion")
def get_version(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    version = state.config["version"]
    response = state.wire.new("admin.GetVersionResponse")
    response.control_plane_version.Build = version["build"]
    response.control_plane_version.Version = version["version"]
    response.control_plane_version.BuildTime = state.started.strftime("%Y-%m-%dT%H:%M:%SZ")
    return response
