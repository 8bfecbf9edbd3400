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

A worker may also serve only some partitions: a partition's ``worker=ADDRESS``
(``--armonik-partition gpu:worker=127.0.0.1:7000``), or a route set at run time
through the control API (``PUT /control/armonik/workers/{partition}``, see
:func:`control_endpoints`), sends that partition's tasks to its worker; the
other partitions keep the default executor.  The control API may also point the
built-in Worker at an Agent (``PUT /control/armonik/worker-agent``).  Routes set
at run time only name loopback or ``unix:`` addresses (the control API must not
make the server call other hosts), and a state reset drops them: the server is
back to its start-up configuration.

The executors are installed on every new state (also after a state reset), and
the channels are closed when the server stops.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from armonik.protogen.common.objects_pb2 import Configuration, Empty
from armonik.protogen.common.worker_common_pb2 import HealthCheckReply, ProcessRequest
from armonik.protogen.worker.worker_service_pb2_grpc import WorkerStub
from protoconform.mockserver import tls
from protoconform.mockserver.apis.armonik import dataroot, lifecycle
from protoconform.mockserver.apis.armonik.engine import CRASH, ERROR, SUCCESS, Engine, Outcome, TaskRun
from protoconform.mockserver.apis.armonik.state import ArmonikState, Partition
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
        self._closing: set[asyncio.Future[None]] = set()  # channels replaced, being closed

    def get(self, address: str) -> grpc.aio.Channel:
        key = (address, id(asyncio.get_running_loop()))
        channel = self._channels.get(key)
        if channel is not None and channel.get_state() == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            # a worker that was down (e.g. not started yet) is tried again now, not after the
            # channel's reconnection backoff, which grows while nobody listens
            self._closing.add(asyncio.ensure_future(channel.close()))
            channel = None
        if channel is None:
            # the server itself (its Agent, when a test points the built-in Worker there) over its TLS
            credentials = tls.outbound_credentials(address)
            channel = self._channels[key] = (
                grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS)
                if credentials is not None
                else grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            )
        return channel

    async def close(self) -> None:
        loop = id(asyncio.get_running_loop())
        for key in [k for k in self._channels if k[1] == loop]:
            await self._channels.pop(key).close()
        self._closing = {f for f in self._closing if not f.done()}


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

    async def _ready(self) -> grpc.aio.Channel:
        """A channel connected to the worker; TimeoutError after CONNECT_SECONDS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_SECONDS
        while True:
            channel = CHANNELS.get(self.address)  # a failed channel is replaced: no growing backoff
            try:
                await asyncio.wait_for(channel.channel_ready(), min(0.5, max(0.01, deadline - loop.time())))
                return channel
            except TimeoutError:
                if loop.time() >= deadline:
                    raise

    async def _call(self, run: TaskRun, request: ProcessRequest) -> Outcome:
        try:
            # A worker that is (re)starting gets a moment to come up; one that stays away is a crash.
            channel = await self._ready()
            reply = await WorkerStub(channel).Process(request)
        except TimeoutError:
            why = f"worker at {self.address} is unreachable (not ready in {CONNECT_SECONDS:g}s)"
            log.warning("task %s: %s", run.task.task_id, why)
            return Outcome(CRASH, why)
        except grpc.RpcError as exc:
            code = exc.code().name if isinstance(exc, grpc.Call) else "ERROR"
            detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            log.info("task %s: worker at %s failed: %s: %s", run.task.task_id, self.address, code, detail)
            return Outcome(CRASH, f"worker at {self.address} failed: {code}: {detail}")
        finally:
            shutil.rmtree(run.data_folder, ignore_errors=True)
        if reply.output.WhichOneof("type") == "error":
            return Outcome(ERROR, reply.output.error.details)
        return Outcome(SUCCESS)


@dataclass
class Routes:
    """Which worker processes which partition's tasks, and where the built-in Worker notifies."""

    configured: dict[str, str]  # partition id -> worker address, from the partitions' ``worker=``
    runtime: dict[str, str] = field(default_factory=dict)  # set through the control API
    worker_agent: str = ""  # the built-in Worker's Agent, set through the control API

    def workers(self) -> dict[str, str]:
        return {**self.configured, **self.runtime}


_ROUTES: weakref.WeakKeyDictionary[Engine, Routes] = weakref.WeakKeyDictionary()


def routes(state: ArmonikState) -> Routes:
    """The routes of ``state`` (one set per state: a reset starts from the options again)."""
    found = _ROUTES.get(state.engine)
    if found is None:
        configured = {p.id: p.worker for p in state.options.partitions if p.worker}
        found = _ROUTES[state.engine] = Routes(configured)
    return found


def builtin_agent(state: ArmonikState) -> str:
    """The Agent the built-in Worker notifies: set at run time, else ``--armonik-worker-agent``."""
    return routes(state).worker_agent or str(state.options.extra.get("agent_address") or "")


def _apply(state: ArmonikState) -> None:
    state.engine.executors = {
        partition: WorkerExecutor(state, address) for partition, address in routes(state).workers().items()
    }


def install(state: ArmonikState) -> None:
    """Use the attached workers for processing when some are configured (stateful mode only)."""
    if state.handler_variant != DEFAULT_VARIANT:
        return
    if state.options.worker_address:
        state.engine.executor = WorkerExecutor(state, state.options.worker_address)
    _apply(state)


async def check_worker(state: ArmonikState) -> None:
    """Say at start-up whether the attached workers answer their health check (never fatal)."""
    if state.handler_variant != DEFAULT_VARIANT:
        return
    addresses = [state.options.worker_address] if state.options.worker_address else []
    addresses += sorted(set(routes(state).configured.values()) - set(addresses))
    for address in addresses:
        try:
            reply = await WorkerStub(CHANNELS.get(address)).HealthCheck(Empty(), timeout=2)
            status = HealthCheckReply.ServingStatus.Name(reply.status)
            log.info("attached worker at %s: %s", address, status)
        except grpc.RpcError as exc:
            log.warning("attached worker at %s does not answer yet (%s); tasks will be retried", address, exc)


# -- the control API's endpoints (GET /control lists them under /control/armonik/) -------------
MAX_PARTITION_ID = 256
MAX_RUNTIME_ROUTES = 64  # partitions routed through the control API at once (each may add a partition)


def loopback_address(value: Any, field_name: str = "address") -> str:
    """A loopback ``HOST:PORT``; ValueError naming the field.

    Unix sockets are refused here (they stay a start-up option): a control call must not make
    the server connect to whatever socket file a client names."""
    if not isinstance(value, str) or not value:
        raise ValueError(f'{field_name}: wants a string such as "127.0.0.1:50052"')
    shown = value[:80]
    if value.startswith("unix:"):
        raise ValueError(
            f"{field_name}: {shown!r}: the control API routes only to loopback HOST:PORT; "
            "give unix sockets with --armonik-worker or --armonik-partition ID:worker=..."
        )
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{field_name}: {shown!r} is not HOST:PORT (port 1..65535)")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"{field_name}: {shown!r} is not on this machine; the control API only routes to "
                "loopback addresses (127.0.0.0/8, ::1, localhost)"
            )
    return value


def _stateful(state: ArmonikState) -> None:
    if state.handler_variant != DEFAULT_VARIANT:
        raise ValueError(f"workers are not routed in --armonik-compat {state.handler_variant} mode")


def _partition_id(params: dict[str, str]) -> str:
    partition = params.get("partition", "")
    if not partition or len(partition) > MAX_PARTITION_ID or not partition.isprintable():
        raise ValueError(f"partition: wants a printable id of 1..{MAX_PARTITION_ID} characters")
    return partition


def _routing(state: ArmonikState) -> dict[str, Any]:
    found = routes(state)
    workers = {p: {"address": a, "set_by": "option"} for p, a in found.configured.items()}
    workers.update({p: {"address": a, "set_by": "control"} for p, a in found.runtime.items()})
    return {
        "workers": dict(sorted(workers.items())),
        "default_worker": state.options.worker_address,
        "worker_agent": builtin_agent(state),
    }


def _get_workers(state: ArmonikState, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    return _routing(state)


def _put_worker(state: ArmonikState, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    _stateful(state)
    partition = _partition_id(params)
    address = loopback_address(body.get("address"))
    runtime = routes(state).runtime
    if partition not in runtime and len(runtime) >= MAX_RUNTIME_ROUTES:
        raise ValueError(f"partition: at most {MAX_RUNTIME_ROUTES} partitions may be routed at once")
    if state.partitions.get(partition) is None:  # a partition of its own for the routed worker
        state.partitions.add(Partition(partition))
    routes(state).runtime[partition] = address
    _apply(state)
    return _routing(state)


def _delete_worker(state: ArmonikState, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    _stateful(state)
    partition = _partition_id(params)
    if routes(state).runtime.pop(partition, None) is None:
        raise LookupError(f"partition: no worker was routed to {partition!r} through the control API")
    _apply(state)  # a worker= of the options applies again
    return _routing(state)


def _put_worker_agent(state: ArmonikState, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    _stateful(state)
    routes(state).worker_agent = loopback_address(body.get("address"))
    return _routing(state)


def _delete_worker_agent(state: ArmonikState, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    routes(state).worker_agent = ""
    return _routing(state)


Handler = Callable[[ArmonikState, dict[str, str], dict[str, Any]], dict[str, Any]]


def control_endpoints() -> list[tuple[str, str, Handler, str]]:
    """(verb, path under /control/armonik/, handler, summary) of this part's control endpoints."""
    return [
        ("GET", "workers", _get_workers, "worker routes per partition and the built-in Worker's agent"),
        (
            "PUT",
            "workers/{partition}",
            _put_worker,
            '{"address": "127.0.0.1:PORT" | "unix:///PATH"}: the partition\'s tasks go to that worker '
            "(the partition is created if needed)",
        ),
        ("DELETE", "workers/{partition}", _delete_worker, "drop the route set at run time"),
        (
            "PUT",
            "worker-agent",
            _put_worker_agent,
            '{"address": ...}: the Agent the built-in Worker notifies of the outputs it writes',
        ),
        ("DELETE", "worker-agent", _delete_worker_agent, "back to --armonik-worker-agent"),
    ]


async def release(state: ArmonikState) -> None:
    await CHANNELS.close()


lifecycle.STATE_HOOKS.append(install)
lifecycle.STARTUP_HOOKS.append(check_worker)
lifecycle.SHUTDOWN_HOOKS.append(release)
