"""Strategies from descriptors and rules: round trips, every rule kind, exactly-one-broken."""

from __future__ import annotations

import math
import re

import pytest
import yaml
from google.protobuf import (
    any_pb2,
    descriptor,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from protoconform.conformance import strategies as S
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import FamilyRules, parse

FAST = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

SESSIONS = "armonik.api.grpc.v1.sessions.Sessions"
TASKS = "armonik.api.grpc.v1.tasks.Tasks"
RUNS = "api.RunService"

# One rule of every request kind, on real request messages of both families.
RULES_YAML = """
rules:
  - {id: t.session.options, kind: required, method: Sessions.CreateSession, field: default_task_option}
  - {id: t.session.duration, kind: required, method: Sessions.CreateSession,
     field: default_task_option.max_duration}
  - {id: t.tasks.options, kind: required, method: Tasks.SubmitTasks, field: task_options, presence: true}
  - {id: t.session.duration-range, kind: range, method: Sessions.CreateSession,
     field: default_task_option.max_duration, min: 1, max: 86400}
  - {id: t.session.priority, kind: range, method: Sessions.CreateSession, field: default_task_option.priority,
     min: 1, max: 99}
  - {id: t.session.retries, kind: range, method: Sessions.CreateSession,
     field: default_task_option.max_retries, min: 1}
  - {id: t.session.partition-pattern, kind: pattern, method: Sessions.CreateSession, field: partition_ids,
     regex: "[a-z][a-z0-9-]*"}
  - {id: t.session.partition-length, kind: length, method: Sessions.CreateSession, field: partition_ids,
     max: 12}
  - {id: t.session.options-map, kind: length, method: Sessions.CreateSession,
     field: default_task_option.options, max: 2}
  - {id: t.tasks.creations, kind: nonempty, method: Tasks.SubmitTasks, field: task_creations}
  - {id: t.tasks.payload, kind: required, method: Tasks.SubmitTasks, field: task_creations.payload_id}
  - {id: t.tasks.session, kind: required, method: Tasks.SubmitTasks, field: session_id}
  - {id: t.tasks.outputs, kind: pattern, method: Tasks.SubmitTasks,
     field: task_creations.expected_output_keys, regex: "[0-9a-f]{4,8}"}
  - {id: t.metrics.run, kind: required, method: RunService.ReportRunMetrics, field: run_id}
  - {id: t.metrics.name, kind: pattern, method: RunService.ReportRunMetrics, field: metrics.name,
     regex: "^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$"}
  - {id: t.metrics.node, kind: length, method: RunService.ReportRunMetrics, field: metrics.node_id,
     min: 1, max: 128}
  - {id: t.metrics.format, kind: enum_defined, method: RunService.ReportRunMetrics, field: metrics.format}
  - {id: t.metrics.value, kind: range, method: RunService.ReportRunMetrics, field: metrics.number_value,
     min: -1000000.0, max: 1000000.0}
  - {id: t.list.page-size, kind: range, method: RunService.ListRuns, field: page_size, min: 0}
  - {id: t.list.sort, kind: length, method: RunService.ListRuns, field: sort_by, max: 40}
  - {id: t.list.key-type, kind: enum_defined, method: RunService.ListRuns, field: resource_reference_key.type}
  # unbreakable on purpose: a range covering the whole type, a required bool
  - {id: t.list.page-size-any, kind: range, method: RunService.ListRuns, field: page_size, min: -2147483648}
  - {id: t.sessions.task-options, kind: required, method: Sessions.ListSessions, field: with_task_options}
"""
RULES_DOC = yaml.safe_load(RULES_YAML)
for raw in RULES_DOC["rules"]:
    raw.setdefault("code", "INVALID_ARGUMENT")
SERVICES = [SESSIONS, TASKS, RUNS]
RULES: FamilyRules = parse("test", [RULES_DOC], SERVICES)
METHODS = sorted({m for r in RULES.rules.values() for m in r.methods})
BREAKABLE = [
    (method, rule)
    for method in METHODS
    for rule in S.shape_rules(method, RULES)
    if not S.why_unbreakable(rule, method)
]


def same_bytes(a, b) -> bool:
    return S.canonical(a) == S.canonical(b)


def reachable_types() -> list[str]:
    seen: set[str] = set()

    def walk(desc: descriptor.Descriptor) -> None:
        if desc.full_name not in seen:
            seen.add(desc.full_name)
            for field in desc.fields:
                if field.message_type is not None:
                    walk(field.message_type)

    for method in default_registry().methods():
        walk(method.descriptor.input_type)
        walk(method.descriptor.output_type)
    return sorted(seen)


# -- any message -------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.data())
def test_every_served_message_round_trips(data):
    name = data.draw(st.sampled_from(reachable_types()))
    msg = data.draw(S.messages(default_registry().message_descriptor(name), S.Options(invalid_enums=True)))
    assert same_bytes(S.roundtrip_binary(msg), msg)
    assert same_bytes(S.roundtrip_json(msg), msg)


WELL_KNOWN = [
    timestamp_pb2.Timestamp,
    duration_pb2.Duration,
    struct_pb2.Struct,
    struct_pb2.Value,
    struct_pb2.ListValue,
    any_pb2.Any,
    field_mask_pb2.FieldMask,
    wrappers_pb2.UInt64Value,
    wrappers_pb2.FloatValue,
    wrappers_pb2.BytesValue,
    empty_pb2.Empty,
]


@pytest.mark.parametrize("cls", WELL_KNOWN, ids=lambda c: c.DESCRIPTOR.name)
@FAST
@given(data=st.data())
def test_well_known_types_are_valid_and_round_trip(cls, data):
    msg = data.draw(S.messages(cls))
    assert same_bytes(S.roundtrip_json(msg), msg)  # JSON refuses out-of-range times and NaN in Value
    if cls is duration_pb2.Duration:
        assert msg.seconds == 0 or msg.nanos == 0 or (msg.seconds > 0) == (msg.nanos > 0)
    if cls is any_pb2.Any:
        assert msg.type_url.startswith("type.googleapis.com/google.protobuf.")


def test_scalar_edges_are_drawn():
    """Bounds of every integer width, infinities and NaN are among what the strategies produce."""
    seen: dict[str, set] = {"int32": set(), "uint64": set(), "double": set(), "float": set()}
    fields = {f.name: f for f in struct_pb2.Value.DESCRIPTOR.fields}
    del fields

    def collect(field_type: int, key: str) -> None:
        @settings(max_examples=300, deadline=None, derandomize=True)
        @given(S.integers(*S.INT_BOUNDS[field_type]) if field_type in S.INT_BOUNDS else S.floats(field_type))
        def run(value):
            seen[key].add(value if not (isinstance(value, float) and math.isnan(value)) else "nan")

        run()

    FD = descriptor.FieldDescriptor
    collect(FD.TYPE_INT32, "int32")
    collect(FD.TYPE_UINT64, "uint64")
    collect(FD.TYPE_DOUBLE, "double")
    collect(FD.TYPE_FLOAT, "float")
    assert {-(2**31), 2**31 - 1, 0} <= seen["int32"]
    assert {0, 2**64 - 1} <= seen["uint64"]
    assert {math.inf, -math.inf, "nan"} <= seen["double"]
    assert {math.inf, "nan"} <= seen["float"]


@FAST
@given(st.data())
def test_oneof_has_at_most_one_member_and_depth_is_bounded(data):
    desc = default_registry().message_descriptor("armonik.api.grpc.v1.sessions.Filters")
    msg = data.draw(S.messages(desc, S.Options(max_depth=2)))
    for conjunction in msg.__getattribute__("or"):
        for field_filter in conjunction.__getattribute__("and"):
            assert len([f for f, _ in field_filter.ListFields() if f.containing_oneof is not None]) <= 2
            # depth 2 is the FilterField: nothing below it is set
            assert not field_filter.ListFields()
    value = data.draw(S.messages(struct_pb2.Value))
    assert value.WhichOneof("kind") is not None


@FAST
@given(st.data())
def test_enums_stay_in_domain_unless_asked(data):
    desc = default_registry().message_descriptor("api.RunMetric")
    fmt = desc.fields_by_name["format"].enum_type
    inside = data.draw(S.messages(desc))
    assert fmt.values_by_number.get(inside.format) is not None
    outside = data.draw(S.undefined_enum_numbers(fmt))
    assert fmt.values_by_number.get(outside) is None


# -- rules -------------------------------------------------------------------------------


def test_rule_kinds_cover_request_kinds():
    assert {r.kind for r in RULES.rules.values()} == {"required", "nonempty", "range", "pattern", "length",
                                                      "enum_defined"}  # fmt: skip


def test_why_unbreakable_explains_the_impossible():
    assert "whole type" in S.why_unbreakable(RULES.rule("t.list.page-size-any"), f"{RUNS}.ListRuns")
    assert "bool" in S.why_unbreakable(RULES.rule("t.sessions.task-options"), f"{SESSIONS}.ListSessions")
    with pytest.raises(S.Unbreakable):
        S.invalid_request(f"{RUNS}.ListRuns", RULES, RULES.rule("t.list.page-size-any"))


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.rpartition(".")[2])
@FAST
@given(data=st.data())
def test_valid_requests_keep_every_rule(method, data):
    msg = data.draw(S.valid_requests(method, RULES))
    assert msg.DESCRIPTOR is default_registry().method(method).descriptor.input_type
    for rule in S.shape_rules(method, RULES):
        assert not S.broken(rule, msg), (rule.id, msg)
    assert same_bytes(S.roundtrip_binary(msg), msg)


@pytest.mark.parametrize(("method", "rule"), BREAKABLE, ids=[r.id for _, r in BREAKABLE])
@FAST
@given(data=st.data())
def test_invalid_request_breaks_exactly_that_rule(method, rule, data):
    msg = data.draw(S.invalid_request(method, RULES, rule))
    assert S.broken(rule, msg)
    below = rule.field + "."
    others = [r.id for r in S.shape_rules(method, RULES) if r.id != rule.id and S.broken(r, msg)]
    assert all(rule.kind in S.PRESENCE_KINDS and RULES.rule(o).field.startswith(below) for o in others), (
        others
    )


@pytest.mark.parametrize(("method", "rule"), BREAKABLE, ids=[r.id for _, r in BREAKABLE])
def test_every_breakable_rule_is_drawn(method, rule):
    """invalid_requests (the mix over a method's rules) reaches every rule that can be broken alone."""
    found = find(
        S.invalid_requests(method, RULES),
        lambda pair: pair[0].id == rule.id,
        settings=settings(
            max_examples=500, deadline=None, derandomize=True, database=None, phases=[Phase.generate]
        ),
    )
    assert S.broken(rule, found[1])


@FAST
@given(st.data())
def test_base_and_fixed_values_are_kept(data):
    method = f"{TASKS}.SubmitTasks"
    base = {"session_id": "kept", "task_creations": [{"payload_id": "p1", "expected_output_keys": ["abcd"]}]}
    msg = data.draw(S.valid_requests(method, RULES, base=base, fixed={"task_options.partition_id": "fixed"}))
    assert msg.session_id == "kept"  # presence-only rule: the base value stays
    assert [c.payload_id for c in msg.task_creations] == ["p1"]
    assert msg.task_options.partition_id == "fixed"
    assert all(re.fullmatch("[0-9a-f]{4,8}", k) for c in msg.task_creations for k in c.expected_output_keys)
    rule, bad = data.draw(S.invalid_requests(method, RULES, base=base))
    assert S.broken(rule, bad)


def test_value_rules_vary_the_valid_value():
    """Fields under value rules are drawn across their domain, not copied from the base."""
    priorities: set[int] = set()

    @settings(max_examples=80, deadline=None, derandomize=True)
    @given(
        S.valid_requests(f"{SESSIONS}.CreateSession", RULES, base={"default_task_option": {"priority": 5}})
    )
    def run(msg):
        assert 1 <= msg.default_task_option.priority <= 99
        priorities.add(msg.default_task_option.priority)

    run()
    assert {1, 99} <= priorities and len(priorities) > 5


def test_predicates_agree_with_the_mock_validation():
    """This package reads the rule kinds on its own; the mock's reading must agree on every case."""
    validation = pytest.importorskip("protoconform.mockserver.validation")

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(st.sampled_from(METHODS).flatmap(lambda m: S.invalid_requests(m, RULES)), st.data())
    def run(pair, data):
        _, bad = pair
        for r in RULES.for_method(bad_method(bad)):
            assert (validation.violation(r, bad) is not None) == S.broken(r, bad), r.id

    def bad_method(msg) -> str:
        return next(
            m for m in METHODS if default_registry().method(m).request_type == msg.DESCRIPTOR.full_name
        )

    run()
