"""ListRuns scoped the way a UI asks for an experiment's runs: ``resource_reference_key`` EXPERIMENT,
no filter or only a ``storage_state`` predicate, by creation time or name, either direction.

A server may answer these from an index rather than by looking at every run (this project's mock
does), so they are a second way through ListRuns and the list invariants are checked on it too,
and against the model: the runs the check made must come in the order the sort rule gives
(``created_at`` in Unix seconds, ties broken by id in the same direction), each once, only those
the predicate keeps.

The harness speaks only RunService (no ExperimentService to make an experiment of its own), so it
uses the experiment its runs land in: the server's default one. Other runs there are listed too;
the checks compare them only with themselves (pages against the whole listing, ``total_size``),
and hold the model's order to the check's own runs. An experiment too crowded to walk in small
pages is not checked (:meth:`ExperimentRunList.unusable`).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from protoconform.conformance.models.base import expect_codes, fail
from protoconform.conformance.models.kfp.listing import RunList, holds
from protoconform.conformance.models.kfp.requests import create_request, delete_run
from protoconform.conformance.models.listing import Population, Sort

AVAILABLE, ARCHIVED = "STORAGESTATE_AVAILABLE", "STORAGESTATE_ARCHIVED"
# Names whose order differs from the creation order, so a name sort cannot pass as a time sort.
LETTERS = "dbfahcge"
ARCHIVE = (1, 4, 6)  # which runs are archived
CROWDED = 120  # runs in the experiment above which pages of one or two are too many calls
DEFAULT_EXPERIMENT_RULE = "kfp.runs.create.default-experiment"
SCOPE_RULE = "kfp.runs.list.reference-scope"


def _state(predicate_op: str, value: Any) -> dict[str, Any]:
    if predicate_op == "IN":
        return {"key": "storage_state", "op": "IN", "string_values": {"values": list(value)}}
    return {"key": "storage_state", "op": predicate_op, "string_value": value}


class ExperimentRunList(RunList):
    """ListRuns of one experiment: its id as ``resource_reference_key``, no name filter."""

    SCOPE = "experiment"

    def populate(self) -> Population:
        key = "kfp.population.experiment-runs"
        if key in self.env.cache:
            return self.env.cache[key]
        token = self.env.unique("scoped")
        made: dict[str, dict[str, Any]] = {}
        cleanup = []
        experiment = ""
        for index, letter in enumerate(LETTERS):
            request = create_request(self.env.rules, f"{token}-{letter}")
            if experiment:
                request["run"]["resource_references"] = [
                    {"key": {"type": "EXPERIMENT", "id": experiment}, "relationship": "OWNER"}
                ]
            reply = self.env.rpc("RunService.CreateRun", request)
            expect_codes(reply, {"OK"}, "kfp.runs.create.initial-state", "populating an experiment's runs")
            run = reply.response.run
            cleanup.append(lambda run_id=run.id: delete_run(self.env, run_id))
            owner = _owner(run)
            if not owner:
                raise fail(DEFAULT_EXPERIMENT_RULE, reply, "an EXPERIMENT OWNER reference", "none")
            experiment = experiment or owner
            made[run.id] = {
                "created_at": run.created_at.seconds,
                "name": run.name,
                "storage_state": AVAILABLE,
            }
            if index in ARCHIVE:
                archived = self.env.rpc("RunService.ArchiveRun", {"id": run.id})
                expect_codes(archived, {"OK"}, "kfp.runs.archive.idempotent", "archiving a run to list")
                made[run.id]["storage_state"] = ARCHIVED
            if index % 3 == 2:
                self.env.wait(1.0)  # some runs a second apart, some in the same second (ties)
        population = Population(list(made), {"experiment": experiment, "runs": made}, cleanup)
        self.env.cache[key] = population
        return population

    # -- the request -----------------------------------------------------------------------
    def scope_predicates(self, population: Population) -> list[dict[str, Any]]:
        return []

    def scope_fields(self, population: Population) -> dict[str, Any]:
        if not population.scope:
            return {}
        return {"resource_reference_key": {"type": "EXPERIMENT", "id": population.scope["experiment"]}}

    def unusable(self, population: Population) -> str:
        if not population.scope:  # read-only: every run on the target, as the name-scoped list does
            return "no runs of the check's own to list (read-only)"
        reply, _, _, total = self.page(population, 1, None, None, None)
        expect_codes(reply, {"OK"}, SCOPE_RULE, "listing an experiment's runs")
        if total > CROWDED:
            return f"experiment {population.scope['experiment']} holds {total} runs (over {CROWDED})"
        return ""

    # -- sorts and filters ----------------------------------------------------------------------
    def stable_sort(self) -> Sort | None:
        return None  # the default, created_at ascending with ties broken by id: a total order

    def paging_sorts(self) -> list[Sort | None]:
        return [
            None,
            Sort("created_at", "created_at", True),
            *(Sort("name", "name", d) for d in (False, True)),
        ]

    def paging_filters(self) -> list[Any]:
        return [None, [_state("EQUALS", AVAILABLE)], [_state("NOT_EQUALS", AVAILABLE)]]

    def filters(self, items: list[Any]) -> st.SearchStrategy[Any]:
        predicate = st.sampled_from(
            [
                *(_state(op, value) for op in ("EQUALS", "NOT_EQUALS") for value in (AVAILABLE, ARCHIVED)),
                _state("IN", [ARCHIVED]),
                _state("IN", [AVAILABLE, ARCHIVED]),
            ]
        )
        return st.lists(predicate, min_size=1, max_size=2)

    def sort_value(self, item: Any, sort: Sort) -> Any:
        # Only the check's own runs are compared: others' names may collate otherwise on a server.
        population = self.env.cache.get("kfp.population.experiment-runs")
        if population is not None and item.id not in population.scope["runs"]:
            return None
        return super().sort_value(item, sort)

    # -- the model ------------------------------------------------------------------------------
    def expected(self, population: Population, sort: Sort | None, where: Any) -> list[str] | None:
        if not population.scope:
            return None
        runs: dict[str, dict[str, Any]] = population.scope["runs"]
        field = str(sort.spec) if sort is not None else self.contract["default_sort"]
        descending = sort.descending if sort is not None else False
        if self.contract["tie_breaker"] != "id":
            return None  # the model breaks ties by id only
        kept = [k for k, run in runs.items() if all(holds(p, run[p["key"]]) for p in where or [])]
        return sorted(kept, key=lambda k: (runs[k][field], k), reverse=descending)


def _owner(run: Any) -> str:
    """The id of the experiment owning ``run`` (from its resource references)."""
    for reference in run.resource_references:
        key = reference.key
        kind = key.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number.get(key.type)
        relation = reference.DESCRIPTOR.fields_by_name["relationship"].enum_type.values_by_number.get(
            reference.relationship
        )
        if (
            kind is not None
            and kind.name == "EXPERIMENT"
            and relation is not None
            and relation.name == "OWNER"
        ):
            return key.id
    return ""
