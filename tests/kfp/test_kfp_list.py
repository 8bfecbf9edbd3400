"""ListRuns: page sizes, tokens, sorting, filters, resource reference scope."""

from __future__ import annotations

import base64
import json
import urllib.parse

import grpc
import pytest


def _names(runs) -> list[str]:
    return [r.name for r in runs]


def test_page_size_default_cap_and_negative(kfp) -> None:
    for i in range(205):
        kfp.create(f"r{i:03}")
    assert len(kfp.ListRuns().runs) == 20
    page = kfp.ListRuns(page_size=500)
    assert len(page.runs) == 200 and page.total_size == 205 and page.next_page_token
    error = kfp.error("ListRuns", page_size=-1)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("page_size:")


def test_paging_visits_every_run_once_and_last_page_has_no_token(kfp) -> None:
    created = {kfp.create(f"r{i}").id for i in range(7)}
    seen, token, pages = [], "", 0
    while True:
        page = kfp.ListRuns(page_size=3, page_token=token, sort_by="name desc")
        assert page.total_size == 7
        seen += [r.id for r in page.runs]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3 and len(seen) == 7 and set(seen) == created
    assert _names(kfp.list_all(page_size=3, sort_by="name desc")) == [f"r{i}" for i in range(6, -1, -1)]


def test_runs_created_between_pages_do_not_shift_pages(kfp) -> None:
    for i in range(4):
        kfp.create(f"b{i}")
    first = kfp.ListRuns(page_size=2, sort_by="name")
    kfp.create("a-new")  # sorts before every listed run
    second = kfp.ListRuns(page_size=2, page_token=first.next_page_token)
    assert _names(first.runs) + _names(second.runs) == ["b0", "b1", "b2", "b3"]


def test_sort_fields_directions_and_errors(kfp) -> None:
    for name in ["b", "c", "a"]:
        kfp.create(name, description=name.upper() * 2)
    assert _names(kfp.ListRuns(sort_by="name").runs) == ["a", "b", "c"]
    assert _names(kfp.ListRuns(sort_by="NAME DESC").runs) == ["c", "b", "a"]
    assert _names(kfp.ListRuns(sort_by="description desc").runs) == ["c", "b", "a"]
    ids = [r.id for r in kfp.ListRuns(sort_by="id").runs]
    assert ids == sorted(ids)
    for bad in ["name up", "name desc now", "finished_at", "bogus"]:
        error = kfp.error("ListRuns", sort_by=bad)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert error.details().startswith("sort_by:")


def test_default_order_is_created_at_then_id(kfp) -> None:
    first = kfp.create("first")
    kfp.advance(1)
    second = kfp.create("second")
    kfp.create("third")  # same second as "second": the id breaks the tie
    runs = kfp.ListRuns().runs
    assert runs[0].id == first.id
    assert [r.id for r in runs[1:]] == sorted(r.id for r in runs[1:])
    assert second.id in {r.id for r in runs[1:]}


def test_sort_by_metric(kfp) -> None:
    runs = {name: kfp.create(name) for name in ["low", "high", "none"]}
    for name, value in [("low", 0.1), ("high", 0.9)]:
        kfp.ReportRunMetrics(
            run_id=runs[name].id, metrics=[{"name": "acc", "node_id": "n", "number_value": value}]
        )
    assert _names(kfp.ListRuns(sort_by="metric:acc desc").runs) == ["high", "low", "none"]
    assert _names(kfp.ListRuns(sort_by="metric:acc").runs) == ["none", "low", "high"]
    assert _names(kfp.list_all(sort_by="metric:acc desc", page_size=1)) == ["high", "low", "none"]


def test_page_token_carries_sort_and_filter(kfp) -> None:
    for i in range(3):
        kfp.create(f"r{i}")
    query = json.dumps({"predicates": [{"key": "name", "op": "IS_SUBSTRING", "string_value": "R"}]})
    page = kfp.ListRuns(page_size=1, sort_by="name desc", filter=query)
    token = page.next_page_token
    same = kfp.ListRuns(page_size=1, page_token=token, sort_by="name desc", filter=query)
    implied = kfp.ListRuns(page_size=1, page_token=token)
    assert _names(same.runs) == _names(implied.runs) == ["r1"]
    other_filter = _filter({"key": "name", "op": "EQUALS", "string_value": "r0"})
    for other in [{"sort_by": "name"}, {"filter": other_filter}]:
        error = kfp.error("ListRuns", page_size=1, page_token=token, **other)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page token does not match" in error.details()
    for bad in ["%%%", base64.b64encode(b'{"sort": 1}').decode(), base64.b64encode(b"[]").decode()]:
        error = kfp.error("ListRuns", page_token=bad)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == "page_token: Invalid package token."


def _filter(*predicates: dict) -> str:
    return json.dumps({"predicates": list(predicates)})


def test_filters(kfp) -> None:
    alpha = kfp.create("alpha", description="first")
    kfp.advance(10)
    beta = kfp.create("beta")
    gamma = kfp.create("Gamma-Run")
    kfp.ArchiveRun(id=beta.id)

    def names(query: str) -> list[str]:
        return sorted(_names(kfp.list_all(filter=query)))

    assert names(_filter({"key": "name", "op": "EQUALS", "string_value": "alpha"})) == ["alpha"]
    assert names(_filter({"key": "name", "op": "NOT_EQUALS", "string_value": "alpha"})) == [
        "Gamma-Run",
        "beta",
    ]
    assert names(_filter({"key": "name", "op": "IN", "string_values": {"values": ["alpha", "beta"]}})) == [
        "alpha",
        "beta",
    ]
    assert names(_filter({"key": "name", "op": "IS_SUBSTRING", "string_value": "run"})) == ["Gamma-Run"]
    assert names(
        _filter({"key": "storage_state", "op": "EQUALS", "string_value": "STORAGESTATE_ARCHIVED"})
    ) == ["beta"]
    available = {"key": "storage_state", "op": "NOT_EQUALS", "string_value": "STORAGESTATE_ARCHIVED"}
    assert names(_filter(available)) == ["Gamma-Run", "alpha"]
    later = {"key": "created_at", "op": "GREATER_THAN", "timestamp_value": _rfc3339(alpha.created_at.seconds)}
    assert names(_filter(later)) == ["Gamma-Run", "beta"]
    assert names(_filter(later, available)) == ["Gamma-Run"]  # predicates are AND-ed
    assert names(
        _filter({"key": "created_at", "op": "LESS_THAN_EQUALS", "long_value": alpha.created_at.seconds})
    ) == ["alpha"]
    assert names(_filter({"key": "id", "op": "EQUALS", "string_value": gamma.id})) == ["Gamma-Run"]
    # The server URL-decodes the value once more, so an encoded filter works too; camelCase is accepted.
    encoded = urllib.parse.quote(_filter({"key": "description", "op": "EQUALS", "stringValue": "first"}))
    assert names(encoded) == ["alpha"]
    page = kfp.ListRuns(filter=_filter({"key": "name", "op": "EQUALS", "string_value": "nobody"}))
    assert (len(page.runs), page.total_size, page.next_page_token) == (0, 0, "")


@pytest.mark.parametrize(
    "query",
    [
        "{not json",
        "%zz",
        _filter({"key": "finished_at", "op": "EQUALS", "int_value": 1}),
        _filter({"key": "name", "string_value": "x"}),
        _filter({"key": "name", "op": "IN", "string_value": "x"}),
        _filter({"key": "name", "op": "EQUALS", "string_values": {"values": ["x"]}}),
        _filter({"key": "name", "op": "IS_SUBSTRING", "int_value": 1}),
        _filter({"key": "name", "op": "EQUALS"}),
    ],
)
def test_bad_filters_are_invalid(kfp, query: str) -> None:
    error = kfp.error("ListRuns", filter=query)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("filter:")


def test_archived_runs_are_listed_by_default(kfp) -> None:
    run = kfp.create("archived")
    kfp.ArchiveRun(id=run.id)
    [listed] = kfp.ListRuns().runs
    assert listed.storage_state == 1  # STORAGESTATE_ARCHIVED


def test_resource_reference_scope(kfp) -> None:
    experiment = kfp.server.run(lambda: kfp.state().add_experiment("exp"))
    owner = [{"key": {"type": "EXPERIMENT", "id": experiment.id}, "relationship": "OWNER"}]
    mine = kfp.create("mine", resource_references=owner)
    default = kfp.create("default")
    in_experiment = kfp.ListRuns(resource_reference_key={"type": "EXPERIMENT", "id": experiment.id})
    assert [r.id for r in in_experiment.runs] == [mine.id] and in_experiment.total_size == 1
    default_id = default.resource_references[0].key.id
    assert _names(kfp.ListRuns(resource_reference_key={"type": "EXPERIMENT", "id": default_id}).runs) == [
        "default"
    ]
    assert not kfp.ListRuns(resource_reference_key={"type": "EXPERIMENT", "id": "unknown"}).runs
    for key in [{"type": "PIPELINE", "id": "p"}, {"id": experiment.id}]:
        error = kfp.error("ListRuns", resource_reference_key=key)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("resource_reference_key.type:")


def _rfc3339(seconds: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
