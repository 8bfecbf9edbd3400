"""The KFP run machine: a Kubeflow Pipelines v1beta1 run's lifecycle, storage state and metrics.

Generic parts come from specs/kfp: the ``run`` state machine (its RPC actions
TerminateRun and RetryRun, its automatic workflow edges), the refusal codes,
the not-found rules, the metric name pattern and node id limits.  What the
machine remembers on top: whether a run is archived, which metrics were
accepted (the first value of a (node, name) pair stays), whether it was deleted.
Every run it reads must also show its progress consistently (:func:`progress_problem`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import rule
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import expect_codes, fail
from protoconform.conformance.models.kfp.requests import create_request, delete_run
from protoconform.conformance.models.machine import LifecycleMachine, Tracked
from protoconform.specs.rules import Rule, StateMachine

METRIC_NAMES = ("accuracy", "loss", "f1-score")
NODE_IDS = ("node-a", "node-b")
# (task, phase) the mock is asked to fail, per creation variant: none, the task, the task in Error
FAILURES: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("main", ""),
    ("main", "Error"),
)


# Argo node phases of work that is over and went well (a skipped or omitted step is not a failure).
DONE_WELL = ("Succeeded", "Skipped", "Omitted")
SUCCEEDED = "Succeeded"


def reported_states(machine: StateMachine, calls: list[str]) -> set[str]:
    """The run statuses the workflow's own phase gives (targets of the edges no RPC takes)."""
    return {
        to for action, edges in machine.transitions.items() if action not in calls for to in edges.values()
    }


def progress_problem(rule: Rule, reported: set[str], detail: Any) -> tuple[str, str] | None:
    """``(expected, actual)`` when a RunDetail shows its progress inconsistently (the lifecycle rule):
    finished_at is set exactly when the status is a finished one; for a v1 run, the runtime workflow
    (JSON) has the status as its phase whenever that status came from the workflow, and a Succeeded
    run's workflow lists its nodes, all done."""
    run = detail.run
    finished = run.status in rule.params["finished"]
    if finished != bool(run.finished_at.seconds):
        wanted = "set" if finished else "at the epoch"
        return f"run.finished_at {wanted} while status is {run.status or '(empty)'}", str(
            run.finished_at.seconds
        )
    text = detail.pipeline_runtime.workflow_manifest
    if not text or run.pipeline_spec.pipeline_manifest:
        return None  # pipeline IR runs carry no runtime workflow
    try:
        workflow = json.loads(text)
    except ValueError:
        workflow = None
    if not isinstance(workflow, dict):
        return "pipeline_runtime.workflow_manifest: a JSON workflow", text[:80]
    status = workflow.get("status") or {}
    phase = status.get("phase") or ""
    if run.status in reported and phase != run.status:
        return f"workflow status.phase {run.status} as the run's status", phase or "(none)"
    if run.status == SUCCEEDED:
        nodes = status.get("nodes") or {}
        phases = sorted({str(n.get("phase")) for n in nodes.values() if isinstance(n, dict)})
        if not nodes or not set(phases) <= set(DONE_WELL):
            return f"workflow status.nodes all {' or '.join(DONE_WELL)}", ", ".join(phases) or "no nodes"
    return None


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten, ``rare`` otherwise."""
    return st.integers(0, 9).flatmap(lambda i: rare if i == 0 else usual)


class RunMachine(LifecycleMachine):
    MACHINE = "run"
    SERVICE = "RunService"
    ID_FIELD = "run_id"
    READ = "RunService.GetRun"
    CREATE_RULE = "kfp.runs.create.initial-state"
    PROGRESS_RULE = "kfp.runs.lifecycle.progress"
    DOMAIN_RULE = "kfp.runs.output.status-domain"
    SETTLE_STEP = 0.5

    STORAGE_RULE: ClassVar[str] = "kfp.runs.archive.idempotent"
    STORAGE_DOMAIN_RULE: ClassVar[str] = "kfp.runs.output.storage-state-domain"
    FIELDS_RULE: ClassVar[str] = "kfp.runs.output.run-fields"
    METRICS_VISIBLE_RULE: ClassVar[str] = "kfp.runs.metrics.visible"

    # -- entity ---------------------------------------------------------------------
    VARIANTS = 3  # a run that succeeds, one that fails, one that ends in Error

    def create_variant(self, variant: int) -> Tracked:
        name = self.env.unique("run")
        request = create_request(self.env.rules, name, *FAILURES[variant])
        reply = self.env.rpc("RunService.CreateRun", request)
        expect_codes(reply, {"OK"}, self.CREATE_RULE, "creating a run from the example workflow")
        run = reply.response.run
        if run.name != name:
            raise fail(self.CREATE_RULE, reply, f"run.name {name!r}", repr(run.name))
        entity = self.track(run.id, archived=False, metrics={})
        self.check_run(entity, reply, run)
        self.check_state(entity, reply, run.status)
        return entity

    def read(self, entity: Tracked) -> tuple[Reply, str | None]:
        reply = self.env.rpc(self.READ, {"run_id": entity.key})
        return reply, reply.response.run.status if reply.ok else None

    def after_read(self, entity: Tracked, reply: Reply) -> None:
        self.check_run(entity, reply, reply.response.run)

    def delete(self, entity: Tracked) -> None:
        delete_run(self.env, entity.key)

    # -- what a run must show -------------------------------------------------------------
    def check_state(self, entity: Tracked, reply: Reply, state: str) -> None:
        """Besides the state machine: the status is one of its states, and the run's progress
        (finished_at, the runtime workflow) agrees with it."""
        super().check_state(entity, reply, state)
        self.env.covered(self.DOMAIN_RULE)
        detail = reply.response
        if not reply.ok or not detail.HasField("run"):
            return
        rule = self.env.rule(self.PROGRESS_RULE)
        problem = progress_problem(
            rule, reported_states(self.lifecycle.machine, self.lifecycle.calls), detail
        )
        if problem is not None:
            raise fail(rule, reply, *problem)
        self.env.covered(rule.id)

    def check_run(self, entity: Tracked, reply: Reply, run: Any) -> None:
        if not run.HasField("created_at") or run.created_at.seconds == 0:
            raise fail(self.FIELDS_RULE, reply, "run.created_at set", "unset")
        storage = run.DESCRIPTOR.fields_by_name["storage_state"].enum_type
        value = storage.values_by_number.get(run.storage_state)
        if value is None:
            raise fail(
                self.STORAGE_DOMAIN_RULE,
                reply,
                f"run.storage_state in {storage.full_name}",
                run.storage_state,
            )
        wanted = "STORAGESTATE_ARCHIVED" if entity.memory["archived"] else "STORAGESTATE_AVAILABLE"
        if value.name != wanted:
            raise fail(self.STORAGE_RULE, reply, f"run.storage_state {wanted}", value.name)
        if entity.memory["archived"]:
            self.env.covered(self.STORAGE_RULE)
        shown = {(m.node_id, m.name): m.number_value for m in run.metrics}
        if shown != entity.memory["metrics"]:
            raise fail(self.METRICS_VISIBLE_RULE, reply, f"run.metrics {entity.memory['metrics']}", shown)
        if shown:
            self.env.covered(self.METRICS_VISIBLE_RULE)

    # -- storage state --------------------------------------------------------------------
    @rule(entity=LifecycleMachine.entities, archive=st.booleans())
    def archive(self, entity: Tracked, archive: bool) -> None:
        method = "RunService.ArchiveRun" if archive else "RunService.UnarchiveRun"
        reply = self.env.rpc(method, {"id": entity.key})
        if entity.gone:
            self.expect_gone(reply, "id")
            return
        expect_codes(reply, {"OK"}, self.STORAGE_RULE, "archive and unarchive may be repeated in any status")
        self.env.covered(self.STORAGE_RULE)
        entity.memory["archived"] = archive

    @rule(entity=LifecycleMachine.entities)
    def remove(self, entity: Tracked) -> None:
        reply = delete_run(self.env, entity.key)
        if entity.gone:
            self.expect_gone(reply, "id")
            return
        expect_codes(reply, {"OK"}, "kfp.runs.delete.effect")
        entity.gone = True
        entity.rule = "kfp.runs.delete.effect"

    # -- metrics --------------------------------------------------------------------------
    def metric_rules(self) -> tuple[Any, Any, Any, Any]:
        rules = self.env.rules
        return (
            rules.rule("kfp.runs.metrics.name-pattern"),
            rules.rule("kfp.runs.metrics.node-id-length"),
            rules.rule("kfp.runs.metrics.duplicate"),
            rules.rule("kfp.runs.metrics.results"),
        )

    def metrics(self) -> st.SearchStrategy[list[dict[str, Any]]]:
        name_rule, node_rule, _, _ = self.metric_rules()
        bad_names = st.sampled_from(["", "9lives", "has space", "x" * 70, "-dash", "end-"]).filter(
            lambda n: not re.fullmatch(name_rule.params["regex"], n)
        )
        longest = int(node_rule.params.get("max", 128))
        bad_nodes = st.sampled_from(["", "n" * (longest + 1)])
        metric = st.fixed_dictionaries(
            {
                "name": mostly(st.sampled_from(METRIC_NAMES), bad_names),
                "node_id": mostly(st.sampled_from(NODE_IDS), bad_nodes),
                "number_value": st.floats(-1e6, 1e6, allow_nan=False).map(
                    lambda v: math.floor(v * 100) / 100
                ),
            }
        )
        # The same metric twice in one call is a duplicate too: draw some calls that repeat one.
        return st.lists(metric, min_size=1, max_size=3).flatmap(
            lambda sent: st.sampled_from(
                [sent, [*sent, {**sent[0], "number_value": sent[0]["number_value"] + 1}]]
            )
        )

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def report(self, entity: Tracked, data: st.DataObject) -> None:
        sent = data.draw(self.metrics(), label="metrics")
        reply = self.env.rpc("RunService.ReportRunMetrics", {"run_id": entity.key, "metrics": sent})
        if entity.gone:
            self.expect_gone(reply)
            return
        name_rule, node_rule, duplicate_rule, results_rule = self.metric_rules()
        expect_codes(reply, {"OK"}, results_rule, "per-metric outcomes are in-band")
        results = list(reply.response.results)
        if [(r.metric_node_id, r.metric_name) for r in results] != [(m["node_id"], m["name"]) for m in sent]:
            got = [(r.metric_node_id, r.metric_name) for r in results]
            raise fail(results_rule, reply, "one result per metric, in input order", got)
        self.env.covered(results_rule.id)
        status_enum = reply.response.DESCRIPTOR.fields_by_name["results"].message_type.fields_by_name[
            "status"
        ]
        stored: dict[tuple[str, str], float] = entity.memory["metrics"]
        for metric, result in zip(sent, results, strict=True):
            key = (metric["node_id"], metric["name"])
            low, high = node_rule.params.get("min", 1), node_rule.params.get("max", 128)
            broken = []
            if not re.fullmatch(name_rule.params["regex"], metric["name"]):
                broken.append(name_rule)
            if not low <= len(metric["node_id"]) <= high:
                broken.append(node_rule)
            if broken:
                wanted = {r.params["result_status"] for r in broken}
                deciding_rule = broken[0]
            elif key in stored:
                wanted, deciding_rule = {duplicate_rule.params["result_status"]}, duplicate_rule
            else:
                wanted, deciding_rule = {results_rule.params["result_status"]}, results_rule
            got = status_enum.enum_type.values_by_number.get(result.status)
            got_name = got.name if got is not None else str(result.status)
            if got_name not in wanted:
                raise fail(deciding_rule, reply, f"status {' or '.join(sorted(wanted))} for {key}", got_name)
            self.env.covered(deciding_rule.id)
            if got_name == results_rule.params["result_status"]:
                stored[key] = metric["number_value"]
        entity.memory["metrics"] = stored
