"""Bursts reach the handlers: thousands of calls at once are answered, none cancelled by the server.

grpc-core cancels calls that wait for a handler past 1,000 by default; the
server raises that limit (``--max-pending-calls``), so a burst is queued, not
dropped.  The server runs in its own process, as users run it.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator

import grpc
import pytest
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.common.events_common_pb2 import EventSubscriptionRequest
from armonik.protogen.common.objects_pb2 import TaskOptions
from armonik.protogen.common.results_common_pb2 import CreateResultsMetaDataRequest
from armonik.protogen.common.sessions_common_pb2 import CreateSessionRequest, GetSessionRequest
from google.protobuf.duration_pb2 import Duration
from protoconform.mockserver.launcher import ServerProcess

UNARY_CALLS = 4_000
STREAMS = 2_000


@pytest.fixture(scope="module")
def armonik_server() -> Iterator[ServerProcess]:
    with ServerProcess(["--api", "armonik"]) as process:
        yield process


def _session_with_result(address: str) -> str:
    """A session holding one result, so every event stream opened on it gets a first message at once."""
    with grpc.insecure_channel(address) as channel:
        options = TaskOptions(max_duration=Duration(seconds=60), max_retries=1, priority=1)
        session_id = (
            SessionsStub(channel).CreateSession(CreateSessionRequest(default_task_option=options)).session_id
        )
        ResultsStub(channel).CreateResultsMetaData(
            CreateResultsMetaDataRequest(
                session_id=session_id, results=[CreateResultsMetaDataRequest.ResultCreate(name="r")]
            )
        )
    return session_id


def test_a_burst_of_unary_calls_is_answered_not_cancelled(armonik_server: ServerProcess) -> None:
    session_id = _session_with_result(armonik_server.grpc_address)

    async def burst() -> collections.Counter[str]:
        codes: collections.Counter[str] = collections.Counter()
        async with grpc.aio.insecure_channel(armonik_server.grpc_address) as channel:
            stub = SessionsStub(channel)

            async def one() -> None:
                try:
                    await stub.GetSession(GetSessionRequest(session_id=session_id), timeout=120)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    codes[exc.code().name] += 1

            await asyncio.gather(*(one() for _ in range(UNARY_CALLS)))
        return codes

    assert asyncio.run(burst()) == {"OK": UNARY_CALLS}


def test_a_burst_of_stream_opens_reaches_the_handler(armonik_server: ServerProcess) -> None:
    session_id = _session_with_result(armonik_server.grpc_address)

    async def burst() -> collections.Counter[str]:
        outcomes: collections.Counter[str] = collections.Counter()
        async with grpc.aio.insecure_channel(armonik_server.grpc_address) as channel:
            stub = EventsStub(channel)
            calls = [stub.GetEvents(EventSubscriptionRequest(session_id=session_id)) for _ in range(STREAMS)]

            async def first_message(call: grpc.aio.UnaryStreamCall) -> None:
                try:
                    reply = await asyncio.wait_for(call.read(), 120)
                    outcomes["replayed" if reply.HasField("new_result") else "other"] += 1
                except grpc.aio.AioRpcError as exc:
                    outcomes[exc.code().name] += 1

            try:
                await asyncio.gather(*(first_message(call) for call in calls))
            finally:
                for call in calls:
                    call.cancel()
        return outcomes

    assert asyncio.run(burst()) == {"replayed": STREAMS}
