"""Listings served from indexes and cached selections still see every write.

Over gRPC: a write between two pages reaches the next page, writes elsewhere
leave a listing as it was, updates of a listed column move records in and out.
Then, on the state itself, the indexed selection against a full scan of the
scope after inserts, updates, deletes and re-inserts (which the API does not all
offer), and the change log running out.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from flyte_support import DOMAIN, identifier, task_template
from protoconform.mockserver.apis.flyte import columns, create_state, listing, projects, registration
from protoconform.mockserver.apis.flyte.indexes import Indexes
from protoconform.mockserver.apis.flyte.state import MemoryTable
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.rpc import CallContext
from protoconform.specs.registry import default_registry

SCOPE = {"project": "p1", "domain": DOMAIN}
BY_VERSION = {"key": "version", "direction": "ASCENDING"}


def _versions(tasks: Any) -> list[str]:
    return [t.id.version for t in tasks]


def test_a_write_between_two_pages_reaches_the_next_page(admin) -> None:
    admin.project()
    for version in ("v2", "v4", "v6", "v8"):
        admin.task("mod.a", version)
    query = {"id": SCOPE, "limit": 2, "filters": "eq(name,mod.a)", "sort_by": BY_VERSION}
    first = admin.ListTasks(**query)
    assert _versions(first.tasks) == ["v2", "v4"] and first.token == "2"
    admin.task("mod.a", "v1")  # sorts first: the offset of the next page now starts one earlier
    admin.task("mod.b", "v0")  # same scope, not matching
    assert _versions(admin.ListTasks(**query, token=first.token).tasks) == ["v4", "v6"]
    assert _versions(admin.list_all("ListTasks", **query)) == ["v1", "v2", "v4", "v6", "v8"]
    # unsorted listings keep registration order, with the newest last
    unsorted = {"id": SCOPE, "limit": 10, "filters": "contains(name,mod.)"}
    assert _versions(admin.ListTasks(**unsorted).tasks) == ["v2", "v4", "v6", "v8", "v1", "v0"]


def test_writes_elsewhere_leave_a_listing_as_it_was(admin) -> None:
    admin.project()
    admin.project("p2")
    for version in ("v1", "v2", "v3"):
        admin.task("mod.a", version)
    query = {"id": SCOPE, "limit": 2, "sort_by": {"key": "created_at"}}
    first = admin.ListTasks(**query)
    admin.task("mod.a", "v9", project="p2")
    staged = identifier("TASK", "mod.a", "v9", domain="staging")
    admin.CreateTask(id=staged, spec={"template": task_template(staged)})
    second = admin.ListTasks(**query, token=first.token)
    # manual clock: every created_at ties, the newest registration comes first
    assert _versions(first.tasks) + _versions(second.tasks) == ["v3", "v2", "v1"]


def test_an_updated_column_moves_records_in_and_out_of_a_listing(admin) -> None:
    admin.project()
    admin.task()
    plans = []
    for version in ("v1", "v2", "v3"):
        admin.workflow(version=version)
        plans.append(admin.launch_plan(version=version))
    active = {"id": {**SCOPE, "name": "mod.wf"}, "limit": 10, "filters": "eq(state,1)"}
    assert admin.ListLaunchPlans(**active).launch_plans == []
    admin.UpdateLaunchPlan(id=plans[0], state="ACTIVE")
    assert _versions(admin.ListLaunchPlans(**active).launch_plans) == ["v1"]
    admin.UpdateLaunchPlan(id=plans[2], state="ACTIVE")  # deactivates v1
    assert _versions(admin.ListLaunchPlans(**active).launch_plans) == ["v3"]
    inactive = {**active, "filters": "ne(state,1)", "sort_by": BY_VERSION}
    assert _versions(admin.ListLaunchPlans(**inactive).launch_plans) == ["v1", "v2"]
    listed = admin.ListActiveLaunchPlans(project="p1", domain=DOMAIN, limit=10).launch_plans
    assert _versions(listed) == ["v3"]


# -- on the state: indexed selections against a full scan -------------------------------------------


def _state() -> tuple[Any, CallContext]:
    clock = Clock(speed=0)
    state = create_state({"propeller": False}, clock, default_registry())
    ctx = CallContext(method="", state=state, clock=clock)
    wire = state.wire
    project = wire.new("admin.Project", id="p1", name="P1")
    projects.register_project(wire.new("admin.ProjectRegisterRequest", project=project), ctx)
    return state, ctx


def _create_task(state: Any, ctx: CallContext, name: str, version: str, domain: str = DOMAIN) -> None:
    wire = state.wire
    ident = wire.new(
        "core.Identifier", resource_type=1, project="p1", domain=domain, name=name, version=version
    )
    request = wire.new("admin.TaskCreateRequest", id=ident)
    template = request.spec.template
    template.id.CopyFrom(ident)
    template.type = "python-task"
    template.metadata.runtime.version = "1.16.0"
    template.interface.SetInParent()
    template.container.image = "python:3.11"
    registration.create_task(request, ctx)


QUERIES = [
    ("", None),
    ("eq(name,t1)", None),
    ("eq(name,t2)", ("created_at", True)),
    ("contains(name,1)", ("version", False)),
    ("ne(name,t0)+value_in(short_description,a;b)", ("short_description", True)),
    ("value_not_in(version,v3;v4)+not_like(name,t_)", ("name", False)),
    ("gt(id,5)", ("id", True)),
    ("eq(short_description,b)", ("updated_at", False)),
]


def _check_against_a_scan(state: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model = columns.model(state, "t")
    scope = ("p1", DOMAIN)
    for small in (1, 10**6):  # candidates always picked from the scope's order, then always sorted
        monkeypatch.setattr(listing, "SMALL", small)
        state.caches.pop("selections", None)
        for text, sort_by in QUERIES:
            filters = [listing.equality("t", "project", "p1"), listing.equality("t", "domain", DOMAIN)]
            if text:
                filters += listing.parse_filters(state, text, "t")
            sort = listing.Sort(*sort_by) if sort_by else None
            expected = listing.scanned(state.table("tasks"), scope, model, filters, sort, None)
            for offset, limit in ((0, 3), (2, 5), (0, 0)):  # pages first, then all (produced in steps)
                selected = listing.select(state, "tasks", scope, model, filters, sort)
                chosen = listing.page(selected, offset, limit)[0]
                assert list(chosen) == listing.page(expected, offset, limit)[0], (text, sort_by, offset)


def test_indexed_selections_match_a_full_scan_through_every_kind_of_write(monkeypatch) -> None:
    state, ctx = _state()
    table = state.table("tasks")
    rng = random.Random(7)
    names = ["t0", "t1", "t2", "t12"]
    for i in range(40):
        _create_task(state, ctx, rng.choice(names), f"v{i % 9}x{i}", DOMAIN if i % 5 else "staging")
    _check_against_a_scan(state, monkeypatch)
    for step in range(60):
        records = list(table.scan(("p1", DOMAIN)))
        record = rng.choice(records)
        action = step % 4
        if action == 0:  # update a listed column in place, as handlers do
            record.task.short_description = rng.choice(["a", "b", ""])
            state.clock.advance(1)
            record.updated_at = state.now()
            table.update(record.key, record)
        elif action == 1:  # delete
            table.delete(record.key)
        elif action == 2:  # delete and insert again: it goes to the end of the scan order
            table.delete(record.key)
            table.insert(record.key, ("p1", DOMAIN), record)
        else:
            _create_task(state, ctx, rng.choice(names), f"n{step}")
        if step % 3 == 0:
            _check_against_a_scan(state, monkeypatch)
    _check_against_a_scan(state, monkeypatch)


def test_an_index_behind_the_change_log_is_rebuilt() -> None:
    table = MemoryTable(log_size=4)

    class Row:
        def __init__(self, row: int, value: Any) -> None:
            self.row, self.value = row, value

    for row in range(6):
        table.insert(row, "s", Row(row, row % 3))
    index = Indexes().of("rows", table, "s")
    order = index.sorted("value", lambda r: r.value)
    assert order is not None and [index.key_at[e[3]] for e in order.entries] == [0, 3, 1, 4, 2, 5]
    assert table.changes(index.seen) == []
    for row in range(6, 20):  # more writes than the log keeps
        table.insert(row, "s", Row(row, 0))
    table.delete(3)
    assert table.changes(0) is None
    index.sync()
    assert [index.key_at[e[3]] for e in index.sorted("value", lambda r: r.value).entries][:3] == [0, 6, 7]
    assert list(index.position) == [k for k in range(20) if k != 3]
    table.insert(3, "s", Row(3, "text"))  # a value that cannot be ordered with the others
    index.sync()
    assert index.sorted("value", lambda r: r.value) is None
    values = index.values("value", lambda r: r.value)
    assert values is not None and [index.key_at[p] for p in values.holding("text")] == [3]


def test_a_column_that_stops_holding_one_value_while_writes_wait_in_the_log() -> None:
    """The first differing value splits the one-value index while later inserts are not placed yet."""
    table = MemoryTable()

    class Row:
        def __init__(self, row: int, value: Any) -> None:
            self.row, self.value = row, value

    for row in range(3):
        table.insert(row, "s", Row(row, "same"))
    indexes = Indexes()
    values = indexes.of("rows", table, "s").values("value", lambda r: r.value)
    assert values is not None and sorted(values.holding("same")) == [0, 1, 2]
    for row, value in ((3, "other"), (4, "third"), (5, "same")):  # all applied by one sync
        table.insert(row, "s", Row(row, value))
    index = indexes.of("rows", table, "s")
    values = index.values("value", lambda r: r.value)
    assert values is not None
    held = {
        value: sorted(index.key_at[p] for p in values.holding(value)) for value in ("same", "other", "third")
    }
    assert held == {"same": [0, 1, 2, 5], "other": [3], "third": [4]}


def test_indexes_kept_at_write_time_equal_indexes_built_afresh() -> None:
    """Inserts, updates, deletes and re-inserts across scopes, some before the table is kept: after
    each write a kept index holds what an index built from the table at that moment holds."""
    table = MemoryTable(log_size=8)  # a short log: kept indexes must not depend on it

    class Row:
        def __init__(self, row: int, name: str, size: int) -> None:
            self.row, self.name, self.size = row, name, size

    getters = {"name": lambda r: r.name, "size": lambda r: r.size}
    rng = random.Random(7)
    scopes, rows = ["a", "b", "c"], iter(range(10**6))
    for _ in range(10):
        row = next(rows)
        table.insert(row, rng.choice(scopes[:2]), Row(row, "n0", 0))
    kept = Indexes()
    kept.keep("rows", table, getters, getters)

    def contents(index: Any) -> tuple[Any, ...]:
        order = {c: [index.key_at[e[3]] for e in index.sorted(c, g).entries] for c, g in getters.items()}
        values = index.values("name", getters["name"])
        held = {v: sorted(index.key_at[p] for p in places) for v, places in values.distinct()}
        return list(index.key_at.values()), order, held

    for _ in range(300):
        keys = [k for k, _ in table.items()]
        choice = rng.random()
        if choice < 0.5 or not keys:
            row = next(rows)
            table.insert(row, rng.choice(scopes), Row(row, f"n{rng.randrange(3)}", rng.randrange(5)))
        elif choice < 0.75:
            key = rng.choice(keys)
            record = table.get(key)
            record.name, record.size = f"n{rng.randrange(3)}", rng.randrange(5)
            table.update(key, record)
        elif choice < 0.9:
            table.delete(rng.choice(keys))
        else:  # deleted and inserted again: last in its scope's scan order
            key = rng.choice(keys)
            record = table.get(key)
            scope = next(s for s in scopes if key in dict(table.items(s)))
            table.delete(key)
            table.insert(key, scope, record)
        for scope in table.scopes():
            assert contents(kept.of("rows", table, scope)) == contents(Indexes().of("rows", table, scope))
