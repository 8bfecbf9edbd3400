"""The ArmoniK filter language: OR of ANDs of typed field conditions, and sort keys.

Which fields exist, their types, and the operators of each type are data
(``specs/armonik/lists.yaml``: ``fields``, ``filter_types``); this module maps
each field name to a getter on an entity and evaluates conditions.  A malformed
filter (unknown field, no condition, a condition of the wrong type, an unknown
operator) is refused with the matching ``armonik.filters.*`` rule before any
entity is looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import message
from protoconform.mockserver.apis.armonik.state import ArmonikState

Getter = Callable[[Any], Any]
Predicate = Callable[[Any], bool]


def _duration(value: Any) -> timedelta | None:
    if value is None:
        return None
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def _option_getters(options_of: Getter) -> dict[str, Getter]:
    def max_duration(entity: Any) -> timedelta | None:
        options = options_of(entity)
        return _duration(options.max_duration) if options.HasField("max_duration") else None

    return {
        "TASK_OPTION_ENUM_FIELD_MAX_DURATION": max_duration,
        "TASK_OPTION_ENUM_FIELD_MAX_RETRIES": lambda e: options_of(e).max_retries,
        "TASK_OPTION_ENUM_FIELD_PRIORITY": lambda e: options_of(e).priority,
        "TASK_OPTION_ENUM_FIELD_PARTITION_ID": lambda e: options_of(e).partition_id,
        "TASK_OPTION_ENUM_FIELD_APPLICATION_NAME": lambda e: options_of(e).application_name,
        "TASK_OPTION_ENUM_FIELD_APPLICATION_VERSION": lambda e: options_of(e).application_version,
        "TASK_OPTION_ENUM_FIELD_APPLICATION_NAMESPACE": lambda e: options_of(e).application_namespace,
        "TASK_OPTION_ENUM_FIELD_APPLICATION_SERVICE": lambda e: options_of(e).application_service,
        "TASK_OPTION_ENUM_FIELD_ENGINE_TYPE": lambda e: options_of(e).engine_type,
    }


def _since(start: str) -> Getter:
    def get(task: Any) -> timedelta | None:
        begin = getattr(task, start)
        return task.ended_at - begin if task.ended_at is not None and begin is not None else None

    return get


def _attr(name: str) -> Getter:
    return lambda entity: getattr(entity, name)


@dataclass(frozen=True)
class Application:
    """One distinct application tuple (ListApplications groups tasks into these)."""

    name: str
    namespace: str
    version: str
    service: str


# entity kind -> oneof member -> field enum name -> getter
GETTERS: dict[str, dict[str, dict[str, Getter]]] = {
    "session": {
        "session_raw_field": {
            "SESSION_RAW_ENUM_FIELD_SESSION_ID": _attr("session_id"),
            "SESSION_RAW_ENUM_FIELD_STATUS": _attr("status"),
            "SESSION_RAW_ENUM_FIELD_CLIENT_SUBMISSION": _attr("client_submission"),
            "SESSION_RAW_ENUM_FIELD_WORKER_SUBMISSION": _attr("worker_submission"),
            "SESSION_RAW_ENUM_FIELD_PARTITION_IDS": _attr("partition_ids"),
            "SESSION_RAW_ENUM_FIELD_CREATED_AT": _attr("created_at"),
            "SESSION_RAW_ENUM_FIELD_CANCELLED_AT": _attr("cancelled_at"),
            "SESSION_RAW_ENUM_FIELD_CLOSED_AT": _attr("closed_at"),
            "SESSION_RAW_ENUM_FIELD_PURGED_AT": _attr("purged_at"),
            "SESSION_RAW_ENUM_FIELD_DELETED_AT": _attr("deleted_at"),
            "SESSION_RAW_ENUM_FIELD_DURATION": _attr("duration"),
        },
        "task_option_field": _option_getters(_attr("options")),
    },
    "task": {
        "task_summary_field": {
            "TASK_SUMMARY_ENUM_FIELD_TASK_ID": _attr("task_id"),
            "TASK_SUMMARY_ENUM_FIELD_SESSION_ID": _attr("session_id"),
            "TASK_SUMMARY_ENUM_FIELD_OWNER_POD_ID": _attr("owner_pod_id"),
            "TASK_SUMMARY_ENUM_FIELD_INITIAL_TASK_ID": _attr("initial_task_id"),
            "TASK_SUMMARY_ENUM_FIELD_STATUS": _attr("status"),
            "TASK_SUMMARY_ENUM_FIELD_CREATED_AT": _attr("created_at"),
            "TASK_SUMMARY_ENUM_FIELD_SUBMITTED_AT": _attr("submitted_at"),
            "TASK_SUMMARY_ENUM_FIELD_STARTED_AT": _attr("started_at"),
            "TASK_SUMMARY_ENUM_FIELD_ENDED_AT": _attr("ended_at"),
            "TASK_SUMMARY_ENUM_FIELD_CREATION_TO_END_DURATION": _since("created_at"),
            "TASK_SUMMARY_ENUM_FIELD_PROCESSING_TO_END_DURATION": _since("started_at"),
            "TASK_SUMMARY_ENUM_FIELD_RECEIVED_TO_END_DURATION": _since("received_at"),
            "TASK_SUMMARY_ENUM_FIELD_POD_TTL": _attr("pod_ttl"),
            "TASK_SUMMARY_ENUM_FIELD_POD_HOSTNAME": _attr("pod_hostname"),
            "TASK_SUMMARY_ENUM_FIELD_RECEIVED_AT": _attr("received_at"),
            "TASK_SUMMARY_ENUM_FIELD_ACQUIRED_AT": _attr("acquired_at"),
            "TASK_SUMMARY_ENUM_FIELD_PROCESSED_AT": _attr("processed_at"),
            "TASK_SUMMARY_ENUM_FIELD_ERROR": _attr("output_error"),
            "TASK_SUMMARY_ENUM_FIELD_FETCHED_AT": _attr("fetched_at"),
            "TASK_SUMMARY_ENUM_FIELD_PAYLOAD_ID": _attr("payload_id"),
            "TASK_SUMMARY_ENUM_FIELD_CREATED_BY": _attr("created_by"),
        },
        "task_option_field": _option_getters(_attr("options")),
    },
    "result": {
        "result_raw_field": {
            "RESULT_RAW_ENUM_FIELD_SESSION_ID": _attr("session_id"),
            "RESULT_RAW_ENUM_FIELD_NAME": _attr("name"),
            "RESULT_RAW_ENUM_FIELD_OWNER_TASK_ID": _attr("owner_task_id"),
            "RESULT_RAW_ENUM_FIELD_STATUS": _attr("status"),
            "RESULT_RAW_ENUM_FIELD_CREATED_AT": _attr("created_at"),
            "RESULT_RAW_ENUM_FIELD_COMPLETED_AT": _attr("completed_at"),
            "RESULT_RAW_ENUM_FIELD_RESULT_ID": _attr("result_id"),
            "RESULT_RAW_ENUM_FIELD_SIZE": _attr("size"),
            "RESULT_RAW_ENUM_FIELD_CREATED_BY": _attr("created_by"),
            "RESULT_RAW_ENUM_FIELD_OPAQUE_ID": lambda r: r.opaque_id.decode("latin-1"),
            "RESULT_RAW_ENUM_FIELD_MANUAL_DELETION": _attr("manual_deletion"),
        },
    },
    "partition": {
        "partition_raw_field": {
            "PARTITION_RAW_ENUM_FIELD_ID": _attr("id"),
            "PARTITION_RAW_ENUM_FIELD_PARENT_PARTITION_IDS": _attr("parent_partition_ids"),
            "PARTITION_RAW_ENUM_FIELD_POD_RESERVED": _attr("pod_reserved"),
            "PARTITION_RAW_ENUM_FIELD_POD_MAX": _attr("pod_max"),
            "PARTITION_RAW_ENUM_FIELD_PREEMPTION_PERCENTAGE": _attr("preemption_percentage"),
            "PARTITION_RAW_ENUM_FIELD_PRIORITY": _attr("priority"),
        },
    },
    "application": {
        "application_field": {
            "APPLICATION_RAW_ENUM_FIELD_NAME": _attr("name"),
            "APPLICATION_RAW_ENUM_FIELD_VERSION": _attr("version"),
            "APPLICATION_RAW_ENUM_FIELD_NAMESPACE": _attr("namespace"),
            "APPLICATION_RAW_ENUM_FIELD_SERVICE": _attr("service"),
        },
    },
}


@dataclass(frozen=True)
class FieldRef:
    """A resolved field: its display name, type (``lists.yaml`` filter_types key) and getter."""

    name: str
    type: str
    get: Getter


def resolve_field(
    state: ArmonikState, kind: str, field_msg: message.Message, rule_id: str, where: str
) -> FieldRef:
    """The field a ``*Field`` message names, or the ``rule_id`` error naming ``where``."""
    tables = state.rules.extra["fields"][kind]
    member = field_msg.WhichOneof("field")
    if member is None:
        raise state.error(rule_id, f"{where}: no field is named")
    sub = getattr(field_msg, member)
    if member == "task_option_generic_field":
        key = sub.field
        if not key:
            raise state.error(rule_id, f"{where}: the generic task option key is empty")
        return FieldRef(f"options[{key}]", "string", lambda e: e.options.options.get(key))
    table = tables.get(member)
    if not isinstance(table, dict):
        raise state.error(rule_id, f"{where}: {member} is not a field of a {kind}")
    enum = sub.DESCRIPTOR.fields_by_name["field"].enum_type
    value = enum.values_by_number.get(sub.field)
    name = value.name if value is not None else str(sub.field)
    field_type = table.get(name)
    getter = GETTERS[kind].get(member, {}).get(name)
    if field_type is None or getter is None:
        raise state.error(rule_id, f"{where}: {name} is not a filterable or sortable field of a {kind}")
    return FieldRef(name, field_type, getter)


# -- conditions ----------------------------------------------------------------------------
def _as_datetime(stamp: Any) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        seconds=stamp.seconds, microseconds=stamp.nanos // 1000
    )


def _ordered(op: str, left: Any, right: Any) -> bool:
    if op.endswith("_NOT_EQUAL"):
        return left != right
    if op.endswith("_EQUAL") and not op.endswith(("_OR_EQUAL",)):
        return left == right
    if left is None or right is None:
        return False  # an unset date or duration is neither before nor after anything
    if op.endswith(("_LESS_THAN", "_BEFORE", "_SHORTER_THAN")):
        return left < right
    if op.endswith(("_LESS_THAN_OR_EQUAL", "_BEFORE_OR_EQUAL", "_SHORTER_THAN_OR_EQUAL")):
        return left <= right
    if op.endswith(("_GREATER_THAN_OR_EQUAL", "_AFTER_OR_EQUAL", "_LONGER_THAN_OR_EQUAL")):
        return left >= right
    return left > right  # GREATER_THAN, AFTER, LONGER_THAN


def _condition(field: FieldRef, op: str, value: Any) -> Predicate:
    get = field.get
    if field.type == "string":
        text = value

        def string(entity: Any) -> bool:
            actual = get(entity) or ""
            if op.endswith("_NOT_EQUAL"):
                return actual != text
            if op.endswith("_EQUAL"):
                return actual == text
            if op.endswith("_NOT_CONTAINS"):
                return text not in actual
            if op.endswith("_CONTAINS"):
                return text in actual
            if op.endswith("_STARTS_WITH"):
                return actual.startswith(text)
            return actual.endswith(text)

        return string
    if field.type == "array":
        if op.endswith("_NOT_CONTAINS"):
            return lambda e: value not in (get(e) or ())
        return lambda e: value in (get(e) or ())
    if field.type == "boolean":
        return lambda e: bool(get(e)) == value
    return lambda e: _ordered(op, get(e), value)


def _operand(field_type: str, condition: message.Message) -> Any:
    if field_type == "date":
        return _as_datetime(condition.value)
    if field_type == "duration":
        return _duration(condition.value)
    return condition.value


def compile_filters(
    state: ArmonikState,
    kind: str,
    filters: message.Message | None,
    where: str = "filters",
    allowed: Callable[[FieldRef, str], bool] | None = None,
    not_allowed_rule: str = "",
) -> Predicate:
    """A predicate for ``filters`` (OR of ANDs); raises the rule a malformed filter breaks.

    ``allowed(field, member)`` may restrict the usable fields (event subscriptions);
    a refused field raises ``not_allowed_rule``.
    """
    if filters is None:
        return lambda entity: True
    types = state.rules.extra["filter_types"]
    disjunction: list[list[Predicate]] = []
    for or_index, conjunction in enumerate(getattr(filters, "or")):
        predicates: list[Predicate] = []
        for and_index, field_filter in enumerate(getattr(conjunction, "and")):
            at = f"{where}.or[{or_index}].and[{and_index}]"
            field = resolve_field(
                state, kind, field_filter.field, "armonik.filters.unknown-field", f"{at}.field"
            )
            member = field_filter.field.WhichOneof("field")
            if allowed is not None and not allowed(field, member or ""):
                raise state.error(not_allowed_rule, f"{at}.field: {field.name} cannot be used in this filter")
            condition_name = field_filter.WhichOneof("value_condition")
            if condition_name is None:
                raise state.error(
                    "armonik.filters.missing-condition", f"{at}: the filter has no value condition"
                )
            expected = types[field.type]["condition"]
            if condition_name != expected:
                raise state.error(
                    "armonik.filters.wrong-condition-type",
                    f"{at}.{condition_name}: {field.name} is a {field.type} field and needs {expected}",
                )
            condition = getattr(field_filter, condition_name)
            enum = condition.DESCRIPTOR.fields_by_name["operator"].enum_type
            op_value = enum.values_by_number.get(condition.operator)
            if op_value is None or op_value.name not in types[field.type]["operators"]:
                raise state.error(
                    "armonik.filters.unknown-operator",
                    f"{at}.{condition_name}.operator: {condition.operator} is not an operator "
                    f"of {enum.full_name}",
                )
            predicates.append(_condition(field, op_value.name, _operand(field.type, condition)))
        disjunction.append(predicates)
    if not disjunction:
        return lambda entity: True
    return lambda entity: any(all(p(entity) for p in conj) for conj in disjunction)


# -- sorting -------------------------------------------------------------------------------
def sort_items(items: Sequence[Any], keys: Sequence[tuple[FieldRef, bool]], id_of: Getter) -> list[Any]:
    """Stable sort on ``keys`` ((field, descending) pairs, most significant first); ties keep id order."""
    ordered = sorted(items, key=id_of)
    for field, descending in reversed(keys):
        get = field.get

        def key(entity: Any, get: Getter = get) -> tuple[bool, Any]:
            value = get(entity)
            if isinstance(value, list):
                value = tuple(value)
            return (value is not None, value if value is not None else 0)

        ordered.sort(key=key, reverse=descending)
    return ordered
