"""``armonik.api.grpc.v1.tasks.Tasks``: submission, reads, counts and cancellation."""

from __future__ import annotations

from collections import Counter

from armonik.protogen.common.objects_pb2 import StatusCount
from armonik.protogen.common.tasks_common_pb2 import (
    CancelTasksResponse,
    CountTasksByStatusResponse,
    GetResultIdsResponse,
    GetTaskResponse,
    ListTasksDetailedResponse,
    ListTasksResponse,
    SubmitTasksResponse,
)
from protoconform.mockserver.apis.armonik import convert, defects
from protoconform.mockserver.apis.armonik.filters import compile_filters
from protoconform.mockserver.apis.armonik.listing import index_scope, run_list
from protoconform.mockserver.apis.armonik.state import ArmonikState, Task
from protoconform.mockserver.apis.armonik.submission import create_tasks, requested_tasks
from protoconform.mockserver.rpc import CallContext, handler

SVC = "armonik.api.grpc.v1.tasks.Tasks"
FILTER_IGNORED = defects.FILTER_IGNORED
STATUS_OUT_OF_DOMAIN = defects.TASK_STATUS_OUT_OF_DOMAIN
OUT_OF_DOMAIN_STATUS = 42  # no TaskStatus has this number


@handler(SVC, "SubmitTasks")
def submit(request, ctx: CallContext) -> SubmitTasksResponse:
    state: ArmonikState = ctx.state
    session = state.require_session(request.session_id)
    options, specs = requested_tasks(request)
    tasks = create_tasks(state, session, options, specs)
    state.engine.submit(tasks)
    return SubmitTasksResponse(task_infos=convert.submitted_infos(SubmitTasksResponse.TaskInfo, tasks))


@handler(SVC, "GetTask")
def get(request, ctx: CallContext) -> GetTaskResponse:
    state: ArmonikState = ctx.state
    detailed = convert.task_detailed(state.require_task(request.task_id))
    if ctx.defect(STATUS_OUT_OF_DOMAIN):
        detailed.status = OUT_OF_DOMAIN_STATUS  # type: ignore[assignment]
    return GetTaskResponse(task=detailed)


def _task_page(request, ctx: CallContext) -> tuple[list[Task], int]:
    """The page of tasks a ListTasks or ListTasksDetailed request selects, and the match count."""
    state: ArmonikState = ctx.state
    return run_list(
        ctx,
        request,
        "task",
        state.tasks.all,
        lambda t: t.task_id,
        ignore_filters=ctx.defect(FILTER_IGNORED),
        repo=state.tasks,
    )


@handler(SVC, "ListTasks")
def list_tasks(request, ctx: CallContext) -> ListTasksResponse:
    page, total = _task_page(request, ctx)
    summaries = [convert.task_summary(t) for t in page]
    if not request.with_errors:  # the error message is only sent when asked for
        for summary in summaries:
            summary.ClearField("error")
    return ListTasksResponse(
        tasks=summaries,
        page=request.page,
        page_size=request.page_size,
        total=total,
    )


@handler(SVC, "ListTasksDetailed")
def list_tasks_detailed(request, ctx: CallContext) -> ListTasksDetailedResponse:
    page, total = _task_page(request, ctx)
    return ListTasksDetailedResponse(
        tasks=[convert.task_detailed(t) for t in page],
        page=request.page,
        page_size=request.page_size,
        total=total,
    )


@handler(SVC, "CancelTasks")
def cancel(request, ctx: CallContext) -> CancelTasksResponse:
    state: ArmonikState = ctx.state
    found = [t for t in (state.tasks.get(i) for i in dict.fromkeys(request.task_ids)) if t is not None]
    state.engine.cancel_tasks(found)
    return CancelTasksResponse(tasks=[convert.task_summary(t) for t in found])


@handler(SVC, "GetResultIds")
def result_ids(request, ctx: CallContext) -> GetResultIdsResponse:
    state: ArmonikState = ctx.state
    reply = GetResultIdsResponse()
    for task_id in request.task_id:
        task = state.tasks.get(task_id)
        if task is not None:
            reply.task_results.add(task_id=task.task_id, result_ids=task.expected_output_ids)
    return reply


@handler(SVC, "CountTasksByStatus")
def count_by_status(request, ctx: CallContext) -> CountTasksByStatusResponse:
    state: ArmonikState = ctx.state
    filters = request.filters if request.HasField("filters") else None
    predicate = compile_filters(state, "task", filters)
    index = state.tasks.index
    scope = index_scope("task", filters) if index is not None else None
    if index is not None and scope is not None:  # kept counts: no scan
        counts = index.status_counts(*scope)
    else:
        counts = Counter(t.status for t in state.tasks.all() if predicate(t))
    return CountTasksByStatusResponse(
        status=[StatusCount(status=s, count=n) for s, n in sorted(counts.items())]  # type: ignore[arg-type]
    )
