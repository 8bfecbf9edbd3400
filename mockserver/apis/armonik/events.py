"""``armonik.api.grpc.v1.events.Events``: the change stream of one session.

On subscription the stream first replays a NewTask / NewResult event for every
existing matching task and result (their current status), then follows live
changes; the server never ends it (rules ``armonik.events.*``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from armonik.protogen.common.events_common_pb2 import EventSubscriptionResponse
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
from protoconform.mockserver.rpc import CallContext, handler

SVC = "armonik.api.grpc.v1.events.Events"
ENDS_EARLY = "armonik.events-end-early"
NOT_ALLOWED = "armonik.events.filter-field-not-allowed"
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
    with state.events.subscribe(wanted) as subscription:
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
            yield response(await subscription.get())
