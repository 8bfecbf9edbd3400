"""HTTP request -> request message, and response message -> HTTP body.

The request is built in grpc-gateway's order: the body first (the whole
message for ``body: "*"``, one top-level field for a named body, nothing
otherwise), then every path variable (overriding the body), then, unless the
body is ``*``, the query string for every field not bound by the path or the
body.  Values in the path and the query are parsed like grpc-gateway's Go
runtime parses them (``strconv`` rules, enums by name or number, base64
bytes, Go durations, RFC 3339 timestamps), and every failure becomes a
:class:`TranscodeError` (INVALID_ARGUMENT) whose message names the field.

Where the two generations differ: v1 takes the first of several values for a
singular field and replaces repeated fields, v2 rejects several values and
appends; v1 reads query integers with Go's base prefixes (``0x10``), v2 only
in base 10; v2 also parses Struct/Value query values as JSON.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import (
    descriptor,
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    json_format,
    message,
    message_factory,
    timestamp_pb2,
    wrappers_pb2,
)
from protoconform.mockserver import safejson
from protoconform.mockserver.gateway import jsonmap
from protoconform.mockserver.gateway.conventions import Convention, Marshaler
from protoconform.mockserver.gateway.routes import Route
from protoconform.specs.wellknown import WRAPPERS

FD = descriptor.FieldDescriptor


class TranscodeError(ValueError):
    """The HTTP request cannot become the request message (answered as INVALID_ARGUMENT)."""


# -- Go strconv-compatible scalar parsing ---------------------------------------


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _syntax(function: str, text: str) -> ValueError:
    return ValueError(f"strconv.{function}: parsing {_go_quote(text)}: invalid syntax")


def _out_of_range(function: str, text: str) -> ValueError:
    return ValueError(f"strconv.{function}: parsing {_go_quote(text)}: value out of range")


def _digits(text: str, base: int, function: str, original: str) -> int:
    if base == 0:
        base = 10
        lowered = text.lower()
        if lowered.startswith("0x"):
            base, text = 16, text[2:]
        elif lowered.startswith("0b"):
            base, text = 2, text[2:]
        elif lowered.startswith("0o"):
            base, text = 8, text[2:]
        elif len(text) > 1 and text.startswith("0"):
            base, text = 8, text[1:]
        # Go allows '_' between digits only when the base comes from a prefix rule.
        if text.startswith("_") or text.endswith("_") or "__" in text:
            raise _syntax(function, original)
        text = text.replace("_", "")
    if not text or not all(c in "0123456789abcdefghijklmnopqrstuvwxyz"[:base] for c in text.lower()):
        raise _syntax(function, original)
    return int(text, base)


def parse_int(text: str, bits: int, base: int = 10) -> int:
    body, negative = text, False
    if body[:1] in "+-" and body:
        negative, body = body[0] == "-", body[1:]
    value = _digits(body, base, "ParseInt", text)
    value = -value if negative else value
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise _out_of_range("ParseInt", text)
    return value


def parse_uint(text: str, bits: int, base: int = 10) -> int:
    if text[:1] in "+-" and text:
        raise _syntax("ParseUint", text)
    value = _digits(text, base, "ParseUint", text)
    if value >= 1 << bits:
        raise _out_of_range("ParseUint", text)
    return value


_FLOAT = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)")
_SPECIAL_FLOATS = {
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
    "nan": math.nan,
}


def parse_float(text: str, bits: int = 64) -> float:
    lowered = text.lower()
    if lowered in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[lowered]
    try:
        if _FLOAT.fullmatch(text):
            value = float(text)
        elif re.fullmatch(r"[+-]?0x[0-9a-f.]+p[+-]?\d+", lowered):
            value = float.fromhex(text)
        else:
            raise _syntax("ParseFloat", text)
    except OverflowError:
        raise _out_of_range("ParseFloat", text) from None
    if math.isinf(value) or (bits == 32 and abs(value) > 3.4028234663852886e38):
        raise _out_of_range("ParseFloat", text)
    return value


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _syntax("ParseBool", text)


def parse_bytes(text: str) -> bytes:
    """Standard base64, else URL-safe base64, both padded (grpc-gateway's runtime.Bytes)."""
    for alphabet in (None, b"-_"):
        try:
            return base64.b64decode(text, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
    bad = next((i for i, c in enumerate(text) if not (c.isalnum() or c in "+/-_=")), len(text))
    raise ValueError(f"illegal base64 data at input byte {bad}")


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_DURATION_NUMBER = r"(\d+\.?\d*|\.\d+)"
_DURATION_PART = re.compile(_DURATION_NUMBER + r"(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text: str) -> duration_pb2.Duration:
    """Go's time.ParseDuration ("1h2m3.5s", "-300ms"), as grpc-gateway reads Durations from a URL."""
    body, negative = text, False
    if body[:1] in ("+", "-"):
        negative, body = body[0] == "-", body[1:]
    if body == "0":
        return duration_pb2.Duration()
    if not body:
        raise ValueError(f"time: invalid duration {_go_quote(text)}")
    total, pos = 0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            number = re.match(_DURATION_NUMBER, body[pos:])
            if number is None:
                raise ValueError(f"time: invalid duration {_go_quote(text)}")
            unit = body[pos + number.end() :]
            unit = re.match(r"[^\d.]*", unit).group(0)  # type: ignore[union-attr]
            if not unit:
                raise ValueError(f"time: missing unit in duration {_go_quote(text)}")
            raise ValueError(f"time: unknown unit {_go_quote(unit)} in duration {_go_quote(text)}")
        whole, _, fraction = match.group(1).partition(".")
        scale = _DURATION_UNITS[match.group(2)]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        pos = match.end()
    if total >= 1 << 63:
        raise ValueError(f"time: invalid duration {_go_quote(text)}")
    seconds, nanos = divmod(total, 10**9)
    if negative:
        seconds, nanos = -seconds, -nanos
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def parse_timestamp(text: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    try:
        stamp.FromJsonString(text)
    except ValueError as exc:
        raise ValueError(f"parsing time {_go_quote(text)} as RFC 3339: {exc}") from None
    return stamp


# -- one value into one field --------------------------------------------------

_SIGNED = {
    FD.TYPE_INT32: 32,
    FD.TYPE_SINT32: 32,
    FD.TYPE_SFIXED32: 32,
    FD.TYPE_INT64: 64,
    FD.TYPE_SINT64: 64,
    FD.TYPE_SFIXED64: 64,
}
_UNSIGNED = {FD.TYPE_UINT32: 32, FD.TYPE_FIXED32: 32, FD.TYPE_UINT64: 64, FD.TYPE_FIXED64: 64}

# wrapper message -> (its class, the scalar type of its value)
_WRAPPERS: dict[str, tuple[type[message.Message], int]] = {
    name: (getattr(wrappers_pb2, name.rpartition(".")[2]), inner) for name, inner in WRAPPERS.items()
}


def _scalar(field_type: int, text: str, base: int, enum: descriptor.EnumDescriptor | None = None) -> Any:
    if field_type in _SIGNED:
        return parse_int(text, _SIGNED[field_type], base)
    if field_type in _UNSIGNED:
        return parse_uint(text, _UNSIGNED[field_type], base)
    if field_type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return parse_float(text, 32 if field_type == FD.TYPE_FLOAT else 64)
    if field_type == FD.TYPE_BOOL:
        return parse_bool(text)
    if field_type == FD.TYPE_STRING:
        return text
    if field_type == FD.TYPE_BYTES:
        return parse_bytes(text)
    if field_type == FD.TYPE_ENUM and enum is not None:
        return parse_enum(enum, text)
    raise ValueError(f"unsupported field type {field_type}")


def parse_enum(enum: descriptor.EnumDescriptor, text: str) -> int:
    value = enum.values_by_name.get(text)
    if value is not None:
        return value.number
    try:
        number = parse_int(text, 32, 10)
    except ValueError:
        number = None
    if number is None or number not in enum.values_by_number:
        raise ValueError(f"{_go_quote(text)} is not a valid value of {enum.full_name}")
    return number


def _message_value(message_type: descriptor.Descriptor, text: str, version: int) -> message.Message:
    """A well-known message type read from one string, as grpc-gateway's query parser does."""
    name = message_type.full_name
    if name == "google.protobuf.Timestamp":
        return parse_timestamp(text)
    if name == "google.protobuf.Duration":
        return parse_go_duration(text)
    if name in _WRAPPERS:
        cls, inner = _WRAPPERS[name]
        if version == 1 and inner == FD.TYPE_BOOL and text not in ("true", "false"):
            raise ValueError(f"bad BoolValue: {text}")
        return cls(value=_scalar(inner, text, 10))
    if name == "google.protobuf.FieldMask":
        return field_mask_pb2.FieldMask(paths=[p for p in text.split(",") if p or version == 2])
    if version == 2 and name in (
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
    ):
        target = descriptor_pool.Default().FindMessageTypeByName(name)
        result = message_factory.GetMessageClass(target)()
        safejson.check_json_text(text, name)  # json_format.Parse recurses once per level
        try:
            json_format.Parse(text, result)
        except json_format.ParseError as exc:
            raise ValueError(str(exc)) from None
        return result
    raise ValueError(f"unsupported message type: {_go_quote(name)}")


def _parse_for_field(field: descriptor.FieldDescriptor, text: str, version: int, base: int) -> Any:
    if field.message_type is not None:
        return _message_value(field.message_type, text, version)
    return _scalar(field.type, text, base, field.enum_type)


def _assign(msg: message.Message, field: descriptor.FieldDescriptor, value: Any) -> None:
    if isinstance(value, message.Message):
        getattr(msg, field.name).CopyFrom(value)
    else:
        setattr(msg, field.name, value)


def _field_by_name(message_type: descriptor.Descriptor, name: str) -> descriptor.FieldDescriptor | None:
    found = message_type.fields_by_name.get(name)
    if found is None:
        found = next((f for f in message_type.fields if f.json_name == name), None)
    return found


def populate(msg: message.Message, parts: list[str], values: list[str], version: int) -> None:
    """Set the field at ``parts`` (proto or JSON names) from query values; unknown names are ignored."""
    current = msg
    field: descriptor.FieldDescriptor | None = None
    for index, name in enumerate(parts):
        field = _field_by_name(current.DESCRIPTOR, name)
        if field is None:
            return  # grpc-gateway ignores parameters that name no field
        if index == len(parts) - 1:
            break
        if field.message_type is None or jsonmap.is_repeated(field):
            raise ValueError(f"invalid path: {_go_quote(name)} is not a message")
        current = getattr(current, field.name)
    assert field is not None
    shown = ".".join(parts)  # grpc-gateway names only the last part; the whole path is clearer
    if field.containing_oneof is not None and current.WhichOneof(field.containing_oneof.name) is not None:
        raise ValueError(f"field already set for oneof {_go_quote(field.containing_oneof.name)}")
    base = 0 if version == 1 else 10  # v1's query parser uses runtime.Int32 & co, which take Go prefixes
    if jsonmap.is_map(field):
        if len(values) != 2:
            raise ValueError(
                f"more than one value provided for key {_go_quote(values[0])} in map {field.full_name}"
            )
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        try:
            key = _parse_for_field(key_field, values[0], version, base)
        except ValueError as exc:
            raise ValueError(f"parsing map key {_go_quote(shown)}: {exc}") from None
        try:
            item = _parse_for_field(value_field, values[1], version, base)
        except ValueError as exc:
            raise ValueError(f"parsing map value {_go_quote(shown)}: {exc}") from None
        container = getattr(current, field.name)
        if isinstance(item, message.Message):
            container[key].CopyFrom(item)
        else:
            container[key] = item
        return
    if jsonmap.is_repeated(field):
        parsed = []
        for value in values:
            try:
                parsed.append(_parse_for_field(field, value, version, base))
            except ValueError as exc:
                raise ValueError(f"parsing list {_go_quote(shown)}: {exc}") from None
        container = getattr(current, field.name)
        if version == 1:
            del container[:]  # v1 replaces the list; v2 appends to it
        for item in parsed:
            if isinstance(item, message.Message):
                container.add().CopyFrom(item)
            else:
                container.append(item)
        return
    if len(values) > 1 and version == 2:
        raise ValueError(f"too many values for field {_go_quote(field.name)}: {', '.join(values)}")
    try:
        _assign(current, field, _parse_for_field(field, values[0], version, base))
    except ValueError as exc:
        raise ValueError(f"parsing field {_go_quote(shown)}: {exc}") from None


def _set_path_param(msg: message.Message, field_path: str, value: str, version: int) -> None:
    parts = field_path.split(".")
    try:
        if len(parts) > 1:
            populate(msg, parts, [value], version)  # nested: grpc-gateway's PopulateFieldFromPath
            return
        field = msg.DESCRIPTOR.fields_by_name[field_path]
        if jsonmap.is_repeated(field):
            container = getattr(msg, field.name)
            for piece in value.split(","):
                container.append(_parse_for_field(field, piece, version, 0))
            return
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Duration":
            # runtime.Duration reads the protojson form ("1.5s"), not Go's duration syntax.
            duration = duration_pb2.Duration()
            duration.FromJsonString(value)
            getattr(msg, field.name).CopyFrom(duration)
            return
        _assign(msg, field, _parse_for_field(field, value, version, 0))
    except ValueError as exc:
        raise TranscodeError(f"type mismatch, parameter: {field_path}, error: {exc}") from None


# -- the whole request ---------------------------------------------------------


def _has_prefix(parts: list[str], prefixes: Iterable[list[str]]) -> bool:
    return any(parts[: len(prefix)] == prefix for prefix in prefixes)


def _query_pairs(query: Iterable[tuple[str, str]]) -> Iterator[tuple[list[str], list[str]]]:
    """Query keys grouped like Go's url.Values, with ``key[mapkey]`` turned into (key, [mapkey, ...])."""
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(value)
    for key, values in grouped.items():
        match = re.fullmatch(r"(.*)\[(.*)\]", key)
        if match:
            key, values = match.group(1), [match.group(2), *values]
        yield key.split("."), values


def decode_body(route: Route, body: bytes, msg: message.Message, marshaler: Marshaler) -> None:
    """Merge the request body into ``msg`` as the route's ``body`` says."""
    if not route.body:
        return
    field = None if route.body == "*" else msg.DESCRIPTOR.fields_by_name[route.body]
    if marshaler.kind == "proto":
        try:
            if field is None:
                msg.MergeFromString(body)
            elif field.message_type is not None and not jsonmap.is_repeated(field):
                target = getattr(msg, field.name)
                target.SetInParent()
                target.MergeFromString(body)
            else:
                raise TranscodeError(f"body field {field.name!r} cannot be read as binary protobuf")
        except message.DecodeError as exc:
            raise TranscodeError(f"malformed protobuf body: {exc}") from None
        return
    try:
        present, value = jsonmap.first_json_value(body)
    except jsonmap.JsonError as exc:
        raise TranscodeError(str(exc)) from None
    if not present:
        return  # an empty body is "nothing sent", as io.EOF is for grpc-gateway
    try:
        if field is None:
            jsonmap.json_to_message(value, msg, marshaler, route.convention.version)
        else:
            # Decode {"<field>": value} into a scratch request and keep only that field.
            scratch = type(msg)()
            if value is not None:
                jsonmap.json_to_message({field.name: value}, scratch, marshaler, route.convention.version)
            if jsonmap.is_repeated(field) or field.message_type is None:
                _copy_field(scratch, msg, field)
            elif scratch.HasField(field.name):
                target = getattr(msg, field.name)
                target.SetInParent()  # an empty object still sets the field, as Go allocates it
                target.MergeFrom(getattr(scratch, field.name))
    except jsonmap.JsonError as exc:
        raise TranscodeError(str(exc)) from None


def _copy_field(source: message.Message, target: message.Message, field: descriptor.FieldDescriptor) -> None:
    if jsonmap.is_map(field):
        getattr(target, field.name).MergeFrom(getattr(source, field.name))
    elif jsonmap.is_repeated(field):
        getattr(target, field.name).extend(getattr(source, field.name))
    else:
        setattr(target, field.name, getattr(source, field.name))


def build_request(
    route: Route,
    cls: type[message.Message],
    path_params: dict[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
    marshaler: Marshaler,
) -> message.Message:
    """The request message a unary or server-streaming call over this route carries."""
    version = route.convention.version
    msg = cls()
    decode_body(route, body, msg, marshaler)
    for variable in route.template.variables:
        value = path_params.get(variable.field_path)
        if not value:
            # grpc-gateway would bind an empty segment and leave the refusal to the server;
            # naming the missing field here is clearer and the status (400) is the same.
            raise TranscodeError(f"missing parameter {variable.field_path}")
        _set_path_param(msg, variable.field_path, value, version)
    if route.body != "*":
        bound = [v.field_path.split(".") for v in route.template.variables]
        if route.body:
            bound.append([route.body])
        for parts, values in _query_pairs(query):
            if _has_prefix(parts, bound):
                continue
            try:
                populate(msg, parts, values, version)
            except ValueError as exc:
                raise TranscodeError(str(exc)) from None
    return msg


def stream_requests(
    body: bytes, cls: type[message.Message], marshaler: Marshaler, convention: Convention
) -> list[message.Message]:
    """The messages of a client stream: successive JSON values in the body (one message for protobuf)."""
    if marshaler.kind == "proto":
        try:
            return [cls.FromString(body)] if body else []
        except message.DecodeError as exc:
            raise TranscodeError(f"malformed protobuf body: {exc}") from None
    messages = []
    try:
        for value in jsonmap.json_values(body):
            item = cls()
            jsonmap.json_to_message(value, item, marshaler, convention.version)
            messages.append(item)
    except jsonmap.JsonError as exc:
        raise TranscodeError(str(exc)) from None
    return messages


def encode_response(route: Route, response: message.Message, marshaler: Marshaler) -> bytes:
    if route.response_body:
        return jsonmap.encode_field(response, route.response_body, marshaler)
    return jsonmap.encode_message(response, marshaler)


def encode_stream_chunk(route: Route, response: message.Message, marshaler: Marshaler) -> bytes:
    """One ``{"result": ...}`` line of a response stream."""
    json_marshaler = marshaler if marshaler.kind == "json" else route.convention.marshalers["*"]
    value = jsonmap.message_to_json_value(response, json_marshaler)
    if route.response_body:
        field = response.DESCRIPTOR.fields_by_name[route.response_body]
        value = value.get(field.name if json_marshaler.proto_names else field.json_name)
    return jsonmap.dump_json({"result": value}) + b"\n"
