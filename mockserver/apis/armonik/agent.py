"""``armonik.api.grpc.v1.agent.Agent``: what an attached worker calls while it processes a task.

Every call carries the communication token the engine gave the task's run
(``Worker.Process``); the token selects the live :class:`engine.TaskRun`.
No run handed to a worker at all is UNAVAILABLE (the built-in executor's runs have
no worker to call the Agent), an empty token or one of no live run is
INVALID_ARGUMENT (rules ``armonik.agent.*`` in ``specs/armonik/agent.yaml``).

As in ArmoniK's polling agent, what a task produces lands only when the task
succeeds: results it creates exist (CREATED, ``created_by`` = the task) from the
call on, but their data -- given inline (CreateResults), written to the shared
folder and notified (NotifyResultData), or a legacy CreateTask payload -- is
stored and the results COMPLETED when the run ends well; subtasks stay in
CREATING until then.  A failed run aborts them (the engine discards its products).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from armonik.protogen.common.agent_common_pb2 import (
    CreateResultsMetaDataRequest,
    CreateResultsMetaDataResponse,
    CreateResultsRequest,
    CreateResultsResponse,
    CreateTaskReply,
    CreateTaskRequest,
    DataRequest,
    DataResponse,
    NotifyResultDataRequest,
    NotifyResultDataResponse,
    ResultMetaData,
    SubmitTasksRequest,
    SubmitTasksResponse,
)
from protoconform.mockserver.apis.armonik import (
    attach,  # noqa: F401 - installs the worker-attach path
    convert,
    dataroot,
)
from protoconform.mockserver.apis.armonik.engine import TaskRun
from protoconform.mockserver.apis.armonik.results import new_result
from protoconform.mockserver.apis.armonik.state import ArmonikState, Result, ResultStatuses
from protoconform.mockserver.apis.armonik.submission import TaskSpec, create_tasks, requested_tasks
from protoconform.mockserver.apis.armonik.taskstream import StreamDisorder, StreamTruncated, parse_task_stream
from protoconform.mockserver.rpc import ApiError, CallContext, handler
from protoconform.mockserver.validation import check_request

SVC = "armonik.api.grpc.v1.agent.Agent"


def live_run(ctx: CallContext, request: object) -> TaskRun:
    """The run the request's token belongs to, after the request-shape rules of the method."""
    state: ArmonikState = ctx.state
    # the dispatcher checked a unary request already; a streamed one is checked here (first message)
    check_request(state.rules, ctx.method, request)  # an empty token is refused here
    token = request.communication_token  # type: ignore[attr-defined]
    run = state.engine.run_for_token(token)
    if run is not None:
        return run
    if state.engine.worker_runs == 0:
        raise state.error("armonik.agent.no-task", "communication_token: no task is accepting requests")
    raise state.error(
        "armonik.agent.token-unknown",
        f"communication_token: wrong communication token '{token}' (it belongs to no task being processed)",
    )


def _check_session(state: ArmonikState, run: TaskRun, session_id: str, field: str = "session_id") -> None:
    if session_id and session_id != run.session.session_id:
        raise state.error(
            "armonik.agent.session-mismatch",
            f"{field}: '{session_id}' is not the session of the task being processed "
            f"('{run.session.session_id}')",
        )


def _new_result(state: ArmonikState, run: TaskRun, name: str) -> Result:
    result = new_result(state, run.session.session_id, name, created_by=run.task.task_id)
    run.created_results.append(result.result_id)  # aborted if the run fails
    return result


def _metadata(result: Result) -> ResultMetaData:
    meta = ResultMetaData(
        session_id=result.session_id, result_id=result.result_id, name=result.name, status=result.status
    )
    meta.created_at.CopyFrom(convert.timestamp(result.created_at))
    return meta


@handler(SVC, "CreateResultsMetaData")
def create_results_metadata(
    request: CreateResultsMetaDataRequest, ctx: CallContext
) -> CreateResultsMetaDataResponse:
    state: ArmonikState = ctx.state
    run = live_run(ctx, request)
    _check_session(state, run, request.session_id)
    results = [_new_result(state, run, item.name) for item in request.results]
    return CreateResultsMetaDataResponse(results=[_metadata(r) for r in results])


@handler(SVC, "CreateResults")
def create_results(request: CreateResultsRequest, ctx: CallContext) -> CreateResultsResponse:
    state: ArmonikState = ctx.state
    run = live_run(ctx, request)
    _check_session(state, run, request.session_id)
    results = []
    for item in request.results:
        result = _new_result(state, run, item.name)
        run.result_data[result.result_id] = bytes(item.data)  # stored when the task succeeds
        results.append(result)
    return CreateResultsResponse(results=[_metadata(r) for r in results])


@handler(SVC, "NotifyResultData")
def notify_result_data(request: NotifyResultDataRequest, ctx: CallContext) -> NotifyResultDataResponse:
    state: ArmonikState = ctx.state
    run = live_run(ctx, request)
    received: dict[str, bytes] = {}
    for index, identifier in enumerate(request.ids):  # check everything before keeping anything
        where = f"ids[{index}]"
        _check_session(state, run, identifier.session_id, f"{where}.session_id")
        result = state.results.get(identifier.result_id)
        if result is None:
            raise state.error(
                "armonik.agent.result-not-found",
                f"{where}.result_id: result '{identifier.result_id}' was not found",
            )
        if result.session_id != run.session.session_id:
            raise state.error(
                "armonik.agent.result-other-session",
                f"{where}.result_id: result '{result.result_id}' belongs to session '{result.session_id}', "
                f"not to the session of the task being processed ('{run.session.session_id}')",
            )
        try:  # the worker may have put anything there: never leave the task's folder
            path = dataroot.file_in(run.data_folder, result.result_id) if run.data_folder else ""
            received[result.result_id] = dataroot.read(path)
        except (OSError, dataroot.Refused):
            raise state.error(
                "armonik.agent.notified-file-missing",
                f"{where}.result_id: no file '{result.result_id}' in the data folder of the task "
                f"('{run.data_folder}')",
            ) from None
    run.result_data.update(received)
    return NotifyResultDataResponse(result_ids=[i.result_id for i in request.ids])


@handler(SVC, "SubmitTasks")
def submit_tasks(request: SubmitTasksRequest, ctx: CallContext) -> SubmitTasksResponse:
    state: ArmonikState = ctx.state
    run = live_run(ctx, request)
    _check_session(state, run, request.session_id)
    options, specs = requested_tasks(request)
    tasks = create_tasks(state, run.session, options, specs, parent=run.task) if specs else []
    run.children.extend(tasks)  # they start when this task completes
    return SubmitTasksResponse(
        communication_token=run.token,
        task_infos=convert.submitted_infos(SubmitTasksResponse.TaskInfo, tasks),
    )


def _fetch_data(request: DataRequest, ctx: CallContext) -> DataResponse:
    """Write a result's data to the task's folder as ``<result id>``."""
    state: ArmonikState = ctx.state
    run = live_run(ctx, request)
    if not run.data_folder:  # only an attached worker has a folder to write to
        raise state.error("armonik.agent.no-task", "communication_token: the task has no data folder")
    result = state.results.get(request.result_id)
    if result is None:
        raise state.error(
            "armonik.agent.resource-not-found", f"result_id: result '{request.result_id}' was not found"
        )
    data = state.result_data(result)
    if data is None or result.status != ResultStatuses.COMPLETED:
        raise state.error(
            "armonik.agent.resource-not-found",
            f"result_id: result '{result.result_id}' has no data ({ResultStatuses.name(result.status)})",
        )
    # never through a link the worker may have left there (an error is a server fault, as before)
    dataroot.write(dataroot.file_in(run.data_folder, result.result_id), data)
    return DataResponse(result_id=result.result_id)


@handler(SVC, "GetResourceData")
def get_resource_data(request: DataRequest, ctx: CallContext) -> DataResponse:
    return _fetch_data(request, ctx)


@handler(SVC, "GetCommonData")
def get_common_data(request: DataRequest, ctx: CallContext) -> DataResponse:
    return _fetch_data(request, ctx)  # rule armonik.agent.common-direct-data: served like resource data


@handler(SVC, "GetDirectData")
def get_direct_data(request: DataRequest, ctx: CallContext) -> DataResponse:
    return _fetch_data(request, ctx)


# -- legacy CreateTask: one client stream with options, then per task a header and payload chunks
@handler(SVC, "CreateTask")
async def create_task(request: AsyncIterator[CreateTaskRequest], ctx: CallContext) -> CreateTaskReply:
    state: ArmonikState = ctx.state
    messages = [item async for item in request]
    # Token problems and a truncated stream are answered in the reply's error field (legacy contract).
    if state.engine.worker_runs == 0:
        return CreateTaskReply(error="No task is accepting request")
    if not messages:
        return CreateTaskReply(error="Empty request")
    token = messages[0].communication_token
    if not token:
        return CreateTaskReply(communication_token=token, error="Missing communication token")
    run = state.engine.run_for_token(token)
    if run is None:
        return CreateTaskReply(communication_token=token, error="Wrong communication token")
    try:
        stream_tasks = parse_task_stream(messages)
    except StreamTruncated as exc:
        return CreateTaskReply(communication_token=token, error=str(exc))
    except StreamDisorder as exc:
        raise state.error("armonik.agent.create-task-stream-order", f"init_task: {exc}") from None
    first = messages[0]
    options = first.init_request.task_options if first.HasField("init_request") else None

    payloads = []
    for item in stream_tasks:
        result = _new_result(state, run, "")
        run.result_data[result.result_id] = item.payload  # stored when the task succeeds
        payloads.append(result)
    specs = [
        TaskSpec(payload.result_id, item.expected_output_keys, item.data_dependencies)
        for payload, item in zip(payloads, stream_tasks, strict=True)
    ]
    try:
        created = create_tasks(state, run.session, options, specs, parent=run.task, field_prefix="init_task")
    except ApiError:
        for result in payloads:  # nothing of a refused request stays
            run.result_data.pop(result.result_id, None)
            run.created_results.remove(result.result_id)
            state.results.delete(result.result_id)
        raise
    run.children.extend(created)
    return convert.creation_reply(CreateTaskReply, created)
