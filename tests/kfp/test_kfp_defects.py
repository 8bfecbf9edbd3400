"""Every KFP defect mode bends exactly the behaviour it names (and is off by default)."""

from __future__ import annotations

import grpc
from protoconform.mockserver.apis.kfp.defects import DEFECTS
from protoconform.specs import rules


def test_catalogue_names_the_documented_defects_and_rules() -> None:
    assert set(DEFECTS) == {
        "kfp.get-run-wrong-status-for-missing",
        "kfp.list-repeats-item",
        "kfp.duplicate-metric-accepted",
        "kfp.terminate-finished-run-accepted",
        "kfp.run-missing-created-at",
        "kfp.sort-ignored",
        "kfp.scoped-page-token-ignored",  # shown in tests/conformance/test_family_models.py
        "kfp.storage-state-out-of-domain",
    }
    family = rules.load("kfp")
    for defect in DEFECTS.values():
        family.rule(defect.rule)


def test_get_run_wrong_status(kfp, defect) -> None:
    assert kfp.error("GetRun", run_id="nope").code() == grpc.StatusCode.NOT_FOUND
    defect("kfp.get-run-wrong-status-for-missing")
    assert kfp.error("GetRun", run_id="nope").code() == grpc.StatusCode.INTERNAL


def test_list_repeats_item(kfp, defect) -> None:
    for i in range(3):
        kfp.create(f"r{i}")
    first = kfp.ListRuns(page_size=2, sort_by="name")
    assert [r.name for r in kfp.ListRuns(page_size=2, page_token=first.next_page_token).runs] == ["r2"]
    defect("kfp.list-repeats-item")
    first = kfp.ListRuns(page_size=2, sort_by="name")
    second = kfp.ListRuns(page_size=2, page_token=first.next_page_token)
    assert [r.name for r in second.runs] == ["r1", "r2"]


def test_duplicate_metric_accepted(kfp, defect) -> None:
    run = kfp.create()
    metric = {"name": "m", "node_id": "n", "number_value": 1}
    kfp.ReportRunMetrics(run_id=run.id, metrics=[metric])
    defect("kfp.duplicate-metric-accepted")
    reply = kfp.ReportRunMetrics(run_id=run.id, metrics=[{**metric, "number_value": 2}])
    assert reply.results[0].status == 1
    assert kfp.GetRun(run_id=run.id).run.metrics[0].number_value == 2


def test_terminate_finished_run_accepted(kfp, defect) -> None:
    run = kfp.create()
    kfp.advance(7)
    assert kfp.error("TerminateRun", run_id=run.id).code() == grpc.StatusCode.INVALID_ARGUMENT
    defect("kfp.terminate-finished-run-accepted")
    kfp.TerminateRun(run_id=run.id)
    assert kfp.GetRun(run_id=run.id).run.status == "Terminating"


def test_run_missing_created_at(kfp, defect) -> None:
    assert kfp.create().HasField("created_at")
    defect("kfp.run-missing-created-at")
    run = kfp.create()
    assert not run.HasField("created_at")
    assert not kfp.GetRun(run_id=run.id).run.HasField("created_at")
    assert not any(r.HasField("created_at") for r in kfp.ListRuns().runs)


def test_sort_ignored(kfp, defect) -> None:
    runs = [kfp.create(name) for name in ["b", "a"]]
    kfp.advance(1)
    kfp.create("c")
    assert [r.name for r in kfp.ListRuns(sort_by="name desc").runs] == ["c", "b", "a"]
    defect("kfp.sort-ignored")
    names = [r.name for r in kfp.ListRuns(sort_by="name desc").runs]
    assert names[-1] == "c" and set(names[:2]) == {r.name for r in runs}


def test_storage_state_out_of_domain(kfp, defect) -> None:
    run = kfp.create()
    defect("kfp.storage-state-out-of-domain")
    states = {kfp.GetRun(run_id=run.id).run.storage_state, kfp.ListRuns().runs[0].storage_state}
    assert states == {2}  # neither STORAGESTATE_AVAILABLE (0) nor STORAGESTATE_ARCHIVED (1)
