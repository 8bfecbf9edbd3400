"""List RPCs: every sortable field in both directions, every filter type and operator, paging.

Expectations are computed here from the full, unfiltered listing, independently of the server's
filter code: a server-side filter must select exactly what the same condition selects in Python.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from akutil import (
    Stubs,
    advance,
    create_data,
    create_metadata,
    create_session,
    manual_server,
    rpc_error,
    submit,
    task_options,
)
from armonik.protogen.common import applications_common_pb2 as ac
from armonik.protogen.common import applications_fields_pb2 as af
from armonik.protogen.common import filters_common_pb2 as fc
from armonik.protogen.common import partitions_common_pb2 as pc
from armonik.protogen.common import partitions_fields_pb2 as pf
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import results_fields_pb2 as rf
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import sessions_fields_pb2 as sf
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs import rules

SPECS = rules.load("armonik")


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[ThreadedServer, Stubs, dict[str, Any]]]:
    partitions = ["default", "gpu:priority=3,pod_max=8", "cpu:priority=2,parents=default,pod.image=x"]
    with (
        manual_server(partitions=partitions) as server,
        grpc.insecure_channel(server.grpc_address) as channel,
    ):
        stubs = Stubs(channel)
        sessions = []
        for i in range(4):
            sessions.append(create_session(stubs, partitions=["default", "gpu"][: 1 + i % 2], priority=1 + i))
            advance(server, 1.0)
        stubs.sessions.CancelSession(sc.CancelSessionRequest(session_id=sessions[1]))
        stubs.sessions.CloseSession(sc.CloseSessionRequest(session_id=sessions[2]))
        sid = sessions[0]
        payload = create_data(stubs, sid, payload=b"data")["payload"]
        outputs = create_metadata(stubs, sid, *[f"out-{i}" for i in range(8)])
        tasks = []
        for i in range(8):
            options = task_options(
                priority=1 + (i * 3) % 8,
                seconds=10 + i % 3,
                application_name=f"app-{'ab'[i % 2]}",
                application_version=f"v{i % 3}",
                options={"team": f"t{i % 2}", "mock.fail": "error" if i == 5 else ""},
            )
            deps = [outputs["out-0"]] if i == 7 else []
            tasks.append(submit(stubs, sid, payload, [outputs[f"out-{i}"]], deps, options))
            advance(server, 0.5 + i)
        yield server, stubs, {"sessions": sessions, "session": sid, "tasks": tasks}


def _time(message: Any, name: str) -> Any:
    return getattr(message, name).ToDatetime() if message.HasField(name) else None


def _duration(message: Any, name: str) -> Any:
    return getattr(message, name).ToTimedelta() if message.HasField(name) else None


def _value(message: Any, kind: str, attr: str) -> Any:
    """A field's value read from a listed message, the way a client would."""
    if kind == "date":
        return _time(message, attr)
    if kind == "duration":
        return _duration(message, attr)
    value = getattr(message, attr)
    if kind == "array":
        return tuple(value)
    if kind == "string" and isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _option_value(options: Any, name: str) -> Any:
    attr = name.removeprefix("TASK_OPTION_ENUM_FIELD_").lower()
    if attr == "max_duration":
        return _duration(options, "max_duration")
    return getattr(options, attr)


# enum-name prefix -> attribute of the listed message, per entity
ATTR_OVERRIDES = {"TASK_SUMMARY_ENUM_FIELD_TASK_ID": "id"}
PREFIX = {
    "session_raw_field": "SESSION_RAW_ENUM_FIELD_",
    "task_summary_field": "TASK_SUMMARY_ENUM_FIELD_",
    "result_raw_field": "RESULT_RAW_ENUM_FIELD_",
    "partition_raw_field": "PARTITION_RAW_ENUM_FIELD_",
}


def _key(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else 0)


class Lister:
    """Lists one entity kind through its RPC with a field message and a sort direction."""

    def __init__(self, stubs: Stubs, kind: str) -> None:
        self.kind = kind
        self.call, self.request_class, self.items, self.id_attr, self.field_class = {
            "session": (
                stubs.sessions.ListSessions,
                sc.ListSessionsRequest,
                "sessions",
                "session_id",
                sf.SessionField,
            ),
            "task": (stubs.tasks.ListTasks, tc.ListTasksRequest, "tasks", "id", tf.TaskField),
            "result": (
                stubs.results.ListResults,
                rc.ListResultsRequest,
                "results",
                "result_id",
                rf.ResultField,
            ),
            "partition": (
                stubs.partitions.ListPartitions,
                pc.ListPartitionsRequest,
                "partitions",
                "id",
                pf.PartitionField,
            ),
        }[kind]
        self.field_module = {"session": sf, "task": tf, "result": rf, "partition": pf}[kind]

    def field(self, member: str, name: str) -> Any:
        sub_class = type(getattr(self.field_class(), member))
        if member.endswith("generic_field"):
            return self.field_class(**{member: sub_class(field=name)})
        return self.field_class(**{member: sub_class(field=getattr(self.field_module, name))})

    def list(self, sort_field: Any, direction: int = 1, filters: Any = None, **extra: Any) -> Any:
        request = self.request_class(**{"page_size": 1000, **extra})
        request.sort.field.CopyFrom(sort_field)
        request.sort.direction = direction
        request.filters.SetInParent()
        if filters is not None:
            request.filters.CopyFrom(filters)
        if self.kind == "session":
            request.with_task_options = True
        if self.kind == "task":
            request.with_errors = True
        return self.call(request)

    def value_getter(self, member: str, name: str, field_type: str) -> Callable[[Any], Any]:
        if member == "task_option_field":
            return lambda m: _option_value(m.options, name)
        if member == "task_option_generic_field":
            return lambda m: m.options.options.get(name)
        attr = ATTR_OVERRIDES.get(name, name.removeprefix(PREFIX[member]).lower())
        return lambda m: _value(m, field_type, attr)


def _sortable(kind: str) -> list[tuple[str, str, str]]:
    fields = SPECS.extra["fields"][kind]
    out = []
    for member, table in fields.items():
        if isinstance(table, dict):
            out.extend((member, name, field_type) for name, field_type in table.items())
        else:
            out.append((member, "team", table))  # a generic option key present on the tasks
    return out


@pytest.mark.parametrize("kind", ["session", "task", "result", "partition"])
def test_every_sortable_field_in_both_directions(world, kind: str) -> None:
    _, stubs, _ = world
    lister = Lister(stubs, kind)
    for member, name, field_type in _sortable(kind):
        get = lister.value_getter(member, name, field_type)
        for direction in (1, 2):
            items = list(getattr(lister.list(lister.field(member, name), direction), lister.items))
            assert items, (kind, name)
            keys = [_key(get(m)) for m in items]
            assert keys == sorted(keys, reverse=direction == 2), (kind, name, direction)
            for left, right in itertools.pairwise(items):  # ties keep id order
                if _key(get(left)) == _key(get(right)):
                    assert getattr(left, lister.id_attr) < getattr(right, lister.id_attr), (kind, name)


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "EQUAL": operator.eq,
    "NOT_EQUAL": operator.ne,
    "LESS_THAN": operator.lt,
    "LESS_THAN_OR_EQUAL": operator.le,
    "GREATER_THAN_OR_EQUAL": operator.ge,
    "GREATER_THAN": operator.gt,
    "BEFORE": operator.lt,
    "BEFORE_OR_EQUAL": operator.le,
    "AFTER_OR_EQUAL": operator.ge,
    "AFTER": operator.gt,
    "SHORTER_THAN": operator.lt,
    "SHORTER_THAN_OR_EQUAL": operator.le,
    "LONGER_THAN_OR_EQUAL": operator.ge,
    "LONGER_THAN": operator.gt,
    "CONTAINS": lambda actual, value: value in actual,
    "NOT_CONTAINS": lambda actual, value: value not in actual,
    "STARTS_WITH": lambda actual, value: actual.startswith(value),
    "ENDS_WITH": lambda actual, value: actual.endswith(value),
    "IS": operator.eq,
}


def _python_match(field_type: str, op: str, actual: Any, value: Any) -> bool:
    if field_type == "string":
        actual = actual or ""
    if field_type == "array":
        actual = actual or ()
    if field_type in ("date", "duration") and (actual is None) and op not in ("EQUAL", "NOT_EQUAL"):
        return False
    return OPS[op](actual, value)


def _condition(field_type: str, op_name: str, value: Any, kind: str) -> tuple[str, Any]:
    condition = SPECS.extra["filter_types"][field_type]["condition"]
    op_number = getattr(fc, op_name)
    if field_type == "date":
        stamp = Timestamp()
        stamp.FromDatetime(value)
        return condition, {"value": stamp, "operator": op_number}
    if field_type == "duration":
        return condition, {"value": Duration(seconds=int(value.total_seconds())), "operator": op_number}
    return condition, {"value": value, "operator": op_number}


def _filters_message(kind: str, field: Any, condition: str, payload: dict[str, Any]) -> Any:
    module = {
        "session": "armonik.protogen.common.sessions_filters_pb2",
        "task": "armonik.protogen.common.tasks_filters_pb2",
        "result": "armonik.protogen.common.results_filters_pb2",
        "partition": "armonik.protogen.common.partitions_filters_pb2",
    }[kind]
    import importlib

    filters = importlib.import_module(module)
    field_filter = filters.FilterField(field=field)
    sub = getattr(field_filter, condition)
    for key, value in payload.items():
        if hasattr(value, "CopyFrom"):
            getattr(sub, key).CopyFrom(value)
        else:
            setattr(sub, key, value)
    return filters.Filters(**{"or": [filters.FiltersAnd(**{"and": [field_filter]})]})


@pytest.mark.parametrize("kind", ["session", "task", "result", "partition"])
def test_every_filter_type_and_operator(world, kind: str) -> None:
    _, stubs, _ = world
    lister = Lister(stubs, kind)
    types = SPECS.extra["filter_types"]
    id_field = {
        "session": ("session_raw_field", "SESSION_RAW_ENUM_FIELD_SESSION_ID"),
        "task": ("task_summary_field", "TASK_SUMMARY_ENUM_FIELD_TASK_ID"),
        "result": ("result_raw_field", "RESULT_RAW_ENUM_FIELD_RESULT_ID"),
        "partition": ("partition_raw_field", "PARTITION_RAW_ENUM_FIELD_ID"),
    }[kind]
    sort = lister.field(*id_field)
    everything = list(getattr(lister.list(sort), lister.items))
    # conditions the filter message of this entity can carry
    filter_class = type(
        _filters_message(kind, sort, "filter_string", {"value": ""}).__getattribute__("or")[0]
    )
    carried = set(filter_class.DESCRIPTOR.fields_by_name["and"].message_type.fields_by_name)
    checked = 0
    for member, name, field_type in _sortable(kind):
        condition_name = types[field_type]["condition"]
        if condition_name not in carried:
            continue
        get = lister.value_getter(member, name, field_type)
        values = [get(m) for m in everything]
        present = [v for v in values if v not in (None, "", ())]
        if not present:
            continue
        sample = sorted(present, key=_key)[len(present) // 2]
        if field_type == "array":
            sample = sample[0]
        elif field_type == "string" and len(sample) > 2:
            sample_options = {"CONTAINS": sample[1:-1], "STARTS_WITH": sample[:2], "ENDS_WITH": sample[-2:]}
        for op_name in types[field_type]["operators"]:
            short = op_name.split("_OPERATOR_")[1]
            value = sample
            if field_type == "string" and len(sample) > 2:
                value = sample_options.get(short.removeprefix("NOT_"), sample)
            if field_type == "date":
                value = sample.replace(microsecond=0) if short not in ("EQUAL", "NOT_EQUAL") else sample
            if field_type == "duration":
                value = timedelta(seconds=int(sample.total_seconds()))
            condition, payload = _condition(field_type, op_name, value, kind)
            if field_type == "date":
                value = payload["value"].ToDatetime()
            field = lister.field(member, name)
            listed = getattr(
                lister.list(sort, filters=_filters_message(kind, field, condition, payload)), lister.items
            )
            got = [getattr(m, lister.id_attr) for m in listed]
            expected = [
                getattr(m, lister.id_attr)
                for m, actual in zip(everything, values, strict=True)
                if _python_match(field_type, short, actual, value)
            ]
            assert got == expected, (kind, name, op_name, value)
            checked += 1
    assert checked >= {"session": 20, "task": 40, "result": 20, "partition": 10}[kind]


def test_or_of_ands(world) -> None:
    _, stubs, data = world
    from armonik.common import Task

    task_ids = data["tasks"]
    wanted = ((Task.id == task_ids[0]) & (Task.options.priority >= 1)) | (Task.id == task_ids[2])
    lister = Lister(stubs, "task")
    sort = lister.field("task_summary_field", "TASK_SUMMARY_ENUM_FIELD_TASK_ID")
    listed = lister.list(sort, filters=wanted.to_disjunction().to_message())
    assert sorted(t.id for t in listed.tasks) == sorted([task_ids[0], task_ids[2]])
    contradiction = (Task.id == task_ids[0]) & (Task.id == task_ids[2])
    assert lister.list(sort, filters=contradiction.to_disjunction().to_message()).total == 0


def test_paging(world) -> None:
    _, stubs, _ = world
    lister = Lister(stubs, "task")
    sort = lister.field("task_summary_field", "TASK_SUMMARY_ENUM_FIELD_TASK_ID")
    everything = [t.id for t in lister.list(sort).tasks]
    pages = [lister.list(sort, page=p, page_size=3) for p in range(4)]
    assert [t.id for p in pages for t in p.tasks] == everything
    assert all(p.total == len(everything) and p.page_size == 3 for p in pages)
    assert [p.page for p in pages] == [0, 1, 2, 3] and pages[3].tasks == []
    only_total = lister.list(sort, page_size=0)
    assert only_total.total == len(everything) and not only_total.tasks


def test_applications_group_task_options(world) -> None:
    _, stubs, _ = world
    request = ac.ListApplicationsRequest(page_size=10)
    request.filters.SetInParent()
    name = af.ApplicationField(
        application_field=af.ApplicationRawField(field=af.APPLICATION_RAW_ENUM_FIELD_NAME)
    )
    version = af.ApplicationField(
        application_field=af.ApplicationRawField(field=af.APPLICATION_RAW_ENUM_FIELD_VERSION)
    )
    request.sort.fields.extend([name, version])
    request.sort.direction = 2
    reply = stubs.applications.ListApplications(request)
    pairs = [(a.name, a.version) for a in reply.applications]
    # 8 tasks: name alternates a/b, version cycles 0..2 -> 6 distinct pairs, and no application fields unset
    assert reply.total == 6 and pairs == sorted(pairs, reverse=True)
    request.sort.ClearField("fields")
    assert rpc_error(stubs.applications.ListApplications, request).details().startswith("sort.fields")


def test_partitions_as_configured(world) -> None:
    _, stubs, _ = world
    gpu = stubs.partitions.GetPartition(pc.GetPartitionRequest(id="gpu")).partition
    assert (gpu.priority, gpu.pod_max) == (3, 8)
    cpu = stubs.partitions.GetPartition(pc.GetPartitionRequest(id="cpu")).partition
    assert list(cpu.parent_partition_ids) == ["default"] and dict(cpu.pod_configuration) == {"image": "x"}
    error = rpc_error(stubs.partitions.GetPartition, pc.GetPartitionRequest(id="tpu"))
    assert (
        error.code() == grpc.StatusCode.NOT_FOUND and error.details() == "id: partition 'tpu' was not found"
    )
