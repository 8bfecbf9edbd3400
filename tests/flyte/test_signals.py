"""SignalService and gate nodes, through gRPC (and REST) on the shared server with its virtual clock."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import requests
from flyte_support import DOMAIN, Admin, identifier, literal, plain, promise, simple
from google.protobuf import json_format
from protoconform.mockserver.apis.flyte import defects
from service_client import ServiceClient

IA, AE = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS
EXECUTION = {"project": "p1", "domain": DOMAIN, "name": "e1"}
INTEGER = {"simple": "INTEGER"}
JSON = {"Accept": "application/json"}  # flyteadmin's gateway writes proto field names for it


class Signals(ServiceClient):
    SERVICE = "flyteidl.service.SignalService"
    FAMILY = "flyte"


@pytest.fixture
def signals(admin: Admin) -> Signals:
    return Signals(admin.channel, admin.server)


def sid(signal_id: str, execution: dict[str, str] | None = None) -> dict[str, Any]:
    return {"signal_id": signal_id, "execution_id": execution or EXECUTION}


def names(page: Any) -> list[str]:
    return [s.id.signal_id for s in page.signals]


def without_nulls(value: Any) -> Any:
    """JSON without the nulls the gateway writes for unset message fields."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def phase_name(holder: Any) -> str:
    return holder.DESCRIPTOR.fields_by_name["phase"].enum_type.values_by_number[holder.phase].name


# -- the service ------------------------------------------------------------------------------------------


def test_get_or_create_is_idempotent_on_id_and_type(signals: Signals) -> None:
    created = signals.GetOrCreateSignal(id=sid("s"), type=INTEGER)
    assert created.id.signal_id == "s" and not created.HasField("value")
    signals.SetSignal(id=sid("s"), value=literal(7))
    again = signals.GetOrCreateSignal(id=sid("s"), type=INTEGER)
    assert again.value.scalar.primitive.integer == 7
    conflict = signals.error("GetOrCreateSignal", id=sid("s"), type={"simple": "STRING"})
    assert conflict.code() == AE and "signals_pkey" in conflict.details()
    assert names(signals.ListSignals(workflow_execution_id=EXECUTION, limit=10)) == ["s"]


def test_identifier_checks_come_in_flyteadmins_order(signals: Signals) -> None:
    cases = [
        ("GetOrCreateSignal", {"type": INTEGER}, "id: missing id"),
        ("GetOrCreateSignal", {"id": {"signal_id": "s"}, "type": INTEGER}, "missing execution_id"),
        ("GetOrCreateSignal", {"id": {"execution_id": EXECUTION}, "type": INTEGER}, "missing signal_id"),
        ("GetOrCreateSignal", {"id": sid("s", {"project": "p1", "name": "e"})}, "missing domain"),
        ("GetOrCreateSignal", {"id": sid("s")}, "type: missing type"),
        ("SetSignal", {"id": sid("nobody")}, "value: missing value"),  # before the lookup
    ]
    for method, request, expected in cases:
        error = signals.error(method, request)
        assert error.code() == IA and expected in error.details(), error.details()


def test_set_needs_an_existing_signal_and_a_castable_value(signals: Signals) -> None:
    missing = signals.error("SetSignal", id=sid("nobody"), value=literal(1))
    assert missing.code() == IA
    assert missing.details() == (
        "id: failed to validate that signal [{{p1 development e1} nobody}] exists, "
        "err: [signal does not exist]"
    )
    signals.GetOrCreateSignal(id=sid("s"), type=INTEGER)
    wrong = signals.error("SetSignal", id=sid("s"), value=literal("seven"))
    assert wrong.code() == IA and "is not castable to existing signal type [" in wrong.details()
    signals.SetSignal(id=sid("s"), value=literal(1))
    signals.SetSignal(id=sid("s"), value=literal(2))  # setting again overwrites
    assert signals.GetOrCreateSignal(id=sid("s"), type=INTEGER).value.scalar.primitive.integer == 2


def test_sizes_are_capped(signals: Signals) -> None:
    limit = signals.state().rules.extra["signals"]["max_bytes"]
    signals.GetOrCreateSignal(id=sid("b"), type={"simple": "BINARY"})
    big = {"scalar": {"binary": {"value": "AAAA" * (limit // 3 + 2)}}}  # base64 of more than limit bytes
    error = signals.error("SetSignal", id=sid("b"), value=big)
    assert error.code() == IA and error.details().startswith("value: ") and str(limit) in error.details()
    huge_type = {"enum_type": {"values": ["v" * 100] * (limit // 100 + 1)}}
    error = signals.error("GetOrCreateSignal", id=sid("t"), type=huge_type)
    assert error.code() == IA and error.details().startswith("type: ")
    error = signals.error("GetOrCreateSignal", id=sid("x" * (limit + 1)), type=INTEGER)
    assert error.code() == IA and error.details().startswith("id: ")
    assert names(signals.ListSignals(workflow_execution_id=EXECUTION, limit=10)) == ["b"]


def test_list_signals_pages_filters_and_sorts(signals: Signals) -> None:
    for name in ("a", "b", "c"):
        signals.GetOrCreateSignal(id=sid(name), type=INTEGER)
    signals.GetOrCreateSignal(id=sid("x", {**EXECUTION, "name": "e2"}), type=INTEGER)
    first = signals.ListSignals(workflow_execution_id=EXECUTION, limit=2)
    assert names(first) == ["a", "b"] and first.token == "2"
    rest = signals.ListSignals(workflow_execution_id=EXECUTION, limit=2, token=first.token)
    assert names(rest) == ["c"] and rest.token == ""
    newest = signals.ListSignals(workflow_execution_id=EXECUTION, limit=9, sort_by={"key": "id"})
    assert names(newest) == ["c", "b", "a"]
    assert names(
        signals.ListSignals(workflow_execution_id=EXECUTION, limit=9, filters="ne(signal_id,b)")
    ) == [
        "a",
        "c",
    ]
    refused = [
        ({"limit": 9, "filters": "eq(project,p1)"}, "filters: 's.project' is invalid filter"),
        ({"limit": 9, "filters": "eq(execution.name,e1)"}, "filters: 'e' entity is not allowed in filters"),
        ({"limit": 9, "token": "x"}, "token: invalid pagination token x for ListSignals"),
        ({"limit": 9, "sort_by": {"key": "phase"}}, "sort_by.key: invalid sort key 'phase'"),
        ({}, "limit: invalid value for limit"),
    ]
    for request, expected in refused:
        error = signals.error("ListSignals", workflow_execution_id=EXECUTION, **request)
        assert error.code() == IA and error.details() == expected, error.details()
    partial = signals.error("ListSignals", workflow_execution_id={"project": "p1"}, limit=1)
    assert partial.details() == "workflow_execution_id: missing execution_id"


def test_rest_routes_answer_like_grpc(signals: Signals) -> None:
    http = signals.server.http_url
    signals.GetOrCreateSignal(id=sid("s"), type=INTEGER)  # no REST route: gRPC only
    body = {"id": sid("s"), "value": {"scalar": {"primitive": {"integer": "5"}}}}
    assert requests.post(f"{http}/api/v1/signals", json=body, timeout=10).status_code == 200
    listed = requests.get(
        f"{http}/api/v1/signals/p1/{DOMAIN}/e1", params={"limit": 5}, headers=JSON, timeout=10
    )
    grpc_side = json_format.MessageToDict(
        signals.ListSignals(workflow_execution_id=EXECUTION, limit=5),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,  # as the gateway writes its JSON
    )
    assert listed.status_code == 200 and without_nulls(listed.json()) == grpc_side
    missing = requests.post(f"{http}/api/v1/signals", json={**body, "id": sid("none")}, timeout=10)
    assert missing.status_code == 400 and "signal does not exist" in missing.json()["message"]


# -- gate nodes -------------------------------------------------------------------------------------------


def gate_workflow(admin: Admin, gate: dict[str, Any], name: str = "mod.gated") -> dict[str, Any]:
    """A workflow: node g is ``gate`` (fed by the workflow input a), then add(g.o0, b) is its output."""
    admin.project("p1")
    task = admin.task()
    ident = identifier("WORKFLOW", name)
    nodes = [
        {
            "id": "g",
            "metadata": {"name": "g"},
            "inputs": [{"var": "o0", "binding": promise("start-node", "a")}],
            "gate_node": gate,
        },
        {
            "id": "n1",
            "metadata": {"name": "add"},
            "task_node": {"reference_id": task},
            "inputs": [
                {"var": "a", "binding": promise("g", "o0")},
                {"var": "b", "binding": promise("start-node", "b")},
            ],
        },
    ]
    template = {
        "id": ident,
        "interface": {
            "inputs": {"variables": {"a": simple("INTEGER"), "b": simple("INTEGER")}},
            "outputs": {"variables": {"o0": simple("INTEGER")}},
        },
        "nodes": nodes,
        "outputs": [{"var": "o0", "binding": promise("n1", "o0")}],
    }
    admin.CreateWorkflow(id=ident, spec={"template": template})
    return admin.launch_plan(name=name)


def node_phase(admin: Admin, node_id: str, execution: dict[str, str] | None = None) -> str:
    node = admin.GetNodeExecution(id={"node_id": node_id, "execution_id": execution or EXECUTION})
    return phase_name(node.closure)


def test_signal_gate_waits_in_running_until_set(admin: Admin, signals: Signals) -> None:
    plan = gate_workflow(
        admin, {"signal": {"signal_id": "answer", "type": INTEGER, "output_variable_name": "o0"}}
    )
    admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(600)  # long past every task's duration: the gate still waits
    assert phase_name(admin.GetExecution(id=EXECUTION).closure) == "RUNNING"
    gate = admin.GetNodeExecution(id={"node_id": "g", "execution_id": EXECUTION})
    assert phase_name(gate.closure) == "RUNNING" and gate.closure.HasField("started_at")
    listed = [
        n.id.node_id
        for n in admin.ListNodeExecutions(workflow_execution_id=EXECUTION, limit=10).node_executions
    ]
    assert "n1" not in listed
    (signal,) = signals.ListSignals(workflow_execution_id=EXECUTION, limit=10).signals
    assert signal.id.signal_id == "answer" and signal.type.simple == 1 and not signal.HasField("value")
    signals.SetSignal(id=sid("answer"), value=literal(40))
    admin.advance(30)
    execution = admin.GetExecution(id=EXECUTION)
    assert phase_name(execution.closure) == "SUCCEEDED"
    assert plain(admin.GetExecutionData(id=EXECUTION).full_outputs) == {"o0": 42}
    gate = admin.GetNodeExecution(id={"node_id": "g", "execution_id": EXECUTION})
    assert phase_name(gate.closure) == "SUCCEEDED" and gate.closure.duration.seconds >= 590
    data = admin.GetNodeExecutionData(id={"node_id": "g", "execution_id": EXECUTION})
    assert plain(data.full_outputs) == {"o0": 40}


def test_signal_set_before_the_gate_is_reached_opens_it_at_once(admin: Admin, signals: Signals) -> None:
    plan = gate_workflow(
        admin, {"signal": {"signal_id": "early", "type": INTEGER, "output_variable_name": "o0"}}
    )
    signals.GetOrCreateSignal(id=sid("early"), type=INTEGER)
    signals.SetSignal(id=sid("early"), value=literal(5))
    admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(30)
    assert plain(admin.GetExecutionData(id=EXECUTION).full_outputs) == {"o0": 7}


def test_approve_gate_passes_its_inputs_or_fails_on_reject(admin: Admin, signals: Signals) -> None:
    plan = gate_workflow(admin, {"approve": {"signal_id": "ok"}})
    admin.execute(plan, name="e1", a=1, b=2)
    rejected = {**EXECUTION, "name": "e2"}
    admin.execute(plan, name="e2", a=1, b=2)
    admin.advance(10)
    for execution in (EXECUTION, rejected):
        (signal,) = signals.ListSignals(workflow_execution_id=execution, limit=10).signals
        assert signal.type.simple == 4  # BOOLEAN
    assert signals.error("SetSignal", id=sid("ok"), value=literal(1)).code() == IA
    signals.SetSignal(id=sid("ok"), value=literal(True))
    signals.SetSignal(id=sid("ok", rejected), value=literal(False))
    admin.advance(30)
    assert plain(admin.GetExecutionData(id=EXECUTION).full_outputs) == {"o0": 3}
    assert phase_name(admin.GetExecution(id=rejected).closure) == "FAILED"
    gate = admin.GetNodeExecution(id={"node_id": "g", "execution_id": rejected})
    assert phase_name(gate.closure) == "FAILED" and gate.closure.error.code == "ReceivedRejectSignal"


def test_sleep_gate_waits_its_duration(admin: Admin) -> None:
    plan = gate_workflow(admin, {"sleep": {"duration": "120s"}})
    admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(100)
    assert node_phase(admin, "g") == "RUNNING"
    admin.advance(40)
    assert node_phase(admin, "g") == "SUCCEEDED"
    admin.advance(30)
    assert phase_name(admin.GetExecution(id=EXECUTION).closure) == "SUCCEEDED"


def test_terminated_while_waiting_the_gate_is_aborted_and_stays_so(admin: Admin, signals: Signals) -> None:
    plan = gate_workflow(
        admin, {"signal": {"signal_id": "late", "type": INTEGER, "output_variable_name": "o0"}}
    )
    admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(10)
    admin.TerminateExecution(id=EXECUTION, cause="no answer")
    admin.advance(10)
    signals.SetSignal(id=sid("late"), value=literal(1))
    admin.advance(30)
    assert phase_name(admin.GetExecution(id=EXECUTION).closure) == "ABORTED"
    assert node_phase(admin, "g") == "ABORTED"


# -- defect modes ----------------------------------------------------------------------------------------


def test_defects_bend_what_they_say(admin: Admin, signals: Signals) -> None:
    active = admin.server.server.dispatcher.defects
    active.add(defects.SIGNAL_SET_MISSING_ACCEPTED)
    try:
        signals.SetSignal(id=sid("ghost"), value=literal(3))
        assert signals.GetOrCreateSignal(id=sid("ghost"), type=INTEGER).value.scalar.primitive.integer == 3
        assert (
            signals.error("SetSignal", id=sid("ghost"), value=literal("x")).code() == IA
        )  # castability kept
    finally:
        active.discard(defects.SIGNAL_SET_MISSING_ACCEPTED)
    active.add(defects.SIGNAL_TYPE_CONFLICT_IGNORED)
    try:
        other = signals.GetOrCreateSignal(id=sid("ghost"), type={"simple": "STRING"})
        assert other.type.simple == 1  # the stored INTEGER signal, not a refusal
    finally:
        active.discard(defects.SIGNAL_TYPE_CONFLICT_IGNORED)
    assert signals.error("GetOrCreateSignal", id=sid("ghost"), type={"simple": "STRING"}).code() == AE
    assert signals.error("SetSignal", id=sid("ghost2"), value=literal(3)).code() == IA


def test_gate_nodes_compile_as_flyteadmins_compiler_says(admin: Admin) -> None:
    admin.project("p1")
    refused = [
        ({}, "Code: NoConditionFound, Node Id: g, Description: Can't find any condition in gate node [g]."),
        (
            {"signal": {"signal_id": "s", "output_variable_name": "o0"}},
            "Value required [GateNode.Signal.Type].",
        ),
        (
            {"signal": {"signal_id": "s", "type": INTEGER}},
            "Value required [GateNode.Signal.OutputVariableName].",
        ),
    ]
    ident = identifier("WORKFLOW", "mod.gates")
    for gate, expected in refused:
        template = {"id": ident, "interface": {}, "nodes": [{"id": "g", "gate_node": gate}]}
        error = admin.error("CreateWorkflow", id=ident, spec={"template": template})
        assert error.code() == IA and expected in error.details(), error.details()
    gates = [
        {"approve": {"signal_id": "a"}},
        {"signal": {"signal_id": "s", "type": INTEGER, "output_variable_name": "o0"}},
        {"sleep": {"duration": "1s"}},
    ]
    nodes = [{"id": f"g{i}", "gate_node": gate} for i, gate in enumerate(gates)]
    admin.CreateWorkflow(id=ident, spec={"template": {"id": ident, "interface": {}, "nodes": nodes}})


def test_flytekit_wait_for_input_waits_until_the_signal_is_set() -> None:
    # flytekit allows tasks and workflows defined inside test_ modules' functions
    import datetime

    from flytekit import task, wait_for_input, workflow
    from flytekit.configuration import Config, ImageConfig, PlatformConfig, SerializationSettings
    from flytekit.models.core.execution import WorkflowExecutionPhase
    from flytekit.models.project import Project
    from flytekit.remote import FlyteRemote
    from protoconform.mockserver.config import ServerConfig
    from protoconform.mockserver.launcher import ThreadedServer

    @task
    def echo(x: int) -> int:
        return x

    @workflow
    def gated() -> int:
        answer = wait_for_input("answer", timeout=datetime.timedelta(hours=1), expected_type=int)
        echo(x=answer)
        return answer

    config = ServerConfig(clock_speed=0, grace_seconds=0.2, families=("flyte",))
    with ThreadedServer(config) as server:
        platform = PlatformConfig(endpoint=server.grpc_address, insecure=True)
        remote = FlyteRemote(Config(platform=platform), default_project="p1", default_domain=DOMAIN)
        remote.client.register_project(Project("p1", "p1", "gate nodes"))
        settings = SerializationSettings(
            image_config=ImageConfig.auto_default_image(), project="p1", domain=DOMAIN, version="v1"
        )
        registered = remote.register_workflow(gated, serialization_settings=settings, version="v1")
        remote.execute(
            remote.fetch_launch_plan(name=registered.id.name, version="v1"), inputs={}, execution_name="e1"
        )
        server.run(lambda: server.server.clock.advance(3600))
        (signal,) = remote.list_signals("e1")
        assert signal.id.signal_id == "answer"
        assert remote.fetch_execution(name="e1").closure.phase == WorkflowExecutionPhase.RUNNING
        remote.set_signal("answer", "e1", 21)
        server.run(lambda: server.server.clock.advance(60))
        done = remote.sync_execution(remote.fetch_execution(name="e1"))
        assert done.closure.phase == WorkflowExecutionPhase.SUCCEEDED and done.outputs["o0"] == 21


def test_a_gate_whose_signal_exists_with_another_type_fails(admin: Admin, signals: Signals) -> None:
    plan = gate_workflow(
        admin, {"signal": {"signal_id": "taken", "type": INTEGER, "output_variable_name": "o0"}}
    )
    signals.GetOrCreateSignal(id=sid("taken"), type={"simple": "STRING"})
    admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(30)
    gate = admin.GetNodeExecution(id={"node_id": "g", "execution_id": EXECUTION})
    assert phase_name(gate.closure) == "FAILED" and "signals_pkey" in gate.closure.error.message
    assert phase_name(admin.GetExecution(id=EXECUTION).closure) == "FAILED"
