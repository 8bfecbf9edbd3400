"""Path templates (the google.api.http grammar) and the per-generation matching rules."""

from __future__ import annotations

import pytest
from protoconform.mockserver.gateway.routes import PathTemplate, TemplateError, compile_routes
from protoconform.specs.registry import default_registry


def _match(template: str, path: str) -> dict[str, str] | None:
    parsed = PathTemplate.parse(template)
    components = path[1:].split("/")
    verb = ""
    if parsed.verb and components[-1].endswith(":" + parsed.verb):
        components[-1], verb = components[-1][: -len(parsed.verb) - 1], parsed.verb
    return parsed.match(components, verb)


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        (
            "/api/v1/tasks/{id.project}/{id.domain}",
            "/api/v1/tasks/p/d",
            {"id.project": "p", "id.domain": "d"},
        ),
        ("/v1/tasks/{id.project}/{id.domain}", "/v1/tasks/p", None),
        ("/v1/tasks/{id.project}/{id.domain}", "/v1/tasks/p/d/x", None),
        ("/v1/{name=projects/*}", "/v1/projects/alpha", {"name": "projects/alpha"}),
        ("/v1/{name=projects/*}", "/v1/folders/alpha", None),
        (
            "/v1/{name=projects/*/runs/*}:cancel",
            "/v1/projects/a/runs/b:cancel",
            {"name": "projects/a/runs/b"},
        ),
        ("/v1/{name=projects/*/runs/*}:cancel", "/v1/projects/a/runs/b", None),
        ("/v1/{path=**}", "/v1/a/b/c", {"path": "a/b/c"}),
        ("/v1/{path=**}/meta", "/v1/a/b/meta", {"path": "a/b"}),
        ("/v1/*/items/{id}", "/v1/anything/items/7", {"id": "7"}),
        ("/v1/files/**", "/v1/files/x/y", {}),
        (
            "/apis/v1beta1/runs/{run_id}:reportMetrics",
            "/apis/v1beta1/runs/r1:reportMetrics",
            {"run_id": "r1"},
        ),
    ],
)
def test_template_matching(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert _match(template, path) == expected


@pytest.mark.parametrize(
    "template",
    ["no/slash", "/v1/{name", "/v1/{na me}", "/v1/{a}/{a}", "/v1/**/x/**", "/v1/x/", "/v1/x:", "/v1/{a}b"],
)
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        PathTemplate.parse(template)


@pytest.fixture(scope="module")
def muxes():
    registry = default_registry()
    return compile_routes(registry, registry.service_names())


def test_v2_keeps_a_colon_in_the_last_segment_v1_splits_it_off(muxes) -> None:
    flyte = muxes["flyte"].resolve("GET", "/api/v1/projects/a:b")
    assert flyte.outcome == "match" and flyte.params == {"id": "a:b"}
    assert flyte.route is not None and flyte.route.method.name == "GetProject"
    kfp = muxes["kfp"].resolve("GET", "/apis/v1beta1/runs/a:b")
    assert kfp.outcome == "not_found"  # v1 reads ":b" as a verb no GET route has


def test_verbs_and_methods_pick_the_route(muxes) -> None:
    kfp = muxes["kfp"]
    assert kfp.resolve("POST", "/apis/v1beta1/runs/r:archive").route.method.name == "ArchiveRun"
    assert kfp.resolve("POST", "/apis/v1beta1/runs/r:unarchive").route.method.name == "UnarchiveRun"
    assert kfp.resolve("DELETE", "/apis/v1beta1/runs/r").route.method.name == "DeleteRun"
    assert kfp.resolve("GET", "/apis/v1beta1/runs/r:archive").outcome == "method_not_allowed"
    assert kfp.owns("/apis/anything") and not kfp.owns("/api/v1/projects")
    flyte = muxes["flyte"]
    additional = flyte.resolve("GET", "/api/v1/tasks/p/d")
    assert additional.route.method.name == "ListTasks" and additional.route.index == 1
    assert flyte.resolve("GET", "/api/v1/tasks/p/d/n").route.index == 0
