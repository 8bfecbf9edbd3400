"""Arbitrary input never breaks the server: a refused request answers a rule's code and changes nothing."""

from __future__ import annotations

import json

import grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from protoconform.specs import rules

CODES = {grpc.StatusCode[r.code] for r in rules.load("kfp").rules.values()} - {grpc.StatusCode.OK}
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=6))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
words = st.sampled_from(["main", "work", "a", "b", "", "x"])
task = st.fixed_dictionaries(
    {"name": words, "template": words},
    optional={"dependencies": st.lists(words, max_size=2) | json_values, "depends": st.text(max_size=12)},
)
template = st.fixed_dictionaries(
    {"name": words},
    optional={
        "dag": st.fixed_dictionaries({"tasks": st.lists(task, max_size=3)}) | json_values,
        "steps": st.lists(st.lists(task, max_size=2), max_size=2) | json_values,
        "container": st.just({"image": "alpine"}),
        "outputs": json_values,
    },
)
workflows = st.fixed_dictionaries(
    {"apiVersion": st.sampled_from(["argoproj.io/v1alpha1", "argoproj.io/v2"]), "kind": st.just("Workflow")},
    optional={
        "metadata": st.fixed_dictionaries({}, optional={"generateName": words, "annotations": json_values})
        | json_values,
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "entrypoint": words,
                "templates": st.lists(template, max_size=3) | json_values,
                "arguments": json_values,
            },
        )
        | json_values,
    },
)
ir_manifests = st.fixed_dictionaries(
    {
        "pipelineInfo": st.fixed_dictionaries({"name": st.just("p")}),
        "root": json_values.map(lambda v: {"dag": v}),
    },
    optional={"components": json_values},
)


def _check(kfp, call) -> None:
    before = [r.id for r in kfp.list_all()]
    try:
        call()
    except grpc.RpcError as error:
        assert error.code() in CODES, (error.code(), error.details())
        assert [r.id for r in kfp.list_all()] == before


NULLS = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": None, "spec": None}


@SETTINGS
@given(manifest=st.one_of(workflows, ir_manifests, json_values), v2=st.booleans())
@example(manifest=NULLS, v2=False)
@example(
    manifest={**NULLS, "metadata": {"labels": None}, "spec": {"templates": [None, {"dag": None}]}}, v2=False
)
@example(manifest={"pipelineInfo": {"name": "p"}, "root": {"dag": None}, "components": None}, v2=True)
def test_create_with_any_manifest_then_let_it_run(kfp, manifest, v2: bool) -> None:
    key = "pipeline_manifest" if v2 else "workflow_manifest"
    _check(kfp, lambda: kfp.CreateRun(run={"name": "fuzz", "pipeline_spec": {key: json.dumps(manifest)}}))
    kfp.advance(60)  # whatever was created runs to its end without failing a timer
    for run in kfp.list_all():
        assert kfp.GetRun(run_id=run.id).run.status in {"Succeeded", "Failed", "Error"}


predicates = st.fixed_dictionaries(
    {},
    optional={
        "key": st.sampled_from(["name", "status", "created_at", "storage_state", "id", "bogus"]),
        "op": st.sampled_from(
            ["EQUALS", "NOT_EQUALS", "GREATER_THAN", "LESS_THAN_EQUALS", "IN", "IS_SUBSTRING", 0]
        ),
        "string_value": st.text(max_size=4),
        "int_value": st.integers(-3, 3),
        "timestamp_value": st.just("2020-01-01T00:00:00Z"),
        "string_values": st.fixed_dictionaries({"values": st.lists(st.text(max_size=3), max_size=2)}),
    },
)


@SETTINGS
@given(
    query=st.one_of(
        st.lists(predicates, max_size=3).map(lambda p: json.dumps({"predicates": p})), st.text(max_size=8)
    ),
    sort_by=st.sampled_from(
        ["", "name", "created_at desc", "metric:x", "status asc", "nope", "name sideways"]
    ),
    page_size=st.integers(-2, 3),
)
def test_list_with_any_filter_sort_and_size(kfp, query: str, sort_by: str, page_size: int) -> None:
    if not kfp.list_all():
        for name in ["a", "b", "c"]:
            kfp.create(name)
    _check(kfp, lambda: kfp.list_all(filter=query, sort_by=sort_by, page_size=page_size))
