"""Dotted field paths over protobuf messages, the way rules in ``specs/`` name fields.

A rule's ``field`` is a dotted path (``task_options.priority``, ``items.name``).  The mock
reads it to check requests and the conformance harness to build and check them, so the
walk lives here, once, next to the rules that speak this vocabulary.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor, message


class _Missing:
    """What a path yields where it steps through an unset message field."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def is_map(field: descriptor.FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def values_at(msg: message.Message, path: str) -> list[Any]:
    """Values at a dotted path; repeated fields fan out (``items.name`` -> every item's name).

    An unset singular message field yields MISSING, so a caller can tell unset from empty;
    a map is one value (the whole map).  A step naming no field raises KeyError.
    """
    values: list[Any] = [msg]
    for part in path.split("."):
        next_values: list[Any] = []
        for value in values:
            if not isinstance(value, message.Message):  # MISSING, or a step past a scalar
                next_values.append(MISSING)
                continue
            field = value.DESCRIPTOR.fields_by_name.get(part)
            if field is None:
                raise KeyError(f"{value.DESCRIPTOR.full_name} has no field {part!r}")
            current = getattr(value, part)
            if is_map(field):
                next_values.append(current)
            elif field.is_repeated:
                next_values.extend(current)
            elif field.message_type is not None:
                next_values.append(current if value.HasField(part) else MISSING)
            else:
                next_values.append(current)
        values = next_values
    return values
