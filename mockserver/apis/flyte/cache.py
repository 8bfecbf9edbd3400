"""CacheService.EvictTaskExecutionCache over the simulated datacatalog.

The simulated propeller (:mod:`.propeller`) caches the outputs of tasks with
``metadata.discoverable`` and a ``discovery_version`` in the ``catalog`` table,
keyed as datacatalog keys them: a dataset per task name, cache version and
interface, an artifact tag per inputs hash.  A node that ran such a task records
``task_node_metadata.cache_status`` (CACHE_POPULATED, or CACHE_HIT without any
attempt) and its ``catalog_key``.

Eviction follows flyteadmin's cache manager: the task execution and its node
must exist (NOT_FOUND); a node without task metadata is an INTERNAL entry in
the body's error list, not a failed call; a node whose status is not HIT,
POPULATED or EVICTED is left alone; otherwise the node becomes CACHE_EVICTED and
the artifact is deleted (one already gone counts as deleted), so the next run
with the same inputs computes again.
"""

from __future__ import annotations

import hashlib
from typing import Any

from protoconform.mockserver.apis.flyte import defects, identifiers
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import (
    CatalogKey,
    CatalogRecord,
    State,
    node_key_of,
    task_exec_key_of,
)
from protoconform.mockserver.apis.flyte.wire import deterministic, text
from protoconform.mockserver.rpc import CallContext

SERVICE = "flyteidl.service.CacheService"
MISSING = "flyte.cache.evict.task-execution-id"
NOT_FOUND = "flyte.cache.evict.not-found"
EVICTABLE = ("CACHE_HIT", "CACHE_POPULATED", "CACHE_EVICTED")


# -- the catalog's keys, as flytepropeller's catalog client builds them ---------------------------


def cacheable(template: Any) -> bool:
    return bool(template.metadata.discoverable and template.metadata.discovery_version)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def catalog_key(template: Any, inputs: Any) -> CatalogKey:
    """Dataset ``flyte_task-<task name>`` at ``<cache version>-<interface hash>``, tag ``flyte_cached-<inputs
    hash>``: the task's version is not part of it, so a new version with the same cache version hits."""
    ident = template.id
    interface = _digest(deterministic(template.interface))[:8]
    return CatalogKey(
        ident.project,
        ident.domain,
        f"flyte_task-{ident.name}",
        f"{template.metadata.discovery_version}-{interface}",
        f"flyte_cached-{_digest(deterministic(inputs))}",
    )


def catalog_metadata(state: State, record: CatalogRecord) -> Any:
    """``core.CatalogMetadata`` of an artifact: what a node's ``task_node_metadata.catalog_key`` holds."""
    wire = state.wire
    metadata = wire.new("core.CatalogMetadata")
    key = record.key
    metadata.dataset_id.CopyFrom(
        wire.new(
            "core.Identifier", project=key.project, domain=key.domain, name=key.dataset, version=key.version
        )
    )
    metadata.dataset_id.resource_type = wire.number("core.ResourceType", "DATASET")
    metadata.artifact_tag.artifact_id = record.artifact_id
    metadata.artifact_tag.name = key.tag
    metadata.source_task_execution.CopyFrom(record.source)
    return metadata


# -- eviction ------------------------------------------------------------------------------------------


def _task_execution_id(state: State, request: Any) -> Any:
    """``ValidateTaskExecutionIdentifier``, an unspecified task resource type taken as TASK (REST
    routes cannot carry it)."""
    field = "task_execution_id"
    if not request.HasField(field):
        raise Violation(MISSING, field=field, what="id")
    ident = request.task_execution_id
    if not ident.HasField("node_execution_id"):
        raise Violation(MISSING, field=f"{field}.node_execution_id", what="node_execution_id")
    node = ident.node_execution_id
    if not node.HasField("execution_id"):
        raise Violation(MISSING, field=f"{field}.node_execution_id.execution_id", what="execution_id")
    if not node.node_id:
        raise Violation(MISSING, field=f"{field}.node_execution_id.node_id", what="node_id")
    for part in ("project", "domain", "name"):
        if not getattr(node.execution_id, part):
            raise Violation(MISSING, field=f"{field}.node_execution_id.execution_id.{part}", what=part)
    if not ident.HasField("task_id"):
        raise Violation(MISSING, field=f"{field}.task_id", what="task_id")
    task = ident.task_id
    if task.resource_type == 0:
        task.resource_type = state.wire.number("core.ResourceType", "TASK")
    if task.resource_type != state.wire.number("core.ResourceType", "TASK"):
        raise Violation(
            identifiers.RESOURCE_TYPE,
            field=f"{field}.task_id.resource_type",
            value=state.wire.name_of("core.ResourceType", task.resource_type).lower(),
            id=text(task),
            expected="task",
        )
    for part in ("project", "domain", "name", "version"):
        if not getattr(task, part):
            raise Violation(MISSING, field=f"{field}.task_id.{part}", what=part)
    return ident


@admin("EvictTaskExecutionCache", service=SERVICE)
def evict_task_execution_cache(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    wire = state.wire
    ident = _task_execution_id(state, request)
    if state.table("task_executions").get(task_exec_key_of(ident)) is None:
        raise Violation(NOT_FOUND, type="task execution", id=text(ident))
    record = state.table("node_executions").get(node_key_of(ident.node_execution_id))
    if record is None:
        raise Violation(NOT_FOUND, type="node execution", id=text(ident.node_execution_id))
    response = wire.new("service.EvictCacheResponse")
    response.errors.SetInParent()
    closure = record.node.closure
    if not closure.HasField("task_node_metadata"):
        error = response.errors.errors.add(message="Internal error")
        error.code = wire.number("core.CacheEvictionError.Code", "INTERNAL")
        error.node_execution_id.CopyFrom(record.node.id)
        error.workflow_execution_id.CopyFrom(record.node.id.execution_id)
        return response
    metadata = closure.task_node_metadata
    if wire.name_of("core.CatalogCacheStatus", metadata.cache_status) not in EVICTABLE:
        return response
    catalog = metadata.catalog_key
    dataset = catalog.dataset_id
    key = CatalogKey(
        dataset.project, dataset.domain, dataset.name, dataset.version, catalog.artifact_tag.name
    )
    metadata.cache_status = wire.number("core.CatalogCacheStatus", "CACHE_EVICTED")
    record.updated_at = state.now()
    state.table("node_executions").update(record.key, record)
    entry: CatalogRecord | None = state.table("catalog").get(key)
    # DeleteByArtifactID: an artifact already gone (evicted before, or replaced) counts as deleted
    same = entry is not None and entry.artifact_id == catalog.artifact_tag.artifact_id
    if same and not ctx.defect(defects.CACHE_EVICT_KEEPS_ENTRY):
        state.table("catalog").delete(key)
    return response
