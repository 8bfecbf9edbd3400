"""The simulation off: a propeller's events, sent by the test, are all that moves an execution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from flyte_support import DOMAIN, details, literal_map, plain

IA, NF, AE, FP = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
)
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class Propeller:
    """Sends the events flytepropeller would for one execution."""

    def __init__(self, admin, execution: dict[str, str], task: dict[str, str]) -> None:
        self.admin = admin
        self.execution = execution
        self.task = task

    def workflow(self, phase: str, t: float, producer: str = "propeller", **extra) -> None:
        self.admin.CreateWorkflowEvent(
            event={
                "execution_id": self.execution,
                "phase": phase,
                "occurred_at": at(t),
                "producer_id": producer,
                **extra,
            }
        )

    def node(self, node_id: str, phase: str, t: float, producer: str = "propeller", **extra) -> None:
        event = {
            "id": {"execution_id": self.execution, "node_id": node_id},
            "phase": phase,
            "occurred_at": at(t),
        }
        self.admin.CreateNodeEvent(event={"producer_id": producer, **event, **extra})

    def attempt(self, node_id: str, retry: int, phase: str, t: float, version: int = 0, **extra) -> None:
        self.admin.CreateTaskEvent(
            event={
                "task_id": self.task,
                "parent_node_execution_id": {"execution_id": self.execution, "node_id": node_id},
                "retry_attempt": retry,
                "phase": phase,
                "phase_version": version,
                "occurred_at": at(t),
                "producer_id": "propeller",
                **extra,
            }
        )

    def error(self, kind: str, *args, **extra) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            getattr(self, kind)(*args, **extra)
        return caught.value


@pytest.fixture
def run(events_admin):
    admin = events_admin
    plan = admin.registered()
    execution = admin.execute(plan, name="ev", a=2, b=3)
    task = {"resource_type": "TASK", "project": "p1", "domain": DOMAIN, "name": "mod.add", "version": "v1"}
    return Propeller(admin, execution, task)


def _phase(message, value: int) -> str:
    return message.DESCRIPTOR.fields_by_name["phase"].enum_type.values_by_number[value].name


def test_an_execution_moves_only_by_events(run) -> None:
    admin, execution = run.admin, run.execution
    admin.advance(120)
    assert admin.GetExecution(id=execution).closure.phase == 0  # UNDEFINED: nothing simulates propeller
    run.workflow("QUEUED", 0)
    run.workflow("QUEUED", 0.5)  # QUEUED may repeat
    run.workflow("RUNNING", 1)
    run.node("start-node", "SUCCEEDED", 1, output_data=literal_map(a=2, b=3))  # the first event creates it
    run.node("n0", "QUEUED", 2, input_data=literal_map(a=2, b=3))
    run.node("n0", "RUNNING", 3)
    run.attempt("n0", 0, "QUEUED", 3)
    run.attempt("n0", 0, "RUNNING", 4)
    log = {"uri": "http://logs/0", "name": "pod"}
    run.attempt("n0", 0, "RUNNING", 5, version=1, logs=[log])  # a higher phase version updates
    run.attempt("n0", 0, "RETRYABLE_FAILED", 6, error={"code": "OOM", "message": "killed", "kind": "SYSTEM"})
    run.attempt("n0", 1, "QUEUED", 7)
    run.attempt("n0", 1, "RUNNING", 8)
    run.attempt("n0", 1, "SUCCEEDED", 10, output_data=literal_map(o0=5))
    run.node("n0", "SUCCEEDED", 11, output_data=literal_map(o0=5))
    run.node("end-node", "SUCCEEDED", 11, output_data=literal_map(o0=5))
    run.workflow("SUCCEEDING", 12)
    run.workflow("SUCCEEDED", 13, output_data=literal_map(o0=5))

    done = admin.GetExecution(id=execution).closure
    assert _phase(done, done.phase) == "SUCCEEDED"
    assert done.started_at.ToJsonString() == at(1) and done.updated_at.ToJsonString() == at(13)
    assert done.duration.ToTimedelta() == timedelta(seconds=12)
    assert plain(admin.GetExecutionData(id=execution).full_outputs) == {"o0": 5}
    nodes = admin.ListNodeExecutions(workflow_execution_id=execution, limit=10).node_executions
    assert [(n.id.node_id, _phase(n.closure, n.closure.phase)) for n in nodes] == [
        ("start-node", "SUCCEEDED"),
        ("n0", "SUCCEEDED"),
        ("end-node", "SUCCEEDED"),
    ]
    node = {"execution_id": execution, "node_id": "n0"}
    n0 = admin.GetNodeExecution(id=node)
    assert n0.closure.created_at.ToJsonString() == at(2) and n0.closure.duration.ToTimedelta() == timedelta(
        seconds=8
    )
    data = admin.GetNodeExecutionData(id=node)
    assert plain(data.full_inputs) == {"a": 2, "b": 3} and plain(data.full_outputs) == {"o0": 5}
    attempts = admin.ListTaskExecutions(node_execution_id=node, limit=10).task_executions
    assert [(a.id.retry_attempt, _phase(a.closure, a.closure.phase)) for a in attempts] == [
        (0, "RETRYABLE_FAILED"),
        (1, "SUCCEEDED"),
    ]
    first = attempts[0].closure
    assert first.error.code == "OOM" and [entry.uri for entry in first.logs] == ["http://logs/0"]
    second = admin.ListTaskExecutions(
        node_execution_id=node, limit=10, filters="eq(retry_attempt,1)"
    ).task_executions
    assert [a.closure.phase for a in second] == [3] and plain(
        admin.GetTaskExecutionData(id=second[0].id).full_outputs
    ) == {"o0": 5}


def test_refused_events_with_flyteadmins_codes_and_details(run) -> None:
    admin, execution = run.admin, run.execution
    run.workflow("QUEUED", 0)
    run.workflow("RUNNING", 1)
    same = run.error("workflow", "RUNNING", 2)
    assert (
        same.code() == AE
        and "This phase RUNNING was already recorded for workflow execution" in same.details()
    )
    back = run.error("workflow", "QUEUED", 2)
    assert back.code() == FP and "Cannot go from RUNNING to QUEUED" in back.details()
    cluster = run.error("workflow", "FAILING", 2, producer="other-cluster")
    assert cluster.code() == FP and "Cluster/producer from event [other-cluster]" in cluster.details()
    (reason,) = details(cluster)
    assert reason.WhichOneof("reason") == "incompatible_cluster" and reason.incompatible_cluster.cluster == ""

    orphan = run.error("attempt", "n9", 0, "RUNNING", 3)  # a task event for a node nobody reported
    assert orphan.code() == NF and "failed to get existing node execution id" in orphan.details()

    run.node("n0", "QUEUED", 3)
    twice = run.error("node", "n0", "QUEUED", 4)
    assert twice.code() == AE and "This phase was already recorded QUEUED" in twice.details()
    run.node("n0", "SKIPPED", 4)
    after = run.error("node", "n0", "RUNNING", 5)
    assert (
        after.code() == FP
        and "Invalid phase change from SKIPPED to RUNNING for node execution" in after.details()
    )
    (reason,) = details(after)
    assert (
        reason.already_in_terminal_state.current_phase == "RUNNING"
    )  # the event's phase: flyteadmin's quirk

    run.node("n1", "RUNNING", 5)
    run.attempt("n1", 0, "RUNNING", 5)
    again = run.error("attempt", "n1", 0, "RUNNING", 6)
    assert (
        again.code() == AE
        and "have already recorded task execution phase RUNNING (version: 0)" in again.details()
    )
    run.attempt("n1", 0, "FAILED", 7)
    late = run.error("attempt", "n1", 0, "RUNNING", 8, version=3)
    assert late.code() == FP and "invalid phase change from FAILED to RUNNING" in late.details()

    run.workflow("SUCCEEDED", 9)
    terminal = run.error("workflow", "RUNNING", 10)
    assert terminal.code() == FP and "Invalid phase change from SUCCEEDED to RUNNING" in terminal.details()
    (reason,) = details(terminal)
    assert reason.already_in_terminal_state.current_phase == "SUCCEEDED"
    run.node("n2", "QUEUED", 11)  # node events are accepted after the workflow ended, as in flyteadmin

    missing = admin.error(
        "CreateWorkflowEvent", event={"execution_id": {**execution, "name": "none"}, "phase": "RUNNING"}
    )
    assert missing.code() == NF and "missing entity of type execution" in missing.details()
    assert (
        admin.error("CreateWorkflowEvent", {}).details()
        == "event: Workflow event handler was called without event"
    )
    no_time = admin.error("CreateTaskEvent", event={"phase": "RUNNING"})
    assert (no_time.code(), no_time.details()) == (IA, "event.occurred_at: missing occurred_at")


def test_terminate_without_a_producer_stays_aborting(run) -> None:
    admin, execution = run.admin, run.execution
    run.workflow("QUEUED", 0)
    run.workflow("RUNNING", 1)
    admin.TerminateExecution(id=execution, cause="stop")
    admin.advance(60)
    aborting = admin.GetExecution(id=execution).closure
    assert _phase(aborting, aborting.phase) == "ABORTING"
    refused = run.error("workflow", "RUNNING", 2)
    assert refused.code() == FP and "Invalid phase change from aborting to RUNNING" in refused.details()
    run.workflow("ABORTED", 3)
    aborted = admin.GetExecution(id=execution).closure
    assert _phase(aborted, aborted.phase) == "ABORTED" and aborted.abort_metadata.cause == "stop"


def test_a_new_cluster_takes_a_queued_execution(run) -> None:
    run.workflow("QUEUED", 0, producer="cluster-b")
    run.workflow("RUNNING", 1, producer="cluster-b")
    refused = run.error("node", "n0", "QUEUED", 2, producer="cluster-c")
    (reason,) = details(refused)
    assert refused.code() == FP and reason.incompatible_cluster.cluster == "cluster-b"
    executions = run.admin.ListExecutions(
        id={"project": "p1", "domain": DOMAIN}, limit=5, filters="eq(cluster,cluster-b)"
    )
    assert [e.id.name for e in executions.executions] == ["ev"]
