"""KFP's list dialect: token-paged ListRuns with ``sort_by`` text and an ``api.Filter`` of
predicates (specs/kfp list.yaml), evaluated on a run the way the filter rule says a server must.
Every listed run's status is held to the run state machine; the page sizes are checked once, when
the population is made (:mod:`.pages`)."""

from __future__ import annotations

import datetime
import json
import urllib.parse
from typing import Any

from hypothesis import strategies as st
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import Env, expect_codes, fail
from protoconform.conformance.models.kfp.pages import check_page_sizes
from protoconform.conformance.models.kfp.requests import create_request, delete_run
from protoconform.conformance.models.listing import ListDialect, Population, Sort

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
    STATUS_RULE = "kfp.runs.output.status-domain"
    LAST_PAGE_TOKENLESS = True  # next_page_token is empty on the last page (list.yaml next_token)

    def __init__(self, env: Env, method: str = "") -> None:
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
        cleanup = [lambda run_id=run_id: delete_run(self.env, run_id) for run_id in keys]
        population = Population(keys, scope, cleanup)
        self.env.cache[key] = population
        check_page_sizes(self.env)
        return population

    def page(
        self, population: Population, size: int, cursor: Any, sort: Sort | None, where: Any
    ) -> tuple[Reply, list[Any], Any, int]:
        predicates = [*self.scope_predicates(population), *(where or [])]
        request: dict[str, Any] = {"page_size": size, **self.scope_fields(population)}
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
        states = self.env.rules.state_machines[self.env.rule(self.STATUS_RULE).params["state_machine"]].states
        for run in items:
            if run.status not in states:
                raise fail(self.STATUS_RULE, reply, f"runs.status in {list(states)}", run.status)
        if items:
            self.env.covered(self.STATUS_RULE)
        return reply, items, reply.response.next_page_token or None, reply.response.total_size

    def scope_predicates(self, population: Population) -> list[dict[str, Any]]:
        """The predicates restricting a listing to the population (its name token)."""
        return [population.scope] if population.scope else []

    def scope_fields(self, population: Population) -> dict[str, Any]:
        """Request fields restricting a listing to the population besides the filter."""
        return {}

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
                    lambda pair: {"key": key, "op": pair[0], "timestamp_value": rfc3339_seconds(pair[1])}
                )
            texts = sorted(set(seen) | {v[:4] for v in seen} | {"zz-none"})
            scalar_ops = ["EQUALS", "NOT_EQUALS"]
            return st.one_of(
                st.tuples(st.sampled_from(scalar_ops), st.sampled_from(texts)).map(
                    lambda pair: {"key": key, "op": pair[0], "string_value": pair[1]}
                ),
                st.lists(st.sampled_from(texts), min_size=1, max_size=3).map(
                    lambda values: {"key": key, "op": "IN", "string_values": {"values": values}}
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
        return all(self.holds(predicate, item) for predicate in where)

    def holds(self, predicate: dict[str, Any], item: Any) -> bool:
        return holds(predicate, run_value(item, predicate["key"]))

    def describe(self, where: Any) -> str:
        parts = []
        for predicate in where:
            value = next(v for k, v in predicate.items() if k.endswith("value") or k.endswith("values"))
            parts.append(f"{predicate['key']} {predicate['op']} {value!r}")
        return " and ".join(parts)


def rfc3339_seconds(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_seconds(text: str) -> int:
    return int(
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
    )


def holds(predicate: dict[str, Any], actual: Any) -> bool:
    """Whether a predicate of an ``api.Filter`` (as sent) holds for a run's value of its key."""
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
