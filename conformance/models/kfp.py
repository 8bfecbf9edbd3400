"""The model of a Kubeflow Pipelines v1beta1 RunService.

Generic parts come from specs/kfp: the ``run`` state machine (its RPC actions
TerminateRun and RetryRun, its automatic workflow edges), the refusal codes,
the not-found rules, the metric name pattern and node id limits.  What the
model remembers on top: whether a run is archived, which metrics were accepted
(the first value of a (node, name) pair stays), whether it was deleted.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import urllib.parse
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import rule
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import expect_codes, fail
from protoconform.conformance.models.listing import ListDialect, Population, Sort
from protoconform.conformance.models.machine import LifecycleMachine, Tracked
from protoconform.conformance.models.roundtrip import RoundTrip

FAMILY = "kfp"
SERVICE = "RunService"
# Ask this project's mock to fail a run (a real server ignores the annotation; the model
# accepts every outcome the state machine allows either way).
FAIL_ANNOTATION = "protoconform.io/fail-task"
METRIC_NAMES = ("accuracy", "loss", "f1-score")
NODE_IDS = ("node-a", "node-b")


FAIL_PHASE_ANNOTATION = "protoconform.io/fail-phase"
FAILURES: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("main", ""),
    ("main", "Error"),
)  # (task, phase) per variant


def manifest(rules: Any, fail_task: str = "", fail_phase: str = "") -> str:
    """The family's example workflow (specs/kfp ``x-manifests.hello``), optionally asking to fail."""
    document = json.loads(rules.extra["x-manifests"]["hello"])
    annotations = document.setdefault("metadata", {}).setdefault("annotations", {})
    if fail_task:
        annotations[FAIL_ANNOTATION] = fail_task
    if fail_phase:
        annotations[FAIL_PHASE_ANNOTATION] = fail_phase
    return json.dumps(document, separators=(",", ":"))


def create_request(rules: Any, name: str, fail_task: str = "", fail_phase: str = "") -> dict[str, Any]:
    workflow = manifest(rules, fail_task, fail_phase)
    return {"run": {"name": name, "pipeline_spec": {"workflow_manifest": workflow}}}


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten, ``rare`` otherwise."""
    return st.integers(0, 9).flatmap(lambda i: rare if i == 0 else usual)


class RunMachine(LifecycleMachine):
    MACHINE = "run"
    SERVICE = SERVICE
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
        self.env.rpc("RunService.DeleteRun", {"id": entity.key})

    # -- what a run must show -------------------------------------------------------------
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
        shown = {(m.node_id, m.name): m.number_value for m in run.metrics}
        if shown != entity.memory["metrics"]:
            raise fail(self.METRICS_VISIBLE_RULE, reply, f"run.metrics {entity.memory['metrics']}", shown)

    # -- storage state --------------------------------------------------------------------
    @rule(entity=LifecycleMachine.entities, archive=st.booleans())
    def archive(self, entity: Tracked, archive: bool) -> None:
        if entity is None:
            return
        method = "RunService.ArchiveRun" if archive else "RunService.UnarchiveRun"
        reply = self.env.rpc(method, {"id": entity.key})
        if entity.gone:
            self.expect_gone(reply, "id")
            return
        expect_codes(reply, {"OK"}, self.STORAGE_RULE, "archive and unarchive may be repeated in any status")
        entity.memory["archived"] = archive

    @rule(entity=LifecycleMachine.entities)
    def remove(self, entity: Tracked) -> None:
        if entity is None:
            return
        reply = self.env.rpc("RunService.DeleteRun", {"id": entity.key})
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
            lambda ms: st.sampled_from([ms, [*ms, {**ms[0], "number_value": ms[0]["number_value"] + 1}]])
        )

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def report(self, entity: Tracked, data: st.DataObject) -> None:
        if entity is None:
            return
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
                rule_ = broken[0]
            elif key in stored:
                wanted, rule_ = {duplicate_rule.params["result_status"]}, duplicate_rule
            else:
                wanted, rule_ = {results_rule.params["result_status"]}, results_rule
            got = status_enum.enum_type.values_by_number.get(result.status)
            got_name = got.name if got is not None else str(result.status)
            if got_name not in wanted:
                raise fail(rule_, reply, f"status {' or '.join(sorted(wanted))} for {key}", got_name)
            if got_name == results_rule.params["result_status"]:
                stored[key] = metric["number_value"]
        entity.memory["metrics"] = stored


def machines() -> list[type[LifecycleMachine]]:
    return [RunMachine]


# -- lists ----------------------------------------------------------------------------------

STRING_KEYS = ("id", "name", "description", "storage_state", "status")
TIME_KEYS = ("created_at", "scheduled_at")
VOLATILE_KEYS = ("status",)  # runs move on while a check lists them: filters stay off it


def run_value(run: Any, key: str) -> Any:
    """What ListRuns sorts and filters a run by: times in Unix seconds, storage_state by name."""
    if key in TIME_KEYS:
        return getattr(run, key).seconds
    if key == "storage_state":
        value = run.DESCRIPTOR.fields_by_name["storage_state"].enum_type.values_by_number.get(
            run.storage_state
        )
        return value.name if value is not None else str(run.storage_state)
    return getattr(run, key)


class RunList(ListDialect):
    """Token-paged ListRuns with ``sort_by`` text and an ``api.Filter`` (specs/kfp list.yaml)."""

    METHOD = "RunService.ListRuns"
    PAGINATION_RULE = "kfp.runs.list.pagination"
    TOTAL_RULE = "kfp.runs.list.total-size"
    SORT_RULE = "kfp.runs.list.sort-applied"
    FILTER_RULE = CONTAINS_RULE = "kfp.runs.list.filter-applied"

    def __init__(self, env: Any, method: str = "") -> None:
        super().__init__(env, method)
        self.contract = env.rules.lists[env.full(self.METHOD)]

    def populate(self) -> Population:
        key = "kfp.population.runs"
        if key in self.env.cache:
            return self.env.cache[key]
        token = self.env.unique("list")
        keys = []
        for i in range(7):
            request = create_request(self.env.rules, f"{token}-{i}")
            request["run"]["description"] = ("alpha", "beta", "gamma")[i % 3]
            reply = self.env.rpc("RunService.CreateRun", request)
            expect_codes(reply, {"OK"}, "kfp.runs.create.initial-state", "populating runs")
            keys.append(reply.response.run.id)
        for run_id in keys[1::3]:
            self.env.rpc("RunService.ArchiveRun", {"id": run_id})
        scope = {"key": "name", "op": "IS_SUBSTRING", "string_value": token}
        cleanup = [lambda r=r: self.env.rpc("RunService.DeleteRun", {"id": r}) for r in keys]
        population = Population(keys, scope, cleanup)
        self.env.cache[key] = population
        return population

    def page(
        self, population: Population, size: int, cursor: Any, sort: Sort | None, where: Any
    ) -> tuple[Reply, list[Any], Any, int]:
        predicates = [*([population.scope] if population.scope else []), *(where or [])]
        request: dict[str, Any] = {"page_size": size}
        if predicates:
            text = json.dumps({"predicates": predicates}, separators=(",", ":"))
            request["filter"] = urllib.parse.quote(text, safe="")
        if sort is not None:
            request["sort_by"] = f"{sort.spec} desc" if sort.descending else str(sort.spec)
        if cursor:
            request["page_token"] = cursor
        reply = self.env.rpc(self.METHOD, request)
        if not reply.ok:
            return reply, [], None, -1
        items = list(reply.response.runs)
        return reply, items, reply.response.next_page_token or None, reply.response.total_size

    def key(self, item: Any) -> str:
        return item.id

    def stable_sort(self) -> Sort | None:
        return Sort("id", "id")

    def sorts(self, items: list[Any]) -> list[Sort]:
        return [Sort(f, f, d) for f in self.contract["sort_fields"] for d in (False, True)]

    def sort_value(self, item: Any, sort: Sort) -> Any:
        return run_value(item, str(sort.spec))

    def filters(self, items: list[Any]) -> st.SearchStrategy[Any]:
        keys = [k for k in self.contract["filter_keys"] if k not in VOLATILE_KEYS]
        operators = self.contract["filter_operators"]

        def predicate(key: str) -> st.SearchStrategy[dict[str, Any]]:
            seen = sorted({run_value(i, key) for i in items}, key=repr)
            if key in TIME_KEYS:
                values = st.sampled_from(sorted({v + d for v in seen for d in (-1, 0, 1)}))
                ops = [op for op, kind in operators.items() if kind == "scalar"]
                return st.tuples(st.sampled_from(ops), values).map(
                    lambda p: {"key": key, "op": p[0], "timestamp_value": rfc3339_seconds(p[1])}
                )
            texts = sorted(set(seen) | {v[:4] for v in seen} | {"zz-none"})
            scalar_ops = ["EQUALS", "NOT_EQUALS"]
            return st.one_of(
                st.tuples(st.sampled_from(scalar_ops), st.sampled_from(texts)).map(
                    lambda p: {"key": key, "op": p[0], "string_value": p[1]}
                ),
                st.lists(st.sampled_from(texts), min_size=1, max_size=3).map(
                    lambda vs: {"key": key, "op": "IN", "string_values": {"values": vs}}
                ),
                st.sampled_from(texts).map(
                    lambda v: {
                        "key": key,
                        "op": "IS_SUBSTRING",
                        "string_value": v.upper() if len(v) % 2 else v,
                    }
                ),
            )

        return st.lists(st.sampled_from(keys).flatmap(predicate), min_size=1, max_size=2)

    def evaluate(self, where: Any, item: Any) -> bool:
        return all(self.holds(p, item) for p in where)

    def holds(self, predicate: dict[str, Any], item: Any) -> bool:
        actual = run_value(item, predicate["key"])
        op = predicate["op"]
        if op == "IN":
            return actual in predicate["string_values"]["values"]
        if op == "IS_SUBSTRING":
            return str(predicate["string_value"]).lower() in str(actual).lower()
        if "timestamp_value" in predicate:
            wanted: Any = parse_seconds(predicate["timestamp_value"])
        else:
            wanted = predicate["string_value"]
        return bool(
            {
                "EQUALS": lambda: actual == wanted,
                "NOT_EQUALS": lambda: actual != wanted,
                "GREATER_THAN": lambda: actual > wanted,
                "GREATER_THAN_EQUALS": lambda: actual >= wanted,
                "LESS_THAN": lambda: actual < wanted,
                "LESS_THAN_EQUALS": lambda: actual <= wanted,
            }[op]()
        )

    def describe(self, where: Any) -> str:
        parts = []
        for p in where:
            value = next(v for k, v in p.items() if k.endswith("value") or k.endswith("values"))
            parts.append(f"{p['key']} {p['op']} {value!r}")
        return " and ".join(parts)


def rfc3339_seconds(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_seconds(text: str) -> int:
    return int(
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
    )


def lists(env: Any) -> list[ListDialect]:
    return [RunList(env)]


# -- round trips ------------------------------------------------------------------------------


def roundtrips() -> list[RoundTrip]:
    return [
        RoundTrip(
            create="RunService.CreateRun",
            rule="kfp.runs.output.run-fields",
            base=lambda env: create_request(env.rules, env.unique("trip")),
            read=lambda env, r: env.rpc("RunService.GetRun", {"run_id": r.response.run.id}),
            pairs=(
                ("run.name", "run.name"),
                ("run.description", "run.description"),
                ("run.pipeline_spec.workflow_manifest", "run.pipeline_spec.workflow_manifest"),
            ),
            vary=("run.name", "run.description"),
            undo=lambda env, r: env.rpc("RunService.DeleteRun", {"id": r.response.run.id}),
        )
    ]
