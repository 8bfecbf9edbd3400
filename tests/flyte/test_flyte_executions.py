"""Executions on the shared server, whose simulated propeller moves them on the virtual clock."""

from __future__ import annotations

import re

import grpc
import pytest
from flyte_support import DOMAIN, details, identifier, literal_map, plain, status

IA, NF, AE, FP = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
)
SCOPE = {"project": "p1", "domain": DOMAIN}


def phase(admin, execution_id) -> str:
    execution = admin.GetExecution(id=execution_id)
    return (
        execution.closure.DESCRIPTOR.fields_by_name["phase"]
        .enum_type.values_by_number[execution.closure.phase]
        .name
    )


@pytest.fixture
def plan(admin):
    return admin.registered()


def test_create_checks_inputs_and_names(admin, plan) -> None:
    spec = {"launch_plan": plan}
    cases = [
        ({"inputs": literal_map(a=1)}, "inputs: expected_inputs b missing"),
        ({"inputs": literal_map(a=1, b=2, c=3)}, "inputs: invalid input c"),
        (
            {"inputs": literal_map(a="x", b=2)},
            "inputs: invalid a input wrong type. Expected simple: INTEGER, but got simple: STRING",
        ),
        ({"name": "Bad_Name", "inputs": literal_map(a=1, b=2)}, "name: invalid name format: Bad_Name"),
        ({"name": "a" * 64, "inputs": literal_map(a=1, b=2)}, "name: size of name exceeded length 63"),
    ]
    for request, expected in cases:
        error = admin.error("CreateExecution", project="p1", domain=DOMAIN, spec=spec, **request)
        assert error.code() == IA and error.details().startswith(expected), error.details()
    missing = admin.error(
        "CreateExecution",
        project="p1",
        domain=DOMAIN,
        spec={"launch_plan": identifier("LAUNCH_PLAN", "none")},
    )
    assert missing.code() == NF and missing.details().startswith(
        "spec.launch_plan: missing entity of type LAUNCH_PLAN"
    )
    generated = admin.execute(plan, a=1, b=2)
    assert re.fullmatch(r"a[bcdfghjklmnpqrstvwxz2456789]{19}", generated["name"])
    admin.execute(plan, name="Upper-Case", a=1, b=2)  # upper-case names pass flyteadmin's check and are kept
    assert admin.GetExecution(id={**SCOPE, "name": "Upper-Case"}).id.name == "Upper-Case"
    duplicate = admin.error(
        "CreateExecution",
        project="p1",
        domain=DOMAIN,
        name="Upper-Case",
        spec=spec,
        inputs=literal_map(a=1, b=2),
    )
    assert duplicate.code() == AE and "executions_pkey" in duplicate.details()


def test_the_propeller_reaches_succeeded_with_computed_outputs(admin, plan) -> None:
    execution = admin.execute(plan, name="e1", a=2, b=40)
    created = admin.GetExecution(id=execution)
    assert created.closure.phase == 0 and created.spec.metadata.system_metadata.namespace == "p1-development"
    admin.advance(0.5)
    assert phase(admin, execution) == "QUEUED"
    admin.advance(30)
    done = admin.GetExecution(id=execution)
    assert phase(admin, execution) == "SUCCEEDED"
    assert done.closure.started_at.seconds and done.closure.duration.ToTimedelta().total_seconds() > 0
    data = admin.GetExecutionData(id=execution)
    assert plain(data.full_inputs) == {"a": 2, "b": 40} and plain(data.full_outputs) == {"o0": 42}
    nodes = admin.ListNodeExecutions(
        workflow_execution_id=execution, limit=10, sort_by={"key": "id", "direction": "ASCENDING"}
    )
    assert [(n.id.node_id, n.closure.phase) for n in nodes.node_executions] == [
        ("start-node", 3),
        ("n0", 3),
        ("end-node", 3),
    ]
    node_id = {"execution_id": execution, "node_id": "n0"}
    assert plain(admin.GetNodeExecutionData(id=node_id).full_outputs) == {"o0": 42}
    attempts = admin.ListTaskExecutions(node_execution_id=node_id, limit=10).task_executions
    assert len(attempts) == 1 and attempts[0].closure.phase == 3 and attempts[0].closure.logs
    task_data = admin.GetTaskExecutionData(id=attempts[0].id)
    assert (
        plain(task_data.full_inputs) == {"a": 2, "b": 40}
        and task_data.flyte_urls.inputs == "flyte://v1/p1/development/e1/n0/0/i"
    )
    metrics = admin.GetExecutionMetrics(id=execution, depth=3).span
    assert metrics.workflow_id.name == "e1" and len(metrics.spans) == 3


def test_a_labelled_node_fails_after_its_retries(admin) -> None:
    admin.project()
    admin.task(metadata={"retries": {"retries": 2}})
    admin.workflow()
    plan = admin.launch_plan()
    labels = {"values": {"protoconform.io/fail-node": "n0", "protoconform.io/fail-attempts": "2"}}
    recovered = admin.CreateExecution(
        project="p1",
        domain=DOMAIN,
        name="retried",
        spec={"launch_plan": plan, "labels": labels},
        inputs=literal_map(a=1, b=1),
    ).id
    failing = admin.CreateExecution(
        project="p1",
        domain=DOMAIN,
        name="failing",
        spec={"launch_plan": plan, "labels": {"values": {"protoconform.io/fail-node": "n0"}}},
        inputs=literal_map(a=1, b=1),
    ).id
    timing_out = admin.CreateExecution(
        project="p1",
        domain=DOMAIN,
        name="slow",
        spec={
            "launch_plan": plan,
            "labels": {"values": {"protoconform.io/fail-node": "n0", "protoconform.io/fail-mode": "timeout"}},
        },
        inputs=literal_map(a=1, b=1),
    ).id
    admin.advance(60)
    assert phase(admin, recovered) == "SUCCEEDED"
    node = {"execution_id": recovered, "node_id": "n0"}
    attempts = admin.ListTaskExecutions(
        node_execution_id=node, limit=10, sort_by={"key": "retry_attempt", "direction": "ASCENDING"}
    )
    assert [(a.id.retry_attempt, a.closure.phase) for a in attempts.task_executions] == [
        (0, 8),
        (1, 8),
        (2, 3),
    ]
    assert phase(admin, failing) == "FAILED"
    failed = admin.GetExecution(id=failing)
    assert failed.closure.error.code == "USER:Failed"
    assert admin.GetNodeExecution(id={"execution_id": failing, "node_id": "n0"}).closure.phase == 5
    assert phase(admin, timing_out) == "FAILED"
    assert (
        admin.GetNodeExecution(id={"execution_id": timing_out, "node_id": "n0"}).closure.phase == 8
    )  # TIMED_OUT


def test_terminate_is_aborting_at_once_then_aborted(admin, plan) -> None:
    execution = admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(1.5)
    admin.TerminateExecution(id=execution, cause="enough")
    aborting = admin.GetExecution(id=execution)
    assert phase(admin, execution) == "ABORTING" and aborting.closure.abort_metadata.cause == "enough"
    admin.advance(1)
    assert phase(admin, execution) == "ABORTED"
    assert admin.GetExecution(id=execution).closure.abort_metadata.cause == "enough"  # survives the event
    error = admin.error("TerminateExecution", id=execution)
    assert status(error) == (FP, "id: Cannot abort an already terminated workflow execution")
    (reason,) = details(error)
    assert reason.already_in_terminal_state.current_phase == "ABORTED"
    missing = admin.error("TerminateExecution", id={**SCOPE, "name": "nope"})
    assert missing.code() == NF and missing.details().startswith(
        "id: missing entity of type execution with identifier"
    )


def test_archived_executions_leave_the_default_list(admin, plan) -> None:
    for name in ("e1", "e2"):
        admin.execute(plan, name=name, a=1, b=2)
    admin.UpdateExecution(id={**SCOPE, "name": "e1"}, state="EXECUTION_ARCHIVED")
    listed = admin.ListExecutions(id=SCOPE, limit=10).executions
    assert [e.id.name for e in listed] == ["e2"] and not listed[0].spec.HasField("inputs")
    archived = admin.ListExecutions(id=SCOPE, limit=10, filters="eq(state,1)").executions
    assert [e.id.name for e in archived] == ["e1"]
    assert admin.GetExecution(id={**SCOPE, "name": "e1"}).closure.state_change_details.state == 1


def test_relaunch_and_recover(admin, plan) -> None:
    source = admin.execute(plan, name="src", a=3, b=4)
    admin.advance(30)
    relaunched = admin.RelaunchExecution(id=source, name="again").id
    recovered = admin.RecoverExecution(id=source, name="rec").id
    again = admin.GetExecution(id=relaunched)
    assert again.spec.metadata.mode == 3 and again.spec.metadata.reference_execution.name == "src"
    admin.advance(30)
    assert plain(admin.GetExecutionData(id=relaunched).full_outputs) == {"o0": 7}
    assert admin.GetExecution(id=recovered).spec.metadata.mode == 5
    assert (
        admin.GetNodeExecution(id={"execution_id": recovered, "node_id": "n0"}).closure.phase == 10
    )  # RECOVERED
    assert plain(admin.GetExecutionData(id=recovered).full_outputs) == {"o0": 7}
    assert admin.error("RelaunchExecution", id={**SCOPE, "name": "nope"}).code() == NF


def test_single_task_execution_gets_its_flytegen_launch_plan(admin) -> None:
    admin.project()
    task = admin.task("mod.add")
    created = admin.CreateExecution(
        project="p1", domain=DOMAIN, name="t1", spec={"launch_plan": task}, inputs=literal_map(a=5, b=6)
    ).id
    admin.advance(30)
    assert plain(admin.GetExecutionData(id=created).full_outputs) == {"o0": 11}
    generated = admin.GetLaunchPlan(id=identifier("LAUNCH_PLAN", ".flytegen.mod.add"))
    assert generated.spec.workflow_id.name == ".flytegen.mod.add"
    named = admin.ListNamedEntities(resource_type="WORKFLOW", project="p1", domain=DOMAIN, limit=10)
    assert [e.id.name for e in named.entities] == []  # system generated names are hidden by default
