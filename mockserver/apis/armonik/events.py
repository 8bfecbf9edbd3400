"""``armonik.api.grpc.v1.events.Events``: the change stream of one session.

On subscription the stream first replays a NewTask / NewResult event for every
existing matching task and result (their current status), then follows live
changes (rules ``armonik.events.*``).  The server ends it only in two cases:

- slow consumer (``armonik.events.slow-consumer``): a stream buffers at most
  ``--armonik-event-buffer`` events (default
  :data:`pubsub.DEFAULT_LIMIT`); when a client falls further behind, the buffer is
  dropped and the stream ends with RESOURCE_EXHAUSTED saying how far behind it was.
  A client that has stopped reading altogether sees that status once it reads
  what the transport already holds; the server keeps nothing more for it.
- shutdown (``armonik.events.server-shutdown``): the family's ``end_streams`` ends every
  open stream with UNAVAILABLE, so SIGTERM does not wait for the grace period.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from armonik.protogen.common.events_common_pb2 import EventSubscriptionResponse
from protoconform.mockserver.apis.armonik import defects
from protoconform.mockserver.apis.armonik.filters import FieldRef, Predicate, compile_filters
from protoconform.mockserver.apis.armonik.state import (
    NEW_RESULT,
    NEW_TASK,
    RESULT_OWNER_UPDATE,
    RESULT_STATUS_UPDATE,
    TASK_STATUS_UPDATE,
    ArmonikState,
    Event,
    Task,
)
from protoconform.mockserver.pubsub import Overflowed, SubscriptionEnded
from protoconform.mockserver.rpc import ApiError, CallContext, handler

SVC = "armonik.api.grpc.v1.events.Events"
ENDS_EARLY = defects.EVENTS_END_EARLY
NOT_ALLOWED = "armonik.events.filter-field-not-allowed"
SLOW_CONSUMER = "armonik.events.slow-consumer"
SHUTTING_DOWN = "armonik.events.server-shutdown"
TASK_EVENTS = frozenset({NEW_TASK, TASK_STATUS_UPDATE})
ALL_EVENTS = frozenset({NEW_TASK, TASK_STATUS_UPDATE, NEW_RESULT, RESULT_STATUS_UPDATE, RESULT_OWNER_UPDATE})


def _allowed(state: ArmonikState, kind: str):
    rule = state.rules.rule(NOT_ALLOWED)
    names = set(rule.params.get(f"allowed_{kind}_fields", ()))
    options_ok = kind == "task" and rule.params.get("allow_task_options", False)

    def allowed(field: FieldRef, member: str) -> bool:
        return field.name in names or (
            options_ok and member in ("task_option_field", "task_option_generic_field")
        )

    return allowed


def _new_task(task: Task, status: int) -> EventSubscriptionResponse.NewTask:
    return EventSubscriptionResponse.NewTask(
        task_id=task.task_id,
        payload_id=task.payload_id,
        origin_task_id=task.initial_task_id,
        status=status,
        expected_output_keys=task.expected_output_ids,
        data_dependencies=task.data_dependencies,
        retry_of_ids=task.retry_of_ids,
        parent_task_ids=task.parent_task_ids,
    )


def ended_error(state: ArmonikState, ended: SubscriptionEnded) -> ApiError:
    """How a stream whose subscription was ended by the server finishes."""
    if isinstance(ended, Overflowed):
        return state.error(
            SLOW_CONSUMER,
            f"the client fell behind: {ended.limit + 1} events were waiting to be sent after "
            f"{ended.delivered} sent (limit {ended.limit} per stream); subscribe again to resume",
        )
    return state.error(SHUTTING_DOWN, "the server is shutting down")


def response(event: Event) -> EventSubscriptionResponse:
    entity = event.entity
    reply = EventSubscriptionResponse(session_id=event.session_id)
    if event.kind == NEW_TASK:
        reply.new_task.CopyFrom(_new_task(entity, event.status))  # type: ignore[arg-type]
    elif event.kind == TASK_STATUS_UPDATE:
        reply.task_status_update.task_id = entity.task_id  # type: ignore[union-attr]
        reply.task_status_update.status = event.status  # type: ignore[assignment]
    elif event.kind == NEW_RESULT:
        reply.new_result.result_id = entity.result_id  # type: ignore[union-attr]
        reply.new_result.owner_id = entity.owner_task_id  # type: ignore[union-attr]
        reply.new_result.status = event.status  # type: ignore[assignment]
    elif event.kind == RESULT_STATUS_UPDATE:
        reply.result_status_update.result_id = entity.result_id  # type: ignore[union-attr]
        reply.result_status_update.status = event.status  # type: ignore[assignment]
    else:
        reply.result_owner_update.result_id = entity.result_id  # type: ignore[union-attr]
        reply.result_owner_update.previous_owner_id = event.previous_owner
        reply.result_owner_update.current_owner_id = event.current_owner
    return reply


@handler(SVC, "GetEvents")
async def get_events(request, ctx: CallContext) -> AsyncIterator[EventSubscriptionResponse]:
    """Snapshot, then live events of one session, until the client cancels.

    Slow consumers: at most ``--armonik-event-buffer`` events wait for a stream; one
    more and the stream ends with RESOURCE_EXHAUSTED ("the client fell behind").
    Shutdown ends it with UNAVAILABLE.  See the module docstring.
    """
    state: ArmonikState = ctx.state
    session_id = request.session_id
    kinds = frozenset(request.returned_events) & ALL_EVENTS or ALL_EVENTS
    task_ok: Predicate = compile_filters(
        state, "task", request.tasks_filters, "tasks_filters", _allowed(state, "task"), NOT_ALLOWED
    )
    result_ok: Predicate = compile_filters(
        state, "result", request.results_filters, "results_filters", _allowed(state, "result"), NOT_ALLOWED
    )

    def wanted(event: Event) -> bool:
        if event.session_id != session_id or event.kind not in kinds:
            return False
        return task_ok(event.entity) if event.kind in TASK_EVENTS else result_ok(event.entity)

    # Subscribe before the snapshot so nothing falls between them (duplicates are possible, as upstream).
    with state.events.subscribe(wanted, keys=(session_id,)) as subscription:
        if subscription.ended is not None:  # subscribed during shutdown
            raise ended_error(state, subscription.ended)
        if NEW_TASK in kinds:
            for task in state.tasks.by_session(session_id):
                if task_ok(task):
                    yield response(Event(NEW_TASK, session_id, task, task.status))
        if NEW_RESULT in kinds:
            for result in state.results.by_session(session_id):
                if result_ok(result):
                    yield response(Event(NEW_RESULT, session_id, result, result.status))
        if ctx.defect(ENDS_EARLY):
            return
        while True:
            try:
                event = await subscription.get()
            except SubscriptionEnded as ended:
                raise ended_error(state, ended) from None
            yield response(event)
