"""A simulated flytepropeller on the virtual clock, reporting through the event handlers' own code.

For each execution it sends what propeller would: workflow QUEUED, RUNNING;
``start-node`` SUCCEEDED with the workflow inputs; each node, once the nodes it
depends on have succeeded, QUEUED then RUNNING, with task attempts QUEUED,
RUNNING (phase version 0, then 1 with a log link), SUCCEEDED; ``end-node`` with
the workflow outputs; workflow SUCCEEDING, SUCCEEDED.  Every report goes through
:mod:`.events`, so the records are exactly those the events make.  Task outputs
come from :func:`.literals.compute_outputs`.

Failures are asked for (keys in ``specs/flyte/propeller.yaml``): execution
labels ``protoconform.io/fail-node: <node id>`` with ``protoconform.io/fail-mode:
error|timeout`` and ``protoconform.io/fail-attempts: N``, or the same
``protoconform.io/fail`` / ``fail-attempts`` keys in a task's ``config``.  A
failing attempt with retries left is RETRYABLE_FAILED and the next attempt runs;
the last one fails the node (FAILED, or TIMED_OUT) and the workflow.  With only
the first N attempts failing, a task with enough retries ends SUCCEEDED.

Gate nodes wait as propeller's gate handler does: ``signal`` and ``approve``
create their signal (GetOrCreateSignal's own code, :mod:`.signals`) and stay
RUNNING until SetSignal gives it a value; the node's outputs are then the value
under ``output_variable_name`` (``signal``) or the node's inputs (``approve``
true; false fails the node with ReceivedRejectSignal).  ``sleep`` succeeds once
its duration has passed on the virtual clock.

Tasks with ``metadata.discoverable`` and a ``discovery_version`` go through the
simulated catalog (:mod:`.cache`): with the same inputs cached, the node is
QUEUED then SUCCEEDED with CACHE_HIT and no attempt; otherwise the attempt runs
and its outputs are cached (CACHE_POPULATED).  ``overwrite_cache`` skips the
lookup and replaces the entry.

TerminateExecution (the execution is ABORTING) stops the run; a step later its
running task attempts and nodes are ABORTED and the workflow ABORTED.  A
recovered execution reports the nodes its source completed as RECOVERED.

``--flyte-propeller off`` turns all of this off: executions move only by events.

After a restart on a durable store (:meth:`Propeller.resume`) the propeller does
what flytepropeller does: it keeps no state of its own and re-reads each
workflow's status.  Every step is committed with the events it reports, so the
records say where each execution stood; its run is rebuilt from them and the
step that was due next is scheduled for when it was due (a step after the
report it follows, the rest of a running attempt's or a sleep's duration).
Timers are not stored; the one piece of bookkeeping kept beside the tables is
when a termination was asked, so the abort comes a step after it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from google.protobuf import message
from protoconform.mockserver.apis.flyte import cache, events, literals, signals
from protoconform.mockserver.apis.flyte.compiler import END_NODE, START_NODE
from protoconform.mockserver.apis.flyte.errors import Violation, render
from protoconform.mockserver.apis.flyte.state import CatalogRecord, ExecKey, NodeKey, SignalKey, key_of
from protoconform.mockserver.apis.flyte.wire import copy, stamp, text, to_datetime
from protoconform.mockserver.clock import Timer

if TYPE_CHECKING:
    from protoconform.mockserver.apis.flyte.state import ExecutionRecord, State

log = logging.getLogger(__name__)


@dataclass
class NodeRun:
    node: Any  # core.Node
    status: str = "pending"  # pending | running | succeeded | failed
    attempt: int = 0
    inputs_uri: str = ""
    inputs: Any = None


@dataclass
class Run:
    key: ExecKey
    execution_id: Any
    template: Any  # the compiled primary workflow template
    upstream: dict[str, list[str]]
    tasks: dict[str, Any]  # text(task id) -> TaskTemplate
    inputs: Any
    plan: dict[str, str]
    source: ExecKey | None = None
    nodes: dict[str, NodeRun] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)
    failed: Any = None  # the core.ExecutionError of the first node that failed
    overwrite_cache: bool = False  # the execution's spec.overwrite_cache: no catalog lookups
    waiting: dict[str, NodeRun] = field(default_factory=dict)  # signal id -> the gate node waiting on it
    finishing: bool = False  # the workflow's last events are scheduled
    done: bool = False


class Propeller:
    def __init__(self, state: State) -> None:
        self.state = state
        self.runs: dict[ExecKey, Run] = {}
        self.keys: dict[str, str] = dict(state.rules.extra["propeller"]["keys"])

    @property
    def enabled(self) -> bool:
        return self.state.settings.propeller

    # -- scheduling -----------------------------------------------------------------------------------
    def _later(
        self,
        run: Run,
        delay: float,
        step: Callable[..., None],
        *args: Any,
        final: bool = False,
        since: datetime | None = None,
    ) -> None:
        """Run ``step`` ``delay`` virtual seconds from now (from ``since``, a moment past, when given)."""
        if since is not None:
            delay -= (self.state.now() - since).total_seconds()

        def fire() -> None:
            if run.done and not final:
                return
            try:
                step(run, *args)
            except Violation as refused:
                # an outside producer moved the execution (e.g. to a terminal phase): stop quietly
                log.info("simulated propeller stops %s: %s", text(run.execution_id), refused.rule_id)
                run.done = True

        run.timers.append(self.state.clock.call_later(delay, fire))

    def _step(self) -> float:
        return self.state.settings.step_seconds

    # -- starting ---------------------------------------------------------------------------------------
    def start(self, record: ExecutionRecord, source: ExecutionRecord | None = None) -> None:
        if not self.enabled:
            return
        recovered = source is not None and record.execution.spec.metadata.mode == self._recovered()
        run = self._run_of(record, source.key if recovered and source is not None else None)
        if run is not None:
            self._later(run, self._step(), self._queued)

    def _run_of(self, record: ExecutionRecord, source: ExecKey | None) -> Run | None:
        """The run of an execution, all nodes pending (None when its workflow is unknown)."""
        state = self.state
        workflow = state.table("workflows").get(key_of(record.execution.closure.workflow_id))
        if workflow is None:
            return None
        closure = workflow.workflow.closure.compiled_workflow
        upstream = {node_id: list(ids.ids) for node_id, ids in closure.primary.connections.upstream.items()}
        tasks = {text(t.template.id): t.template for t in closure.tasks}
        run = Run(
            record.key,
            copy(record.execution.id),
            closure.primary.template,
            upstream,
            tasks,
            state.get_literals(record.inputs_uri),
            self._plan(record),
            source,
        )
        run.overwrite_cache = record.execution.spec.overwrite_cache
        for node in run.template.nodes:
            if node.id not in (START_NODE, END_NODE):
                run.nodes[node.id] = NodeRun(node)
        self.runs[record.key] = run
        return run

    # -- resuming after a restart -----------------------------------------------------------------------
    def resume(self) -> None:
        """Go on with every execution in flight from what its records say (a restarted server).

        flytepropeller keeps no state of its own: after a restart it re-reads each
        FlyteWorkflow's status and continues the round it was in.  Here the records
        (execution, node and task executions, signals, catalog) are that status: each
        step the propeller takes is committed with its events, so a run is rebuilt
        from them and the step that was due next is scheduled again.  A task attempt
        that was running goes on for the rest of its duration, measured from its
        ``started_at`` on the virtual clock; a sleep gate likewise; signal and approve
        gates wait on their signals again; an aborting execution is aborted.
        """
        if not self.enabled:
            return
        wire = self.state.wire
        for record in list(self.state.table("executions").scan()):
            closure = record.execution.closure
            phase = wire.name_of("core.WorkflowExecution.Phase", closure.phase)
            if events.terminal(self.state, "workflow", closure.phase, "core.WorkflowExecution.Phase"):
                continue
            if phase == "ABORTING":
                asked = self.state.store.get_meta("aborting", {}).get(record.key)
                self.abort(record, since=asked or self.state.now())
                continue
            metadata = record.execution.spec.metadata
            source = None
            if metadata.mode == self._recovered() and metadata.HasField("reference_execution"):
                ref = metadata.reference_execution
                source = ExecKey(ref.project, ref.domain, ref.name)
            run = self._run_of(record, source)
            if run is None:
                continue
            try:
                self._resume(run, record, phase)
            except Exception:  # one broken record must not keep the others (or the server) from going on
                log.exception("simulated propeller cannot resume %s", text(run.execution_id))
                for timer in run.timers:
                    timer.cancel()
                self.runs.pop(run.key, None)

    def _resume(self, run: Run, record: ExecutionRecord, phase: str) -> None:
        # Each step is due where it would have been: a step after the last report it follows.
        since = to_datetime(record.execution.closure.updated_at)
        if phase == "UNDEFINED":
            self._later(run, self._step(), self._queued, since=since)
            return
        if phase == "QUEUED":
            self._later(run, self._step(), self._running, since=since)
            return
        run.outputs[START_NODE] = run.inputs
        in_flight, last = self._resume_nodes(run)
        if phase == "SUCCEEDING":
            run.finishing = True
            uri = self._uri(run, END_NODE, "outputs.pb")
            self._later(run, self._step(), self._succeeded, uri, since=since)
        elif phase == "FAILING":
            run.finishing = True
            self._later(run, self._step(), self._failed, since=since)
        else:
            for node, stored in in_flight:
                self._resume_node(run, node, stored)
            # starts what became ready, or finishes the workflow, if that step had not been taken yet
            self._advance(run, since=max(last, since))

    def _resume_nodes(self, run: Run) -> tuple[list[tuple[NodeRun, Any]], datetime]:
        """Each node's status, inputs and outputs from its record: the nodes still in flight, and when
        a node last changed."""
        wire = self.state.wire
        table = self.state.table("node_executions")
        in_flight = []
        last = datetime.min.replace(tzinfo=self.state.now().tzinfo)
        for node in run.nodes.values():
            stored = table.get(NodeKey(run.key, node.node.id))
            if stored is None:
                continue  # not started: pending
            last = max(last, stored.updated_at)
            closure = stored.node.closure
            phase = wire.name_of("core.NodeExecution.Phase", closure.phase)
            node.inputs_uri = self._uri(run, node.node.id, "inputs.pb")
            node.inputs = self.state.get_literals(node.inputs_uri)
            if phase in ("SUCCEEDED", "RECOVERED", "SKIPPED"):
                node.status = "succeeded"
                uri = closure.output_uri or self._uri(run, node.node.id, "outputs.pb")
                run.outputs[node.node.id] = self.state.get_literals(uri)
            elif phase in ("FAILED", "TIMED_OUT", "ABORTED"):
                node.status = "failed"
                if run.failed is None:
                    run.failed = copy(closure.error)
            else:
                node.status = "running"
                in_flight.append((node, stored))
        return in_flight, last

    def _resume_node(self, run: Run, node: NodeRun, stored: Any) -> None:
        wire = self.state.wire
        closure = stored.node.closure
        if wire.name_of("core.NodeExecution.Phase", closure.phase) == "QUEUED":
            hit = self._cached(run, node)
            if hit is not None:
                self._later(run, self._step(), self._cache_hit, node, hit, since=stored.updated_at)
            else:
                self._later(run, self._step(), self._node_running, node, since=stored.updated_at)
            return
        ran = self._ran(closure)
        target = node.node.WhichOneof("target")
        if target == "task_node" and self._template(run, node) is not None:
            self._resume_attempt(run, node, stored)
        elif target == "gate_node" and node.node.gate_node.WhichOneof("condition") == "sleep":
            duration = node.node.gate_node.sleep.duration
            seconds = max(0.0, duration.seconds + duration.nanos / 1e9)
            self._later(run, seconds - ran, self._node_succeeded, node, wire.new("core.LiteralMap"))
        elif target == "gate_node":
            self._gate(run, node, since=stored.updated_at)  # its signal is found again, and waited on
        else:
            outputs = wire.new("core.LiteralMap")
            self._later(run, self.state.settings.node_seconds - ran, self._node_succeeded, node, outputs)

    def _ran(self, closure: Any) -> float:
        """Virtual seconds since a node or attempt started running (0 when it has not)."""
        if not closure.HasField("started_at"):
            return 0.0
        return max(0.0, (self.state.now() - to_datetime(closure.started_at)).total_seconds())

    def _resume_attempt(self, run: Run, node: NodeRun, stored: Any) -> None:
        wire = self.state.wire
        attempts = list(self.state.table("task_executions").scan(NodeKey(run.key, node.node.id)))
        if not attempts:
            self._later(run, self._step(), self._attempt, node, since=stored.updated_at)
            return
        latest = max(attempts, key=lambda a: a.key.retry_attempt)
        node.attempt = latest.key.retry_attempt
        closure = latest.task_execution.closure
        phase = wire.name_of("core.TaskExecution.Phase", closure.phase)
        since = latest.updated_at
        if phase in ("UNDEFINED", "QUEUED", "WAITING_FOR_RESOURCES", "INITIALIZING"):
            self._later(run, self._step(), self._task_running, node, since=since)
        elif phase == "RUNNING":
            ran, duration = self._ran(closure), self._duration(run, node)
            if latest.phase_version == 0:
                self._later(run, duration / 2 - ran, self._task_logs, node)
            self._later(run, duration - ran, self._task_finished, node)
        elif phase == "SUCCEEDED":
            outputs = self.state.get_literals(self._uri(run, node.node.id, f"{node.attempt}/outputs.pb"))
            metadata = self._populated(run, node)
            self._later(run, self._step(), self._node_succeeded, node, outputs, metadata, since=since)
        elif phase == "RETRYABLE_FAILED":
            node.attempt += 1
            self._later(run, self._step(), self._attempt, node, since=since)
        elif phase in ("FAILED", "ABORTED"):
            error = copy(closure.error)
            failed = "TIMED_OUT" if error.code == "TaskTimedOut" else "FAILED"
            self._later(run, self._step(), self._node_failed, node, failed, error, since=since)

    def _populated(self, run: Run, node: NodeRun) -> Any:
        """The node metadata of an attempt whose outputs the catalog took (None without a cache)."""
        template = self._template(run, node)
        if not cache.cacheable(template):
            return None
        entry = self.state.table("catalog").get(cache.catalog_key(template, node.inputs))
        if entry is None:
            return None
        metadata = self.state.wire.new("event.TaskNodeMetadata")
        metadata.cache_status = self.state.wire.number("core.CatalogCacheStatus", "CACHE_POPULATED")
        metadata.catalog_key.CopyFrom(cache.catalog_metadata(self.state, entry))
        return metadata

    def _recovered(self) -> int:
        return self.state.wire.number("admin.ExecutionMetadata.ExecutionMode", "RECOVERED")

    def _plan(self, record: ExecutionRecord) -> dict[str, str]:
        labels = record.execution.spec.labels.values
        return {name: labels[key] for name, key in self.keys.items() if key in labels}

    # -- reports ---------------------------------------------------------------------------------------
    def _workflow_event(self, run: Run, phase: str, **result: Any) -> None:
        wire = self.state.wire
        event = wire.new(
            "event.WorkflowExecutionEvent", execution_id=run.execution_id, producer_id=events.DEFAULT_PRODUCER
        )
        event.phase = wire.number("core.WorkflowExecution.Phase", phase)
        event.occurred_at.CopyFrom(stamp(self.state.now()))
        for name, value in result.items():
            if name == "error":
                event.error.CopyFrom(value)
            else:
                setattr(event, name, value)
        events.apply_workflow_event(self.state, event)

    def _node_id(self, run: Run, node_id: str) -> Any:
        return self.state.wire.new(
            "core.NodeExecutionIdentifier", node_id=node_id, execution_id=run.execution_id
        )

    def _node_event(self, run: Run, node_id: str, phase: str, name: str = "", **result: Any) -> None:
        wire = self.state.wire
        event = wire.new(
            "event.NodeExecutionEvent", id=self._node_id(run, node_id), producer_id=events.DEFAULT_PRODUCER
        )
        event.phase = wire.number("core.NodeExecution.Phase", phase)
        event.occurred_at.CopyFrom(stamp(self.state.now()))
        event.spec_node_id = node_id
        event.node_name = name or node_id
        for key, value in result.items():
            if isinstance(value, message.Message):
                getattr(event, key).CopyFrom(value)
            else:
                setattr(event, key, value)
        events.apply_node_event(self.state, event)

    def _task_event(self, run: Run, node: NodeRun, phase: str, version: int = 0, **result: Any) -> None:
        wire = self.state.wire
        template = self._template(run, node)
        event = wire.new(
            "event.TaskExecutionEvent", producer_id=events.DEFAULT_PRODUCER, retry_attempt=node.attempt
        )
        event.task_id.CopyFrom(template.id)
        event.parent_node_execution_id.CopyFrom(self._node_id(run, node.node.id))
        event.phase = wire.number("core.TaskExecution.Phase", phase)
        event.phase_version = version
        event.occurred_at.CopyFrom(stamp(self.state.now()))
        event.task_type = template.type
        event.input_uri = node.inputs_uri
        for key, value in result.items():
            if key == "error":
                event.error.CopyFrom(value)
            elif key == "logs":
                event.logs.extend(value)
            else:
                setattr(event, key, value)
        events.apply_task_event(self.state, event)

    def _error(self, code: str, text: str, kind: str = "USER") -> Any:
        wire = self.state.wire
        error = wire.new("core.ExecutionError", code=code, message=text)
        error.kind = wire.number("core.ExecutionError.ErrorKind", kind)
        error.timestamp.CopyFrom(stamp(self.state.now()))
        return error

    def _uri(self, run: Run, node_id: str, name: str) -> str:
        key = run.key
        return self.state.storage("propeller", key.project, key.domain, key.name, node_id, name)

    def _data(self, run: Run, node_id: str, name: str, literals_map: Any) -> str:
        return self.state.put_literals(self._uri(run, node_id, name), literals_map)

    # -- the workflow ---------------------------------------------------------------------------------------
    def _queued(self, run: Run) -> None:
        self._workflow_event(run, "QUEUED")
        self._later(run, self._step(), self._running)

    def _running(self, run: Run) -> None:
        self._workflow_event(run, "RUNNING")
        run.outputs[START_NODE] = run.inputs
        self._node_event(
            run, START_NODE, "SUCCEEDED", output_uri=self._data(run, START_NODE, "outputs.pb", run.inputs)
        )
        self._advance(run)

    def _advance(self, run: Run, since: datetime | None = None) -> None:
        for node in run.nodes.values():
            if node.status != "pending" or run.failed is not None:
                continue
            deps = run.upstream.get(node.node.id, [START_NODE])
            if all(
                d == START_NODE or run.nodes.get(d, NodeRun(None, "succeeded")).status == "succeeded"
                for d in deps
            ):
                node.status = "running"
                self._start_node(run, node)
        if run.finishing or any(n.status == "running" for n in run.nodes.values()):
            return
        run.finishing = True
        if run.failed is not None:
            self._later(run, self._step(), self._fail_workflow, since=since)
        elif all(n.status == "succeeded" for n in run.nodes.values()):
            self._later(run, self._step(), self._succeed_workflow, since=since)

    def _start_node(self, run: Run, node: NodeRun) -> None:
        wire = self.state.wire
        try:
            node.inputs = literals.bind(wire, node.node.inputs, run.outputs)
        except literals.UnboundError:
            node.inputs = wire.new("core.LiteralMap")
        node.inputs_uri = self._data(run, node.node.id, "inputs.pb", node.inputs)
        recovered = self._recovered_outputs(run, node.node.id)
        if recovered is not None:
            uri, outputs = recovered
            self._node_event(
                run,
                node.node.id,
                "RECOVERED",
                node.node.metadata.name,
                input_uri=node.inputs_uri,
                output_uri=uri,
            )
            node.status = "succeeded"
            run.outputs[node.node.id] = outputs
            self._later(run, self._step(), self._advance)
            return
        self._node_event(run, node.node.id, "QUEUED", node.node.metadata.name, input_uri=node.inputs_uri)
        hit = self._cached(run, node)
        if hit is not None:
            self._later(run, self._step(), self._cache_hit, node, hit)
            return
        self._later(run, self._step(), self._node_running, node)

    def _recovered_outputs(self, run: Run, node_id: str) -> tuple[str, Any] | None:
        if run.source is None:
            return None
        source = self.state.table("node_executions").get((run.source, node_id))
        phases = ("SUCCEEDED", "RECOVERED")
        if (
            source is None
            or self.state.wire.name_of("core.NodeExecution.Phase", source.node.closure.phase) not in phases
        ):
            return None
        uri = source.node.closure.output_uri
        return uri, self.state.get_literals(uri)

    def _template(self, run: Run, node: NodeRun) -> Any:
        return run.tasks.get(text(node.node.task_node.reference_id))

    def _node_running(self, run: Run, node: NodeRun) -> None:
        self._node_event(run, node.node.id, "RUNNING", node.node.metadata.name)
        target = node.node.WhichOneof("target")
        if target == "task_node" and self._template(run, node) is not None:
            self._attempt(run, node)
        elif target == "gate_node":
            self._gate(run, node)
        else:  # sub-workflows, branches: one step, outputs the downstream bindings can read
            self._later(
                run,
                self.state.settings.node_seconds,
                self._node_succeeded,
                node,
                self.state.wire.new("core.LiteralMap"),
            )

    # -- gate nodes ------------------------------------------------------------------------------------------
    def _gate(self, run: Run, node: NodeRun, since: datetime | None = None) -> None:
        gate = node.node.gate_node
        kind = gate.WhichOneof("condition")
        wire = self.state.wire
        if kind == "sleep":
            duration = gate.sleep.duration
            seconds = max(0.0, duration.seconds + duration.nanos / 1e9)
            self._later(run, seconds, self._node_succeeded, node, wire.new("core.LiteralMap"))
            return
        if kind not in ("signal", "approve"):
            error = self._error(
                "BadSpecificationError", "gateNode does not have a supported condition reference", "SYSTEM"
            )
            self._later(run, self._step(), self._node_failed, node, "FAILED", error, since=since)
            return
        if kind == "signal":
            signal_id, literal_type = gate.signal.signal_id, gate.signal.type
        else:
            signal_id = gate.approve.signal_id
            literal_type = wire.new("core.LiteralType", simple=wire.number("core.SimpleType", "BOOLEAN"))
        ident = wire.new("core.SignalIdentifier", signal_id=signal_id, execution_id=run.execution_id)
        try:
            record = signals.get_or_create(self.state, ident, literal_type)
        except Violation as refused:  # a signal of that id and another type: propeller's call fails
            rule = self.state.rules.rule(refused.rule_id)
            reason = render(str(rule.params.get("message", rule.description)), refused.values)
            error = self._error(
                "RuntimeExecutionError", f"failed to get or create signal: {reason}", "SYSTEM"
            )
            self._later(run, self._step(), self._node_failed, node, "FAILED", error, since=since)
            return
        run.waiting[signal_id] = node
        if record.signal.HasField("value"):  # set before the gate was reached (or before a restart)
            set_at = max(since, record.updated_at) if since is not None else None
            self._later(run, self._step(), self._gate_open, node, signal_id, since=set_at)

    def signalled(self, key: SignalKey) -> None:
        """SetSignal gave ``key`` a value: the gate waiting on it opens at the propeller's next round."""
        run = self.runs.get(key.execution)
        node = run.waiting.get(key.signal_id) if run is not None else None
        if run is None or node is None or run.done:
            return
        self._later(run, self._step(), self._gate_open, node, key.signal_id)

    def _gate_open(self, run: Run, node: NodeRun, signal_id: str) -> None:
        if run.waiting.get(signal_id) is not node or node.status != "running":
            return  # already opened by an earlier round
        record = self.state.table("signals").get(SignalKey(run.key, signal_id))
        if record is None or not record.signal.HasField("value"):
            return
        del run.waiting[signal_id]
        wire = self.state.wire
        value = record.signal.value
        gate = node.node.gate_node
        if gate.WhichOneof("condition") == "signal":
            outputs = wire.new("core.LiteralMap")
            outputs.literals[gate.signal.output_variable_name].CopyFrom(value)
            self._node_succeeded(run, node, outputs)
            return
        scalar = value.scalar if value.WhichOneof("value") == "scalar" else None
        if (
            scalar is None
            or scalar.WhichOneof("value") != "primitive"
            or scalar.primitive.WhichOneof("value") != "boolean"
        ):
            error = self._error(
                "RuntimeExecutionError",
                f"received a non-boolean approve signal value [{text(value)}]",
                "UNKNOWN",
            )
            self._node_failed(run, node, "FAILED", error)
        elif not scalar.primitive.boolean:
            error = self._error(
                "ReceivedRejectSignal", "received a reject signal to disapprove the node input values"
            )
            self._node_failed(run, node, "FAILED", error)
        else:
            self._node_succeeded(run, node, node.inputs)

    # -- the catalog ---------------------------------------------------------------------------------------
    def _cached(self, run: Run, node: NodeRun) -> CatalogRecord | None:
        if node.node.WhichOneof("target") != "task_node" or run.overwrite_cache:
            return None
        template = self._template(run, node)
        if template is None or not cache.cacheable(template):
            return None
        return self.state.table("catalog").get(cache.catalog_key(template, node.inputs))

    def _cache_hit(self, run: Run, node: NodeRun, entry: CatalogRecord) -> None:
        metadata = self.state.wire.new("event.TaskNodeMetadata")
        metadata.cache_status = self.state.wire.number("core.CatalogCacheStatus", "CACHE_HIT")
        metadata.catalog_key.CopyFrom(cache.catalog_metadata(self.state, entry))
        self._node_succeeded(run, node, self.state.get_literals(entry.outputs_uri), metadata)

    def _populate(self, run: Run, node: NodeRun, outputs_uri: str) -> Any:
        """Cache an attempt's outputs; the node metadata that says so (None for a task without cache)."""
        template = self._template(run, node)
        if not cache.cacheable(template):
            return None
        state = self.state
        key = cache.catalog_key(template, node.inputs)
        source = state.wire.new("core.TaskExecutionIdentifier", retry_attempt=node.attempt)
        source.task_id.CopyFrom(template.id)
        source.node_execution_id.CopyFrom(self._node_id(run, node.node.id))
        now = state.now()
        entry = CatalogRecord(
            row=state.store.next_row(),
            created_at=now,
            updated_at=now,
            key=key,
            artifact_id=str(uuid.uuid4()),
            outputs_uri=outputs_uri,
            source=source,
        )
        table = state.table("catalog")
        if table.get(key) is not None:  # overwrite_cache: the new artifact replaces the old one
            table.delete(key)
        table.insert(key, (key.project, key.domain), entry)
        metadata = state.wire.new("event.TaskNodeMetadata")
        metadata.cache_status = state.wire.number("core.CatalogCacheStatus", "CACHE_POPULATED")
        metadata.catalog_key.CopyFrom(cache.catalog_metadata(state, entry))
        return metadata

    def _attempt(self, run: Run, node: NodeRun) -> None:
        self._task_event(run, node, "QUEUED")
        self._later(run, self._step(), self._task_running, node)

    def _duration(self, run: Run, node: NodeRun) -> float:
        configured = self._template(run, node).config.get(self.keys["duration"], "")
        try:
            return max(0.0, float(configured)) if configured else self.state.settings.node_seconds
        except ValueError:
            return self.state.settings.node_seconds

    def _task_running(self, run: Run, node: NodeRun) -> None:
        self._task_event(run, node, "RUNNING")
        duration = self._duration(run, node)
        self._later(run, duration / 2, self._task_logs, node)
        self._later(run, duration, self._task_finished, node)

    def _task_logs(self, run: Run, node: NodeRun) -> None:
        key = run.key
        parts = (key.project, key.domain, key.name, node.node.id, str(node.attempt))
        uri = "/".join([self.state.config["log_prefix"], *parts])
        link = self.state.wire.new("core.TaskLog", uri=uri, name="protoconform (simulated)")
        self._task_event(run, node, "RUNNING", version=1, logs=[link])

    def _failure(self, run: Run, node: NodeRun) -> str:
        """'' when this attempt succeeds, else 'error' or 'timeout'."""
        config = self._template(run, node).config
        mode = config.get(self.keys["fail"], "")
        attempts = config.get(self.keys["fail_attempts"], "")
        if run.plan.get("fail_node") == node.node.id:
            mode = run.plan.get("fail_mode", "error") or "error"
            attempts = run.plan.get("fail_attempts", "")
        if not mode:
            return ""
        try:
            limit = int(attempts) if attempts else 0
        except ValueError:
            limit = 0
        if limit and node.attempt >= limit:
            return ""
        return "timeout" if mode.lower() == "timeout" else "error"

    def _retries(self, run: Run, node: NodeRun) -> int:
        if node.node.metadata.HasField("retries"):
            return node.node.metadata.retries.retries
        return self._template(run, node).metadata.retries.retries

    def _task_finished(self, run: Run, node: NodeRun) -> None:
        failure = self._failure(run, node)
        if not failure:
            template = self._template(run, node)
            outputs = literals.compute_outputs(self.state.wire, template, node.inputs, self.keys["op"])
            uri = self._data(run, node.node.id, f"{node.attempt}/outputs.pb", outputs)
            self._task_event(run, node, "SUCCEEDED", output_uri=uri)
            metadata = self._populate(run, node, uri)
            self._later(run, self._step(), self._node_succeeded, node, outputs, metadata)
            return
        if failure == "timeout":
            error = self._error(
                "TaskTimedOut", f"task of node {node.node.id} ran past its timeout (simulated)"
            )
            self._task_event(run, node, "FAILED", error=error)
            self._later(run, self._step(), self._node_failed, node, "TIMED_OUT", error)
            return
        error = self._error(
            "USER:Failed", f"attempt {node.attempt} of node {node.node.id} failed (simulated)"
        )
        if node.attempt < self._retries(run, node):
            self._task_event(run, node, "RETRYABLE_FAILED", error=error)
            node.attempt += 1
            self._later(run, self._step(), self._attempt, node)
            return
        self._task_event(run, node, "FAILED", error=error)
        self._later(run, self._step(), self._node_failed, node, "FAILED", error)

    def _node_succeeded(self, run: Run, node: NodeRun, outputs: Any, metadata: Any = None) -> None:
        uri = self._data(run, node.node.id, "outputs.pb", outputs)
        extra = {"task_node_metadata": metadata} if metadata is not None else {}
        self._node_event(run, node.node.id, "SUCCEEDED", node.node.metadata.name, output_uri=uri, **extra)
        node.status = "succeeded"
        run.outputs[node.node.id] = outputs
        self._advance(run)

    def _node_failed(self, run: Run, node: NodeRun, phase: str, error: Any) -> None:
        self._node_event(run, node.node.id, phase, node.node.metadata.name, error=error)
        node.status = "failed"
        run.failed = error
        self._advance(run)

    def _succeed_workflow(self, run: Run) -> None:
        wire = self.state.wire
        try:
            outputs = literals.bind(wire, run.template.outputs, run.outputs)
        except literals.UnboundError:
            outputs = wire.new("core.LiteralMap")
        uri = self._data(run, END_NODE, "outputs.pb", outputs)
        self._node_event(run, END_NODE, "SUCCEEDED", input_uri=uri, output_uri=uri)
        self._workflow_event(run, "SUCCEEDING")
        self._later(run, self._step(), self._succeeded, uri)

    def _succeeded(self, run: Run, uri: str) -> None:
        self._workflow_event(run, "SUCCEEDED", output_uri=uri)
        self._finish(run)

    def _fail_workflow(self, run: Run) -> None:
        self._workflow_event(run, "FAILING")
        self._later(run, self._step(), self._failed)

    def _failed(self, run: Run) -> None:
        self._workflow_event(run, "FAILED", error=run.failed)
        self._finish(run)

    def _finish(self, run: Run) -> None:
        run.done = True
        self.runs.pop(run.key, None)

    # -- aborting ---------------------------------------------------------------------------------------
    def abort(self, record: ExecutionRecord, since: datetime | None = None) -> None:
        run = self.runs.get(record.key)
        if run is None:
            if self.enabled:  # nothing left to run (e.g. created before a reset): report the abort alone
                run = Run(
                    record.key,
                    copy(record.execution.id),
                    None,
                    {},
                    {},
                    self.state.wire.new("core.LiteralMap"),
                    {},
                )
            else:
                return
        for timer in run.timers:
            timer.cancel()
        run.timers.clear()
        run.done = True
        if since is None:  # when it was asked: a restart aborts it a step after that, as it would have
            aborting = dict(self.state.store.get_meta("aborting", {}))
            aborting[record.key] = since = self.state.now()
            self.state.store.set_meta("aborting", aborting)
        self._later(run, self._step(), self._abort_now, final=True, since=since)

    def _abort_now(self, run: Run) -> None:
        table = self.state.table("node_executions")
        terminal_nodes = self.state.rules.state_machines["node"].terminal
        for node in list(table.scan(run.key)):
            if self.state.wire.name_of("core.NodeExecution.Phase", node.node.closure.phase) in terminal_nodes:
                continue
            for attempt in list(self.state.table("task_executions").scan(node.key)):
                if not events.terminal(
                    self.state, "task", attempt.task_execution.closure.phase, "core.TaskExecution.Phase"
                ):
                    event = self.state.wire.new(
                        "event.TaskExecutionEvent",
                        task_id=attempt.task_execution.id.task_id,
                        parent_node_execution_id=attempt.task_execution.id.node_execution_id,
                        retry_attempt=attempt.task_execution.id.retry_attempt,
                        producer_id=events.DEFAULT_PRODUCER,
                    )
                    event.phase = self.state.wire.number("core.TaskExecution.Phase", "ABORTED")
                    event.occurred_at.CopyFrom(stamp(self.state.now()))
                    events.apply_task_event(self.state, event)
            self._node_event(run, node.key.node_id, "ABORTED")
        self._workflow_event(run, "ABORTED")
        self.runs.pop(run.key, None)
        aborting = dict(self.state.store.get_meta("aborting", {}))
        if aborting.pop(run.key, None) is not None:
            self.state.store.set_meta("aborting", aborting)
