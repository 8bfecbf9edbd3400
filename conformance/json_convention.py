"""A family's REST JSON convention, checked on the raw JSON of a reply.

``json_format`` accepts either key style, enum names or numbers, and 64-bit
integers as strings or numbers, so a reply parsed with it says nothing about how
the gateway wrote it.  Here the decoded JSON is walked with the response message
descriptor and held to the convention the family documents in
``specs/<family>/rest.yaml`` (section ``rest_convention``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor
from protoconform.specs.rules import load
from protoconform.specs.wellknown import NOT_JSON_OBJECTS

FieldDescriptor = descriptor.FieldDescriptor

INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
NULL_VALUE = "google.protobuf.NullValue"
_CHOICES = {
    "keys": ("proto_names", "json_names"),
    "enums": ("names", "numbers"),
    "int64": ("strings", "numbers"),
    "unpopulated": ("omitted", "emitted"),
}


@dataclass(frozen=True)
class JsonConvention:
    """How a family's gateway writes JSON (see ``specs/kfp/rest.yaml``)."""

    rule: str
    keys: str = "proto_names"
    enums: str = "names"
    int64: str = "strings"
    unpopulated: str = "omitted"
    error_keys: tuple[str, ...] = ("code", "message", "details")
    cancelled_status: int = 499

    @classmethod
    def from_spec(cls, raw: dict[str, Any]) -> JsonConvention:
        for key, allowed in _CHOICES.items():
            if key in raw and raw[key] not in allowed:
                raise ValueError(f"rest_convention.{key}: {raw[key]!r} is not one of {', '.join(allowed)}")
        values = dict(raw)
        if "error_keys" in values:
            values["error_keys"] = tuple(values["error_keys"])
        return cls(**values)

    def key(self, field: FieldDescriptor) -> str:
        return field.name if self.keys == "proto_names" else field.json_name


def convention(family: str) -> JsonConvention | None:
    """The family's documented REST JSON convention, or None when its specs describe none."""
    raw = load(family).extra.get("rest_convention")
    return JsonConvention.from_spec(raw) if raw else None


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def message_violation(
    message_type: descriptor.Descriptor, value: Any, rules: JsonConvention, path: str = ""
) -> str | None:
    """The first place where ``value`` (decoded JSON of ``message_type``) breaks ``rules``, or None."""
    if message_type.full_name in NOT_JSON_OBJECTS or not isinstance(value, dict):
        return None  # well-known types have their own JSON forms; a non-object is the parser's to refuse
    by_key: dict[str, FieldDescriptor] = {}
    for field in message_type.fields:
        by_key.setdefault(field.name, field)
        by_key.setdefault(field.json_name, field)
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        field = by_key.get(key)
        if field is None:
            continue  # unknown keys are not a matter of style
        if key != rules.key(field):
            return f"key {where!r}: the field {field.name} is written {rules.key(field)!r} ({rules.keys})"
        problem = field_violation(field, item, rules, where)
        if problem:
            return problem
    if rules.unpopulated == "emitted":
        for field in message_type.fields:
            if not field.has_presence and rules.key(field) not in value:
                where = f"{path}.{rules.key(field)}" if path else rules.key(field)
                return f"key {where!r} missing: zero values are emitted"
    return None


def field_violation(field: FieldDescriptor, value: Any, rules: JsonConvention, where: str) -> str | None:
    """The first break of ``rules`` in one field's JSON ``value`` written as a key of its message."""
    if value is None:
        if rules.unpopulated == "omitted" and not (
            field.enum_type and field.enum_type.full_name == NULL_VALUE
        ):
            return f"{where}: null, but unset fields are omitted"
        return None
    if rules.unpopulated == "omitted" and not field.has_presence and _empty(field, value):
        return f"{where}: {value!r} is a zero value, which is omitted"
    return value_violation(field, value, rules, where)


def value_violation(field: FieldDescriptor, value: Any, rules: JsonConvention, where: str) -> str | None:
    """The first break of ``rules`` in one field's JSON ``value``, whether or not it should be there.

    This alone reads a reply whose body is one field (``response_body``): the gateway writes that
    field even when it holds its default.
    """
    if _is_map(field):
        item_field = field.message_type.fields_by_name["value"]
        items = value.items() if isinstance(value, dict) else ()
        return next(
            (p for k, v in items if (p := _single_violation(item_field, v, rules, f"{where}[{k!r}]"))),
            None,
        )
    if field.is_repeated:
        items = enumerate(value) if isinstance(value, list) else ()
        return next(
            (p for i, v in items if (p := _single_violation(field, v, rules, f"{where}[{i}]"))),
            None,
        )
    return _single_violation(field, value, rules, where)


def _empty(field: FieldDescriptor, value: Any) -> bool:
    if field.is_repeated or _is_map(field):
        return value in ([], {})
    if field.enum_type is not None:
        zero = field.enum_type.values_by_number.get(0)
        return value == 0 or (zero is not None and value == zero.name)
    if field.message_type is not None:
        return False
    if field.type in INT64_TYPES and isinstance(value, str):
        return value.strip() in ("0", "-0")
    return value in (0, "", False)


def _single_violation(field: FieldDescriptor, value: Any, rules: JsonConvention, where: str) -> str | None:
    if field.message_type is not None:
        return message_violation(field.message_type, value, rules, where)
    if field.enum_type is not None and field.enum_type.full_name != NULL_VALUE:
        if rules.enums == "names" and isinstance(value, int) and value in field.enum_type.values_by_number:
            name = field.enum_type.values_by_number[value].name
            return f"{where}: enum {value} written as a number, not its name {name!r}"
        if rules.enums == "numbers" and isinstance(value, str):
            return f"{where}: enum {value!r} written as a name, not a number"
    elif field.type in INT64_TYPES:
        if rules.int64 == "strings" and isinstance(value, int) and not isinstance(value, bool):
            return f"{where}: 64-bit integer {value} written as a number, not a string"
        if rules.int64 == "numbers" and isinstance(value, str):
            return f"{where}: 64-bit integer {value!r} written as a string, not a number"
    return None


def error_violation(body: Any, rules: JsonConvention) -> str | None:
    """The first key of an error body that the convention's error shape does not carry, or None."""
    if not isinstance(body, dict):
        return f"an error body that is not a JSON object: {str(body)[:60]}"
    extra = [key for key in body if key not in rules.error_keys]
    if extra:
        return f"error body key {extra[0]!r}: the error body carries only {', '.join(rules.error_keys)}"
    return None
