"""Flyte agents: AgentMetadataService, AsyncAgentService, SyncAgentService, ExternalPluginService.

The answers are those of a flytekit 1.16 connector server (``flytekit/extend/backend/
connector_service.py``) where its answers are sane; where it lets an exception
escape (UNKNOWN, INTERNAL), the rules of ``specs/flyte/agents.yaml`` record its
code and the mock answers the documented one.  Agents and jobs: :mod:`.agents_jobs`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from functools import wraps
from typing import Any

from google.protobuf import message
from protoconform.mockserver.apis.flyte import agents_jobs as jobs
from protoconform.mockserver.apis.flyte import literals
from protoconform.mockserver.apis.flyte.defects import DELETE_TWICE_REFUSED, JOB_NEVER_FINISHES
from protoconform.mockserver.apis.flyte.errors import Violation, api_error
from protoconform.mockserver.apis.flyte.service import admin, check_shape
from protoconform.mockserver.apis.flyte.state import AgentJobRecord
from protoconform.mockserver.apis.flyte.wire import stamp, to_datetime
from protoconform.mockserver.rpc import CallContext, handler

METADATA = "flyteidl.service.AgentMetadataService"
ASYNC = "flyteidl.service.AsyncAgentService"
SYNC = "flyteidl.service.SyncAgentService"
PLUGIN = "flyteidl.service.ExternalPluginService"

# Defect modes (mockserver/apis/flyte/defects.py); "flyte." + a name would read as a rule id


def streaming(name: str, service: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a streaming handler: shape rules of a single request first, violations become statuses
    (also those raised while the stream runs)."""
    full = f"{service}.{name}"

    def wrap(fn: Callable[[Any, CallContext], Any]) -> Callable[..., Any]:
        @wraps(fn)
        async def run(request: Any, ctx: CallContext) -> AsyncIterator[message.Message]:
            rules = ctx.state.rules
            try:
                if isinstance(request, message.Message):
                    check_shape(rules, full, request)
                items = fn(request, ctx)
                if hasattr(items, "__aiter__"):
                    async for item in items:
                        yield item
                else:
                    for item in items:
                        yield item
            except Violation as broken:
                raise api_error(rules, broken) from None

        return handler(service, name, validate=False)(run)

    return wrap


# -- AgentMetadataService ------------------------------------------------------------------------------


@admin("GetAgent", service=METADATA)
def get_agent(request: Any, ctx: CallContext) -> Any:
    state = ctx.state
    spec = jobs.agents(state).by_name.get(request.name)
    if spec is None:
        raise Violation("flyte.agents.get.not-found", name=request.name)
    return state.wire.new("admin.GetAgentResponse", agent=jobs.agent_message(state, spec))


@admin("ListAgents", service=METADATA)
def list_agents(request: Any, ctx: CallContext) -> Any:
    state = ctx.state
    listed = [jobs.agent_message(state, s) for s in jobs.agents(state).by_name.values()]
    return state.wire.new("admin.ListAgentsResponse", agents=listed)


# -- AsyncAgentService ---------------------------------------------------------------------------------


def _async_agent(ctx: CallContext, template: Any) -> jobs.AgentSpec:
    spec = jobs.lookup(ctx.state, "flyte.agents.create.task-type", template.type, template.task_type_version)
    if spec.is_sync:
        raise Violation("flyte.agents.create.sync-agent", agent=spec.name)
    return spec


@admin("CreateTask", service=ASYNC)
def create_task(request: Any, ctx: CallContext) -> Any:
    state = ctx.state
    spec = _async_agent(ctx, request.template)
    job = jobs.create(state, spec, request.template, request.inputs, request.output_prefix)
    return state.wire.new("admin.CreateTaskResponse", resource_meta=jobs.issue(state, job))


def _job(ctx: CallContext, request: Any) -> AgentJobRecord:
    """The job of a Get/Delete/Metrics/Logs request: its agent first, then its resource_meta."""
    category, field = (request.task_category.name, request.task_category.version), None
    if not category[0] and request.task_type:  # older propellers send only the deprecated task_type
        category, field = (request.task_type, 0), "task_type"
    jobs.lookup(ctx.state, "flyte.agents.task-type", *category, field=field)
    return jobs.read(
        ctx.state, request.resource_meta, category, "flyte.agents.resource-meta.invalid", "resource_meta"
    )


def _resource(ctx: CallContext, job: AgentJobRecord) -> Any:
    found = jobs.resource(ctx.state, job)
    wire = ctx.state.wire
    if ctx.defect(JOB_NEVER_FINISHES) and wire.name_of("core.TaskExecution.Phase", found.phase) != "ABORTED":
        running = jobs.result(ctx.state, job.template, job.outputs, "RUNNING", job.job_id)
        running.log_links.extend(found.log_links)
        return running
    return found


@admin("GetTask", service=ASYNC)
def get_task(request: Any, ctx: CallContext) -> Any:
    job = _job(ctx, request)
    return ctx.state.wire.new("admin.GetTaskResponse", resource=_resource(ctx, job))


@admin("DeleteTask", service=ASYNC)
def delete_task(request: Any, ctx: CallContext) -> Any:
    job = _job(ctx, request)
    if ctx.defect(DELETE_TWICE_REFUSED) and job.deleted_at is not None:
        raise Violation("flyte.agents.jobs.forgotten", job=job.job_id)
    jobs.delete(ctx.state, job)
    return ctx.state.wire.new("admin.DeleteTaskResponse")


@admin("GetTaskMetrics", service=ASYNC)
def get_task_metrics(request: Any, ctx: CallContext) -> Any:
    state = ctx.state
    job = _job(ctx, request)
    settings = jobs.config(state)
    known = list(settings["metrics"])
    queries = list(request.queries) or known
    for query in queries:
        if query not in known:
            raise Violation("flyte.agents.metrics.query", query=query, known=", ".join(known))
    if len(queries) > len(known):
        raise Violation("flyte.agents.metrics.query", query=queries[len(known)], known=", ".join(known))
    try:  # a Timestamp or Duration past what datetime holds is the client's, not ours
        start = to_datetime(request.start_time) if request.HasField("start_time") else job.created_at
        end = to_datetime(request.end_time) if request.HasField("end_time") else max(start, state.now())
        step = request.step.ToTimedelta() if request.HasField("step") else timedelta(seconds=1)
    except (ValueError, OverflowError) as exc:
        raise Violation("flyte.agents.metrics.range", problem=f"a time out of range: {exc}") from None
    if end < start:
        raise Violation("flyte.agents.metrics.range", problem="end_time is before start_time")
    if step <= timedelta(0):
        raise Violation("flyte.agents.metrics.range", field="step", problem="step must be positive")
    points = int((end - start) / step) + 1
    limit = int(settings["max_metric_points"])
    if points > limit:
        problem = f"{points} points from start_time to end_time by step; at most {limit}"
        raise Violation("flyte.agents.metrics.range", field="step", problem=problem)
    reply = state.wire.new("admin.GetTaskMetricsResponse")
    for query in queries:
        values = []
        for i in range(points):
            moment = start + step * i
            values.append([moment.timestamp(), repr(jobs.metric_value(state, job, query, moment))])
        item = reply.results.add(metric=query)
        item.data.update({"resultType": "matrix", "result": [{"metric": {}, "values": values}]})
    return reply


def _logs_page(request: Any, ctx: CallContext) -> list[Any]:
    state = ctx.state
    job = _job(ctx, request)
    settings = jobs.config(state)
    lines = jobs.log_lines(state, job)
    offset = 0
    if request.token:
        token = request.token
        if not (token.isascii() and token.isdigit() and len(token) < 10 and 0 < int(token) <= len(lines)):
            raise Violation("flyte.agents.logs.token", token=token[:64])
        offset = int(token)
    most = int(settings["max_log_lines"])
    count = min(int(request.lines) or most, most)
    page = lines[offset : offset + count]
    after = offset + len(page)
    wire = state.wire
    replies = [wire.new("admin.GetTaskLogsResponse")]
    replies[0].header.token = str(after) if after < len(lines) else ""
    per_body = int(settings["log_lines_per_body"])
    system = wire.number("admin.LogLineOriginator", "SYSTEM")
    for first in range(0, len(page), per_body):
        reply = wire.new("admin.GetTaskLogsResponse")
        for moment, text in page[first : first + per_body]:
            reply.body.results.append(text)
            reply.body.structured_lines.add(timestamp=stamp(moment), message=text, originator=system)
        replies.append(reply)
    return replies


@streaming("GetTaskLogs", service=ASYNC)
def get_task_logs(request: Any, ctx: CallContext) -> Iterator[Any]:
    yield from _logs_page(request, ctx)  # the whole page is read before the first message goes out


# -- SyncAgentService ------------------------------------------------------------------------------------


@streaming("ExecuteTaskSync", service=SYNC)
async def execute_task_sync(request: AsyncIterator[Any], ctx: CallContext) -> AsyncIterator[Any]:
    state = ctx.state
    first = await anext(aiter(request), None)
    if first is None or first.WhichOneof("part") != "header":
        raise Violation("flyte.agents.sync.header-first")
    template = first.header.template
    spec = jobs.lookup(state, "flyte.agents.sync.task-type", template.type, template.task_type_version)
    if not spec.is_sync:
        raise Violation("flyte.agents.sync.async-agent", agent=spec.name)
    second = await anext(aiter(request), None)  # nothing after the inputs is read
    if second is not None and second.WhichOneof("part") != "inputs":
        raise Violation("flyte.agents.sync.header-first")
    inputs = second.inputs if second is not None else state.wire.new("core.LiteralMap")
    keys = jobs.config(state)["keys"]
    outputs = literals.compute_outputs(state.wire, template, inputs, keys["op"])
    current = jobs.outcome(state, template)
    reply = state.wire.new("admin.ExecuteTaskSyncResponse")
    reply.header.resource.CopyFrom(jobs.result(state, template, outputs, current, ""))
    yield reply


# -- ExternalPluginService (deprecated) ------------------------------------------------------------------


@admin("CreateTask", service=PLUGIN)
def plugin_create_task(request: Any, ctx: CallContext) -> Any:
    state = ctx.state
    spec = _async_agent(ctx, request.template)
    job = jobs.create(state, spec, request.template, request.inputs, request.output_prefix)
    return state.wire.new("service.TaskCreateResponse", job_id=jobs.issue(state, job).decode())


def _plugin_job(ctx: CallContext, request: Any) -> AgentJobRecord:
    jobs.lookup(ctx.state, "flyte.agents.plugin.task-type", request.task_type, 0)
    meta = request.job_id.encode()
    return jobs.read(ctx.state, meta, (request.task_type, 0), "flyte.agents.plugin.job-id", "job_id")


@admin("GetTask", service=PLUGIN)
def plugin_get_task(request: Any, ctx: CallContext) -> Any:
    state = ctx.state
    job = _plugin_job(ctx, request)
    found = _resource(ctx, job)
    reply = state.wire.new("service.TaskGetResponse", state=found.state)
    if found.HasField("outputs"):
        reply.outputs.CopyFrom(found.outputs)
    return reply


@admin("DeleteTask", service=PLUGIN)
def plugin_delete_task(request: Any, ctx: CallContext) -> Any:
    job = _plugin_job(ctx, request)
    jobs.delete(ctx.state, job)
    return ctx.state.wire.new("service.TaskDeleteResponse")
