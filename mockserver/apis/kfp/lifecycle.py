"""Runs move on the shared virtual clock, the way the persistence agent reports them.

Timeline of a run (virtual seconds, see :class:`Timings`; ``--kfp-task-seconds``
changes the task duration):

- at creation the status is ``""`` (the Argo workflow has no phase yet);
- ``pending_after`` later it is ``Pending``; ``running_after`` after that ``Running``;
- every task of the pipeline graph (DAG tasks, steps, nested DAGs expanded) runs
  for ``task_seconds`` once the tasks it depends on have succeeded;
- when no task runs and none can start, the run ends ``Succeeded`` if every
  task succeeded, else ``Failed`` (``Error`` if a task ended in Error).  Tasks
  whose dependencies failed never start and are absent from the workflow status.

TerminateRun sets ``Terminating`` (and ``spec.activeDeadlineSeconds: 0`` in the
workflow); ``terminate_seconds`` later running tasks are stopped and the run is
``Failed``.  RetryRun (from ``Failed``/``Error``) keeps the tasks that
succeeded, forgets the others, and the run is ``Running`` again.

For v1 runs ``pipeline_runtime.workflow_manifest`` is the Argo workflow JSON with
a ``status`` whose ``nodes`` follow the tasks (id, name, displayName, type,
templateName, phase, boundaryID, children, startedAt, finishedAt, outputs).  A
finished task has its declared output artifacts plus ``main-logs`` in
``outputs.artifacts``, each with an ``s3.key`` under which ReadArtifact finds a
gzipped tar.  v2 (pipeline IR) runs go through the same statuses but keep an
empty runtime manifest, as the 1.8.5 server's v2 runs do.

After a restart
---------------
With a durable store (``--store sqlite:PATH``) each run keeps its pending steps
in ``RunRecord.due`` (virtual time due, step, arguments); timers are not stored,
so :meth:`Lifecycle.resume` re-arms them when the server starts on the file.  In
KFP the Argo workflow of a run goes on in the cluster while the API server
restarts and the persistence agent keeps reporting it, so runs in flight carry
on from where they stood; the virtual clock does not move while the server is
down, so a step due 3 s before the restart is due 3 s after it.

Asking for a failure
--------------------
A run fails when its manifest asks for it:

- the workflow annotation ``protoconform.io/fail-task: <task>`` (in
  ``metadata.annotations`` of the Argo workflow), or
- a declared workflow parameter ``protoconform-fail-task`` whose value names the
  task (so one stored pipeline gives failing and succeeding runs:
  ``parameters: [{name: protoconform-fail-task, value: train}]``), or
- for v2 manifests, ``runtime_config.parameters["protoconform-fail-task"]``.

``<task>`` is a task name (or template name); a value naming no task makes the
first task that finishes fail.  ``protoconform.io/fail-phase: Error`` ends the
task (and the run) in ``Error`` instead of ``Failed``.  The task fails on its
first attempt only, so a RetryRun then succeeds; ``protoconform.io/fail-attempts:
N`` makes the first N attempts fail.
"""

from __future__ import annotations

import copy
import json
import random
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from protoconform.mockserver.apis.kfp import artifacts, templates
from protoconform.mockserver.clock import Timer

if TYPE_CHECKING:
    from protoconform.mockserver.apis.kfp.state import RunRecord, State

FAIL_TASK_ANNOTATION = "protoconform.io/fail-task"
FAIL_PHASE_ANNOTATION = "protoconform.io/fail-phase"
FAIL_ATTEMPTS_ANNOTATION = "protoconform.io/fail-attempts"
FAIL_TASK_PARAMETER = "protoconform-fail-task"
RUN_ID_LABEL = "pipeline/runid"
MAIN_LOGS = "main-logs"
TERMINATED = "terminated: the run's deadline was set to 0"

RUNNING, SUCCEEDED, FAILED, ERROR = "Running", "Succeeded", "Failed", "Error"
FINISHED = (SUCCEEDED, FAILED, ERROR, "Skipped")


@dataclass(frozen=True)
class Timings:
    pending_after: float = 1.0
    running_after: float = 1.0
    task_seconds: float = 5.0
    terminate_seconds: float = 1.0


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def requested_failure(template: templates.Template, runtime_parameters: dict[str, str]) -> dict[str, Any]:
    """The failure a manifest asks for (see the module docstring), or {}."""
    body = template.body
    annotations = ((body.get("metadata") or {}).get("annotations") or {}) if template.version == "v1" else {}
    task = str(annotations.get(FAIL_TASK_ANNOTATION, "") or "")
    if not task and template.version == "v1":
        task = templates.parameter_value(body, FAIL_TASK_PARAMETER)
    if not task:
        task = runtime_parameters.get(FAIL_TASK_PARAMETER, "")
    if not task:
        return {}
    phase = ERROR if str(annotations.get(FAIL_PHASE_ANNOTATION, "")).lower() == "error" else FAILED
    try:
        attempts = max(1, int(annotations.get(FAIL_ATTEMPTS_ANNOTATION, 1)))
    except (TypeError, ValueError):
        attempts = 1
    return {"task": task, "phase": phase, "attempts": attempts}


def _derived(phases: list[str]) -> str:
    """A DAG's phase from its children's."""
    if all(p == SUCCEEDED for p in phases):  # an empty DAG has nothing to wait for
        return SUCCEEDED
    if RUNNING in phases:
        return RUNNING
    if FAILED in phases or ERROR in phases:
        return FAILED if FAILED in phases else ERROR
    return RUNNING if any(phases) else ""


def _spans(record: RunRecord, graph: templates.Graph) -> dict[str, tuple[str | None, str | None]]:
    """(first start, last finish) of the tasks below each node (ISO strings compare in time order)."""
    spans: dict[str, tuple[str | None, str | None]] = {}
    for key in reversed(list(graph.nodes)):
        node = graph.nodes[key]
        if node.leaf:
            entry = record.phases.get(key, {})
            spans[key] = (entry.get("startedAt"), entry.get("finishedAt"))
            continue
        starts = [spans[c][0] for c in node.children if spans[c][0]]
        ends = [spans[c][1] for c in node.children if spans[c][1]]
        spans[key] = (min(starts) if starts else None, max(ends) if ends else None)
    return spans


# The steps a stored ``due`` entry may name (a loaded record names nothing else).
_STEPS = frozenset({"_pending", "_begin", "_finish_task", "_stopped"})


class Lifecycle:
    def __init__(self, state: State, timings: Timings) -> None:
        self.state = state
        self.timings = timings
        self._timers: dict[str, list[Timer]] = {}
        self._graphs: dict[str, templates.Graph] = {}
        self._machine = state.rules.state_machines["run"]

    # -- scheduling --------------------------------------------------------------------
    def _later(self, record: RunRecord, delay: float, step: Any, *args: Any) -> None:
        """Run ``step(record, *args)`` ``delay`` virtual seconds from now.

        The step is noted in ``record.due`` (virtual time, method name, args) so a
        restarted server re-arms it (:meth:`resume`); timers themselves are not stored."""
        entry = [self.state.clock.elapsed() + max(0.0, delay), step.__name__, list(args)]
        record.due.append(entry)
        self._arm(record.id, entry)

    def _arm(self, run_id: str, entry: list[Any]) -> None:
        due, name, args = entry
        step = getattr(self, name)

        def fire() -> None:
            current = self.state.store.get_run(run_id)
            if current is None:  # deleted runs stop moving
                return
            current.due = [e for e in current.due if e is not entry]
            step(current, *args)
            self.state.store.update_run(current)  # the step is done even if it changed nothing else

        timers = [t for t in self._timers.get(run_id, []) if not t.cancelled]
        timers.append(self.state.clock.call_later(due - self.state.clock.elapsed(), fire))
        self._timers[run_id] = timers

    def resume(self) -> int:
        """After a restart, re-arm every pending step of every run where it stood; the number re-armed.

        In KFP the Argo workflow of a run goes on in the cluster while the API
        server restarts, and the persistence agent keeps reporting its status,
        so in-flight runs carry on from where they were.  The virtual clock is
        restored too, so a step due in 3 s before the restart is due in 3 s after."""
        armed = 0
        for record in self.state.store.runs():
            for entry in record.due:
                if entry[1] in _STEPS:
                    self._arm(record.id, entry)
                    armed += 1
        return armed

    def forget(self, run_id: str, deleted: bool = False) -> None:
        """Stop moving a run (its timers are cancelled); a deleted run's cached graph goes too."""
        for timer in self._timers.pop(run_id, []):
            timer.cancel()
        record = self.state.store.get_run(run_id)
        if record is not None:
            record.due = []
        if deleted:
            self._graphs.pop(run_id, None)

    def _move(self, record: RunRecord, action: str) -> bool:
        """Apply a state machine edge from specs/kfp; a stale timer's edge is dropped."""
        target = self._machine.target(action, record.run.status)
        if target is None:
            return False
        record.run.status = target
        return True

    # -- creation --------------------------------------------------------------------
    def prepare(self, record: RunRecord, template: templates.Template) -> None:
        """Set up the runtime workflow and graph of a new run (before it is stored)."""
        if template.version == "v1":
            workflow = copy.deepcopy(template.body)
            metadata = workflow["metadata"] = workflow.get("metadata") or {}  # JSON null = absent
            if not metadata.get("name"):
                suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                metadata["name"] = f"{metadata.get('generateName') or 'run-'}{suffix}"
            metadata["labels"] = {**(metadata.get("labels") or {}), RUN_ID_LABEL: record.id}
            metadata["creationTimestamp"] = iso(record.run.created_at.seconds)
            workflow["spec"] = workflow.get("spec") or {}
            workflow["spec"]["serviceAccountName"] = record.run.service_account
            workflow["status"] = {}
            record.workflow = workflow
            record.graph = templates.workflow_graph(workflow).to_json()
        else:
            record.workflow = None
            record.graph = templates.ir_graph(template.body).to_json()
        record.template_version = template.version

    def start(self, record: RunRecord) -> None:
        self._later(record, self.timings.pending_after, self._pending)

    def _pending(self, record: RunRecord) -> None:
        if self._move(record, "persistence-pending"):
            if record.workflow is not None:
                record.workflow["status"]["phase"] = "Pending"
            self.state.store.update_run(record)
            self._later(record, self.timings.running_after, self._begin)

    def _begin(self, record: RunRecord) -> None:
        if self._move(record, "persistence-running"):
            self._set_workflow(record, phase=RUNNING, startedAt=iso(self.state.now_seconds()))
            self._advance(record)

    # -- running tasks ---------------------------------------------------------------
    def _graph(self, record: RunRecord) -> templates.Graph:
        graph = self._graphs.get(record.id)
        if graph is None:  # the record keeps plain JSON; the parsed graph is cached per run
            graph = self._graphs[record.id] = templates.Graph.from_json(record.graph)
        return graph

    def _phases(self, record: RunRecord, graph: templates.Graph) -> dict[str, str]:
        """Every node's phase: a task's own, a DAG's derived from its children ("" = not started)."""
        result: dict[str, str] = {}
        for key in reversed(list(graph.nodes)):  # children come after their parent
            node = graph.nodes[key]
            if node.leaf:
                result[key] = record.phases.get(key, {}).get("phase", "")
            else:
                result[key] = _derived([result[child] for child in node.children])
        return result

    def _ready(
        self, record: RunRecord, graph: templates.Graph, leaf: templates.GraphNode, phases: dict[str, str]
    ) -> bool:
        if leaf.key in record.phases:
            return False
        return all(
            phases[dep] == SUCCEEDED for node in [leaf, *graph.ancestors(leaf.key)] for dep in node.deps
        )

    def _advance(self, record: RunRecord) -> None:
        graph = self._graph(record)
        phases = self._phases(record, graph)
        now = self.state.now_seconds()
        started = False
        for leaf in graph.leaves():
            # Starting a task changes no Succeeded phase, so one snapshot serves the whole pass.
            if self._ready(record, graph, leaf, phases):
                record.phases[leaf.key] = {"phase": RUNNING, "startedAt": iso(now), "finishedAt": None}
                self._later(record, self.timings.task_seconds, self._finish_task, leaf.key, record.attempt)
                started = True
        running = any(p.get("phase") == RUNNING for p in record.phases.values())
        if not started and not running:
            self._complete(record, graph)
        self._render(record, graph)
        self.state.store.update_run(record)

    def _fails(self, record: RunRecord, graph: templates.Graph, key: str) -> bool:
        failure = record.failure
        if not failure or record.attempt >= failure["attempts"]:
            return False
        wanted = failure["task"]
        names = {(n.display_name, n.template, n.key) for n in graph.leaves()}
        if any(wanted in triple for triple in names):
            node = graph.nodes[key]
            return wanted in (node.display_name, node.template, node.key)
        # No task has that name: the first task to finish fails.
        return not any(p.get("phase") in (FAILED, ERROR) for p in record.phases.values())

    def _finish_task(self, record: RunRecord, key: str, attempt: int) -> None:
        entry = record.phases.get(key)
        if entry is None or entry.get("phase") != RUNNING or attempt != record.attempt:
            return
        if record.run.status != RUNNING:
            return
        graph = self._graph(record)
        now = self.state.now_seconds()
        if self._fails(record, graph, key):
            entry.update(phase=record.failure["phase"], message=f"failed as asked by {FAIL_TASK_ANNOTATION}")
        else:
            entry["phase"] = SUCCEEDED
        entry["finishedAt"] = iso(now)
        self._write_artifacts(record, graph, key, entry["phase"])
        self._advance(record)

    def _complete(self, record: RunRecord, graph: templates.Graph) -> None:
        phases = [record.phases.get(leaf.key, {}).get("phase", "") for leaf in graph.leaves()]
        if all(p == SUCCEEDED for p in phases):
            action, phase = "persistence-succeeded", SUCCEEDED
        elif ERROR in phases:
            action, phase = "persistence-error", ERROR
        else:
            action, phase = "persistence-failed", FAILED
        if self._move(record, action):
            self._timers.pop(record.id, None)  # every timer of the run has fired
            now = self.state.now_seconds()
            record.run.finished_at.seconds = now
            self._set_workflow(record, phase=phase, finishedAt=iso(now))

    def _write_artifacts(self, record: RunRecord, graph: templates.Graph, key: str, phase: str) -> None:
        if record.workflow is None:
            return
        node = graph.nodes[key]
        name = record.workflow["metadata"]["name"]
        node_id = templates.node_id(name, key)
        outputs = []
        for artifact_name, path in [*node.artifacts, (MAIN_LOGS, "")]:
            filename, data = artifacts.content(node.display_name, artifact_name, path, phase, record.attempt)
            object_key = artifacts.object_key(record.id, node_id, artifact_name)
            self.state.store.put_object(object_key, artifacts.tgz(filename, data, self.state.now_seconds()))
            entry: dict[str, Any] = {"name": artifact_name, "s3": {"key": object_key}}
            if path:
                entry["path"] = path
            if artifact_name == MAIN_LOGS:
                entry["archiveLogs"] = True
            outputs.append(entry)
        record.phases[key]["outputs"] = {"artifacts": outputs}

    # -- terminate and retry -----------------------------------------------------------
    def terminate(self, record: RunRecord) -> None:
        self.forget(record.id)
        record.run.status = "Terminating"
        if record.workflow is not None:
            record.workflow.setdefault("spec", {})["activeDeadlineSeconds"] = 0
        self.state.store.update_run(record)
        self._later(record, self.timings.terminate_seconds, self._stopped)

    def _stopped(self, record: RunRecord) -> None:
        if not self._move(record, "persistence-stopped"):
            return
        self._timers.pop(record.id, None)
        now = self.state.now_seconds()
        for entry in record.phases.values():
            if entry.get("phase") == RUNNING:
                entry.update(phase=FAILED, finishedAt=iso(now), message=TERMINATED)
        record.run.finished_at.seconds = now
        self._set_workflow(record, phase=FAILED, finishedAt=iso(now), message="Terminated by TerminateRun")
        self._render(record, self._graph(record))
        self.state.store.update_run(record)

    def retry(self, record: RunRecord) -> None:
        self.forget(record.id)
        record.attempt += 1
        record.phases = {k: v for k, v in record.phases.items() if v.get("phase") == SUCCEEDED}
        record.run.status = RUNNING
        record.run.finished_at.seconds = 0
        if record.workflow is not None:
            record.workflow.get("spec", {}).pop("activeDeadlineSeconds", None)
            status = record.workflow["status"]
            status.pop("message", None)
            status["finishedAt"] = None
            status.setdefault("startedAt", iso(self.state.now_seconds()))
        self._set_workflow(record, phase=RUNNING)
        self._advance(record)

    # -- the runtime workflow ------------------------------------------------------------
    def _set_workflow(self, record: RunRecord, **fields: Any) -> None:
        if record.workflow is not None:
            record.workflow["status"].update(fields)

    def _render(self, record: RunRecord, graph: templates.Graph) -> None:
        """Rebuild ``status.nodes`` from the task phases."""
        if record.workflow is None:
            return
        name = record.workflow["metadata"]["name"]
        phases = self._phases(record, graph)
        spans = _spans(record, graph)
        nodes: dict[str, dict[str, Any]] = {}
        for key, node in graph.nodes.items():
            phase = phases[key]
            if not phase:
                continue
            node_id = templates.node_id(name, key)
            item: dict[str, Any] = {
                "id": node_id,
                "name": templates.node_name(name, key),
                "displayName": node.display_name if key else name,
                "type": node.type,
                "templateName": node.template,
                "phase": phase,
            }
            if node.parent is not None:
                item["boundaryID"] = templates.node_id(name, node.parent)
            if node.leaf:
                entry = record.phases[key]
                item["startedAt"], item["finishedAt"] = entry["startedAt"], entry["finishedAt"]
                if entry.get("message"):
                    item["message"] = entry["message"]
                if "outputs" in entry:
                    item["outputs"] = entry["outputs"]
            else:
                start, end = spans[key]
                item["startedAt"] = start
                item["finishedAt"] = end if phase in FINISHED else None
            children = [templates.node_id(name, c) for c in node.children if phases[c]]
            if children:
                item["children"] = children
            nodes[node_id] = item
        record.workflow["status"]["nodes"] = nodes

    def runtime_manifest(self, record: RunRecord) -> str:
        if record.workflow is None:
            return ""
        return json.dumps(record.workflow, separators=(",", ":"))
