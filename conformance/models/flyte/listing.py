"""Flyte's list dialects: offset-token pages (``limit``, ``token``), ``sort_by`` on a model's column
and ``filters`` in flyteadmin's grammar, checked against a model of the items the run made.

The listed model, its joins, its columns and their kinds come from specs/flyte lists.yaml (the
``lists:`` table and ``models``); filters are drawn from the columns a listed item shows
(:mod:`.columns`) with values taken from the items, and evaluated the way the rule
``flyte.lists.filter-applied`` says.  A listing's own filter (``implicit`` in its ``lists:`` entry:
archived executions, archived projects) is checked once per listing, when its items are made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import timestamp_pb2
from hypothesis import strategies as st
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import Env, fail
from protoconform.conformance.models.flyte import population as pop
from protoconform.conformance.models.flyte import requests as rq
from protoconform.conformance.models.flyte.columns import Reader, view
from protoconform.conformance.models.flyte.grammar import LIKE, MEMBERSHIP, ORDERED_KINDS, Expression, Grammar
from protoconform.conformance.models.listing import BIG_PAGE, ListDialect, Population, Sort

FORBIDDEN = ("+", ",", ";", "(", ")", "\\", " ")  # characters the grammar or LIKE would read otherwise
IMPLICIT_RULES = {  # the rule documenting each listing's own filter
    "AdminService.ListExecutions": "flyte.executions.update.effect",
    "AdminService.ListProjects": "flyte.projects.list.default",
}
DEFAULT_ORDER_RULE = "flyte.projects.list.default"  # ListProjects without sort_by: identifier ascending


@dataclass(frozen=True)
class Shape:
    """How one list method is asked and read."""

    method: str
    order: str  # the population's list of keys (population.World.order)
    key: Callable[[Any], str]
    scope: Callable[[pop.World], dict[str, Any]]  # request fields restricting it to the run's items
    scope_filter: Callable[[pop.World, dict[str, Any]], str] = lambda world, implicit: ""
    stable: str = "id"  # a column without ties, for walking pages
    sort_keys: tuple[str, ...] = ()  # when only some columns sort (empty: every readable column)
    full_pages: bool = True  # a page shorter than limit is the last one


def _versioned(item: Any) -> str:
    return f"{item.id.name}@{item.id.version}"


def _project_scope(world: pop.World) -> dict[str, Any]:
    return {"id": {"project": world.project, "domain": rq.DOMAIN}}


def _naming(world: pop.World, implicit: dict[str, Any]) -> str:
    """A filter naming the column that drops the implicit filter, keeping every row (enums are >= 0)."""
    return f"gte({implicit['unless']},0)"


SHAPES = (
    Shape("AdminService.ListTasks", "tasks", _versioned, _project_scope),
    Shape("AdminService.ListWorkflows", "workflows", _versioned, _project_scope),
    Shape("AdminService.ListLaunchPlans", "launch_plans", _versioned, _project_scope),
    Shape("AdminService.ListExecutions", "executions", lambda e: e.id.name, _project_scope, _naming),
    Shape(
        "AdminService.ListProjects",
        "projects",
        lambda p: p.id,
        lambda world: {},
        lambda world, implicit: f"contains(identifier,{world.token})",
    ),
    # Named entities page over the distinct names and join their metadata afterwards: only the
    # name orders the page itself, and a short page may have a token (flyte.named-entities.list.short-pages).
    Shape(
        "AdminService.ListNamedEntities",
        "entities",
        lambda n: n.id.name,
        lambda world: {"resource_type": "TASK", "project": world.project, "domain": rq.DOMAIN},
        stable="name",
        sort_keys=("name",),
        full_pages=False,
    ),
)


def rfc3339(value: int) -> str:
    return timestamp_pb2.Timestamp(seconds=value // 1_000_000_000, nanos=value % 1_000_000_000).ToJsonString()


class FlyteList(ListDialect):
    PAGINATION_RULE = TOTAL_RULE = "flyte.lists.pagination"
    SORT_RULE = "flyte.lists.sort-applied"
    FILTER_RULE = CONTAINS_RULE = "flyte.lists.filter-applied"

    def __init__(self, env: Env, shape: Shape) -> None:
        super().__init__(env, shape.method)
        self.shape = shape
        self.grammar = Grammar(env.rules)
        self.contract: dict[str, Any] = env.rules.lists[env.full(shape.method)]
        self.primary: str = self.contract["model"]
        self.items_field: str = self.contract["items"]
        self.columns = view(self.primary, self.grammar.models)
        self.implicit: dict[str, Any] = self.contract.get("implicit") or {}

    # -- population ------------------------------------------------------------------------
    def populate(self) -> Population:
        made = pop.world(self.env)
        scope_filter = self.shape.scope_filter(made, self.implicit)
        scope = (
            self.shape.scope(made),
            self.grammar.parse(scope_filter, self.primary) if scope_filter else [],
        )
        first = not self.env.cache.get(f"flyte.population.{self.METHOD}")
        population = Population(list(made.order[self.shape.order]), scope)
        if first:
            self.env.cache[f"flyte.population.{self.METHOD}"] = True
            if self.METHOD in IMPLICIT_RULES:
                self.check_implicit(population)
        return population

    def check_implicit(self, population: Population) -> None:
        """Listed without filters, exactly the run's items the listing's own filter keeps."""
        rule = IMPLICIT_RULES[self.METHOD]
        implicit = self.grammar.parse(self.implicit["filter"], self.primary)
        mine = set(population.keys)
        every = self.walk(population, BIG_PAGE, self.stable_sort())
        wanted = [self.key(i) for i in every.items if self.evaluate(implicit, i)]
        bare = Population(population.keys, (population.scope[0], []))
        shown = self.walk(bare, BIG_PAGE)
        got = [k for k in (self.key(i) for i in shown.items) if k in mine]
        reply = shown.replies[-1]
        if sorted(got) != sorted(wanted):
            raise fail(
                rule,
                reply,
                f"without filters, the items where {self.implicit['filter']}: {sorted(wanted)}",
                sorted(got),
            )
        self.env.covered(rule)
        if self.METHOD == "AdminService.ListProjects":
            identifiers = [self.sort_value(i, Sort("identifier", "identifier")) for i in shown.items]
            identifiers = [i for i in identifiers if i in mine]
            if identifiers != sorted(identifiers):
                raise fail(DEFAULT_ORDER_RULE, reply, "without sort_by, identifier ascending", identifiers)

    # -- pages ----------------------------------------------------------------------------------
    def page(
        self, population: Population, size: int, cursor: Any, sort: Sort | None, where: Any
    ) -> tuple[Reply, list[Any], Any, int]:
        fields, scope = population.scope if population.scope else (self.existing_scope(), [])
        body: dict[str, Any] = {**fields, "limit": size}
        expressions = [*scope, *(where or [])]
        if expressions:
            body["filters"] = self.grammar.text(expressions)
        if cursor:
            body["token"] = cursor
        if sort is not None:
            body["sort_by"] = {
                "key": sort.spec,
                "direction": "DESCENDING" if sort.descending else "ASCENDING",
            }
        reply = self.env.rpc(self.METHOD, body)
        if not reply.ok:
            return reply, [], None, -1
        items = list(getattr(reply.response, self.items_field))
        token = reply.response.token
        if token and len(items) < size and self.shape.full_pages:
            raise fail(
                self.PAGINATION_RULE, reply, f"no token after a page of {len(items)} < limit {size}", token
            )
        return reply, items, token or None, -1  # no total in Flyte's lists

    def existing_scope(self) -> dict[str, Any]:
        """Request fields naming a project the target already has (a run that creates nothing)."""
        found = self.env.cache.get("flyte.existing-project")
        if found is None:
            reply = self.env.rpc("AdminService.ListProjects", {"limit": 1})
            projects = list(reply.response.projects) if reply.ok else []
            project = projects[0] if projects else None
            domain = project.domains[0].id if project is not None and project.domains else rq.DOMAIN
            # without projects there is nothing to list: a name no project has lists nothing, validly
            found = {
                "project": project.id if project is not None else rq.fresh(self.env, "none"),
                "domain": domain,
            }
            self.env.cache["flyte.existing-project"] = found
        fields = self.shape.scope(pop.World(project=found["project"], token=""))
        if "id" in fields:
            fields["id"]["domain"] = found["domain"]
        elif "domain" in fields:
            fields["domain"] = found["domain"]
        return fields

    def key(self, item: Any) -> str:
        return self.shape.key(item)

    # -- sorts ------------------------------------------------------------------------------------
    def stable_sort(self) -> Sort | None:
        return Sort(self.shape.stable, self.shape.stable)

    def sorts(self, items: list[Any]) -> list[Sort]:
        readable = [c for c, (kind, _) in self.columns.get(self.primary, {}).items() if kind in ORDERED_KINDS]
        keys = list(self.shape.sort_keys) or ["id", *readable]
        keys = [k for k in keys if k in self.grammar.columns(self.primary)]
        return [Sort(k, k, d) for k in keys for d in (False, True)]

    def sort_value(self, item: Any, sort: Sort) -> Any:
        if sort.spec == "id":  # row ids grow in creation order: known for what the run made only
            made = self.env.cache.get(pop.CACHE_KEY)
            order = made.order[self.shape.order] if made is not None else []
            key = self.key(item)
            return order.index(key) if key in order else None
        return self.reader(self.primary, str(sort.spec))(item)

    def reader(self, entity: str, column: str) -> Reader:
        return self.columns[entity][column][1]

    # -- filters -----------------------------------------------------------------------------------
    def filters(self, items: list[Any]) -> st.SearchStrategy[Any]:
        choices: list[st.SearchStrategy[Expression]] = []
        for entity, columns in sorted(self.columns.items()):
            for column, (kind, reader) in sorted(columns.items()):
                if kind not in ORDERED_KINDS:
                    continue
                seen = sorted({v for v in (reader(i) for i in items) if v is not None and v != ""}, key=repr)
                if seen:
                    choices += self.expressions(entity, column, kind, tuple(seen))
        if not choices:
            return st.nothing()
        return st.lists(st.one_of(choices), min_size=1, max_size=2)

    def expressions(
        self, entity: str, column: str, kind: str, seen: tuple[Any, ...]
    ) -> list[st.SearchStrategy[Expression]]:
        """One strategy per function that applies to the column and has values to try."""
        field = self.grammar.field(self.primary, entity, column)
        found = []
        for function in self.grammar.functions(kind):
            pool = candidates(kind, function, seen)
            if not pool or (kind == "timestamp" and function in MEMBERSHIP):
                continue
            values = (
                st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)
                if self.grammar.repeated(function)
                else st.sampled_from(pool).map(lambda v: [v])
            )
            found.append(
                values.map(
                    lambda vs, function=function: Expression(
                        function, entity, field, column, tuple(vs), tuple(as_text(kind, v) for v in vs)
                    )
                )
            )
        return found

    def evaluate(self, where: Any, item: Any) -> bool:
        return all(e.holds(self.reader(e.entity, e.column)(item)) for e in where)

    def describe(self, where: Any) -> str:
        return self.grammar.text(where)


def as_text(kind: str, value: Any) -> str:
    return rfc3339(value) if kind == "timestamp" else str(value)


def candidates(kind: str, function: str, seen: tuple[Any, ...]) -> list[Any]:
    """Values worth filtering with: the items' own, their neighbours, parts of them for LIKE."""
    ranged = function not in ("eq", "ne", *MEMBERSHIP)  # neighbours matter to ranges, one miss to the rest
    if kind in ("int", "timestamp"):
        step = 1 if kind == "int" else 1000  # the database keeps microseconds
        near = (-step, 0, step) if ranged else (0,)
        return sorted({v + d for v in seen for d in near} | {min(seen) - step})
    found: set[str] = set()
    for value in seen:
        text = str(value)
        half = text[: max(1, len(text) // 2)]
        if function == "contains":
            found |= {text, half, text[-3:], text[1:-1] or text}
        elif function in LIKE:
            middle = len(text) // 2
            found |= {text, f"{half}%", f"%{text[-3:]}", text[:middle] + "_" + text[middle + 1 :]}
        else:
            found |= {text, half} if ranged else {text}
    found.add(str(seen[0])[: max(1, len(str(seen[0])) // 2)])  # one value no item has
    return sorted(v for v in found if v and not any(c in v for c in FORBIDDEN))


def list_dialects(env: Env) -> list[ListDialect]:
    return [FlyteList(env, shape) for shape in SHAPES]
