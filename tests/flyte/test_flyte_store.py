"""Flyte on the durable store: acknowledged writes survive kill -9, the simulated propeller goes on after
a restart, DataProxy uploads and agent job handles stay valid, and a reset empties the store."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from flyte_support import (
    DOMAIN,
    PLAUSIBLE,
    Admin,
    admin_methods,
    build_world,
    identifier,
    literal_map,
    plain,
    task_template,
    workflow_template,
)
from google.protobuf import json_format
from protoconform.mockserver.launcher import ServerProcess
from protoconform.mockserver.store import SqliteStore, open_store
from protoconform.specs.registry import default_registry
from service_client import ServiceClient
from test_agents import CATEGORY, AsyncAgent
from test_dataproxy import HELLO, HELLO_B64, DataProxy, put


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A server process on a store file, restartable on the same ports (signed URLs name the address)."""

    def __init__(self, path: Path, *extra: str) -> None:
        self.path = path
        self.args = [
            "--api",
            "flyte",
            "--clock-speed",
            "0",
            "--store",
            f"sqlite:{self.path}",
            "--port",
            str(_free_port()),
            "--http-port",
            str(_free_port()),
            *extra,
        ]
        self.process: ServerProcess | None = None
        self.channel: grpc.Channel | None = None

    def start(self) -> Served:
        self.process = ServerProcess(self.args).start()
        self.channel = grpc.insecure_channel(self.process.grpc_address)
        return self

    def kill(self) -> None:
        assert self.process is not None and self.channel is not None
        self.process.stop(signal.SIGKILL)
        self.channel.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self.channel is not None:
            self.channel.close()

    def client(self, cls: type[ServiceClient]) -> Any:
        return cls(self.channel, None)  # type: ignore[arg-type]

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.process is not None
        request = urllib.request.Request(
            f"{self.process.http_url}/control/{path}",
            data=json.dumps(body or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)

    def advance(self, seconds: float) -> None:
        self.control("clock/advance", {"seconds": seconds})


@pytest.fixture
def served(tmp_path: Path) -> Any:
    made: list[Served] = []

    def make(*extra: str) -> Served:
        made.append(Served(tmp_path / f"flyte{len(made)}.db", *extra))
        return made[-1]

    yield make
    for one in made:
        one.stop()


def _enum_name(enum: str, number: int) -> str:
    descriptor = default_registry().pool.FindEnumTypeByName(enum)
    return descriptor.values_by_number[number].name


def _execution_phase(admin: Admin, ident: dict[str, str]) -> str:
    found = admin.GetExecution(id=ident)
    return _enum_name("flyteidl.core.WorkflowExecution.Phase", found.closure.phase)


# -- kill -9 during a stream of writes --------------------------------------------------------------------


def _writes(admin: Admin, index: int, acknowledged: list[tuple[str, Any, bytes]]) -> None:
    """One round of flyteadmin writes; each acknowledged one recorded with what a Get answered after it."""
    name = f"mod.t{index}"
    task = identifier("TASK", name)
    admin.CreateTask(id=task, spec={"template": task_template(task)})
    acknowledged.append(("task", task, admin.GetTask(id=task).SerializeToString(deterministic=True)))
    workflow = identifier("WORKFLOW", f"mod.wf{index}")
    spec = {
        "template": workflow_template(workflow, [task]),
        "description": {"short_description": f"wf {index}", "long_description": {"value": "runs add"}},
    }
    admin.CreateWorkflow(id=workflow, spec=spec)  # two entities: the workflow and its description
    acknowledged.append(
        ("workflow", workflow, admin.GetWorkflow(id=workflow).SerializeToString(deterministic=True))
    )
    plan = identifier("LAUNCH_PLAN", f"mod.wf{index}")
    admin.CreateLaunchPlan(id=plan, spec={"workflow_id": workflow})
    admin.UpdateLaunchPlan(id=plan, state="ACTIVE")
    acknowledged.append(("plan", plan, admin.GetLaunchPlan(id=plan).SerializeToString(deterministic=True)))
    created = admin.CreateExecution(
        project="p1",
        domain=DOMAIN,
        name=f"e{index}",
        spec={"launch_plan": plan},
        inputs=literal_map(a=index, b=1),
    )
    ident = json_format.MessageToDict(created.id, preserving_proto_field_name=True)
    for phase in ("QUEUED", "RUNNING"):
        admin.CreateWorkflowEvent(
            event={
                "execution_id": ident,
                "phase": phase,
                "producer_id": "propeller",
                "occurred_at": "2026-01-01T00:00:00Z",
            }
        )
    answer = admin.GetExecution(id=ident).SerializeToString(deterministic=True)
    acknowledged.append(("execution", ident, answer))


def test_every_acknowledged_write_survives_kill_9_and_ids_stay_unique(served: Callable[..., Served]) -> None:
    server = served("--flyte-propeller", "off").start()
    admin = server.client(Admin)
    admin.project("p1")
    acknowledged: list[tuple[str, Any, bytes]] = []
    rounds = {"started": 0}
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        index = 0
        while not stop.is_set():
            rounds["started"] = index + 1
            try:
                _writes(admin, index, acknowledged)
            except grpc.RpcError:
                return  # the server died under this call: it was never acknowledged
            except BaseException as exc:  # a bug in the test itself
                failures.append(exc)
                return
            index += 1

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acknowledged) < 40 and thread.is_alive():
        stop.wait(0.05)
    server.kill()  # while the writer is in the middle of a call
    stop.set()
    thread.join(30)
    assert not failures, failures
    assert len(acknowledged) >= 40

    server.start()
    admin = server.client(Admin)
    getters = {
        "task": admin.GetTask,
        "workflow": admin.GetWorkflow,
        "plan": admin.GetLaunchPlan,
        "execution": admin.GetExecution,
    }
    for kind, ident, before in acknowledged:
        assert getters[kind](id=ident).SerializeToString(deterministic=True) == before, (kind, ident)
    # Lists answer them as before, each once, and executions keep their inputs (a separate object).
    executions = {
        e.id.name: e
        for e in admin.list_all("ListExecutions", id={"project": "p1", "domain": DOMAIN}, limit=100)
    }
    tasks = [
        t.id.name for t in admin.list_all("ListTasks", id={"project": "p1", "domain": DOMAIN}, limit=100)
    ]
    assert len(tasks) == len(set(tasks))
    for kind, ident, before in acknowledged:
        if kind == "execution":
            assert executions[ident["name"]].SerializeToString(deterministic=True) == before
        if kind == "task":
            assert ident["name"] in tasks
        if kind == "plan":
            active = admin.ListActiveLaunchPlans(project="p1", domain=DOMAIN, limit=1000).launch_plans
            assert ident["name"] in {p.id.name for p in active}

    # A call cut by the kill is all or nothing: every workflow has its description entity and every
    # description its workflow; every execution has its inputs.
    def found(call: Callable[..., Any], **request: Any) -> bool:
        try:
            call(**request)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, error
            return False
        return True

    for index in range(rounds["started"]):
        workflow = identifier("WORKFLOW", f"mod.wf{index}")
        assert found(admin.GetWorkflow, id=workflow) == found(admin.GetDescriptionEntity, id=workflow)
    for name, execution in executions.items():
        index = int(name[1:])
        assert plain(admin.GetExecutionData(id=execution.id).full_inputs) == {"a": index, "b": 1}

    # New writes after the restart take new rows: every record of the file has a row of its own.
    for index in range(rounds["started"] + 1, rounds["started"] + 3):
        _writes(admin, index, [])
    server.stop()
    store = open_store(f"sqlite:{server.path}", default_registry().message_class)
    assert isinstance(store, SqliteStore)
    rows: list[int] = []
    for name in ("projects", "tasks", "workflows", "launch_plans", "executions", "descriptions"):
        rows += [record.row for _, (_, record) in store.family("flyte").table(name).load()]
    store.close()
    assert len(rows) == len(set(rows)) and len(rows) > len(acknowledged)


# -- every read answers as before ------------------------------------------------------------------------

READS = ("Get", "List")


def _reads(admin: Admin) -> dict[str, Any]:
    """The answer (or refusal) of every AdminService read, with its plausible request."""
    answers: dict[str, Any] = {}
    for method in admin_methods():
        if method.startswith(READS) and method in PLAUSIBLE:
            try:
                answers[method] = getattr(admin, method)(PLAUSIBLE[method]()).SerializeToString(
                    deterministic=True
                )
            except grpc.RpcError as error:
                answers[method] = (error.code(), error.details())
    return answers


def test_every_admin_read_answers_as_before_a_kill(served: Callable[..., Served]) -> None:
    server = served().start()

    class Remote(Admin):
        def advance(self, seconds: float) -> None:
            server.advance(seconds)

    admin = build_world(Remote(server.channel, None))  # type: ignore[arg-type]
    for method in admin_methods():  # every kind of write once, each acknowledged
        if not method.startswith(READS) and method in PLAUSIBLE:
            try:
                getattr(admin, method)(PLAUSIBLE[method]())
            except grpc.RpcError as error:  # refused: it changed nothing (the fuzz tests say so)
                assert error.code() != grpc.StatusCode.UNAVAILABLE, (method, error)
    server.advance(0.7)  # executions made by the writes are part way
    before = _reads(admin)
    assert sum(not isinstance(answer, tuple) for answer in before.values()) > 30
    server.kill()
    server.start()
    after = _reads(server.client(Admin))
    assert {m: a for m, a in after.items() if a != before[m]} == {}


# -- the engines go on ------------------------------------------------------------------------------------


def test_executions_in_flight_when_killed_succeed_after_a_restart(served: Callable[..., Served]) -> None:
    server = served().start()
    admin = server.client(Admin)
    admin.project("p1")
    add = admin.task("mod.add")
    admin.workflow("mod.two", tasks=[add, add])
    plan = admin.launch_plan("mod.two")
    early = admin.execute(plan, "early", a=1, b=2)  # never advanced: no step taken yet
    server.advance(0.6)
    queued = admin.execute(plan, "queued", a=1, b=2)  # created later: one step behind "mid"
    mid = admin.execute(plan, "mid", a=10, b=5)
    server.advance(0.6 + 0.6 + 0.6 + 1.2)  # mid's first attempt is running, halfway through
    node = admin.GetNodeExecution(id={"execution_id": mid, "node_id": "n0"})
    assert _enum_name("flyteidl.core.NodeExecution.Phase", node.closure.phase) == "RUNNING"
    assert _execution_phase(admin, mid) == "RUNNING"
    server.kill()

    server.start()
    admin = server.client(Admin)
    assert _execution_phase(admin, mid) == "RUNNING"  # time did not pass while it was down
    server.advance(60)
    for ident, expected in ((early, 5), (queued, 5), (mid, 20)):
        assert _execution_phase(admin, ident) == "SUCCEEDED", ident
        outputs = admin.GetExecutionData(id=ident).full_outputs
        assert plain(outputs) == {"o0": expected}
        nodes = admin.list_all("ListNodeExecutions", workflow_execution_id=ident, limit=100)
        phases = {
            n.id.node_id: _enum_name("flyteidl.core.NodeExecution.Phase", n.closure.phase) for n in nodes
        }
        assert phases == {
            "start-node": "SUCCEEDED",
            "n0": "SUCCEEDED",
            "n1": "SUCCEEDED",
            "end-node": "SUCCEEDED",
        }
        attempts = admin.ListTaskExecutions(
            node_execution_id={"execution_id": ident, "node_id": "n0"}, limit=10
        ).task_executions
        assert len(attempts) == 1  # the attempt in flight went on; it was not started again


def test_a_sleep_gate_and_a_signal_gate_go_on_after_a_restart(served: Callable[..., Served]) -> None:
    server = served().start()
    admin = server.client(Admin)
    admin.project("p1")
    ident = identifier("WORKFLOW", "mod.gates")
    boolean = {"type": {"simple": "BOOLEAN"}}
    template = {
        "id": ident,
        "interface": {"inputs": {"variables": {}}, "outputs": {"variables": {}}},
        "nodes": [
            {"id": "nap", "metadata": {"name": "nap"}, "gate_node": {"sleep": {"duration": "100s"}}},
            {
                "id": "ok",
                "metadata": {"name": "ok"},
                "gate_node": {
                    "signal": {"signal_id": "go", "type": boolean["type"], "output_variable_name": "o"}
                },
            },
        ],
    }
    admin.CreateWorkflow(id=ident, spec={"template": template})
    plan = admin.launch_plan("mod.gates")
    run = admin.execute(plan, "gated")
    server.advance(30)
    assert _execution_phase(admin, run) == "RUNNING"
    server.kill()

    server.start()
    admin = server.client(Admin)
    signals = server.client(Signals)
    server.advance(60)  # 90 s of the 100 s nap
    assert _execution_phase(admin, run) == "RUNNING"
    signals.SetSignal(
        id={"execution_id": run, "signal_id": "go"}, value={"scalar": {"primitive": {"boolean": True}}}
    )
    server.advance(5)
    assert _execution_phase(admin, run) == "RUNNING"  # the nap is not over yet
    server.advance(20)
    assert _execution_phase(admin, run) == "SUCCEEDED"


class Signals(ServiceClient):
    SERVICE = "flyteidl.service.SignalService"
    FAMILY = "flyte"


# -- data and handles that clients hold ----------------------------------------------------------------------


def test_uploads_and_agent_jobs_survive_and_a_reset_empties_the_store(served: Callable[..., Served]) -> None:
    server = served().start()
    proxy = server.client(DataProxy)
    made = proxy.CreateUploadLocation(
        project="p1", domain=DOMAIN, content_md5=HELLO_B64, filename="hello.txt", expires_in="3600s"
    )
    assert put(made.signed_url, HELLO).status_code == 200
    download = proxy.CreateDownloadLocation(native_url=made.native_url, expires_in="3600s").signed_url
    agent = server.client(AsyncAgent)
    meta = agent.create()
    category = CATEGORY
    # the key that signs job handles is no object a signed download URL could reach
    for native in ("protoconform://agents/secret", ""):
        reach = proxy.CreateDownloadLocation(native_url=native or made.native_url, expires_in="60s")
        assert requests.get(reach.signed_url, timeout=10).status_code == (404 if native else 200)
    server.kill()

    server.start()
    proxy = server.client(DataProxy)
    agent = server.client(AsyncAgent)
    assert requests.get(download, timeout=10).content == HELLO  # a URL signed before the kill
    again = proxy.CreateDownloadLocation(native_url=made.native_url, expires_in="60s").signed_url
    assert requests.get(again, timeout=10).content == HELLO
    server.advance(10)
    done = agent.GetTask(task_category=category, resource_meta=meta).resource
    assert _enum_name("flyteidl.core.TaskExecution.Phase", done.phase) == "SUCCEEDED"
    assert done.outputs.literals["o0"].scalar.primitive.integer == 3

    server.control("reset")
    server.kill()
    db = sqlite3.connect(server.path)
    names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    counts = {name: db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in names}
    kept = [row[0] for row in db.execute("SELECT name FROM meta WHERE name LIKE 'flyte.%'")]
    db.close()
    assert all(count == 0 for name, count in counts.items() if name.startswith("flyte__")), counts
    assert kept == ["flyte.state.started"], kept  # a fresh state's start; no rows, no keys
    server.start()
    assert requests.get(download, timeout=10).status_code == 403  # the reset drew a new signing key
    with pytest.raises(grpc.RpcError) as refused:
        server.client(AsyncAgent).GetTask(task_category=category, resource_meta=meta)
    assert refused.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


# -- the same history with and without restarts ------------------------------------------------------------

CACHED = {"discoverable": True, "discovery_version": "1.0"}
Action = tuple[str, Any]


def _scenario(split: int = 1) -> list[Action]:
    """Registrations, then executions of every kind the simulation runs, with the clock moving between
    (each move in ``split`` parts, for more points to kill the server at)."""

    def register(admin: Admin, signals: Any) -> None:
        admin.project("p1")
        add = admin.task("mod.add", metadata={"retries": {"retries": 1}})
        admin.task("mod.twice", metadata=CACHED)
        admin.workflow("mod.two", tasks=[add, add])
        admin.launch_plan("mod.two")
        gate = identifier("WORKFLOW", "mod.gate")
        node = {"id": "ok", "metadata": {"name": "ok"}, "gate_node": {"approve": {"signal_id": "ok"}}}
        template = {"id": gate, "interface": {}, "nodes": [node]}
        admin.CreateWorkflow(id=gate, spec={"template": template})
        admin.launch_plan("mod.gate")

    def launch(name: str, plan: str = "mod.two", kind: str = "LAUNCH_PLAN", **labels: str) -> Any:
        def call(admin: Admin, signals: Any) -> None:
            spec = {
                "launch_plan": identifier(kind, plan),
                "labels": {
                    "values": {f"protoconform.io/{k.replace('_', '-')}": v for k, v in labels.items()}
                },
            }
            inputs = literal_map() if plan == "mod.gate" else literal_map(a=len(name), b=2)
            admin.CreateExecution(project="p1", domain=DOMAIN, name=name, spec=spec, inputs=inputs)

        return call

    def terminate(admin: Admin, signals: Any) -> None:
        admin.TerminateExecution(id={"project": "p1", "domain": DOMAIN, "name": "stopped"}, cause="enough")

    def recover(admin: Admin, signals: Any) -> None:  # n0 is RECOVERED, n1 runs (and times out) again
        admin.RecoverExecution(id={"project": "p1", "domain": DOMAIN, "name": "slow"}, name="again")

    def approve(admin: Admin, signals: Any) -> None:
        ident = {"execution_id": {"project": "p1", "domain": DOMAIN, "name": "gated"}, "signal_id": "ok"}
        signals.SetSignal(id=ident, value=literal_map(v=True)["literals"]["v"])

    actions: list[Action] = [
        ("call", register),
        ("call", launch("ok")),
        ("call", launch("retried", fail_node="n1", fail_attempts="1")),
        ("call", launch("failing", fail_node="n0")),
        ("call", launch("slow", fail_node="n1", fail_mode="timeout")),
        ("call", launch("cached", "mod.twice", "TASK")),
        ("call", launch("stopped")),
        ("call", launch("gated", "mod.gate")),
        ("advance", 1.2),
        ("advance", 1.2),
        ("call", terminate),
        ("advance", 1.2),
        ("call", launch("hit", "mod.twice", "TASK")),  # "cached" is running: no hit yet
        ("advance", 1.2),
        ("call", approve),
        ("advance", 1.2),
        ("advance", 1.2),
        ("call", launch("hat", "mod.twice", "TASK")),  # same inputs as "hit" (names of one length)
        ("advance", 1.2),
        ("advance", 1.2),
        ("advance", 5),
        ("call", recover),
        ("advance", 1.2),
        ("advance", 1.2),
        ("advance", 60),
    ]
    return [
        part
        for action in actions
        for part in ([("advance", action[1] / split)] * split if action[0] == "advance" else [action])
    ]


def _history(admin: Admin) -> dict[str, Any]:
    """What a client sees of every execution at the end: phases, errors, outputs, nodes and attempts."""
    seen: dict[str, Any] = {}
    scope = {"project": "p1", "domain": DOMAIN}
    for execution in admin.list_all("ListExecutions", id=scope, limit=100):
        ident = json_format.MessageToDict(execution.id, preserving_proto_field_name=True)
        origin = execution.closure.created_at.ToMilliseconds()  # servers' clocks start at other moments

        def since(stamp: Any, origin: int = origin) -> int | None:
            return stamp.ToMilliseconds() - origin if stamp.seconds or stamp.nanos else None

        nodes = {}
        for node in admin.list_all("ListNodeExecutions", workflow_execution_id=ident, limit=100):
            key = {"execution_id": ident, "node_id": node.id.node_id}
            attempts = admin.ListTaskExecutions(node_execution_id=key, limit=100).task_executions
            nodes[node.id.node_id] = (
                _enum_name("flyteidl.core.NodeExecution.Phase", node.closure.phase),
                node.closure.error.code,
                node.closure.task_node_metadata.cache_status,
                sorted(
                    (
                        a.id.retry_attempt,
                        _enum_name("flyteidl.core.TaskExecution.Phase", a.closure.phase),
                        since(a.closure.started_at),
                        since(a.closure.updated_at),
                    )
                    for a in attempts
                ),
                since(node.closure.started_at),
                since(node.closure.updated_at),
            )
        outputs = admin.GetExecutionData(id=ident).full_outputs
        seen[execution.id.name] = (
            _enum_name("flyteidl.core.WorkflowExecution.Phase", execution.closure.phase),
            execution.closure.error.code,
            since(execution.closure.updated_at),
            plain(outputs),
            nodes,
        )
    return seen


def _play(server: Served, actions: list[Action], kill_after: set[int]) -> dict[str, Any]:
    server.start()
    for number, (kind, value) in enumerate(actions):
        if kind == "advance":
            server.advance(value)
        else:
            value(server.client(Admin), server.client(Signals))
        if number in kill_after:
            server.kill()
            server.start()
    return _history(server.client(Admin))


def _kills_give_the_same_history(
    served: Callable[..., Served], kill_after: set[int] | None, split: int = 1
) -> None:
    actions = _scenario(split)
    reference = _play(served(), actions, set())
    assert {name: found[0] for name, found in reference.items()} == {
        "ok": "SUCCEEDED",
        "retried": "SUCCEEDED",
        "failing": "FAILED",
        "slow": "FAILED",
        "cached": "SUCCEEDED",
        "stopped": "ABORTED",
        "gated": "SUCCEEDED",
        "hit": "SUCCEEDED",
        "hat": "SUCCEEDED",
        "again": "FAILED",
    }
    assert [reference["again"][4][n][0] for n in ("n0", "n1")] == ["RECOVERED", "TIMED_OUT"]
    assert [a[:2] for a in reference["retried"][4]["n1"][3]] == [(0, "RETRYABLE_FAILED"), (1, "SUCCEEDED")]
    assert (reference["hit"][4]["twice"][2], reference["hat"][4]["twice"][2]) == (3, 2)  # populated, hit
    everywhere = set(range(len(actions)))
    assert _play(served(), actions, everywhere if kill_after is None else kill_after) == reference


@pytest.mark.slow  # many restarts
def test_kill_9_between_steps_changes_nothing_a_client_sees(served: Callable[..., Served]) -> None:
    _kills_give_the_same_history(served, {9, 11, 15, 21, 22})


@pytest.mark.slow
def test_kill_9_after_every_step_changes_nothing_a_client_sees(served: Callable[..., Served]) -> None:
    _kills_give_the_same_history(served, None, split=4)
