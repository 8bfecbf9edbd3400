"""ListRuns from the run index gives the same pages as a scan of every run, on random data.

A listing sorted by created_at or name, in every run or one experiment or
namespace, filtered on storage_state and status or not, is served from the
sorted indexes; the same listing with one more predicate that every run passes
(``id != ""``) is served by a scan.  Both walks must see the same runs in the
same order, page for page, with the same total_size.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
EXPERIMENTS = ["exp-a", "exp-b"]
EVERY_RUN = {"key": "id", "op": "NOT_EQUALS", "string_value": ""}  # true of every run: forces the scan

runs = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["a", "b", "B", "run", "z", "a b"]),
            "experiment": st.sampled_from([None, *EXPERIMENTS]),
            "namespace": st.sampled_from([None, "ns-1", "ns-2"]),
            "archived": st.booleans(),
            # virtual seconds before it is created: ties happen, and the runs before move on
            "tick": st.sampled_from([0, 0, 1, 7]),
            "deleted": st.integers(0, 9).map(lambda n: n == 0),
        }
    ),
    max_size=30,
)
storage_filters = st.sampled_from(
    [
        [],
        [{"key": "storage_state", "op": "EQUALS", "string_value": "STORAGESTATE_ARCHIVED"}],
        [{"key": "storage_state", "op": "NOT_EQUALS", "string_value": "STORAGESTATE_ARCHIVED"}],
        [{"key": "storage_state", "op": "EQUALS", "string_value": "STORAGESTATE_AVAILABLE"}],
        [{"key": "storage_state", "op": "IN", "string_values": {"values": ["STORAGESTATE_AVAILABLE"]}}],
        [{"key": "storage_state", "op": "IS_SUBSTRING", "string_value": "arch"}],
        [{"key": "status", "op": "EQUALS", "string_value": "Running"}],
        [{"key": "status", "op": "NOT_EQUALS", "string_value": "Succeeded"}],
        [{"key": "status", "op": "IN", "string_values": {"values": ["", "Pending"]}}],
        [{"key": "status", "op": "GREATER_THAN", "string_value": "Q"}],
        [
            {"key": "storage_state", "op": "EQUALS", "string_value": "STORAGESTATE_AVAILABLE"},
            {"key": "status", "op": "EQUALS", "string_value": "Succeeded"},
        ],
    ]
)
scopes = st.sampled_from(
    [
        None,
        {"type": "EXPERIMENT", "id": "exp-a"},
        {"type": "EXPERIMENT", "id": "exp-b"},
        {"type": "EXPERIMENT", "id": "nowhere"},
        {"type": "NAMESPACE", "id": "ns-1"},
        {"type": "NAMESPACE", "id": "ns-3"},
    ]
)
sorts = st.sampled_from(["", "created_at", "created_at desc", "name", "name asc", "name desc"])


def _walk(kfp: Any, page_size: int, sort_by: str, predicates: list[dict], scope: dict | None) -> list[Any]:
    """(ids, total_size) of every page, following the tokens."""
    request: dict[str, Any] = {"page_size": page_size, "sort_by": sort_by}
    if predicates:
        request["filter"] = json.dumps({"predicates": predicates})
    if scope is not None:
        request["resource_reference_key"] = scope
    pages, token = [], ""
    while True:
        page = kfp.ListRuns(page_token=token, **request)
        assert len(page.runs) <= page_size
        pages.append(([r.id for r in page.runs], page.total_size))
        token = page.next_page_token
        if not token:
            return pages


@SETTINGS
@given(
    data=runs,
    settle=st.sampled_from([0, 1, 2, 6, 20]),
    queries=st.lists(st.tuples(st.integers(1, 7), sorts, storage_filters, scopes), min_size=1, max_size=6),
)
def test_indexed_pages_equal_scanned_pages(kfp, data, settle, queries) -> None:
    server = kfp.server
    server.run(server.server.reset_state)
    state = kfp.state()
    for experiment_id in EXPERIMENTS:
        server.run(lambda e=experiment_id: state.add_experiment(e, experiment_id=e))
    for spec in data:
        kfp.advance(spec["tick"])
        refs = []
        if spec["experiment"]:
            refs.append({"key": {"type": "EXPERIMENT", "id": spec["experiment"]}, "relationship": "OWNER"})
        if spec["namespace"]:
            refs.append({"key": {"type": "NAMESPACE", "id": spec["namespace"]}, "relationship": "OWNER"})
        run = kfp.create(spec["name"], resource_references=refs)
        if spec["archived"]:
            kfp.ArchiveRun(id=run.id)
        if spec["deleted"]:
            kfp.DeleteRun(id=run.id)
    kfp.advance(settle)
    for page_size, sort_by, predicates, scope in queries:
        indexed = _walk(kfp, page_size, sort_by, predicates, scope)
        scanned = _walk(kfp, page_size, sort_by, [*predicates, EVERY_RUN], scope)
        assert indexed == scanned
        ids = [i for page, _ in indexed for i in page]
        assert len(ids) == len(set(ids)) == indexed[0][1]


def test_a_run_moves_between_storage_states_in_the_index(kfp) -> None:
    runs = [kfp.create(f"r{i}") for i in range(5)]
    archived = json.dumps(
        {"predicates": [{"key": "storage_state", "op": "EQUALS", "string_value": "STORAGESTATE_ARCHIVED"}]}
    )
    for run in runs[1:4]:
        kfp.ArchiveRun(id=run.id)
    kfp.UnarchiveRun(id=runs[2].id)
    kfp.DeleteRun(id=runs[3].id)
    page = kfp.ListRuns(filter=archived, sort_by="name desc")
    assert [r.name for r in page.runs] == ["r1"] and page.total_size == 1
    page = kfp.ListRuns(sort_by="name desc", page_size=2)
    assert [r.name for r in page.runs] == ["r4", "r2"] and page.total_size == 4


def _token(sort: list, key: list, predicates: list[dict]) -> str:
    """A page token as the server writes them, with a key of our choosing."""
    text = json.dumps({"predicates": predicates}, sort_keys=True) if predicates else ""
    payload = {"model": "Run", "sort": sort, "filter": text, "key": key}
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def test_forged_token_keys_get_the_same_answer_from_both_paths(kfp) -> None:
    for i in range(4):
        kfp.create(f"r{i}")
        kfp.advance(1)
    keys = [
        [True, "x", "a"],
        [True, 2.5, "a"],
        [True, None, "a"],
        [True, True, "a"],
        [False, 0, "a"],
        [True, 1, ""],
    ]
    for field in ("created_at", "name"):
        for desc in (False, True):
            for key in keys:
                answers = []
                for predicates in ([], [EVERY_RUN]):
                    token = _token([field, desc], key, predicates)
                    try:
                        page = kfp.ListRuns(page_token=token, page_size=2)
                        answers.append(
                            ([r.id for r in page.runs], page.total_size, bool(page.next_page_token))
                        )
                    except grpc.RpcError as error:
                        answers.append((error.code(), error.details()))
                assert answers[0] == answers[1], (field, desc, key)
