"""``armonik.api.grpc.v1.sessions.Sessions``: creation, reads and the session state machine.

Transitions come from ``specs/armonik/sessions.yaml`` (``state_machines.session``);
this module applies each one's side effects on tasks and results through the
engine and the state's mutations.
"""

from __future__ import annotations

import grpc
from armonik.protogen.common.objects_pb2 import TaskOptions
from armonik.protogen.common.sessions_common_pb2 import (
    CancelSessionResponse,
    CloseSessionResponse,
    CreateSessionReply,
    DeleteSessionResponse,
    GetSessionResponse,
    ListSessionsResponse,
    PauseSessionResponse,
    PurgeSessionResponse,
    ResumeSessionResponse,
    SessionRaw,
    StopSubmissionResponse,
)
from protoconform.mockserver.apis.armonik import convert, defects
from protoconform.mockserver.apis.armonik.listing import run_list
from protoconform.mockserver.apis.armonik.state import ArmonikState, Session, SessionStatuses
from protoconform.mockserver.rpc import ApiError, CallContext, handler

SVC = "armonik.api.grpc.v1.sessions.Sessions"
WRONG_STATUS_FOR_MISSING = defects.GET_SESSION_WRONG_STATUS
ILLEGAL_TRANSITION_ACCEPTED = defects.ILLEGAL_TRANSITION_ACCEPTED


def create_session(
    state: ArmonikState, default_task_option: TaskOptions, partition_ids: list[str]
) -> Session:
    """Create a RUNNING session (shared with the legacy Submitter); the request is already checked."""
    ids = list(partition_ids)
    if not ids or ids == [""]:
        ids = [state.options.default_partition]
    seen: set[str] = set()
    for index, partition_id in enumerate(ids):
        if partition_id in seen:
            raise state.error(
                "armonik.sessions.create.partition-not-found",
                f"partition_ids[{index}]: partition '{partition_id}' is listed twice",
            )
        seen.add(partition_id)
        if state.partitions.get(partition_id) is None:
            raise state.error(
                "armonik.sessions.create.partition-not-found",
                f"partition_ids[{index}]: partition '{partition_id}' was not found",
            )
    options = TaskOptions()
    options.CopyFrom(default_task_option)
    if not options.partition_id:
        options.partition_id = state.options.default_partition
    if state.partitions.get(options.partition_id) is None:
        raise state.error(
            "armonik.sessions.create.partition-not-found",
            f"default_task_option.partition_id: partition '{options.partition_id}' was not found",
        )
    session = Session(session_id=state.new_id(), partition_ids=ids, options=options, created_at=state.now())
    state.add_session(session)
    return session


def cancel_session(state: ArmonikState, session: Session, allow: frozenset[int] = frozenset()) -> None:
    """CancelSession's transition and side effects (shared with the legacy Submitter)."""
    state.session_action(session, "CancelSession", allow)
    session.client_submission = session.worker_submission = False
    session.cancelled_at = state.now()
    state.sessions.save(session)
    state.engine.cancel_session(session.session_id)


@handler(SVC, "CreateSession")
def create(request, ctx: CallContext) -> CreateSessionReply:
    state: ArmonikState = ctx.state
    session = create_session(state, request.default_task_option, list(request.partition_ids))
    return CreateSessionReply(session_id=session.session_id)


@handler(SVC, "GetSession")
def get(request, ctx: CallContext) -> GetSessionResponse:
    state: ArmonikState = ctx.state
    if ctx.defect(WRONG_STATUS_FOR_MISSING) and state.sessions.get(request.session_id) is None:
        raise ApiError(grpc.StatusCode.INTERNAL, f"session lookup failed for '{request.session_id}'")
    session = state.require_session(request.session_id)
    response = GetSessionResponse()
    convert.session_raw(session, into=response.session)
    return response


@handler(SVC, "ListSessions")
def list_sessions(request, ctx: CallContext) -> ListSessionsResponse:
    state: ArmonikState = ctx.state
    page, total = run_list(
        ctx, request, "session", state.sessions.all, lambda s: s.session_id, repo=state.sessions
    )
    return ListSessionsResponse(
        sessions=[convert.session_raw(s, with_options=request.with_task_options) for s in page],
        page=request.page,
        page_size=request.page_size,
        total=total,
    )


@handler(SVC, "CancelSession")
def cancel(request, ctx: CallContext) -> CancelSessionResponse:
    state: ArmonikState = ctx.state
    session = state.require_session(request.session_id)
    cancel_session(state, session)
    return CancelSessionResponse(session=convert.session_raw(session))


@handler(SVC, "PauseSession")
def pause(request, ctx: CallContext) -> PauseSessionResponse:
    state: ArmonikState = ctx.state
    session = state.require_session(request.session_id)
    allow = frozenset({SessionStatuses.CANCELLED}) if ctx.defect(ILLEGAL_TRANSITION_ACCEPTED) else frozenset()
    state.session_action(session, "PauseSession", allow)
    state.sessions.save(session)
    state.engine.pause_session(session.session_id)
    return PauseSessionResponse(session=convert.session_raw(session))


@handler(SVC, "ResumeSession")
def resume(request, ctx: CallContext) -> ResumeSessionResponse:
    state: ArmonikState = ctx.state
    session = state.require_session(request.session_id)
    state.session_action(session, "ResumeSession")
    state.sessions.save(session)
    state.engine.resume_session(session.session_id)
    return ResumeSessionResponse(session=convert.session_raw(session))


@handler(SVC, "CloseSession")
def close(request, ctx: CallContext) -> CloseSessionResponse:
    state: ArmonikState = ctx.state
    session = state.require_session(request.session_id)
    state.session_action(session, "CloseSession")
    session.client_submission = session.worker_submission = False
    session.closed_at = state.now()
    session.duration = session.closed_at - session.created_at
    state.sessions.save(session)
    return CloseSessionResponse(session=convert.session_raw(session))


@handler(SVC, "PurgeSession")
def purge(request, ctx: CallContext) -> PurgeSessionResponse:
    state: ArmonikState = ctx.state
    session = state.require_session(request.session_id)
    state.session_action(session, "PurgeSession")
    for result in state.results.by_session(session.session_id):
        if not result.manual_deletion:
            state.delete_result_data(result)
    session.client_submission = session.worker_submission = False
    session.purged_at = state.now()
    state.sessions.save(session)
    return PurgeSessionResponse(session=convert.session_raw(session))


@handler(SVC, "DeleteSession")
def delete(request, ctx: CallContext) -> DeleteSessionResponse:
    state: ArmonikState = ctx.state
    session = state.sessions.get(request.session_id)
    if session is None:  # idempotent: an unknown id answers a session holding only that id
        return DeleteSessionResponse(session=SessionRaw(session_id=request.session_id))
    state.session_action(session, "DeleteSession")
    session.client_submission = session.worker_submission = False
    session.deleted_at = state.now()
    reply = convert.session_raw(session)
    state.drop_session(session.session_id)
    return DeleteSessionResponse(session=reply)


@handler(SVC, "StopSubmission")
def stop_submission(request, ctx: CallContext) -> StopSubmissionResponse:
    state: ArmonikState = ctx.state
    session = state.require_session(request.session_id)
    if request.client:
        session.client_submission = False
    if request.worker:
        session.worker_submission = False
    state.sessions.save(session)
    return StopSubmissionResponse(session=convert.session_raw(session))
