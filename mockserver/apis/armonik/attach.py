"""Attaching a user's worker: ``serve --armonik-worker HOST:PORT``.

With a worker address in the family options, the engine's executor becomes a
:class:`WorkerExecutor`: for each task it processes, it prepares a folder
``<data root>/<communication token>`` (:mod:`.dataroot`) holding the payload and the data
dependencies (files named by result id), then calls ``Worker.Process`` on the
user's worker with a fresh communication token, as ArmoniK's polling agent
does.  During the call the worker talks to this server's Agent service with
that token (:mod:`.agent`): it creates results, writes and notifies outputs,
and submits subtasks.  The reply decides the outcome: ``Output.ok`` completes
the task, ``Output.error`` fails it without retry, a failed call is a crash
(retried while ``max_retries`` allows); ``max_duration`` is enforced by the
engine on the virtual clock.

The executor is installed on every new state (also after a state reset), and
the channels are closed when the server stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Awaitable

import grpc
from armonik.protogen.common.objects_pb2 import Configuration, Empty
from armonik.protogen.common.worker_common_pb2 import HealthCheckReply, ProcessRequest
from armonik.protogen.worker.worker_service_pb2_grpc import WorkerStub
from protoconform.mockserver.apis.armonik import dataroot, lifecycle
from protoconform.mockserver.apis.armonik.engine import CRASH, ERROR, SUCCESS, Outcome, TaskRun
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.rpc import DEFAULT_VARIANT

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 64 * 1024 * 1024
CONNECT_SECONDS = 5.0  # wall seconds an attached worker may take to accept a connection
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MESSAGE_LIMIT),
    ("grpc.max_receive_message_length", MESSAGE_LIMIT),
]


class ChannelPool:
    """One client channel per address and event loop, closed when the server stops."""

    def __init__(self) -> None:
        self._channels: dict[tuple[str, int], grpc.aio.Channel] = {}

    def get(self, address: str) -> grpc.aio.Channel:
        key = (address, id(asyncio.get_running_loop()))
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        return channel

    async def close(self) -> None:
        loop = id(asyncio.get_running_loop())
        for key in [k for k in self._channels if k[1] == loop]:
            await self._channels.pop(key).close()


CHANNELS = ChannelPool()


class WorkerExecutor:
    """Processes a task by calling ``Worker.Process`` on the attached worker."""

    def __init__(self, state: ArmonikState, address: str) -> None:
        self.state = state
        self.address = address

    def process(self, run: TaskRun) -> Awaitable[Outcome]:
        # Prepare the folder now (on the loop, before anything else can change the inputs).
        # Tokens and result ids are server-made; checked anyway, as they become path components.
        run.data_folder = dataroot.file_in(dataroot.data_root(self.state), run.token)
        os.makedirs(run.data_folder, exist_ok=True)
        task = run.task
        for result_id in dict.fromkeys([task.payload_id, *task.data_dependencies]):
            result = self.state.results.get(result_id) if result_id else None
            if result is None:
                continue
            dataroot.write(
                dataroot.file_in(run.data_folder, result_id), self.state.result_data(result) or b""
            )
        request = ProcessRequest(
            communication_token=run.token,
            session_id=task.session_id,
            task_id=task.task_id,
            task_options=task.options,
            expected_output_keys=task.expected_output_ids,
            payload_id=task.payload_id,
            data_dependencies=task.data_dependencies,
            data_folder=run.data_folder,
            configuration=Configuration(data_chunk_max_size=self.state.options.data_chunk_max_size),
        )
        return self._call(run, request)

    async def _call(self, run: TaskRun, request: ProcessRequest) -> Outcome:
        channel = CHANNELS.get(self.address)
        try:
            # A worker that is (re)starting gets a moment to come up; one that stays away is a crash.
            await asyncio.wait_for(channel.channel_ready(), CONNECT_SECONDS)
            reply = await WorkerStub(channel).Process(request)
        except TimeoutError:
            why = f"worker at {self.address} is unreachable (not ready in {CONNECT_SECONDS:g}s)"
            return Outcome(CRASH, why)
        except grpc.RpcError as exc:
            code = exc.code().name if isinstance(exc, grpc.Call) else "ERROR"
            detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            return Outcome(CRASH, f"worker at {self.address} failed: {code}: {detail}")
        finally:
            shutil.rmtree(run.data_folder, ignore_errors=True)
        if reply.output.WhichOneof("type") == "error":
            return Outcome(ERROR, reply.output.error.details)
        return Outcome(SUCCESS)


def install(state: ArmonikState) -> None:
    """Use the attached worker for processing when one is configured (stateful mode only)."""
    if state.options.worker_address and state.handler_variant == DEFAULT_VARIANT:
        state.engine.executor = WorkerExecutor(state, state.options.worker_address)


async def check_worker(state: ArmonikState) -> None:
    """Say at start-up whether the attached worker answers its health check (never fatal)."""
    if not state.options.worker_address or state.handler_variant != DEFAULT_VARIANT:
        return
    address = state.options.worker_address
    try:
        reply = await WorkerStub(CHANNELS.get(address)).HealthCheck(Empty(), timeout=2)
        log.info("attached worker at %s: %s", address, HealthCheckReply.ServingStatus.Name(reply.status))
    except grpc.RpcError as exc:
        log.warning("attached worker at %s does not answer yet (%s); tasks will be retried", address, exc)


async def release(state: ArmonikState) -> None:
    await CHANNELS.close()


lifecycle.STATE_HOOKS.append(install)
lifecycle.STARTUP_HOOKS.append(check_worker)
lifecycle.SHUTDOWN_HOOKS.append(release)
