"""flyteadmin's list contract: limit, offset tokens, filters in its grammar, sort keys."""

from __future__ import annotations

import grpc
import pytest
from flyte_support import DOMAIN

IA = grpc.StatusCode.INVALID_ARGUMENT
SCOPE = {"project": "p1", "domain": DOMAIN}


@pytest.fixture
def tasks(admin):
    admin.project()
    for index in range(7):
        admin.task(f"mod.t{index % 3}", f"v{index}")
    return admin


def _names(tasks_list) -> list[tuple[str, str]]:
    return [(t.id.name, t.id.version) for t in tasks_list]


def test_tokens_are_offsets_and_full_pages_carry_one(tasks) -> None:
    first = tasks.ListTasks(id=SCOPE, limit=3)
    assert first.token == "3" and _names(first.tasks) == [
        ("mod.t0", "v0"),
        ("mod.t1", "v1"),
        ("mod.t2", "v2"),
    ]
    second = tasks.ListTasks(id=SCOPE, limit=3, token=first.token)
    third = tasks.ListTasks(id=SCOPE, limit=3, token=second.token)
    assert second.token == "6" and len(third.tasks) == 1 and third.token == ""
    # a full last page still carries a token, which leads to an empty page
    exact = tasks.ListTasks(id=SCOPE, limit=7)
    assert exact.token == "7" and tasks.ListTasks(id=SCOPE, limit=7, token="7").tasks == []
    assert len(tasks.list_all("ListTasks", id=SCOPE, limit=2)) == 7


def test_bad_limit_token_and_identifiers_name_the_field(tasks) -> None:
    cases = [
        ({"id": SCOPE}, "limit: invalid value for limit"),
        ({"id": SCOPE, "limit": 1, "token": "abc"}, "token: invalid pagination token abc for ListTasks"),
        ({"id": SCOPE, "limit": 1, "token": "-1"}, "token: invalid pagination token -1 for ListTasks"),
        ({"limit": 1}, "id: missing id"),
        ({"id": {"domain": DOMAIN}, "limit": 1}, "id.project: missing project"),
        ({"id": {"project": "p1"}, "limit": 1}, "id.domain: missing domain"),
    ]
    for request, expected in cases:
        error = tasks.error("ListTasks", request)
        assert (error.code(), error.details()) == (IA, expected)
    error = tasks.error("ListTaskIds", project="p1", domain=DOMAIN, limit=1, token="x")
    assert error.details() == "token: invalid pagination token x for ListUniqueTaskIdentifiers"


def test_filters_in_flyteadmins_grammar(tasks) -> None:
    def names(filters: str, scope: dict[str, str] = SCOPE) -> list[tuple[str, str]]:
        return _names(tasks.ListTasks(id=scope, limit=100, filters=filters).tasks)

    assert names("eq(name,mod.t1)") == [("mod.t1", "v1"), ("mod.t1", "v4")]
    assert names("eq(name,mod.t1)+ne(version,v1)") == [("mod.t1", "v4")]
    assert names("value_in(version,v0;v5;v9)") == [("mod.t0", "v0"), ("mod.t2", "v5")]
    assert len(names("value_not_in(name,mod.t0;mod.t1)")) == 2
    assert names("contains(name, t2)") == [("mod.t2", "v2"), ("mod.t2", "v5")]  # one space after the comma
    assert names("eq(task.name,mod.t0)+gte(version,v3)") == [("mod.t0", "v3"), ("mod.t0", "v6")]
    assert names("gt(id,0)") and not names("lt(created_at,2000-01-01T00:00:00Z)")
    assert names("eq(name,mod.t0)", {**SCOPE, "name": "mod.t1"}) == []  # id.name is one more equality


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ("eq(name)", "filters: invalid value for filters"),
        ("eq(name,a)+", "filters: invalid value for filters"),
        ("like(name,a)", "filters: unrecognized filter function: like"),
        ("eq(bogus,a)", "filters: 't.bogus' is invalid filter"),
        ("eq(workflow.name,a)", "filters: 'w' entity is not allowed in filters"),
        ("eq(id,abc)", "filters: value [abc] of filter on 't.id' is not int"),
        ("eq(name,a;b)", "filters: value [a;b] of filter on 't.name' is not a single value"),
    ],
)
def test_bad_filters_name_what_is_wrong(tasks, filters: str, expected: str) -> None:
    error = tasks.error("ListTasks", id=SCOPE, limit=5, filters=filters)
    assert (error.code(), error.details()) == (IA, expected)


def test_sort_keys_and_directions(tasks) -> None:
    ascending = tasks.ListTasks(
        id=SCOPE, limit=100, sort_by={"key": "version", "direction": "ASCENDING"}
    ).tasks
    descending = tasks.ListTasks(id=SCOPE, limit=100, sort_by={"key": "version"}).tasks  # DESCENDING is 0
    assert [t.id.version for t in ascending] == [f"v{i}" for i in range(7)]
    assert [t.id.version for t in descending] == [f"v{i}" for i in range(6, -1, -1)]
    newest = tasks.ListTasks(id=SCOPE, limit=1, sort_by={"key": "created_at"}).tasks[0]
    assert newest.id.version == "v6"  # ties on created_at: latest registration first, as flytekit expects
    error = tasks.error("ListTasks", id=SCOPE, limit=5, sort_by={"key": "nope"})
    assert (error.code(), error.details()) == (IA, "sort_by.key: invalid sort key 'nope'")
    error = tasks.error("ListTasks", id=SCOPE, limit=5, sort_by={"key": "name", "direction": 5})
    assert error.code() == IA and error.details().startswith(
        "sort_by.direction: invalid sort order specified"
    )


def test_listings_join_only_the_entities_flyteadmin_allows(admin) -> None:
    plan = admin.registered()
    admin.execute(plan, name="e1", a=1, b=2)
    scope = {"id": SCOPE, "limit": 10}
    assert len(admin.ListExecutions(scope, filters="eq(launch_plan.name,mod.wf)").executions) == 1
    assert len(admin.ListExecutions(scope, filters="eq(workflow.version,v2)").executions) == 0
    for bad, named in [("eq(project,p1)", "'e.project'"), ("eq(execution.name,e1)", "'e.name'")]:
        assert named in admin.error("ListExecutions", scope, filters=bad).details()
    assert len(admin.ListExecutions(scope, filters="eq(execution_name,e1)").executions) == 1
    assert admin.ListLaunchPlans(scope, filters="eq(workflow.name,mod.wf)").launch_plans
    assert (
        "'l' entity is not allowed"
        in admin.error("ListTasks", scope, filters="eq(launch_plan.name,x)").details()
    )
