"""ReportRunMetrics (in-band per-metric statuses) and ReadArtifact."""

from __future__ import annotations

import json

import grpc
from kfp_support import workflow
from protoconform.mockserver.apis.kfp.artifacts import untgz

OK, INVALID, DUPLICATE = 1, 2, 3  # ReportRunMetricResult.Status


def test_results_in_order_duplicates_keep_the_first_value(kfp) -> None:
    run = kfp.create()
    first = kfp.ReportRunMetrics(
        run_id=run.id,
        metrics=[
            {"name": "accuracy", "node_id": "n1", "number_value": 0.5, "format": "PERCENTAGE"},
            {"name": "1starts-with-digit", "node_id": "n1", "number_value": 1},
            {"name": "loss", "node_id": "", "number_value": 1},
            {"name": "loss", "node_id": "n" * 129, "number_value": 1},
            {"name": "loss", "node_id": "n" * 128, "number_value": 2},
            {"name": "accuracy", "node_id": "n1", "number_value": 0.7},  # duplicate within the call
            {"name": "accuracy", "node_id": "n2", "number_value": 0.9},  # another node: a new metric
        ],
    )
    assert [(r.metric_name, r.status) for r in first.results] == [
        ("accuracy", OK),
        ("1starts-with-digit", INVALID),
        ("loss", INVALID),
        ("loss", INVALID),
        ("loss", OK),
        ("accuracy", DUPLICATE),
        ("accuracy", OK),
    ]
    assert "doesn't match with the pattern" in first.results[1].message
    assert first.results[2].message == "metric.node_id must not be empty"
    assert "cannot be longer than 128 characters" in first.results[3].message
    assert first.results[5].message == "same metric has been reported before: n1/accuracy"
    assert first.results[0].message == ""

    again = kfp.ReportRunMetrics(
        run_id=run.id, metrics=[{"name": "accuracy", "node_id": "n1", "number_value": 0.1}]
    )
    assert [r.status for r in again.results] == [DUPLICATE]
    metrics = {(m.node_id, m.name): m for m in kfp.GetRun(run_id=run.id).run.metrics}
    assert set(metrics) == {("n1", "accuracy"), ("n" * 128, "loss"), ("n2", "accuracy")}
    assert metrics[("n1", "accuracy")].number_value == 0.5 and metrics[("n1", "accuracy")].format == 2
    [listed] = kfp.ListRuns().runs
    assert len(listed.metrics) == 3


def test_a_metric_without_value_reads_back_as_zero(kfp) -> None:
    run = kfp.create()
    kfp.ReportRunMetrics(run_id=run.id, metrics=[{"name": "m", "node_id": "n"}])
    [metric] = kfp.GetRun(run_id=run.id).run.metrics
    assert metric.WhichOneof("value") == "number_value" and metric.number_value == 0


def test_metric_name_limits(kfp) -> None:
    run = kfp.create()
    names = ["a", "a" * 64, "a" * 65, "A_b-c9", "a-", "_a", "a b"]
    reply = kfp.ReportRunMetrics(run_id=run.id, metrics=[{"name": n, "node_id": "n"} for n in names])
    assert [r.status for r in reply.results] == [OK, OK, INVALID, OK, INVALID, INVALID, INVALID]


def test_unknown_run_fails_the_whole_call(kfp) -> None:
    error = kfp.error("ReportRunMetrics", run_id="nope", metrics=[{"name": "a", "node_id": "n"}])
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith("run_id:")


def test_read_artifact_returns_a_gzipped_tar(kfp) -> None:
    run = kfp.create(manifest=workflow({"a": []}))
    kfp.advance(2 + 5)
    runtime = json.loads(kfp.GetRun(run_id=run.id).pipeline_runtime.workflow_manifest)
    node = next(n for n in runtime["status"]["nodes"].values() if n["displayName"] == "a")
    names = [a["name"] for a in node["outputs"]["artifacts"]]
    assert names == ["mlpipeline-ui-metadata", "main-logs"]
    data = kfp.ReadArtifact(run_id=run.id, node_id=node["id"], artifact_name="mlpipeline-ui-metadata").data
    assert data[:2] == b"\x1f\x8b"  # gzip
    assert untgz(data) == {"ui.json": b'{"outputs": []}'}
    logs = untgz(kfp.ReadArtifact(run_id=run.id, node_id=node["id"], artifact_name="main-logs").data)
    assert b"succeeded" in logs["main.log"]

    for request, field in [
        ({"run_id": "nope", "node_id": node["id"], "artifact_name": "main-logs"}, "run_id:"),
        ({"run_id": run.id, "node_id": "nope", "artifact_name": "main-logs"}, "artifact_name:"),
        ({"run_id": run.id, "node_id": node["id"], "artifact_name": "nope"}, "artifact_name:"),
    ]:
        error = kfp.error("ReadArtifact", **request)
        assert error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith(field)


def test_artifacts_are_gone_with_the_run(kfp) -> None:
    run = kfp.create(manifest=workflow({"a": []}))
    kfp.advance(2 + 5)
    assert kfp.server.run(lambda: len(kfp.state().store._objects)) == 2
    kfp.DeleteRun(id=run.id)
    assert kfp.server.run(lambda: len(kfp.state().store._objects)) == 0
