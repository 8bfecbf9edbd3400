"""The harness as an ArmoniK worker: cases that run *inside* a task the target is processing.

ArmoniK's ``Agent`` answers a worker only while that worker processes a task, with the
task's communication token.  So the harness serves the ``Worker`` API itself
(:class:`WorkerHost`, a grpcio server in a thread of the check process), and a case
that runs ``inside: worker`` (see :mod:`protoconform.conformance.examples.parsing`)
gets a task of its own (:class:`WorkerPlace`):

1. it creates a session in the partition routed to the harness, the task's payload,
   data dependencies and expected outputs, and submits the task through the Tasks
   API, marked with the task option :data:`CASE_OPTION`;
2. when the target calls ``Worker.Process`` for that task, the call is handed to the
   case and held open; its ``ProcessRequest`` is checked against what was submitted
   (rule ``armonik.attach.process``) and bound as ``${task...}`` (protojson:
   ``communication_token``, ``session_id``, ``task_id``, ``payload_id``,
   ``expected_output_keys``, ``data_dependencies``, ``data_folder``, ...);
3. the case calls the Agent with the live token, and when it is done the held call is
   answered as its ``inside`` entry says: ``answer: ok`` (default), ``error``
   (``Output.error``), ``crash`` (the call fails) or ``overrun`` (no answer until the
   target gives up after ``max_duration``; with ``--control`` the mock's clock is
   moved past it); the place waits until the target has taken the answer.

Every other ``Process`` call (subtasks, retries, a call for a case that gave up) is
answered like a correct worker: each expected output is written to ``data_folder``
(the payload's content), notified through the Agent, and the reply is ``Output.ok``.

The place named ``idle-worker`` holds no task: its cases run while the harness's worker
processes nothing, to see what the Agent says then.

How the target reaches the harness (:class:`WorkerSetup`): with
``--armonik-worker-listen HOST:PORT`` and ``--armonik-worker-partition NAME`` the user
points the partition's worker at it (a real cluster, or a mock started with
``--armonik-partition NAME:worker=HOST:PORT``); with ``--control`` of a protoconform
mock the harness listens on a loopback port and routes a partition of its own there
through the control API (``PUT /control/armonik/workers/{partition}``), removed at the
end.  The Agent is the target (``--armonik-agent`` names another address).  Every
wait is bounded: a ``Process`` that never comes fails the case naming the task's
status; no route at all skips the case with one reason.

An ``inside: {worker: {...}}`` entry may also give ``max_duration`` and
``max_retries`` (default 1) of the task, ``retries: crash`` (its retries crash too;
by default they are answered like any other task), ``options`` (task options), ``payload`` and
``dependencies`` (base64 data), ``outputs`` (how many), ``write`` (file name ->
base64 data) and ``folders`` (names) to create in the data folder before the case
runs (needs the folder on this machine), ``builtin_agent: true`` when the case
needs the target's built-in Worker to notify this Agent (set through ``--control``),
and ``ended_token: true`` to hold and end another task first: its token is bound as
``${task.ended_token}``.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from armonik.protogen.common.agent_common_pb2 import NotifyResultDataRequest
from armonik.protogen.common.objects_pb2 import Empty, Output
from armonik.protogen.common.task_status_pb2 import TaskStatus
from armonik.protogen.common.worker_common_pb2 import HealthCheckReply, ProcessReply, ProcessRequest
from armonik.protogen.worker.agent_service_pb2_grpc import AgentStub
from armonik.protogen.worker.worker_service_pb2_grpc import WorkerServicer, add_WorkerServicer_to_server
from google.protobuf import json_format
from protoconform.conformance.caller import Reply, to_json
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch

CASE_OPTION = "protoconform.case"  # task option: which case a task belongs to
AGENT_SERVICE = "armonik.api.grpc.v1.agent.Agent"
WORKER_SERVICE = "armonik.api.grpc.v1.worker.Worker"
ATTACH_RULE = "armonik.attach.process"
ANSWERS = ("ok", "error", "crash", "overrun")
SPEC_KEYS = frozenset(
    {"answer", "max_duration", "max_retries", "options", "payload", "dependencies", "outputs"}
    | {"write", "folders", "builtin_agent", "ended_token", "retries"}
)
ARRIVAL_SECONDS = 15.0  # wall seconds a submitted task may take to reach the harness's worker
SETTLE_SECONDS = 15.0  # wall seconds the target may take to take a worker's answer
HOLD_LIMIT = 300.0  # a held Process call is answered after this long whatever happens
IDLE_SECONDS = 10.0  # wall seconds to wait for the harness's worker to have nothing to do
POLL = 0.05
ADVANCE = 1.0  # virtual seconds the mock's clock moves per poll while a task is awaited
DEFAULT_PAYLOAD = base64.b64encode(b"payload").decode()
PROCESSING = "TASK_STATUS_PROCESSING"
BUSY = ("TASK_STATUS_SUBMITTED", "TASK_STATUS_DISPATCHED", PROCESSING)
OK_REPLY = ProcessReply(output=Output(ok=Empty()))


def as_dict(msg: Any) -> dict[str, Any]:
    return json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def duration_seconds(text: str) -> float:
    """``"2s"`` / ``"1.5s"`` (protojson Duration) -> seconds."""
    try:
        return float(text.removesuffix("s"))
    except ValueError:
        raise Mismatch(
            "a duration such as '2s'", text, rule="", detail="inside: worker: max_duration"
        ) from None


# -- the Worker service ------------------------------------------------------------------------
@dataclass(eq=False)
class HeldCall:
    """One ``Process`` call handed to a case, open until :meth:`answer`."""

    request: ProcessRequest
    context: grpc.ServicerContext
    decided: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    reply: ProcessReply | str = ""  # a reply, or "crash"

    def answer(self, reply: ProcessReply | str) -> None:
        self.reply = reply
        self.decided.set()


@dataclass(eq=False)
class Waiter:
    """A case waiting for the ``Process`` call of its task."""

    arrived: threading.Event = field(default_factory=threading.Event)
    call: HeldCall | None = None


class HarnessWorker(WorkerServicer):
    """Hands the calls of waiting cases over; answers every other call like a correct worker."""

    def __init__(self, agent: grpc.Channel) -> None:
        self.agent = AgentStub(agent)
        self.lock = threading.Lock()
        self.waiting: dict[str, Waiter] = {}
        self.crashing: set[str] = set()  # cases whose later attempts (retries) crash too
        self.busy = 0  # Process calls in progress
        self.last_call = 0.0  # monotonic time the last call started or ended

    def expect(self, key: str) -> Waiter:
        with self.lock:
            waiter = self.waiting[key] = Waiter()
        return waiter

    def forget(self, key: str) -> None:
        with self.lock:
            self.waiting.pop(key, None)

    def idle_since(self) -> float | None:
        """Since when no call is in progress (None while one is)."""
        with self.lock:
            return None if self.busy else self.last_call

    def Process(self, request: ProcessRequest, context: grpc.ServicerContext) -> ProcessReply:
        with self.lock:
            self.busy += 1
            self.last_call = time.monotonic()
            key = request.task_options.options.get(CASE_OPTION, "")
            waiter = self.waiting.pop(key, None)
            crash = key in self.crashing
        try:
            if waiter is None and crash:
                context.abort(grpc.StatusCode.INTERNAL, "the harness's worker crashed on purpose (a retry)")
            if waiter is None:
                return self._plain(request)
            call = HeldCall(request, context)
            waiter.call = call
            waiter.arrived.set()
            try:
                limit = time.monotonic() + HOLD_LIMIT
                while not call.decided.wait(POLL):
                    if not context.is_active() or time.monotonic() > limit:
                        break  # the target gave up (max_duration, cancellation): nobody reads a reply
                if call.reply == "crash":
                    context.abort(grpc.StatusCode.INTERNAL, "the harness's worker crashed on purpose")
                assert isinstance(call.reply, ProcessReply)
                return call.reply
            finally:
                call.done.set()
        finally:
            with self.lock:
                self.busy -= 1
                self.last_call = time.monotonic()

    def _plain(self, request: ProcessRequest) -> ProcessReply:
        """What a correct worker does: write each expected output, notify it, answer ok."""
        data = b""
        with (
            contextlib.suppress(OSError),
            open(os.path.join(request.data_folder, request.payload_id), "rb") as payload,
        ):
            data = payload.read()
        written = []
        for output_id in request.expected_output_keys:
            try:
                with open(os.path.join(request.data_folder, output_id), "wb") as out:
                    out.write(data)
                written.append(output_id)
            except OSError:
                continue  # a folder not on this machine: nothing can be notified
        if written:
            notify = NotifyResultDataRequest(
                communication_token=request.communication_token,
                ids=[
                    NotifyResultDataRequest.ResultIdentifier(session_id=request.session_id, result_id=r)
                    for r in written
                ],
            )
            with contextlib.suppress(grpc.RpcError):
                self.agent.NotifyResultData(notify, timeout=10)
        return OK_REPLY

    def HealthCheck(self, request: Empty, context: grpc.ServicerContext) -> HealthCheckReply:
        return HealthCheckReply(status=HealthCheckReply.SERVING)


class WorkerHost:
    """The harness's ``Worker`` server, in threads of this process."""

    def __init__(self, listen: str, agent: grpc.Channel) -> None:
        self.servicer = HarnessWorker(agent)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="pc-worker"))
        add_WorkerServicer_to_server(self.servicer, self.server)
        bound = self.server.add_insecure_port(listen)
        if not bound:
            raise OSError(f"cannot listen on {listen}")
        self.address = reachable(listen, bound)
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=0.5).wait(5)


def reachable(listen: str, port: int) -> str:
    """The address the target dials for a server listening on ``listen`` (bound to ``port``)."""
    if listen.startswith("unix:"):
        return listen
    host = listen.rpartition(":")[0].removeprefix("[").removesuffix("]")
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:
            host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the setup shared by the places ------------------------------------------------------------
@dataclass
class Settings:
    """The options of the run that say where the harness's worker is and how the target reaches it."""

    listen: str = ""  # --armonik-worker-listen
    partition: str = ""  # --armonik-worker-partition
    agent: str = ""  # --armonik-agent ("" = the target)


class WorkerSetup:
    """Starts the harness's worker on first use, routes a partition to it, tears both down."""

    def __init__(self, settings: Settings, target: Target, control: Any) -> None:
        self.settings = settings
        self.target = target
        self.control = control
        self.host: WorkerHost | None = None
        self.partition = ""
        self.problem = ""  # why no case can run inside a task ("" when one can)
        self.started = False
        self._routed = False
        self._agent_set = ""  # "" until tried; "ok" or why the built-in Worker's agent cannot be set
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    def unavailable(self) -> str:
        with self._lock:
            if not self.started:
                self.started = True
                self.problem = self._start()
            return self.problem

    def _start(self) -> str:
        listen, partition = self.settings.listen, self.settings.partition
        if partition and not listen:
            return (
                f"--armonik-worker-partition {partition} needs --armonik-worker-listen HOST:PORT "
                "(where the partition's worker, the harness, listens)"
            )
        if not listen and not self.control:
            return (
                "no worker route to run Agent cases inside a task: give --armonik-worker-listen HOST:PORT "
                "and --armonik-worker-partition NAME (the partition whose worker points there), or "
                "--control of a protoconform mock"
            )
        self._channel = (
            grpc.insecure_channel(self.settings.agent) if self.settings.agent else self.target.channel()
        )
        try:
            self.host = WorkerHost(listen or "127.0.0.1:0", self._channel)
        except (OSError, RuntimeError) as exc:
            return f"the harness's worker cannot listen on {listen or '127.0.0.1:0'}: {exc}"
        if partition:
            self.partition = partition  # the user routed it
            return ""
        self.partition = f"{self.target.namespace}-worker"
        try:
            self.control.route_armonik_worker(self.partition, self.host.address)
        except Exception as exc:  # an older mock, a refused address: one reason
            return f"cannot route partition {self.partition} to the harness's worker through --control: {exc}"
        self._routed = True
        return ""

    def builtin_agent(self) -> str:
        """Why the target's built-in Worker cannot be made to notify this run's Agent ('' = it does)."""
        with self._lock:
            if not self._agent_set:
                self._agent_set = self._set_builtin_agent()
            return "" if self._agent_set == "ok" else self._agent_set

    def _set_builtin_agent(self) -> str:
        if not self.control:
            return (
                "the target's built-in Worker must notify this run's Agent: give --control of a "
                "protoconform mock (which sets it), or start the mock with --armonik-worker-agent"
            )
        agent = self.settings.agent or self.target.address
        try:
            self.control.set_armonik_worker_agent(agent)
        except Exception as exc:
            return f"cannot point the built-in Worker at the Agent {agent} through --control: {exc}"
        return "ok"

    @property
    def servicer(self) -> HarnessWorker:
        assert self.host is not None
        return self.host.servicer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._routed:
                self.control.unroute_armonik_worker(self.partition)
        with contextlib.suppress(Exception):
            if self._agent_set == "ok":
                self.control.clear_armonik_worker_agent()
        if self.host is not None:
            self.host.stop()
        if self._channel is not None:
            self._channel.close()


# -- the places ---------------------------------------------------------------------------------
@dataclass
class HoldSpec:
    """What an ``inside: {worker: {...}}`` entry asks for (see the module docstring)."""

    answer: str = "ok"
    max_duration: str = "300s"
    max_retries: int = 1  # a session's default is at least 1
    retries: str = "ok"  # how the harness answers the task's retries: "ok" or "crash"
    options: dict[str, str] = field(default_factory=dict)
    payload: str = DEFAULT_PAYLOAD
    dependencies: list[str] = field(default_factory=list)
    outputs: int = 1
    write: dict[str, str] = field(default_factory=dict)
    folders: list[str] = field(default_factory=list)
    builtin_agent: bool = False
    ended_token: bool = False

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> HoldSpec:
        unknown = sorted(set(raw) - SPEC_KEYS)
        if unknown:
            raise Mismatch(f"keys among {sorted(SPEC_KEYS)}", unknown, rule="", detail="inside: worker")
        spec = cls(**{k: v for k, v in raw.items()})
        if spec.answer not in ANSWERS:
            raise Mismatch(f"answer in {list(ANSWERS)}", spec.answer, rule="", detail="inside: worker")
        if spec.retries not in ("ok", "crash"):
            raise Mismatch("retries in ['ok', 'crash']", spec.retries, rule="", detail="inside: worker")
        spec.options = {str(k): str(v) for k, v in spec.options.items()}
        return spec


def _expect_ok(reply: Reply, what: str) -> Any:
    if not reply.ok:
        raise Mismatch("OK", reply.status(), rule="", reply=reply, detail=f"preparing the held task: {what}")
    return reply.response


class WorkerPlace:
    """``inside: worker``: the case runs while the target waits for the harness's worker."""

    binds = "task"

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup

    def unavailable(self) -> str:
        return self.setup.unavailable()

    @contextlib.contextmanager
    def hold(self, scenario: Any, raw: dict[str, Any], bindings: dict[str, Any]) -> Iterator[dict[str, Any]]:
        spec = HoldSpec.parse(raw)
        if spec.builtin_agent:
            reason = self.setup.builtin_agent()
            if reason:
                pytest.skip(reason)
        ended = ""
        if spec.ended_token:  # a task held and ended first: its token must be dead now
            with self.hold(scenario, {}, bindings) as earlier:
                ended = earlier["communication_token"]
        rpc, partition = scenario.rpc, self.setup.partition
        key = str(uuid.uuid4())
        options = {
            "max_duration": spec.max_duration,
            "max_retries": spec.max_retries,
            "priority": 1,
            "partition_id": partition,
        }
        session = _expect_ok(
            rpc("Sessions.CreateSession", {"default_task_option": options, "partition_ids": [partition]}),
            f"a session in partition {partition}",
        ).session_id
        scenario.cleanup.append(lambda: rpc("Sessions.DeleteSession", {"session_id": session}))
        inputs = [spec.payload, *spec.dependencies]
        created = _expect_ok(
            rpc(
                "Results.CreateResults",
                {
                    "session_id": session,
                    "results": [
                        {"name": f"{scenario.namespace}-in{i}", "data": d} for i, d in enumerate(inputs)
                    ],
                },
            ),
            "its payload and data dependencies",
        )
        payload_id, *dependencies = [r.result_id for r in created.results]
        outputs = []
        if spec.outputs:
            made = _expect_ok(
                rpc(
                    "Results.CreateResultsMetaData",
                    {
                        "session_id": session,
                        "results": [{"name": f"{scenario.namespace}-out{i}"} for i in range(spec.outputs)],
                    },
                ),
                "its expected outputs",
            )
            outputs = [r.result_id for r in made.results]
        servicer = self.setup.servicer
        waiter = servicer.expect(key)
        if spec.retries == "crash":
            servicer.crashing.add(key)  # kept: retries come after the case has let the task go
        try:
            submitted = _expect_ok(
                rpc(
                    "Tasks.SubmitTasks",
                    {
                        "session_id": session,
                        "task_options": {**options, "options": {**spec.options, CASE_OPTION: key}},
                        "task_creations": [
                            {
                                "payload_id": payload_id,
                                "expected_output_keys": outputs,
                                "data_dependencies": dependencies,
                            }
                        ],
                    },
                ),
                f"the task, to partition {partition}",
            )
            task_id = submitted.task_infos[0].task_id
            call = self._arrival(scenario, waiter, task_id)
        finally:
            servicer.forget(key)
        answer = "ok"
        try:
            if call.request.task_id.startswith(f"{task_id}###"):
                task_id = call.request.task_id  # an earlier attempt failed (the worker was not up yet)
            expected = {
                "task_id": task_id,
                "session_id": session,
                "payload_id": payload_id,
                "expected_output_keys": outputs,
                "data_dependencies": dependencies,
            }
            _check_request(call.request, expected, spec, partition, inputs)
            task = as_dict(call.request)
            if ended:
                task["ended_token"] = ended
            self._prepare(scenario, spec, {**bindings, "task": task}, call.request.data_folder)
            yield task
            answer = spec.answer
        finally:
            self._release(scenario, call, answer, task_id, spec)

    def _arrival(self, scenario: Any, waiter: Waiter, task_id: str) -> HeldCall:
        """The held call of the task, or a failure naming where the task stayed."""
        deadline = time.monotonic() + ARRIVAL_SECONDS
        nudge = time.monotonic() + 0.3
        while not waiter.arrived.wait(POLL):
            now = time.monotonic()
            if now > deadline:
                status = scenario.rpc("Tasks.GetTask", {"task_id": task_id})
                name = status.status()
                if status.ok:
                    task = status.response.task
                    name = _task_status_name(task.status)
                    if task.output.error:
                        name += f" ({task.output.error[:200]})"
                address = self.setup.host.address if self.setup.host else "?"
                raise Mismatch(
                    f"Worker.Process called for task {task_id} within {ARRIVAL_SECONDS:g}s",
                    f"no call; the task is {name}",
                    rule=ATTACH_RULE,
                    reply=status,
                    detail=f"partition {self.setup.partition}, whose worker should be the harness, {address}",
                )
            if scenario.control is not None and now > nudge:
                scenario.control.advance(ADVANCE)  # our mock on a manual clock: dispatch the task
                nudge = now + 0.3
        assert waiter.call is not None
        return waiter.call

    def _prepare(self, scenario: Any, spec: HoldSpec, bindings: dict[str, Any], folder: str) -> None:
        """The files and folders the case wants in the data folder (which must be on this machine)."""
        if not (spec.write or spec.folders):
            return
        if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
            pytest.skip(
                f"the task's data folder {folder} is not on this machine (run the harness beside the "
                "target's agent to check what needs it)"
            )
        for name, data in spec.write.items():
            path = os.path.join(folder, str(scenario.resolve(name, bindings)))
            with open(path, "wb") as out:
                out.write(base64.b64decode(str(scenario.resolve(data, bindings))))
        for name in spec.folders:
            os.mkdir(os.path.join(folder, str(scenario.resolve(name, bindings))))

    def _release(self, scenario: Any, call: HeldCall, answer: str, task_id: str, spec: HoldSpec) -> None:
        """Answer the held call, then wait (bounded) until the target has taken the answer."""
        if answer == "error":
            call.answer(ProcessReply(output=Output(error=Output.Error(details="error answered on purpose"))))
        elif answer == "crash":
            call.answer("crash")
        elif answer == "ok":
            call.answer(OK_REPLY)
        limit = SETTLE_SECONDS
        if answer == "overrun":  # no answer: the target must end the task after max_duration
            seconds = duration_seconds(spec.max_duration)
            limit += 2 * seconds
            if scenario.control is not None:
                scenario.control.advance(seconds + ADVANCE)
        deadline = time.monotonic() + limit
        try:
            while time.monotonic() < deadline:
                reply = scenario.rpc("Tasks.GetTask", {"task_id": task_id})
                if not reply.ok or _task_status_name(reply.response.task.status) != PROCESSING:
                    break
                time.sleep(POLL)
        finally:
            if not call.decided.is_set():
                call.answer(OK_REPLY)  # an overrun call still open gets a late answer nobody reads
            call.done.wait(SETTLE_SECONDS)


class IdlePlace:
    """``inside: idle-worker``: the case runs while the harness's worker has nothing to process."""

    binds = ""

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup

    def unavailable(self) -> str:
        return self.setup.unavailable()

    @contextlib.contextmanager
    def hold(self, scenario: Any, raw: dict[str, Any], bindings: dict[str, Any]) -> Iterator[None]:
        if raw:
            raise Mismatch("no settings", sorted(raw), rule="", detail="inside: idle-worker")
        servicer = self.setup.servicer
        status_filter = {
            "or": [
                {
                    "and": [
                        {
                            "field": {"task_option_field": {"field": "TASK_OPTION_ENUM_FIELD_PARTITION_ID"}},
                            "filter_string": {
                                "value": self.setup.partition,
                                "operator": "FILTER_STRING_OPERATOR_EQUAL",
                            },
                        }
                    ]
                }
            ]
        }
        deadline = time.monotonic() + IDLE_SECONDS
        while True:
            since = servicer.idle_since()
            counts = scenario.rpc("Tasks.CountTasksByStatus", {"filters": status_filter})
            busy = [
                item
                for item in (counts.response.status if counts.ok else [])
                if _task_status_name(item.status) in BUSY
            ]
            quiet = since is not None and time.monotonic() - since > 0.2
            if quiet and counts.ok and not any(item.count for item in busy):
                break
            if time.monotonic() > deadline:
                raise Mismatch(
                    f"the harness's worker idle within {IDLE_SECONDS:g}s",
                    "tasks of its partition still queued or processing" if counts.ok else counts.status(),
                    rule="",
                    reply=counts,
                    detail=f"partition {self.setup.partition}",
                )
            time.sleep(POLL)
        yield None


def _task_status_name(number: int) -> str:
    try:
        return TaskStatus.Name(number)
    except ValueError:
        return str(number)


def _check_request(
    request: ProcessRequest, expected: dict[str, Any], spec: HoldSpec, partition: str, inputs: list[str]
) -> None:
    """The ``ProcessRequest`` carries the task as submitted (rule ``armonik.attach.process``)."""

    def differ(what: str, wanted: Any, got: Any) -> None:
        raise Mismatch(
            f"Worker.Process request with {what} = {wanted!r}",
            repr(got),
            rule=ATTACH_RULE,
            method="Worker.Process",
            reproducer={
                "method": "Worker.Process",
                "request": to_json(request, indent=2),
                "command": "",
            },
        )

    for name, wanted in expected.items():
        got = getattr(request, name)
        got = list(got) if isinstance(wanted, list) else got
        if got != wanted:
            differ(name, wanted, got)
    if not request.communication_token:
        differ("communication_token", "a token", "")
    if not request.data_folder:
        differ("data_folder", "a folder", "")
    if request.configuration.data_chunk_max_size <= 0:
        differ("configuration.data_chunk_max_size", "> 0", request.configuration.data_chunk_max_size)
    options = request.task_options
    if options.partition_id != partition:
        differ("task_options.partition_id", partition, options.partition_id)
    if options.max_retries != spec.max_retries:
        differ("task_options.max_retries", spec.max_retries, options.max_retries)
    seconds = options.max_duration.seconds + options.max_duration.nanos / 1e9
    if abs(seconds - duration_seconds(spec.max_duration)) > 1e-6:
        differ("task_options.max_duration", spec.max_duration, f"{seconds:g}s")
    for name, value in spec.options.items():
        if options.options.get(name) != value:
            differ(f"task_options.options[{name!r}]", value, options.options.get(name))
    # the inputs are in the data folder before the call (checked when the folder is on this machine)
    if os.path.isdir(request.data_folder):
        ids = [request.payload_id, *request.data_dependencies]
        for result_id, data in zip(ids, inputs, strict=True):
            try:
                with open(os.path.join(request.data_folder, result_id), "rb") as held:
                    content = held.read()
            except OSError as exc:
                differ(f"<data_folder>/{result_id}", "the result's data", f"unreadable: {exc.strerror}")
            if content != base64.b64decode(data):
                differ(f"<data_folder>/{result_id}", base64.b64decode(data), content)
