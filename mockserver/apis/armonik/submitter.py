"""``armonik.api.grpc.v1.submitter.Submitter``: the legacy service, answered from the same state.

Nothing here has a model of its own: sessions are created and cancelled by the
Sessions helpers, tasks by :func:`submission.create_tasks` (a legacy task's
payload becomes a COMPLETED result of the session, as in ArmoniK), data comes
from the results' object store and waiting follows the state's events.
Rules: ``specs/armonik/submitter.yaml`` (plus the shared session/task rules).

Legacy filters: a ``TaskFilter`` selects tasks by session ids or task ids (one of
them, non-empty) and optionally keeps (``included``) or drops (``excluded``)
statuses; a ``SessionFilter`` selects sessions by ids (all when empty) and statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

from armonik.protogen.common.objects_pb2 import (
    Configuration,
    Count,
    DataChunk,
    Empty,
    Error,
    Output,
    StatusCount,
    TaskError,
    TaskIdList,
    TaskOptions,
)
from armonik.protogen.common.submitter_common_pb2 import (
    AvailabilityReply,
    CreateSessionReply,
    CreateTaskReply,
    GetResultStatusReply,
    GetTaskStatusReply,
    ResultReply,
    SessionIdList,
    WatchResultStream,
)
from protoconform.mockserver.apis.armonik import convert
from protoconform.mockserver.apis.armonik import results as results_service
from protoconform.mockserver.apis.armonik import sessions as sessions_service
from protoconform.mockserver.apis.armonik.state import (
    NEW_TASK,
    RESULT_STATUS_UPDATE,
    TASK_STATUS_UPDATE,
    ArmonikState,
    Result,
    ResultStatuses,
    Task,
    TaskStatuses,
)
from protoconform.mockserver.apis.armonik.submission import TaskSpec, create_tasks
from protoconform.mockserver.apis.armonik.taskstream import StreamDisorder, StreamTruncated, parse_task_stream
from protoconform.mockserver.rpc import ApiError, CallContext, handler

SVC = "armonik.api.grpc.v1.submitter.Submitter"
RECHECK_SECONDS = 1.0  # waiting calls also look again this often (wall time), e.g. after a deletion
# A result whose owner is in one of these statuses will not get data: TryGetResultStream answers an error.
OWNER_FAILED = frozenset(
    {TaskStatuses.ERROR, TaskStatuses.TIMEOUT, TaskStatuses.CANCELLED, TaskStatuses.CANCELLING}
)
# Statuses WaitForCompletion can stop early on.
ERROR_STATUSES = frozenset({TaskStatuses.ERROR, TaskStatuses.TIMEOUT})
CANCEL_STATUSES = frozenset({TaskStatuses.CANCELLED, TaskStatuses.CANCELLING})


# -- filters --------------------------------------------------------------------------
def tasks_of_filter(state: ArmonikState, task_filter: Any, field: str = "") -> list[Task]:
    """The tasks a legacy ``TaskFilter`` selects (validated first; ``field`` prefixes messages)."""
    prefix = f"{field}." if field else ""
    ids_case = task_filter.WhichOneof("ids")
    if ids_case is None:
        raise state.error(
            "armonik.submitter.task-filter.ids", f"{prefix}session: a task filter needs session or task ids"
        )
    ids = list(getattr(task_filter, ids_case).ids)
    if not ids:
        raise state.error("armonik.submitter.task-filter.ids", f"{prefix}{ids_case}.ids: must not be empty")
    statuses_case = task_filter.WhichOneof("statuses")
    statuses: frozenset[int] = frozenset()
    if statuses_case is not None:
        statuses = frozenset(getattr(task_filter, statuses_case).statuses)
        if not statuses:
            raise state.error(
                "armonik.submitter.task-filter.statuses",
                f"{prefix}{statuses_case}.statuses: must not be empty",
            )
    if ids_case == "session":
        found = [t for sid in dict.fromkeys(ids) for t in state.tasks.by_session(sid)]
    else:
        found = [t for t in (state.tasks.get(i) for i in dict.fromkeys(ids)) if t is not None]
    if statuses_case == "included":
        return [t for t in found if t.status in statuses]
    if statuses_case == "excluded":
        return [t for t in found if t.status not in statuses]
    return found


def _counts(tasks: list[Task]) -> list[StatusCount]:
    counts = Counter(t.status for t in tasks)
    return [StatusCount(status=s, count=n) for s, n in sorted(counts.items())]  # type: ignore[arg-type]


# -- configuration and sessions ----------------------------------------------------------
@handler(SVC, "GetServiceConfiguration")
def service_configuration(request: Empty, ctx: CallContext) -> Configuration:
    return Configuration(data_chunk_max_size=ctx.state.options.data_chunk_max_size)


@handler(SVC, "CreateSession")
def create_session(request: Any, ctx: CallContext) -> CreateSessionReply:
    state: ArmonikState = ctx.state
    session = sessions_service.create_session(state, request.default_task_option, list(request.partition_ids))
    return CreateSessionReply(session_id=session.session_id)


@handler(SVC, "CancelSession")
def cancel_session(request: Any, ctx: CallContext) -> Empty:
    state: ArmonikState = ctx.state
    session = state.require_session(request.id, "id")
    sessions_service.cancel_session(state, session)
    return Empty()


@handler(SVC, "ListSessions")
def list_sessions(request: Any, ctx: CallContext) -> SessionIdList:
    state: ArmonikState = ctx.state
    statuses_case = request.WhichOneof("statuses")
    statuses: frozenset[int] = frozenset()
    if statuses_case is not None:
        statuses = frozenset(getattr(request, statuses_case).statuses)
        if not statuses:
            raise state.error(
                "armonik.submitter.session-filter.statuses", f"{statuses_case}.statuses: must not be empty"
            )
    wanted = set(request.sessions)
    ids = []
    for session in state.sessions.all():
        if wanted and session.session_id not in wanted:
            continue
        if statuses_case == "included" and session.status not in statuses:
            continue
        if statuses_case == "excluded" and session.status in statuses:
            continue
        ids.append(session.session_id)
    return SessionIdList(session_ids=ids)


# -- task creation ------------------------------------------------------------------------
def _create_legacy_tasks(
    state: ArmonikState,
    session_id: str,
    options: TaskOptions | None,
    items: list[tuple[list[str], list[str], bytes]],
    field_prefix: str,
) -> list[Task]:
    """Store each payload as a COMPLETED result, then create and start the tasks (all or nothing)."""
    session = state.require_session(session_id)
    payloads = [results_service.new_result_with_data(state, session_id, "", payload) for *_, payload in items]
    specs = [
        TaskSpec(payload.result_id, list(outputs), list(dependencies))
        for payload, (outputs, dependencies, _) in zip(payloads, items, strict=True)
    ]
    try:
        tasks = create_tasks(state, session, options, specs, field_prefix=field_prefix)
    except ApiError:
        for payload in payloads:  # a refused request leaves nothing behind
            state.objects.delete(payload.opaque_id)
            state.results.delete(payload.result_id)
        raise
    state.engine.submit(tasks)
    return tasks


@handler(SVC, "CreateSmallTasks")
def create_small_tasks(request: Any, ctx: CallContext) -> CreateTaskReply:
    state: ArmonikState = ctx.state
    items = [
        (list(r.expected_output_keys), list(r.data_dependencies), bytes(r.payload))
        for r in request.task_requests
    ]
    options = request.task_options if request.HasField("task_options") else None
    return convert.creation_reply(
        CreateTaskReply, _create_legacy_tasks(state, request.session_id, options, items, "task_requests")
    )


@handler(SVC, "CreateLargeTasks")
async def create_large_tasks(request: AsyncIterator[Any], ctx: CallContext) -> CreateTaskReply:
    state: ArmonikState = ctx.state
    messages = [item async for item in request]
    if not messages:
        raise state.error(
            "armonik.submitter.large.empty-stream", "init_request: the stream contained no message"
        )
    first = messages[0]
    if first.WhichOneof("type") != "init_request":
        raise state.error(
            "armonik.submitter.large.init-first",
            f"init_request: the first message must be an init_request, got {first.WhichOneof('type')}",
        )
    init = first.init_request
    if not init.session_id:
        raise state.error("armonik.submitter.large.session-required", "init_request.session_id: is required")
    try:
        stream_tasks = parse_task_stream(messages)
    except (StreamTruncated, StreamDisorder) as exc:
        raise state.error("armonik.submitter.large.stream-order", f"init_task: {exc}") from None
    for index, item in enumerate(stream_tasks):
        if not item.expected_output_keys:
            raise state.error(
                "armonik.submitter.large.header-outputs",
                f"init_task.header.expected_output_keys: task {index} of the stream expects no output",
            )
    options = init.task_options if init.HasField("task_options") else None
    items = [(t.expected_output_keys, t.data_dependencies, t.payload) for t in stream_tasks]
    return convert.creation_reply(
        CreateTaskReply, _create_legacy_tasks(state, init.session_id, options, items, "init_task")
    )


# -- task queries and cancellation --------------------------------------------------------
@handler(SVC, "ListTasks")
def list_tasks(request: Any, ctx: CallContext) -> TaskIdList:
    return TaskIdList(task_ids=[t.task_id for t in tasks_of_filter(ctx.state, request)])


@handler(SVC, "CountTasks")
def count_tasks(request: Any, ctx: CallContext) -> Count:
    return Count(values=_counts(tasks_of_filter(ctx.state, request)))


@handler(SVC, "CancelTasks")
def cancel_tasks(request: Any, ctx: CallContext) -> Empty:
    state: ArmonikState = ctx.state
    state.engine.cancel_tasks(tasks_of_filter(state, request))
    return Empty()


@handler(SVC, "GetTaskStatus")
def get_task_status(request: Any, ctx: CallContext) -> GetTaskStatusReply:
    state: ArmonikState = ctx.state
    found = [t for t in (state.tasks.get(i) for i in dict.fromkeys(request.task_ids)) if t is not None]
    return GetTaskStatusReply(
        id_statuses=[GetTaskStatusReply.IdStatus(task_id=t.task_id, status=t.status) for t in found]  # type: ignore[arg-type]
    )


@handler(SVC, "GetResultStatus")
def get_result_status(request: Any, ctx: CallContext) -> GetResultStatusReply:
    state: ArmonikState = ctx.state
    found = [r for r in (state.results.get(i) for i in dict.fromkeys(request.result_ids)) if r is not None]
    if request.session_id:
        found = [r for r in found if r.session_id == request.session_id]
    return GetResultStatusReply(
        id_statuses=[GetResultStatusReply.IdStatus(result_id=r.result_id, status=r.status) for r in found]  # type: ignore[arg-type]
    )


@handler(SVC, "TryGetTaskOutput")
def try_get_task_output(request: Any, ctx: CallContext) -> Output:
    state: ArmonikState = ctx.state
    task = state.require_task(request.task_id)
    failed = task.status in (
        TaskStatuses.ERROR,
        TaskStatuses.TIMEOUT,
        TaskStatuses.RETRIED,
        TaskStatuses.CANCELLED,
        TaskStatuses.CANCELLING,
    )
    if failed or task.output_error:
        details = task.output_error or task.status_message or TaskStatuses.name(task.status)
        return Output(error=Output.Error(details=details))
    return Output(ok=Empty())  # a task that has not failed (yet) reports success, as ArmoniK does


# -- results: stream, availability, watch ---------------------------------------------------
def _legacy_result(state: ArmonikState, request: Any) -> Result:
    result = state.results.get(request.result_id)
    if result is None:
        raise state.error(
            "armonik.submitter.result-not-found", f"result_id: result '{request.result_id}' was not found"
        )
    if request.session and result.session_id != request.session:
        raise state.error(
            "armonik.submitter.result-other-session",
            f"result_id: result '{result.result_id}' belongs to session '{result.session_id}', "
            f"not '{request.session}'",
        )
    return result


def _task_error(task: Task) -> TaskError:
    detail = task.output_error or task.status_message or TaskStatuses.name(task.status)
    return TaskError(task_id=task.task_id, errors=[Error(task_status=task.status, detail=detail)])  # type: ignore[arg-type]


@handler(SVC, "TryGetResultStream")
def try_get_result_stream(request: Any, ctx: CallContext) -> Iterator[ResultReply]:
    state: ArmonikState = ctx.state
    result = _legacy_result(state, request)
    data = state.result_data(result) if result.status == ResultStatuses.COMPLETED else None
    if data is None:
        owner = state.tasks.get(result.owner_task_id) if result.owner_task_id else None
        if result.status in (ResultStatuses.CREATED, ResultStatuses.ABORTED) and owner is not None:
            if owner.status in OWNER_FAILED:
                yield ResultReply(error=_task_error(owner))
                return
            if not owner.final:
                yield ResultReply(not_completed_task=owner.task_id)
                return
        if result.status == ResultStatuses.CREATED and owner is None:
            raise state.error(
                "armonik.submitter.result-without-data",
                f"result_id: result '{result.result_id}' is CREATED and no task produces it "
                "(its data has to be uploaded)",
            )
        status = ResultStatuses.name(result.status)
        raise state.error(
            "armonik.submitter.result-data-missing",
            f"result_id: result '{result.result_id}' has no data (status {status})",
        )
    size = max(1, state.options.data_chunk_max_size)
    for start in range(0, len(data), size):
        yield ResultReply(result=DataChunk(data=data[start : start + size]))
    yield ResultReply(result=DataChunk(data_complete=True))


async def _next_change(subscription: Any) -> None:
    """Wait for a relevant event (or the periodic re-check), then drop the backlog."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(subscription.get(), RECHECK_SECONDS)
    while subscription.get_nowait() is not None:
        pass


@handler(SVC, "WaitForAvailability")
async def wait_for_availability(request: Any, ctx: CallContext) -> AvailabilityReply:
    state: ArmonikState = ctx.state
    result = _legacy_result(state, request)
    result_id = result.result_id
    # notify_only: the wait re-reads the state on a change, and may finish during shutdown
    watched = state.events.subscribe(
        lambda e: e.kind == RESULT_STATUS_UPDATE, keys=(result_id,), notify_only=True
    )
    with watched:
        while True:
            current = state.results.get(result_id)
            if current is None:
                raise state.error(
                    "armonik.submitter.result-not-found", f"result_id: result '{result_id}' was deleted"
                )
            if current.status == ResultStatuses.COMPLETED:
                return AvailabilityReply(ok=Empty())
            if current.status == ResultStatuses.ABORTED:
                owner = state.tasks.get(current.owner_task_id)
                if owner is not None:
                    return AvailabilityReply(error=_task_error(owner))
                return AvailabilityReply(error=TaskError(task_id=current.owner_task_id))
            if current.status == ResultStatuses.DELETED:
                raise state.error(
                    "armonik.submitter.wait-deleted",
                    f"result_id: result '{result_id}' is DELETED and will never be available",
                )
            await _next_change(watched)


@handler(SVC, "WaitForCompletion")
async def wait_for_completion(request: Any, ctx: CallContext) -> Count:
    state: ArmonikState = ctx.state
    tasks_of_filter(state, request.filter, "filter")  # validate before waiting
    ids = getattr(request.filter, request.filter.WhichOneof("ids")).ids  # session or task ids: the keys
    changes = state.events.subscribe(
        lambda e: e.kind in (TASK_STATUS_UPDATE, NEW_TASK), keys=frozenset(ids), notify_only=True
    )
    with changes:
        while True:
            tasks = tasks_of_filter(state, request.filter, "filter")
            statuses = {t.status for t in tasks}
            done = all(t.final for t in tasks)
            if request.stop_on_first_task_error and statuses & ERROR_STATUSES:
                done = True
            if request.stop_on_first_task_cancellation and statuses & CANCEL_STATUSES:
                done = True
            if done:
                return Count(values=_counts(tasks))
            await _next_change(changes)


@handler(SVC, "WatchResults")
async def watch_results(request: AsyncIterator[Any], ctx: CallContext) -> AsyncIterator[WatchResultStream]:
    async for item in results_service.watch_stream(
        ctx.state, request, lambda status, ids: WatchResultStream(status=status, result_ids=ids)
    ):
        yield item
