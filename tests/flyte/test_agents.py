"""Flyte agents over real gRPC (and REST): metadata, async jobs on the virtual clock, the deprecated
ExternalPluginService, limits, serve options and defect modes; the sync agent's handler directly
(SyncAgentService is not in the documented inventory, so the server does not serve it)."""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
import requests
from flyte_support import literal_map
from google.protobuf import json_format
from protoconform.mockserver.apis.flyte import add_arguments, agents, options_from_args
from protoconform.mockserver.apis.flyte.agents_jobs import parse_agent
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.mockserver.rpc import ApiError, CallContext
from service_client import ServiceClient

ASYNC_TYPE = "protoconform-async"
CATEGORY = {"name": ASYNC_TYPE}


class Metadata(ServiceClient):
    SERVICE = "flyteidl.service.AgentMetadataService"
    FAMILY = "flyte"


class AsyncAgent(ServiceClient):
    SERVICE = "flyteidl.service.AsyncAgentService"
    FAMILY = "flyte"

    def message(self, full_name: str, value: Any = None, /, **fields: Any) -> Any:
        if not isinstance(value, dict | None):
            return super().message(full_name, value, **fields)
        fields = {**(value or {}), **fields}
        if isinstance(fields.get("resource_meta"), bytes):  # protojson carries bytes as base64
            fields["resource_meta"] = base64.b64encode(fields["resource_meta"]).decode()
        return super().message(full_name, **fields)

    def create(self, task_type: str = ASYNC_TYPE, **config: str) -> bytes:
        reply = self.CreateTask(inputs=literal_map(a=1, b=2), template=template(task_type, **config))
        return reply.resource_meta

    def logs(self, **request: Any) -> list[Any]:
        method = self.registry.method(f"{self.SERVICE}.GetTaskLogs")
        stub = self.channel.unary_stream(
            method.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.registry.message_class(method.response_type).FromString,
        )
        return list(stub(self.message(method.request_type, request), timeout=10))


class Plugin(ServiceClient):
    SERVICE = "flyteidl.service.ExternalPluginService"
    FAMILY = "flyte"


def template(task_type: str = ASYNC_TYPE, **config: str) -> dict[str, Any]:
    integer = {"type": {"simple": "INTEGER"}}
    return {
        "id": {
            "resource_type": "TASK",
            "project": "p1",
            "domain": "development",
            "name": "t.add",
            "version": "v1",
        },
        "type": task_type,
        "interface": {
            "inputs": {"variables": {"a": integer, "b": integer}},
            "outputs": {"variables": {"o0": integer}},
        },
        "config": {"protoconform.io/op": "sum", **config},
    }


def phase(resource: Any) -> str:
    from flyteidl.core.execution_pb2 import TaskExecution

    return TaskExecution.Phase.Name(resource.phase)


@pytest.fixture
def meta(fresh_server: ThreadedServer, flyte_channel: grpc.Channel) -> Metadata:
    return Metadata(flyte_channel, fresh_server)


@pytest.fixture
def agent(fresh_server: ThreadedServer, flyte_channel: grpc.Channel) -> AsyncAgent:
    return AsyncAgent(flyte_channel, fresh_server)


@pytest.fixture
def plugin(fresh_server: ThreadedServer, flyte_channel: grpc.Channel) -> Plugin:
    return Plugin(flyte_channel, fresh_server)


@pytest.fixture
def defect(fresh_server: ThreadedServer) -> Callable[[str], None]:
    return fresh_server.server.dispatcher.defects.add


# -- metadata ------------------------------------------------------------------------------------------


def test_the_default_agents_are_listed_and_got(meta: Metadata) -> None:
    listed = {a.name: a for a in meta.ListAgents().agents}
    assert set(listed) == {"async-agent", "sync-agent"}
    assert [c.name for c in listed["async-agent"].supported_task_categories] == [
        ASYNC_TYPE,
        "protoconform-sensor",
    ]
    assert not listed["async-agent"].is_sync and listed["sync-agent"].is_sync
    assert list(listed["sync-agent"].supported_task_types) == ["protoconform-sync"]
    assert meta.GetAgent(name="sync-agent").agent == listed["sync-agent"]


def test_an_unknown_agent_is_not_found(meta: Metadata) -> None:
    error = meta.error("GetAgent", name="nope")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "name: Cannot find connector for name: nope."


# -- async jobs ---------------------------------------------------------------------------------------


def test_a_job_moves_on_the_virtual_clock_and_answers_its_outputs(agent: AsyncAgent) -> None:
    resource_meta = agent.create()
    queued = agent.GetTask(task_category=CATEGORY, resource_meta=resource_meta).resource
    assert phase(queued) == "QUEUED" and not queued.HasField("outputs") and not queued.log_links
    agent.advance(0.5)
    running = agent.GetTask(task_category=CATEGORY, resource_meta=resource_meta).resource
    assert phase(running) == "RUNNING" and running.log_links[0].uri
    agent.advance(2)
    done = agent.GetTask(task_category=CATEGORY, resource_meta=resource_meta).resource
    assert phase(done) == "SUCCEEDED"
    assert done.outputs.literals["o0"].scalar.primitive.integer == 3
    assert done.custom_info["task_type"] == ASYNC_TYPE


def test_a_job_asked_to_fail_fails(agent: AsyncAgent) -> None:
    resource_meta = agent.create(**{"protoconform.io/fail": "error", "protoconform.io/duration": "5"})
    agent.advance(5)
    assert phase(agent.GetTask(task_category=CATEGORY, resource_meta=resource_meta).resource) == "RUNNING"
    agent.advance(1)
    failed = agent.GetTask(task_category=CATEGORY, resource_meta=resource_meta).resource
    assert phase(failed) == "FAILED" and failed.agent_error.code and not failed.HasField("outputs")
    retryable = agent.create(**{"protoconform.io/fail": "retryable"})
    agent.advance(3)
    assert (
        phase(agent.GetTask(task_category=CATEGORY, resource_meta=retryable).resource) == "RETRYABLE_FAILED"
    )


def test_delete_cancels_a_running_job_and_is_idempotent(agent: AsyncAgent) -> None:
    running = agent.create()
    agent.DeleteTask(task_category=CATEGORY, resource_meta=running)
    agent.DeleteTask(task_category=CATEGORY, resource_meta=running)
    agent.advance(5)
    assert phase(agent.GetTask(task_category=CATEGORY, resource_meta=running).resource) == "ABORTED"
    finished = agent.create()
    agent.advance(5)
    agent.DeleteTask(task_category=CATEGORY, resource_meta=finished)
    agent.DeleteTask(task_category=CATEGORY, resource_meta=finished)
    assert phase(agent.GetTask(task_category=CATEGORY, resource_meta=finished).resource) == "SUCCEEDED"


def test_the_deprecated_task_type_names_the_agent_too(agent: AsyncAgent) -> None:
    resource_meta = agent.create()
    assert phase(agent.GetTask(task_type=ASYNC_TYPE, resource_meta=resource_meta).resource) == "QUEUED"


def test_an_unknown_task_type_is_not_found(agent: AsyncAgent) -> None:
    error = agent.error("CreateTask", template=template("nope"))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "template.type: Cannot find connector for task type: nope.",
    )
    for method in ("GetTask", "DeleteTask", "GetTaskMetrics"):
        error = agent.error(method, task_category={"name": "nope"}, resource_meta=b"x")
        assert error.code() == grpc.StatusCode.NOT_FOUND, method
    error = agent.error("GetTask", task_category={"name": ASYNC_TYPE, "version": 1}, resource_meta=b"x")
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_a_sync_task_type_is_refused_by_create(agent: AsyncAgent) -> None:
    error = agent.error("CreateTask", template=template("protoconform-sync"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("template.type: [sync-agent] does not support async execution")


def test_resource_meta_cannot_be_forged_or_moved(agent: AsyncAgent, fresh_server: ThreadedServer) -> None:
    resource_meta = agent.create()
    job_id, _, signature = resource_meta.decode().partition(".")
    forged = f"{job_id}.{'0' * len(signature)}".encode()
    for bad in (forged, b"", b"garbage", resource_meta + b"x", b"a" * 10_000):
        error = agent.error("GetTask", task_category=CATEGORY, resource_meta=bad)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, bad[:40]
        assert error.details().startswith("resource_meta: ")
    moved = agent.error("GetTask", task_category={"name": "protoconform-sensor"}, resource_meta=resource_meta)
    assert "issued for task type protoconform-async@0" in moved.details()
    fresh_server.run(fresh_server.server.reset_state)  # a new secret: old metas name nothing here
    assert agent.error("GetTask", task_category=CATEGORY, resource_meta=resource_meta).code() == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_logs_stream_a_header_then_bodies_page_by_page(agent: AsyncAgent) -> None:
    resource_meta = agent.create()
    agent.advance(5)
    everything = agent.logs(task_category=CATEGORY, resource_meta=resource_meta)
    assert everything[0].WhichOneof("part") == "header" and everything[0].header.token == ""
    lines = [line for reply in everything[1:] for line in reply.body.results]
    assert lines[0].startswith("job ") and lines[-1] == "job finished: SUCCEEDED" and len(lines) == 5
    assert everything[1].body.structured_lines[0].message == lines[0]
    token, seen = "", []
    while True:
        page = agent.logs(task_category=CATEGORY, resource_meta=resource_meta, lines=2, token=token)
        seen += [line for reply in page[1:] for line in reply.body.results]
        token = page[0].header.token
        if not token:
            break
    assert seen == lines
    for bad in ("x", "0", "99", "-1", "9" * 40):
        error = agent.error("GetTaskLogs", task_category=CATEGORY, resource_meta=resource_meta, token=bad)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("token: ")


def test_metrics_answer_each_query_within_bounds(agent: AsyncAgent) -> None:
    resource_meta = agent.create()
    agent.advance(1)
    reply = agent.GetTaskMetrics(task_category=CATEGORY, resource_meta=resource_meta)
    assert [r.metric for r in reply.results] == [
        "EXECUTION_METRIC_USED_CPU_AVG",
        "EXECUTION_METRIC_USED_MEMORY_BYTES_AVG",
    ]
    values = json_format.MessageToDict(reply.results[0].data)["result"][0]["values"]
    assert [float(v) for _, v in values] == [0.0, 0.5]  # queued at 0 s, running at 1 s
    request = {"task_category": CATEGORY, "resource_meta": resource_meta}
    assert agent.error("GetTaskMetrics", queries=["NOPE"], **request).details().startswith("queries: ")
    backwards = {"start_time": "2026-01-02T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"}
    assert agent.error("GetTaskMetrics", **backwards, **request).details().startswith("end_time: ")
    dense = {"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-02T00:00:00Z", "step": "0.001s"}
    assert agent.error("GetTaskMetrics", **dense, **request).details().startswith("step: ")


def test_rest_routes_answer_like_grpc(
    agent: AsyncAgent, meta: Metadata, fresh_server: ThreadedServer
) -> None:
    base = fresh_server.http_url
    json = {"Accept": "application/json"}  # flyteadmin's marshaler for JSON: proto field names
    listed = requests.get(f"{base}/api/v1/agents", headers=json, timeout=10)
    assert listed.status_code == 200
    assert [a["name"] for a in listed.json()["agents"]] == [a.name for a in meta.ListAgents().agents]
    assert requests.get(f"{base}/api/v1/agent/sync-agent", headers=json, timeout=10).json()["agent"][
        "is_sync"
    ]
    assert requests.get(f"{base}/api/v1/agent/nope", timeout=10).status_code == 404
    resource_meta = agent.create()
    encoded = base64.urlsafe_b64encode(resource_meta).decode()
    got = requests.get(f"{base}/api/v1/agent/task/{ASYNC_TYPE}/0/{encoded}", headers=json, timeout=10)
    assert got.status_code == 200 and got.json()["resource"]["phase"] == "QUEUED"
    deleted = requests.delete(f"{base}/api/v1/agent/task_executions/{ASYNC_TYPE}/0/{encoded}", timeout=10)
    assert deleted.status_code == 200
    assert phase(agent.GetTask(task_category=CATEGORY, resource_meta=resource_meta).resource) == "ABORTED"


# -- ExternalPluginService ------------------------------------------------------------------------------


def test_the_plugin_service_runs_the_same_jobs(plugin: Plugin) -> None:
    job_id = plugin.CreateTask(inputs=literal_map(a=2, b=5), template=template()).job_id
    assert plugin.GetTask(task_type=ASYNC_TYPE, job_id=job_id).state == 2  # PENDING
    plugin.advance(3)
    done = plugin.GetTask(task_type=ASYNC_TYPE, job_id=job_id)
    assert done.state == 4 and done.outputs.literals["o0"].scalar.primitive.integer == 7
    plugin.DeleteTask(task_type=ASYNC_TYPE, job_id=job_id)
    plugin.DeleteTask(task_type=ASYNC_TYPE, job_id=job_id)
    assert plugin.error("GetTask", task_type="nope", job_id=job_id).code() == grpc.StatusCode.NOT_FOUND
    bad = plugin.error("GetTask", task_type=ASYNC_TYPE, job_id="forged")
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.details().startswith("job_id: ")


# -- limits and serve options ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server() -> Iterator[ThreadedServer]:
    options = {"agent_max_jobs": 2, "agents": ("solo=t1,t2@3", "quick=t3:sync")}
    config = ServerConfig(
        clock_speed=0, grace_seconds=0.2, families=("flyte",), family_options={"flyte": options}
    )
    with ThreadedServer(config) as server:
        yield server


def test_configured_agents_replace_the_defaults(small_server: ThreadedServer) -> None:
    with grpc.insecure_channel(small_server.grpc_address) as channel:
        listed = Metadata(channel, small_server).ListAgents().agents
    assert [(a.name, a.is_sync) for a in listed] == [("solo", False), ("quick", True)]
    assert [(c.name, c.version) for c in listed[0].supported_task_categories] == [("t1", 0), ("t2", 3)]


def test_a_full_agent_forgets_finished_jobs_and_refuses_while_all_run(small_server: ThreadedServer) -> None:
    small_server.run(small_server.server.reset_state)
    with grpc.insecure_channel(small_server.grpc_address) as channel:
        agent = AsyncAgent(channel, small_server)
        first = agent.create("t1")
        agent.advance(5)  # the first job is finished
        agent.create("t1")
        agent.create("t1")  # the first one is forgotten to make room
        error = agent.error("GetTask", task_category={"name": "t1"}, resource_meta=first)
        assert error.code() == grpc.StatusCode.NOT_FOUND and "no longer kept" in error.details()
        full = agent.error("CreateTask", inputs=literal_map(a=1, b=2), template=template("t1"))
        assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert len(list(small_server.server.states["flyte"].table("agent_jobs").scan())) == 2


@pytest.mark.parametrize(
    "text",
    ["", "name", "=t1", "a=", "a=t1:fast", "a=t 1", "a=t1@x", "a/b=t1"],
)
def test_bad_agent_options_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_agent(text)


def test_a_task_type_served_twice_names_the_option() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_argument_group("flyte"))
    args = parser.parse_args(["--flyte-agent", "a=t1", "--flyte-agent", "b=t1"])
    with pytest.raises(ValueError, match="--flyte-agent: task type t1@0 is served by 'a' already"):
        options_from_args(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["--flyte-agent", "a=t1:fast"])


# -- the sync agent (its handler: the server does not serve SyncAgentService) ------------------------------


def _execute(server: ThreadedServer, *requests_: dict[str, Any]) -> list[Any]:
    state = server.server.states["flyte"]
    cls = state.registry.message_class("flyteidl.admin.ExecuteTaskSyncRequest")
    messages = [json_format.ParseDict(r, cls()) for r in requests_]

    async def run() -> list[Any]:
        async def stream() -> AsyncIterator[Any]:
            for item in messages:
                yield item

        ctx = CallContext("/flyteidl.service.SyncAgentService/ExecuteTaskSync", state, state.clock)
        return [reply async for reply in agents.execute_task_sync(stream(), ctx)]

    return asyncio.run(run())


def test_a_sync_agent_answers_the_outputs_at_once(fresh_server: ThreadedServer) -> None:
    header = {"header": {"template": template("protoconform-sync")}}
    replies = _execute(fresh_server, header, {"inputs": literal_map(a=4, b=5)})
    assert len(replies) == 1
    resource = replies[0].header.resource
    assert phase(resource) == "SUCCEEDED" and resource.outputs.literals["o0"].scalar.primitive.integer == 9
    failing = {"header": {"template": template("protoconform-sync", **{"protoconform.io/fail": "error"})}}
    assert phase(_execute(fresh_server, failing)[0].header.resource) == "FAILED"


@pytest.mark.parametrize(
    ("messages", "code", "start"),
    [
        ([{"inputs": {}}], grpc.StatusCode.INVALID_ARGUMENT, "header: "),
        ([], grpc.StatusCode.INVALID_ARGUMENT, "header: "),
        (
            [{"header": {"template": template("protoconform-sync")}}] * 2,
            grpc.StatusCode.INVALID_ARGUMENT,
            "header: ",
        ),
        (
            [{"header": {"template": template()}}],
            grpc.StatusCode.INVALID_ARGUMENT,
            "header.template.type: [async",
        ),
        (
            [{"header": {"template": template("nope")}}],
            grpc.StatusCode.NOT_FOUND,
            "header.template.type: Cannot",
        ),
    ],
)
def test_a_sync_agent_refuses_what_it_cannot_run(
    fresh_server: ThreadedServer, messages: list[dict[str, Any]], code: grpc.StatusCode, start: str
) -> None:
    with pytest.raises(ApiError) as caught:
        _execute(fresh_server, *messages)
    assert caught.value.code == code and caught.value.message.startswith(start)


# -- defect modes --------------------------------------------------------------------------------------


def test_delete_twice_refused(agent: AsyncAgent, defect: Callable[[str], None]) -> None:
    resource_meta = agent.create()
    agent.DeleteTask(task_category=CATEGORY, resource_meta=resource_meta)
    defect("flyte.agents-delete-twice-refused")
    error = agent.error("DeleteTask", task_category=CATEGORY, resource_meta=resource_meta)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    agent.DeleteTask(task_category=CATEGORY, resource_meta=agent.create())  # a first delete still works


def test_job_never_finishes(agent: AsyncAgent, defect: Callable[[str], None]) -> None:
    resource_meta = agent.create()
    agent.advance(5)
    defect("flyte.agents-job-never-finishes")
    stuck = agent.GetTask(task_category=CATEGORY, resource_meta=resource_meta).resource
    assert phase(stuck) == "RUNNING" and not stuck.HasField("outputs")
    deleted = agent.create()
    agent.DeleteTask(task_category=CATEGORY, resource_meta=deleted)
    assert phase(agent.GetTask(task_category=CATEGORY, resource_meta=deleted).resource) == "ABORTED"


def test_times_out_of_range_are_the_clients_error(agent: AsyncAgent) -> None:
    request = {"task_category": CATEGORY, "resource_meta": agent.create()}
    for extreme in (
        {"start_time": {"seconds": 2**62}},
        {"end_time": {"seconds": -(2**62)}},
        {"step": {"seconds": 2**62}},
    ):
        method = agent.registry.method(f"{agent.SERVICE}.GetTaskMetrics")
        message = agent.registry.message_class(method.request_type)()
        for name, value in extreme.items():
            getattr(message, name).seconds = value["seconds"]
        message.resource_meta = request["resource_meta"]
        message.task_category.name = ASYNC_TYPE
        error = agent.error("GetTaskMetrics", message)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, extreme
