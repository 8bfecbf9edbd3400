"""Flyte message classes and enum values, resolved from the descriptor registry by short name.

``wire.new("admin.Task", ...)`` builds ``flyteidl.admin.Task``; enum helpers turn
numbers into the names flyteadmin prints and stores (phases are stored as their
names, resource types are printed lower-case).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, message, text_format, timestamp_pb2
from protoconform.specs.registry import Registry

PACKAGE = "flyteidl."


class Wire:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._classes: dict[str, type[message.Message]] = {}
        self._enums: dict[str, Any] = {}

    def cls(self, name: str) -> type[message.Message]:
        found = self._classes.get(name)
        if found is None:
            found = self._classes[name] = self.registry.message_class(PACKAGE + name)
        return found

    def new(self, type_name: str, /, **fields: Any) -> Any:
        return self.cls(type_name)(**fields)

    def enum(self, name: str) -> Any:
        found = self._enums.get(name)
        if found is None:
            found = self._enums[name] = self.registry.enum(PACKAGE + name)
        return found

    def name_of(self, enum: str, number: int) -> str:
        value = self.enum(enum).values_by_number.get(number)
        return value.name if value is not None else str(number)

    def number(self, enum: str, name: str) -> int:
        return int(self.enum(enum).values_by_name[name].number)

    def has(self, enum: str, number: int) -> bool:
        return number in self.enum(enum).values_by_number


def copy(msg: Any) -> Any:
    clone = type(msg)()
    clone.CopyFrom(msg)
    return clone


def text(msg: message.Message) -> str:
    """A message as Go's ``%v`` of a proto prints it: one-line prototext."""
    return text_format.MessageToString(msg, as_one_line=True)


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


def to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def span(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(seconds=max(0.0, seconds)))
    return duration


def deterministic(msg: message.Message) -> bytes:
    """Stable bytes of a message (map order fixed): what digests are computed from."""
    return msg.SerializeToString(deterministic=True)
