"""The simulated task cache and CacheService.EvictTaskExecutionCache, through gRPC and REST."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import requests
from flyte_support import DOMAIN, Admin, identifier, plain
from protoconform.mockserver.apis.flyte import defects
from service_client import ServiceClient

IA, NF = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
CACHED = {"discoverable": True, "discovery_version": "1.0"}


class Cache(ServiceClient):
    SERVICE = "flyteidl.service.CacheService"
    FAMILY = "flyte"


@pytest.fixture
def cache(admin: Admin) -> Cache:
    return Cache(admin.channel, admin.server)


def status_name(node: Any) -> str:
    metadata = node.closure.task_node_metadata
    return (
        metadata.DESCRIPTOR.fields_by_name["cache_status"]
        .enum_type.values_by_number[metadata.cache_status]
        .name
    )


def run(
    admin: Admin, task: dict[str, Any], name: str, overwrite: bool = False, **inputs: int
) -> dict[str, Any]:
    """Launch ``task`` alone as execution ``name`` and run it to its end; its one node's id."""
    request: dict[str, Any] = {"launch_plan": task}
    if overwrite:
        request["overwrite_cache"] = True
    admin.CreateExecution(
        project="p1",
        domain=DOMAIN,
        name=name,
        spec=request,
        inputs={"literals": {k: {"scalar": {"primitive": {"integer": str(v)}}} for k, v in inputs.items()}},
    )
    admin.advance(30)
    return {
        "node_id": task["name"].rpartition(".")[2],
        "execution_id": {"project": "p1", "domain": DOMAIN, "name": name},
    }


def attempts(admin: Admin, node: dict[str, Any]) -> int:
    return len(admin.ListTaskExecutions(node_execution_id=node, limit=10).task_executions)


def attempt_of(task: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    return {"task_id": task, "node_execution_id": node, "retry_attempt": 0}


@pytest.fixture
def task(admin: Admin) -> dict[str, Any]:
    admin.project("p1")
    return admin.task(name="mod.cached", metadata=CACHED, config={"protoconform.io/op": "sum"})


def test_same_inputs_hit_the_cache_without_an_attempt(admin: Admin, task: dict[str, Any]) -> None:
    first = run(admin, task, "e1", a=1, b=2)
    populated = admin.GetNodeExecution(id=first)
    assert status_name(populated) == "CACHE_POPULATED" and attempts(admin, first) == 1
    key = populated.closure.task_node_metadata.catalog_key
    assert key.dataset_id.name == "flyte_task-mod.cached" and key.dataset_id.version.startswith("1.0-")
    assert key.artifact_tag.name.startswith("flyte_cached-") and key.artifact_tag.artifact_id
    second = run(admin, task, "e2", a=1, b=2)
    hit = admin.GetNodeExecution(id=second)
    assert status_name(hit) == "CACHE_HIT" and attempts(admin, second) == 0
    assert hit.closure.task_node_metadata.catalog_key == key
    assert plain(admin.GetExecutionData(id=second["execution_id"]).full_outputs) == {"o0": 3}
    assert admin.ListNodeExecutions(
        workflow_execution_id=second["execution_id"], limit=10, filters="eq(cache_status,CACHE_HIT)"
    ).node_executions
    other = run(admin, task, "e3", a=2, b=2)
    assert status_name(admin.GetNodeExecution(id=other)) == "CACHE_POPULATED"
    forced = run(admin, task, "e4", overwrite=True, a=1, b=2)
    assert (
        status_name(admin.GetNodeExecution(id=forced)) == "CACHE_POPULATED" and attempts(admin, forced) == 1
    )


def test_the_cache_is_per_task_name_and_cache_version(admin: Admin, task: dict[str, Any]) -> None:
    run(admin, task, "e1", a=1, b=2)
    newer = admin.task(name="mod.cached", version="v2", metadata=CACHED, config={"protoconform.io/op": "sum"})
    assert status_name(admin.GetNodeExecution(id=run(admin, newer, "e2", a=1, b=2))) == "CACHE_HIT"
    bumped = admin.task(
        name="mod.cached", version="v3", metadata={**CACHED, "discovery_version": "2.0"}, config={}
    )
    assert status_name(admin.GetNodeExecution(id=run(admin, bumped, "e3", a=1, b=2))) == "CACHE_POPULATED"
    plain_task = admin.task(name="mod.plain")
    node = admin.GetNodeExecution(id=run(admin, plain_task, "e4", a=1, b=2))
    assert not node.closure.HasField("task_node_metadata")


def test_eviction_marks_the_node_and_the_next_run_computes_again(
    admin: Admin, cache: Cache, task: dict[str, Any]
) -> None:
    first = run(admin, task, "e1", a=1, b=2)
    reply = cache.EvictTaskExecutionCache(task_execution_id=attempt_of(task, first))
    assert reply.HasField("errors") and not reply.errors.errors
    assert status_name(admin.GetNodeExecution(id=first)) == "CACHE_EVICTED"
    assert not cache.EvictTaskExecutionCache(task_execution_id=attempt_of(task, first)).errors.errors
    second = run(admin, task, "e2", a=1, b=2)
    assert (
        status_name(admin.GetNodeExecution(id=second)) == "CACHE_POPULATED" and attempts(admin, second) == 1
    )
    assert status_name(admin.GetNodeExecution(id=run(admin, task, "e3", a=1, b=2))) == "CACHE_HIT"


def test_eviction_of_what_was_not_cached(admin: Admin, cache: Cache) -> None:
    admin.project("p1")
    plain_task = admin.task(name="mod.plain")
    node = run(admin, plain_task, "e1", a=1, b=2)
    (error,) = cache.EvictTaskExecutionCache(task_execution_id=attempt_of(plain_task, node)).errors.errors
    assert error.code == 0 and error.message == "Internal error"  # INTERNAL, in the body
    assert error.node_execution_id.node_id == "plain" and error.workflow_execution_id.name == "e1"


def test_eviction_checks_and_not_found(admin: Admin, cache: Cache, task: dict[str, Any]) -> None:
    node = {"node_id": "cached", "execution_id": {"project": "p1", "domain": DOMAIN, "name": "e1"}}
    cases = [
        ({}, "task_execution_id: missing id"),
        (
            {"task_execution_id": {"task_id": task}},
            "task_execution_id.node_execution_id: missing node_execution_id",
        ),
        ({"task_execution_id": {"node_execution_id": node}}, "task_execution_id.task_id: missing task_id"),
        (
            {"task_execution_id": {"task_id": {**task, "version": ""}, "node_execution_id": node}},
            "task_execution_id.task_id.version: missing version",
        ),
    ]
    for request, expected in cases:
        error = cache.error("EvictTaskExecutionCache", request)
        assert error.code() == IA and error.details() == expected, error.details()
    wrong = cache.error(
        "EvictTaskExecutionCache",
        task_execution_id=attempt_of(identifier("WORKFLOW", "mod.cached"), node),
    )
    assert wrong.code() == IA and "unexpected resource type workflow" in wrong.details()
    missing = cache.error("EvictTaskExecutionCache", task_execution_id=attempt_of(task, node))
    assert missing.code() == NF and "missing entity of type task execution" in missing.details()


def test_rest_route_answers_like_grpc(admin: Admin, cache: Cache, task: dict[str, Any]) -> None:
    first = run(admin, task, "e1", a=1, b=2)
    base = (
        f"{admin.server.http_url}/api/v1/cache/task_executions/p1/{DOMAIN}/e1/cached/p1/{DOMAIN}/mod.cached"
    )
    headers = {"Accept": "application/json"}
    evicted = requests.delete(f"{base}/v1/0", headers=headers, timeout=10)
    assert evicted.status_code == 200 and evicted.json()["errors"]["errors"] == []
    assert status_name(admin.GetNodeExecution(id=first)) == "CACHE_EVICTED"
    missing = requests.delete(f"{base}/v1/7", headers=headers, timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == NF.value[0]


def test_defect_leaves_the_catalog_entry(admin: Admin, cache: Cache, task: dict[str, Any]) -> None:
    first = run(admin, task, "e1", a=1, b=2)
    active = admin.server.server.dispatcher.defects
    active.add(defects.CACHE_EVICT_KEEPS_ENTRY)
    try:
        assert not cache.EvictTaskExecutionCache(task_execution_id=attempt_of(task, first)).errors.errors
    finally:
        active.discard(defects.CACHE_EVICT_KEEPS_ENTRY)
    assert status_name(admin.GetNodeExecution(id=first)) == "CACHE_EVICTED"  # looks evicted...
    assert (
        status_name(admin.GetNodeExecution(id=run(admin, task, "e2", a=1, b=2))) == "CACHE_HIT"
    )  # ...is not
