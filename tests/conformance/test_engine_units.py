"""Pieces of the conformance engine on their own: paths, examples, baseline, reports, reproducers."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import grpc
import pytest
from protoconform.conformance import examples as ex
from protoconform.conformance import paths
from protoconform.conformance.baseline import BaselineError, load
from protoconform.conformance.caller import Caller, Reply, buf_curl, resolve_method
from protoconform.conformance.reports import CaseResult, Report
from protoconform.conformance.target import Target, TargetError, split_address
from protoconform.conformance.verdict import Mismatch
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import parse

REGISTRY = default_registry()


def response_of(name: str):  # type: ignore[no-untyped-def]
    return REGISTRY.message_descriptor(resolve_method(REGISTRY, name).response_type)


def request_of(name: str):  # type: ignore[no-untyped-def]
    return REGISTRY.message_descriptor(resolve_method(REGISTRY, name).request_type)


def test_fit_finds_the_same_field_in_other_messages() -> None:
    reference = paths.reference_for("result.status", [response_of("Results.GetResult")])
    assert paths.fit("result.status", response_of("Results.GetResult"), reference) == "result.status"
    assert paths.fit("result.status", response_of("Results.ListResults"), reference) == "results.status"
    task = paths.reference_for("task.status", [response_of("Tasks.GetTask")])
    assert paths.fit("task.status", response_of("Tasks.CountTasksByStatus"), task) == "status.status"
    assert paths.fit("session_id", request_of("Results.UploadResultData")) == "id.session_id"
    with pytest.raises(paths.PathError):
        paths.fit("no_such_field", request_of("Sessions.GetSession"))


def test_values_clear_and_assign_follow_repeated_fields() -> None:
    cls = REGISTRY.message_class(resolve_method(REGISTRY, "Tasks.SubmitTasks").request_type)
    msg = cls(session_id="s")
    msg.task_creations.add(payload_id="p1", expected_output_keys=["o1"])
    msg.task_creations.add(payload_id="p2")
    assert paths.values_at(msg, "task_creations.payload_id") == ["p1", "p2"]
    paths.assign(msg, "task_creations.data_dependencies", "d")
    assert list(msg.task_creations[0].data_dependencies) == ["d"]
    paths.clear(msg, "task_creations.payload_id")
    assert [t.payload_id for t in msg.task_creations] == ["", "p2"]
    paths.clear(msg, "task_creations.payload_id", everywhere=True)
    assert [t.payload_id for t in msg.task_creations] == ["", ""]
    assert paths.values_at(cls(), "task_options.priority") == [paths.MISSING]
    assert not paths.is_set(paths.MISSING) and not paths.is_set("") and paths.is_set(cls())


def test_placeholders_and_templates() -> None:
    template = {"a": "${x.id}", "b": [{"c": "${y.list.0}-${ns}"}], "d": 3}
    assert ex.placeholders(template) == {"x", "y", "ns"}
    assert ex.placeholders(ex.without(template, "a")) == {"y", "ns"}
    stream = [{"id": {"session_id": "${s.id}"}}, {"data_chunk": "eA=="}]
    assert ex.without(stream, "id.session_id") == [{"id": {}}, {"data_chunk": "eA=="}]
    camel = {"taskCreations": [{"payloadId": "${p.id}"}, {"payloadId": "${q.id}"}]}
    assert ex.placeholders(ex.without(camel, "task_creations.payload_id")) == {"q"}
    assert ex.placeholders(ex.without(camel, "task_creations.payload_id", everywhere=True)) == set()


def test_scenario_resolves_values_and_json_strings() -> None:
    scenario = ex.Scenario(None, "ns1", random.Random(1), [])  # type: ignore[arg-type]
    bindings = {"run": {"id": "r1", "n": 7, "manifest": '{"metadata": {"name": "wf-1"}}'}}
    assert scenario.resolve("${run.n}", bindings) == 7  # a whole placeholder keeps its type
    assert scenario.resolve("id=${run.id}", bindings) == "id=r1"
    assert scenario.resolve("${run.manifest.metadata.name}", bindings) == "wf-1"
    assert scenario.resolve("${ns}", {}) == "ns1"
    assert scenario.resolve("${unique}", {}) != scenario.resolve("${unique}", {})
    again = ex.Scenario(None, "ns1", random.Random(1), [])  # type: ignore[arg-type]
    assert again.fresh_id() == ex.Scenario(None, "ns1", random.Random(1), []).fresh_id()  # type: ignore[arg-type]
    with pytest.raises(Mismatch):
        scenario.resolve("${run.missing}", bindings)


def test_placeholder_sums_and_bytes() -> None:
    """``${path+N}`` adds to a bound number (protojson int64 arrive as text); ``${bytes:...}`` is
    that many bytes, base64-encoded; only the bound root counts as a dependency."""
    import base64

    scenario = ex.Scenario(None, "ns1", random.Random(1), [])  # type: ignore[arg-type]
    bindings = {"config": {"size": "5", "name": "x"}}
    assert scenario.resolve("${config.size+1}", bindings) == 6
    assert scenario.resolve("${bytes:3}", {}) == base64.b64encode(b"xxx").decode()
    assert len(base64.b64decode(scenario.resolve("${bytes:config.size+2}", bindings))) == 7
    assert ex.placeholders({"chunk": "${bytes:config.size+1}", "n": "${bytes:4}"}) == {"config"}
    assert ex.functions(["${bytes:1}", {"a": "${ns}"}]) == {"bytes"}
    with pytest.raises(Mismatch, match="not a number"):
        scenario.resolve("${bytes:config.name}", bindings)
    services = REGISTRY.families["armonik"]
    odd = [{"examples": {"Sessions.GetSession": {"request": {"session_id": "${hex:4}"}}}}]
    with pytest.raises(ex.ExampleError, match="placeholder function"):
        ex.FamilyExamples("armonik", REGISTRY, parse("armonik", odd, services))


def _kfp_book(then: dict) -> ex.FamilyExamples:  # type: ignore[type-arg]
    case = {
        "method": "RunService.TerminateRun",
        "given": {"created": {"call": "RunService.CreateRun", "request": {"run": {"name": "r"}}}},
        "request": {"run_id": "${created.run.id}"},
        "then": then,
    }
    documents = [
        {
            "rules": [
                {"id": "r.effect", "kind": "transition", "method": "RunService.TerminateRun", "code": "OK"}
            ]
        },
        {"cases": {"r.effect": [case]}},
    ]
    return ex.FamilyExamples("kfp", REGISTRY, parse("kfp", documents, REGISTRY.families["kfp"]))


def test_then_steps_are_parsed_and_checked_for_bindings() -> None:
    then = {
        "after": {
            "call": "RunService.GetRun",
            "request": {"run_id": "${created.run.id}"},
            "reply": [{"field": "run.status", "in": ["Terminating"]}],
        }
    }
    (case,) = _kfp_book(then).cases["r.effect"]
    assert [s.name for s in case.then] == ["after"]
    assert case.then[0].reply == ({"field": "run.status", "in": ["Terminating"]},)
    assert "api.RunService.GetRun" in _kfp_book(then).calls(case.then)  # --read-only sees it
    with pytest.raises(ex.ExampleError, match="before they are bound"):
        _kfp_book({"after": {"call": "RunService.GetRun", "request": {"run_id": "${later.id}"}}})
    with pytest.raises(ex.ExampleError, match="already bound"):
        _kfp_book({"created": {"call": "RunService.GetRun", "request": {}}})
    with pytest.raises(ex.ExampleError, match="has no check"):
        _kfp_book({"after": {"call": "RunService.GetRun", "request": {}, "reply": {"field": "run.status"}}})


def test_field_expectations() -> None:
    data = {"run": {"status": "Failed", "finished_at": "1970-01-01T00:00:00Z", "name": ""}}
    assert ex.field_mismatch(data, {"field": "run.status", "in": ["Failed", "Error"]}) is None
    assert ex.field_mismatch(data, {"field": "run.status", "in": ["Running"]}) == (
        "run.status in ['Running']",
        "Failed",
    )
    epoch = {"field": "run.finished_at", "not_in": ["1970-01-01T00:00:00Z"]}
    assert ex.field_mismatch(data, epoch) == (
        "run.finished_at not in ['1970-01-01T00:00:00Z']",
        data["run"]["finished_at"],
    )
    # a missing field satisfies neither form; an empty text shows as ''
    assert ex.field_mismatch(data, {"field": "run.error", "not_in": ["x"]}) == (
        "run.error not in ['x']",
        "nothing",
    )
    assert ex.field_mismatch(data, {"field": "run.name", "in": ["a"]}) == ("run.name in ['a']", "''")


class _ScriptedRpc:
    """Answers every call OK with a fixed response per method: enough to drive ``then`` steps."""

    def __init__(self, responses: dict[str, dict]) -> None:  # type: ignore[type-arg]
        self.responses = responses

    def resolve(self, name: str):  # type: ignore[no-untyped-def]
        return resolve_method(REGISTRY, name)

    def __call__(self, method, request=None, **kwargs):  # type: ignore[no-untyped-def]
        from google.protobuf import json_format

        m = method if not isinstance(method, str) else self.resolve(method)
        response = REGISTRY.message_class(m.response_type)()
        json_format.ParseDict(self.responses.get(m.name, {}), response)
        built = REGISTRY.message_class(m.request_type)()
        json_format.ParseDict(request or {}, built)
        return Reply(m, grpc.StatusCode.OK, "", [built], [response])


def test_a_wait_ends_at_once_on_a_value_outside_the_enum() -> None:
    """Waiting for a status name while the server answers a number no enum value has: the step
    fails at once (naming the number), not after its whole wait; a wanted name ends the wait."""
    from protoconform.conformance.examples.parsing import Step

    step = Step(
        name="done",
        method="armonik.api.grpc.v1.tasks.Tasks.GetTask",
        example=False,
        until={"field": "task.status", "in": ["TASK_STATUS_COMPLETED"], "timeout": 30, "interval": 0.05},
    )
    for status, fails in ((42, True), (4, False)):  # 4: TASK_STATUS_COMPLETED
        rpc = _ScriptedRpc({"GetTask": {"task": {"status": status}}})
        scenario = ex.Scenario(rpc, "ns1", random.Random(1), [])  # type: ignore[arg-type]
        once = functools.partial(rpc, "Tasks.GetTask", {"task_id": "t"})
        if not fails:
            assert scenario._until(step, once).ok
            continue
        with pytest.raises(Mismatch) as caught:
            scenario._until(step, once)
        # not "(30s of server time)": the wait was not waited out
        assert caught.value.detail == "waiting in step 'done': 42 is no value of the field's enum"


def test_then_step_deviation_belongs_to_the_case_rule() -> None:
    then = {
        "after": {
            "call": "RunService.GetRun",
            "request": {"run_id": "${created.run.id}"},
            "reply": {"field": "run.status", "in": ["Terminating"]},
        }
    }
    (case,) = _kfp_book(then).cases["r.effect"]
    bindings = {"created": {"run": {"id": "r1"}}}
    for status, fails in (("Terminating", False), ("Running", True)):
        rpc = _ScriptedRpc({"GetRun": {"run": {"id": "r1", "status": status}}})
        scenario = ex.Scenario(rpc, "ns1", random.Random(1), [])  # type: ignore[arg-type]
        reply = rpc("RunService.TerminateRun", {"run_id": "r1"})
        if not fails:
            scenario.follow(case, bindings, reply)
            continue
        with pytest.raises(Mismatch) as caught:
            scenario.follow(case, bindings, reply)
        # rule None: the plugin reports it under the case's own rule, not as a failed preparation
        assert caught.value.rule is None and "run.status" in caught.value.expected
        assert caught.value.actual == "Running" and "after" in caught.value.detail


def test_family_examples_needed_steps_and_effects() -> None:
    book = ex.book("armonik")
    example = book.example(resolve_method(REGISTRY, "Tasks.SubmitTasks").service + ".SubmitTasks")
    assert example is not None
    assert [s.name for s in book.needed(example, example.template)] == ["session", "inputs", "outputs"]
    # Without the payload, the step creating it is not needed; the session still is.
    template = ex.without(example.template, "task_creations.payload_id")
    assert [s.name for s in book.needed(example, template)] == ["session", "outputs"]
    assert not book.mutating("armonik.api.grpc.v1.sessions.Sessions.GetSession")
    assert book.mutating("armonik.api.grpc.v1.sessions.Sessions.CreateSession")
    assert "armonik.api.grpc.v1.sessions.Sessions.CreateSession" in book.calls(example.given)


def test_examples_data_errors_are_reported() -> None:
    services = REGISTRY.families["armonik"]
    documents = [{"examples": {"Sessions.GetSession": {"request": {"session_id": "${nothing.id}"}}}}]
    rules = parse("armonik", documents, services)
    with pytest.raises(ex.ExampleError, match="unbound"):
        ex.FamilyExamples("armonik", REGISTRY, rules)
    bad = parse("armonik", [{"examples": {"Sessions.NoSuchMethod": {"request": {}}}}], services)
    with pytest.raises(ex.ExampleError, match="not a served method"):
        ex.FamilyExamples("armonik", REGISTRY, bad)


def test_baseline(tmp_path: Path) -> None:
    path = tmp_path / "baseline.yaml"
    path.write_text(
        "deviations:\n"
        "  - {rule: a.b.c, method: Svc.M, reason: known}\n"
        "  - {rule: a.b.d, reason: every method}\n"
    )
    base = load(path)
    assert base.match("a.b.c", "pkg.Svc.M") is not None
    assert base.match("a.b.c", "pkg.Svc.Other") is None
    assert base.match("a.b.d", "pkg.X.Y") is not None
    assert base.match("", "pkg.Svc.M") is None
    path.write_text("deviations:\n  - {rule: x}\n")
    with pytest.raises(BaselineError, match="reason"):
        load(path)


def test_reports_matrix_and_scores() -> None:
    report = Report(
        target={}, families=["kfp"], suites=["rules"], seed=0, max_examples=1, read_only=False, lenient=False
    )
    report.methods = {"kfp": {"api.RunService": ["GetRun", "ListRuns", "DeleteRun"]}}
    report.rules = {"kfp": ["r1", "r2", "r3"]}
    for outcome, method, rule in (
        ("passed", "GetRun", "r1"),
        ("failed", "GetRun", "r2"),
        ("skipped", "ListRuns", ""),
    ):
        report.results.append(CaseResult("n", "kfp", "api.RunService", method, "rules", rule, outcome))
    grid = report.matrix()["kfp"]["api.RunService"]
    assert Report.cell_state(grid["GetRun"]["rules"]) == "failed"
    assert Report.cell_state(grid["ListRuns"]["rules"]) == "skipped"
    assert Report.cell_state(grid["DeleteRun"].get("rules")) == "n.a."
    assert report.scores()["kfp"]["score"] == 50.0
    assert report.uncovered_rules() == {"kfp": ["r3"]}


def test_buf_curl_reproducer_quotes_and_hides_the_token() -> None:
    method = resolve_method(REGISTRY, "RunService.GetRun")
    request = REGISTRY.message_class(method.request_type)(run_id="it's")
    reply = Reply(method, grpc.StatusCode.NOT_FOUND, "x", [request])
    target = Target("127.0.0.1:9", tls=True, ca="ca.pem", token="secret")
    command = buf_curl(target, reply)
    assert "secret" not in command and '"Authorization: Bearer $TOKEN"' in command
    assert command.endswith("https://127.0.0.1:9/api.RunService/GetRun")
    assert "--cacert ca.pem" in command and "'\"'\"'" in command  # the quote in the id survives the shell


def test_caller_names_and_addresses() -> None:
    caller = Caller(None, REGISTRY, Target("h:1"))  # type: ignore[arg-type]
    assert caller.resolve("Sessions.GetSession").path == "/armonik.api.grpc.v1.sessions.Sessions/GetSession"
    assert caller.resolve("/api.RunService/GetRun").name == "GetRun"
    with pytest.raises(KeyError, match="no served method"):
        caller.resolve("NoSuchService.Method")
    assert split_address("[::1]:50051") == ("::1", 50051)
    with pytest.raises(TargetError):
        split_address("localhost")


def test_a_new_rule_in_specs_becomes_a_case_without_engine_change() -> None:
    """Adding a family's rule is data only: the rules suite derives its case (and which calls it needs)."""
    from importlib import resources

    import yaml
    from protoconform.conformance.suites.rules import cases_for

    folder = resources.files("protoconform.specs").joinpath("kfp")
    documents = [yaml.safe_load(f.read_text()) for f in folder.iterdir() if f.name.endswith(".yaml")]
    documents.append(
        {
            "rules": [
                {
                    "id": "kfp.runs.get.run-id-required",
                    "kind": "required",
                    "method": "RunService.GetRun",
                    "field": "run_id",
                    "code": "INVALID_ARGUMENT",
                }
            ]
        }
    )
    rules = parse("kfp", documents, REGISTRY.families["kfp"])
    cases = {case.id: case for case in cases_for("kfp", rules, ex.FamilyExamples("kfp", REGISTRY, rules))}
    case = cases["kfp.runs.get.run-id-required[RunService.GetRun]"]
    assert case.kind == "shape" and case.paths == ("run_id",) and not case.skip
    # The example of GetRun creates a run first; without run_id that step is not needed,
    # so the case calls GetRun only and runs in --read-only mode too.
    assert case.steps == () and case.calls == ("api.RunService.GetRun",)
    assert "kfp.runs.get.run-id-required[RunService.GetRun]" not in {c.id for c in cases_for("kfp")}


def test_journal_is_bounded() -> None:
    from protoconform.mockserver.control.journal import Journal
    from protoconform.mockserver.dispatch import CallRecord

    method = resolve_method(REGISTRY, "Sessions.GetSession")
    journal = Journal(REGISTRY, capacity=2)
    for i in range(3):
        record = CallRecord(method, "grpc", {}, "peer")
        record.requests.append(REGISTRY.message_class(method.request_type)(session_id=f"s{i}"))
        journal.after(record)
    entries = journal.entries()
    assert [e["seq"] for e in entries] == [2, 3]
    assert entries[-1]["requests"] == [{"session_id": "s2"}]
    assert journal.counts["armonik.api.grpc.v1.sessions.Sessions.GetSession"] == 3
    assert journal.entries(since=2) == entries[1:] and journal.entries(limit=0) == []


def test_a_name_label_is_one_fresh_name_per_case() -> None:
    import random

    def scenario() -> ex.Scenario:
        return ex.Scenario(None, "ns", random.Random(0), [])  # type: ignore[arg-type]

    first = scenario()
    resolved = first.resolve({"a": "${name:wf}", "b": "x-${name:wf}", "c": "${name:lp}"}, {})
    assert resolved["a"].startswith("ns-wf-") and resolved["b"] == f"x-{resolved['a']}"
    assert resolved["c"] != resolved["a"]
    assert scenario().resolve("${name:wf}", {}) != resolved["a"]  # another case, another name
    assert ex.placeholders({"a": "${name:wf}"}) == set()  # a label is not a bound name


def test_rest_route_is_the_first_binding_the_request_fills() -> None:
    from protoconform.conformance.suites.rest import transcode

    method = REGISTRY.method("flyteidl.service.AdminService.ListTasks")
    request = REGISTRY.message_class(method.request_type)(id={"project": "p", "domain": "d"}, limit=5)
    # the name is not set: the additional binding without it, not the main route with an empty segment
    assert transcode(method, request).path == "/api/v1/tasks/p/d"
    request.id.name = "t"
    call = transcode(method, request)
    assert call.path == "/api/v1/tasks/p/d/t" and ("limit", "5") in call.query


def test_error_expectations_are_parsed_and_exclusive_with_reply() -> None:
    book = ex.book("flyte")
    assert all(isinstance(case.error, tuple) for cases in book.cases.values() for case in cases)
    with pytest.raises(ex.ExampleError, match="not both"):
        book._add_case(
            "flyte.events.workflow.terminal",
            "flyteidl.service.AdminService.CreateWorkflowEvent",
            {"request": {}, "reply": {"field": "a", "in": [1]}, "error": {"field": "code", "in": ["X"]}},
            "here",
        )


def test_rest_answers_from_a_hostile_target_are_findings_not_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    import http.server
    import threading

    from protoconform.conformance.suites import rest

    bodies = {"/deep": b"[" * 200_000 + b"]" * 200_000, "/long": b"x" * 5000}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = rest.Rest(Target("h:1", rest=f"http://127.0.0.1:{server.server_address[1]}"))
        deep = client.send(rest.HttpCall("GET", "/deep", [], None))
        assert deep.status == 200 and deep.json() is None  # not JSON this harness can read: no RecursionError
        monkeypatch.setattr(rest, "MAX_BODY_BYTES", 4096)
        with pytest.raises(Mismatch, match="at most 4096 bytes"):
            client.send(rest.HttpCall("GET", "/long", [], None))
    finally:
        server.shutdown()
