"""``armonik.api.grpc.v1.results.Results``: result metadata, data streams, import, watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from armonik.protogen.common.objects_pb2 import Empty  # noqa: F401 - request type of GetServiceConfiguration
from armonik.protogen.common.results_common_pb2 import (
    CreateResultsMetaDataResponse,
    CreateResultsResponse,
    DeleteResultsDataResponse,
    DownloadResultDataResponse,
    GetOwnerTaskIdResponse,
    GetResultResponse,
    ImportResultsDataResponse,
    ListResultsResponse,
    ResultsServiceConfigurationResponse,
    UploadResultDataResponse,
    WatchResultResponse,
)
from google.protobuf import message
from protoconform.mockserver.apis.armonik import convert, defects
from protoconform.mockserver.apis.armonik import events as events_service
from protoconform.mockserver.apis.armonik.listing import run_list
from protoconform.mockserver.apis.armonik.state import (
    RESULT_STATUS_UPDATE,
    ArmonikState,
    Event,
    Result,
    ResultStatuses,
)
from protoconform.mockserver.pubsub import SubscriptionEnded
from protoconform.mockserver.rpc import CallContext, handler

SVC = "armonik.api.grpc.v1.results.Results"
MISSING_CREATED_AT = defects.RESULT_MISSING_CREATED_AT
DROPS_LAST_CHUNK = defects.DOWNLOAD_DROPS_LAST_CHUNK


def raw(ctx: CallContext, result: Result) -> Any:
    return convert.result_raw(result, with_created_at=not ctx.defect(MISSING_CREATED_AT))


def _session_for_creation(state: ArmonikState, session_id: str) -> None:
    if state.sessions.get(session_id) is None:
        raise state.error(
            "armonik.results.create.session-not-found", f"session_id: session '{session_id}' was not found"
        )


def _same_session(state: ArmonikState, result: Result, session_id: str, where: str) -> None:
    if session_id and result.session_id != session_id:
        raise state.error(
            "armonik.results.other-session",
            f"{where}: result '{result.result_id}' belongs to session '{result.session_id}', "
            f"not '{session_id}'",
        )


def new_result(
    state: ArmonikState, session_id: str, name: str, manual_deletion: bool = False, created_by: str = ""
) -> Result:
    """A CREATED result (shared with the Agent and the legacy Submitter)."""
    result = Result(
        result_id=state.new_id(),
        session_id=session_id,
        name=name,
        created_at=state.now(),
        manual_deletion=manual_deletion,
        created_by=created_by,
    )
    state.add_result(result)
    return result


def new_result_with_data(
    state: ArmonikState,
    session_id: str,
    name: str,
    data: bytes,
    manual_deletion: bool = False,
    owner: str = "",
) -> Result:
    """A COMPLETED result holding ``data`` (CreateResults, legacy payloads)."""
    now = state.now()
    result_id = state.new_id()
    result = Result(
        result_id=result_id,
        session_id=session_id,
        name=name,
        created_at=now,
        completed_at=now,
        status=ResultStatuses.COMPLETED,
        owner_task_id=owner or session_id,  # the real server records the session as owner
        size=len(data),
        opaque_id=result_id.encode(),
        manual_deletion=manual_deletion,
    )
    state.objects.put(result.opaque_id, data)
    state.add_result(result)
    return result


@handler(SVC, "GetServiceConfiguration")
def service_configuration(request, ctx: CallContext) -> ResultsServiceConfigurationResponse:
    return ResultsServiceConfigurationResponse(data_chunk_max_size=ctx.state.options.data_chunk_max_size)


@handler(SVC, "CreateResultsMetaData")
def create_metadata(request, ctx: CallContext) -> CreateResultsMetaDataResponse:
    state: ArmonikState = ctx.state
    _session_for_creation(state, request.session_id)
    created = [new_result(state, request.session_id, r.name, r.manual_deletion) for r in request.results]
    return CreateResultsMetaDataResponse(results=[raw(ctx, r) for r in created])


@handler(SVC, "CreateResults")
def create_with_data(request, ctx: CallContext) -> CreateResultsResponse:
    state: ArmonikState = ctx.state
    _session_for_creation(state, request.session_id)
    created = [
        new_result_with_data(state, request.session_id, r.name, r.data, r.manual_deletion)
        for r in request.results
    ]
    return CreateResultsResponse(results=[raw(ctx, r) for r in created])


@handler(SVC, "GetResult")
def get(request, ctx: CallContext) -> GetResultResponse:
    state: ArmonikState = ctx.state
    return GetResultResponse(result=raw(ctx, state.require_result(request.result_id)))


@handler(SVC, "GetOwnerTaskId")
def owner_task_id(request, ctx: CallContext) -> GetOwnerTaskIdResponse:
    state: ArmonikState = ctx.state
    reply = GetOwnerTaskIdResponse(session_id=request.session_id)
    for result_id in request.result_id:
        result = state.results.get(result_id)
        if result is not None and result.session_id == request.session_id:
            reply.result_task.add(result_id=result.result_id, task_id=result.owner_task_id)
    return reply


@handler(SVC, "ListResults")
def list_results(request, ctx: CallContext) -> ListResultsResponse:
    state: ArmonikState = ctx.state
    page, total = run_list(
        ctx, request, "result", state.results.all, lambda r: r.result_id, repo=state.results
    )
    return ListResultsResponse(
        results=[raw(ctx, r) for r in page], page=request.page, page_size=request.page_size, total=total
    )


@handler(SVC, "UploadResultData")
async def upload(request: AsyncIterator[Any], ctx: CallContext) -> UploadResultDataResponse:
    state: ArmonikState = ctx.state
    limit = state.options.data_chunk_max_size
    result: Result | None = None
    parts: list[bytes] = []
    index = 0
    async for item in request:
        kind = item.WhichOneof("type")
        if result is None:
            if kind != "id":
                raise state.error(
                    "armonik.results.upload.id-first",
                    f"id: the first message must be the result identifier, got {kind or 'an empty message'}",
                )
            session = state.require_session(item.id.session_id, "id.session_id")
            result = state.require_result(item.id.result_id, "id.result_id")
            _same_session(state, result, session.session_id, "id.result_id")
            continue
        index += 1
        if kind == "id":
            raise state.error(
                "armonik.results.upload.id-repeated",
                f"id: message {index} repeats the identifier; only data chunks may follow it",
            )
        if len(item.data_chunk) > limit:
            raise state.error(
                "armonik.results.upload.chunk-too-large",
                f"data_chunk: chunk {index} has {len(item.data_chunk)} bytes, "
                f"more than data_chunk_max_size {limit}",
            )
        parts.append(item.data_chunk)
    if result is None:
        raise state.error("armonik.results.upload.empty-stream", "id: the upload stream carried no message")
    if state.results.get(result.result_id) is not result:  # deleted while uploading
        raise state.error(
            "armonik.results.not-found", f"id.result_id: result '{result.result_id}' was not found"
        )
    state.complete_result(result, b"".join(parts))
    return UploadResultDataResponse(result=raw(ctx, result))


@handler(SVC, "DownloadResultData")
def download(request, ctx: CallContext) -> Iterator[DownloadResultDataResponse]:
    state: ArmonikState = ctx.state
    result = state.require_result(request.result_id)
    _same_session(state, result, request.session_id, "result_id")
    data = state.result_data(result)
    if data is None:
        status = ResultStatuses.name(result.status)
        raise state.error(
            "armonik.results.download.no-data",
            f"result_id: result '{result.result_id}' has no data (status {status})",
        )
    size = max(1, state.options.data_chunk_max_size)
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    if ctx.defect(DROPS_LAST_CHUNK) and len(chunks) > 1:
        chunks.pop()
    for chunk in chunks:
        yield DownloadResultDataResponse(data_chunk=chunk)


@handler(SVC, "DeleteResultsData")
def delete_data(request, ctx: CallContext) -> DeleteResultsDataResponse:
    state: ArmonikState = ctx.state
    for result_id in request.result_id:
        result = state.results.get(result_id)
        if result is not None and not result.manual_deletion:
            state.delete_result_data(result)
    return DeleteResultsDataResponse(session_id=request.session_id, result_id=request.result_id)


@handler(SVC, "ImportResultsData")
def import_data(request, ctx: CallContext) -> ImportResultsDataResponse:
    state: ArmonikState = ctx.state
    if not request.results:
        return ImportResultsDataResponse()
    state.require_session(request.session_id)
    checked: list[tuple[Result, bytes, bytes]] = []
    for index, item in enumerate(request.results):
        where = f"results[{index}]"
        result = state.require_result(item.result_id, f"{where}.result_id")
        _same_session(state, result, request.session_id, f"{where}.result_id")
        if result.status != ResultStatuses.CREATED:
            raise state.error(
                "armonik.results.import.not-created",
                f"{where}.result_id: result '{result.result_id}' is {ResultStatuses.name(result.status)}, "
                "not RESULT_STATUS_CREATED",
            )
        data = state.objects.get(item.opaque_id)
        if data is None:
            raise state.error(
                "armonik.results.import.object-not-found",
                f"{where}.opaque_id: no object {item.opaque_id!r} in the object storage",
            )
        checked.append((result, item.opaque_id, data))
    for result, opaque_id, data in checked:  # all checked first: a refused import changes nothing
        result.opaque_id = opaque_id
        state.complete_result(result, data)
    return ImportResultsDataResponse(results=[raw(ctx, r) for r, _, _ in checked])


# -- WatchResults ------------------------------------------------------------------------
async def watch_stream(
    state: ArmonikState, requests: AsyncIterator[Any], reply: Callable[[int, list[str]], message.Message]
) -> AsyncIterator[message.Message]:
    """The WatchResults conversation (shared with the legacy Submitter).

    Each request's ids are answered at once with their current status (NOTFOUND
    for unknown ids) when it is in ``fetch_statuses`` (all when empty), grouped by
    status; afterwards each status change of a watched id into one of that
    request's ``watch_statuses`` (all when empty) is sent.  The stream stays open
    until the client cancels it, or the server ends it as the Events streams
    (slow consumer, shutdown: :mod:`.events`).
    """
    watched: dict[str, frozenset[int]] = {}
    # Keyed by the watched result ids, so other results' changes never visit this stream.
    subscription = state.events.subscribe(lambda e: e.kind == RESULT_STATUS_UPDATE, keys=())
    outbox: asyncio.Queue[message.Message] = asyncio.Queue()

    async def read() -> None:
        async for request in requests:
            fetch = set(request.fetch_statuses)
            watch = frozenset(request.watch_statuses)
            groups: dict[int, list[str]] = {}
            for result_id in request.result_ids:
                result = state.results.get(result_id)
                status = result.status if result is not None else ResultStatuses.NOTFOUND
                if not fetch or status in fetch:
                    groups.setdefault(status, []).append(result_id)
                watched[result_id] = watch
                subscription.add_key(result_id)
            for status, ids in groups.items():
                outbox.put_nowait(reply(status, ids))

    reader = asyncio.ensure_future(read())
    next_event = asyncio.ensure_future(subscription.get())
    next_reply = asyncio.ensure_future(outbox.get())
    try:
        while True:
            waiting = {next_event, next_reply} | ({reader} if not reader.done() else set())
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if reader in done and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
            if next_reply in done:
                yield next_reply.result()
                next_reply = asyncio.ensure_future(outbox.get())
            if next_event in done:
                try:
                    event: Event = next_event.result()
                except SubscriptionEnded as ended:
                    raise events_service.ended_error(state, ended) from None
                result_id = event.entity.result_id  # type: ignore[union-attr]
                watch = watched.get(result_id)
                if watch is not None and (not watch or event.status in watch):
                    yield reply(event.status, [result_id])
                next_event = asyncio.ensure_future(subscription.get())
    finally:
        subscription.close()
        for future in (reader, next_event, next_reply):
            future.cancel()


@handler(SVC, "WatchResults")
async def watch(request: AsyncIterator[Any], ctx: CallContext) -> AsyncIterator[WatchResultResponse]:
    async for item in watch_stream(
        ctx.state, request, lambda s, ids: WatchResultResponse(status=s, result_ids=ids)
    ):
        yield item
