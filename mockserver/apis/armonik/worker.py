"""``armonik.api.grpc.v1.worker.Worker``: a built-in worker, to test an agent implementation against.

``Process`` does what a worker does in ArmoniK's compute plane: it reads the
payload and the data dependencies from ``data_folder`` (one file per result id),
computes every expected output, writes ``data_folder/<output id>``, and tells
the agent with ``Agent.NotifyResultData`` (communication token of the request).
Its port is public, so it touches nothing outside the server's data root
(:mod:`.dataroot`): ``data_folder`` must be the root or a folder inside it (a
relative one is taken inside the root) and every file name one plain path
component; anything else is INVALID_ARGUMENT with a message that says nothing
about the path it named.
The agent is the one at ``--armonik-worker-agent`` (family option
``agent_address``), or the one the control API set at run time
(``PUT /control/armonik/worker-agent``); without one, outputs are only written
to the folder.

What a task computes is the engine's built-in behaviour, driven by the same task
options (see :class:`engine.BuiltinExecutor`): ``mock.output`` picks the output
content, ``mock.fail`` = ``error`` answers ``Output.error``, ``crash`` fails the
call, ``timeout`` keeps the call open past ``max_duration``; ``mock.duration``
is the processing time in virtual seconds (waited on the shared clock).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import grpc
from armonik.protogen.common.agent_common_pb2 import NotifyResultDataRequest
from armonik.protogen.common.objects_pb2 import Empty, Output
from armonik.protogen.common.worker_common_pb2 import HealthCheckReply, ProcessReply, ProcessRequest
from armonik.protogen.worker.agent_service_pb2_grpc import AgentStub
from protoconform.mockserver.apis.armonik import dataroot
from protoconform.mockserver.apis.armonik.attach import CHANNELS, builtin_agent
from protoconform.mockserver.apis.armonik.engine import (
    CRASH,
    ERROR,
    OPTION_DURATION,
    OPTION_FAIL,
    OPTION_FAIL_ATTEMPTS,
    OPTION_OUTPUT,
    TIMEOUT,
)
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.rpc import CallContext, handler

SVC = "armonik.api.grpc.v1.worker.Worker"
RETRY_SEPARATOR = "###"  # retries of a task are named "<initial id>###<n>"


def builtin_output(mode: str, payload: bytes, dependencies: list[bytes]) -> bytes:
    """The content of every expected output, for the ``mock.output`` mode (same as the engine's)."""
    if mode == "payload":
        return payload
    joined = payload + b"".join(dependencies)
    if mode == "sha256":
        return hashlib.sha256(joined).hexdigest().encode()
    return joined


def attempt_of(task_id: str) -> int:
    """0 for a first attempt, n for the retry ``<initial>###<n>``."""
    _, sep, number = task_id.rpartition(RETRY_SEPARATOR)
    return int(number) if sep and number.isdigit() else 0


def _seconds(duration: Any) -> float:
    return duration.seconds + duration.nanos / 1e9


def _float(text: str, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


async def wait_virtual(clock: Clock, seconds: float) -> None:
    """Sleep ``seconds`` of virtual time (a manual clock waits for ``advance``)."""
    if seconds <= 0:
        return
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    timer = clock.call_later(seconds, wake)
    try:
        await future
    finally:
        timer.cancel()


def _confined(state: ArmonikState, request: ProcessRequest) -> dict[str, str]:
    """Per field, the path of the file the request names there, once every name is checked."""
    root = dataroot.data_root(state)
    try:
        folder = dataroot.folder_in(root, request.data_folder)
    except dataroot.Refused:
        raise state.error(
            "armonik.worker.path-outside-root", "data_folder: must be a folder inside the server's data root"
        ) from None
    names = [
        ("payload_id", request.payload_id),
        *((f"data_dependencies[{i}]", name) for i, name in enumerate(request.data_dependencies)),
        *((f"expected_output_keys[{i}]", name) for i, name in enumerate(request.expected_output_keys)),
    ]
    paths: dict[str, str] = {}
    for field, name in names:
        try:
            paths[field] = dataroot.file_in(folder, name, root)
        except dataroot.Refused:
            raise state.error(
                "armonik.worker.file-name-invalid", f"{field}: must be a plain file name inside data_folder"
            ) from None
    return paths


def _read_input(state: ArmonikState, path: str, name: str, field: str) -> bytes:
    try:
        return dataroot.read(path)
    except OSError:  # inside the root: missing, a folder, a link or unreadable all read the same
        raise state.error(
            "armonik.worker.input-missing", f"{field}: '{name}' not found in data_folder"
        ) from None


def _write_output(state: ArmonikState, path: str, name: str, field: str, data: bytes) -> None:
    try:
        dataroot.write(path, data)
    except OSError:
        raise state.error(
            "armonik.worker.output-unwritable", f"{field}: cannot write '{name}' as a file in data_folder"
        ) from None


@handler(SVC, "Process")
async def process(request: ProcessRequest, ctx: CallContext) -> ProcessReply:
    state: ArmonikState = ctx.state
    paths = _confined(state, request)  # before anything else: a refused request has no effect
    options = request.task_options.options
    duration = _float(options.get(OPTION_DURATION, ""), state.options.processing_time)
    fail = options.get(OPTION_FAIL, "")
    attempts = int(_float(options.get(OPTION_FAIL_ATTEMPTS, ""), 0))
    if fail and (attempts <= 0 or attempt_of(request.task_id) < attempts):
        attempt = attempt_of(request.task_id) + 1
        why = f"failure requested by task option {OPTION_FAIL}={fail} (attempt {attempt})"
        if fail == ERROR:
            await wait_virtual(ctx.clock, duration)
            return ProcessReply(output=Output(error=Output.Error(details=why)))
        if fail == TIMEOUT:
            # keep the call open well past max_duration; the caller's deadline ends it
            limit = _seconds(request.task_options.max_duration)
            await wait_virtual(ctx.clock, (limit or duration) * 2 + 1.0)
        elif fail == CRASH:
            await wait_virtual(ctx.clock, duration)
        raise state.error("armonik.worker.failure-requested", f"task_options.options: {why}")

    payload = _read_input(state, paths["payload_id"], request.payload_id, "payload_id")
    dependencies = [
        _read_input(state, paths[f"data_dependencies[{index}]"], dep, f"data_dependencies[{index}]")
        for index, dep in enumerate(request.data_dependencies)
    ]
    data = builtin_output(options.get(OPTION_OUTPUT, "concat"), payload, dependencies)
    await wait_virtual(ctx.clock, duration)
    for index, output_id in enumerate(request.expected_output_keys):
        field = f"expected_output_keys[{index}]"
        _write_output(state, paths[field], output_id, field, data)
    agent_address = builtin_agent(state)
    if agent_address and request.expected_output_keys:
        notify = NotifyResultDataRequest(
            communication_token=request.communication_token,
            ids=[
                NotifyResultDataRequest.ResultIdentifier(session_id=request.session_id, result_id=output_id)
                for output_id in request.expected_output_keys
            ],
        )
        try:
            await AgentStub(CHANNELS.get(agent_address)).NotifyResultData(notify, timeout=30)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            raise state.error(
                "armonik.worker.notify-failed",
                f"communication_token: the agent at {agent_address} refused NotifyResultData "
                f"({code.name if code else 'error'}: {detail})",
            ) from None
    return ProcessReply(output=Output(ok=Empty()))


@handler(SVC, "HealthCheck")
def health_check(request: Empty, ctx: CallContext) -> HealthCheckReply:
    return HealthCheckReply(status=HealthCheckReply.SERVING)
