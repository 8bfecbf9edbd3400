"""Protobuf <-> JSON the way grpc-gateway's marshalers do it.

The protobuf JSON mapping itself (names, int64 as strings, enums by name,
well-known types, base64 bytes) is protobuf's own ``json_format``; this module
adds what the gateways configure on top of it:

- key style: proto names (``OrigName`` / ``UseProtoNames``) or lowerCamelCase;
- ``EmitUnpopulated``: fields without presence written even when default, and
  unset singular message fields written as ``null``, as Go's protojson does;
- unknown JSON keys ignored or rejected per marshaler, while an unknown enum
  *name* is always an error (Go's decoders reject it either way);
- a body is read like Go's ``json.Decoder.Decode``: one JSON value, trailing
  bytes ignored, an empty body meaning "nothing sent";
- nesting is limited (:mod:`~protoconform.mockserver.safejson`): ``json`` and
  ``json_format`` recurse once per level, so a deeper body is the client's error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from google.protobuf import descriptor, descriptor_pool, json_format, message
from protoconform.mockserver import safejson
from protoconform.mockserver.gateway.conventions import Marshaler
from protoconform.specs.wellknown import NOT_JSON_OBJECTS

WELL_KNOWN = NOT_JSON_OBJECTS  # message types whose JSON form is not an object of their fields

_WHITESPACE = " \t\n\r"


class JsonError(ValueError):
    """A body that cannot become the request message; the text names the problem."""


def is_map(field: descriptor.FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def is_repeated(field: descriptor.FieldDescriptor) -> bool:
    return bool(field.is_repeated)


# -- output --------------------------------------------------------------------


def message_to_json_value(msg: message.Message, marshaler: Marshaler) -> Any:
    value = json_format.MessageToDict(
        msg,
        preserving_proto_field_name=marshaler.proto_names,
        always_print_fields_with_no_presence=marshaler.emit_unpopulated,
    )
    if marshaler.emit_unpopulated and isinstance(value, dict):
        _add_nulls(msg.DESCRIPTOR, value, marshaler.proto_names)
    return value


def _add_nulls(message_type: descriptor.Descriptor, value: dict[str, Any], proto_names: bool) -> None:
    if message_type.full_name in WELL_KNOWN:
        return
    for field in message_type.fields:
        if field.message_type is None:
            continue
        key = field.name if proto_names else field.json_name
        if key not in value:
            if not is_repeated(field) and field.containing_oneof is None:
                value[key] = None
            continue
        item_type = field.message_type
        if is_map(field):
            item_type = field.message_type.fields_by_name["value"].message_type
            if item_type is not None and isinstance(value[key], dict):
                for item in value[key].values():
                    if isinstance(item, dict):
                        _add_nulls(item_type, item, proto_names)
        elif is_repeated(field):
            for item in value[key]:
                if isinstance(item, dict):
                    _add_nulls(item_type, item, proto_names)
        elif isinstance(value[key], dict):
            _add_nulls(item_type, value[key], proto_names)


def dump_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def encode_message(msg: message.Message, marshaler: Marshaler) -> bytes:
    if marshaler.kind == "proto":
        return msg.SerializeToString()
    return dump_json(message_to_json_value(msg, marshaler))


def encode_field(msg: message.Message, field_name: str, marshaler: Marshaler) -> bytes:
    """Only one field of ``msg`` (an annotation's ``response_body``)."""
    field = msg.DESCRIPTOR.fields_by_name[field_name]
    if marshaler.kind == "proto":
        if field.message_type is not None and not is_repeated(field):
            return getattr(msg, field_name).SerializeToString()
        raise JsonError(f"response_body {field_name!r} is not a message: cannot write it as protobuf")
    whole = message_to_json_value(msg, marshaler)
    key = field.name if marshaler.proto_names else field.json_name
    if key in whole:
        return dump_json(whole[key])
    # A default value left out of the whole message: write the field's default.
    if is_map(field):
        return b"{}"
    if is_repeated(field):
        return b"[]"
    if field.message_type is not None:
        return b"null" if marshaler.emit_unpopulated else b"{}"
    probe = type(msg)()
    return dump_json(
        json_format.MessageToDict(
            probe, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        ).get(field.name)
    )


# -- input ---------------------------------------------------------------------


def json_values(body: bytes) -> Iterator[Any]:
    """Successive JSON values of a body (a client stream sends several); none for an empty body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonError(
            f"malformed JSON: body is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(text):
            return
        try:
            safejson.check_json_value(text, pos, "request body")
            value, pos = decoder.raw_decode(text, pos)
        except safejson.DocumentRejected as exc:
            raise JsonError(str(exc)) from None
        except json.JSONDecodeError as exc:
            raise JsonError(f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        yield value


def first_json_value(body: bytes) -> tuple[bool, Any]:
    """``(present, value)`` of the first JSON value; bytes after it are not read, like Go's decoder."""
    values = json_values(body)
    try:
        return True, next(values)
    except StopIteration:
        return False, None


def json_to_message(
    value: Any,
    msg: message.Message,
    marshaler: Marshaler,
    version: int,
    pool: descriptor_pool.DescriptorPool | None = None,
) -> None:
    """Merge a decoded JSON value into ``msg``; JsonError names the offending field."""
    message_type = msg.DESCRIPTOR
    if value is None:
        if version == 1:
            return  # golang/protobuf's jsonpb treats a top-level null as "nothing sent"
        raise JsonError(f"{message_type.full_name}: unexpected null, expected a JSON object")
    if message_type.full_name not in WELL_KNOWN and not isinstance(value, dict):
        raise JsonError(f"{message_type.full_name}: expected a JSON object, got {_json_kind(value)}")
    try:
        # Before the recursive walks below; one level more than a body may have, since
        # a named body arrives wrapped as {field: value}.
        safejson.check_value(value, message_type.full_name, safejson.MAX_DEPTH + 1)
    except safejson.DocumentRejected as exc:
        raise JsonError(str(exc)) from None
    pruned = _check_keys(message_type, value, marshaler.discard_unknown, message_type.name, pool)
    try:
        json_format.ParseDict(pruned, msg, ignore_unknown_fields=False, descriptor_pool=pool)
    except json_format.ParseError as exc:
        raise JsonError(str(exc).rstrip(".") + ".") from None
    except (TypeError, ValueError, AttributeError) as exc:  # odd shapes json_format does not wrap
        raise JsonError(f"{message_type.full_name}: {exc}") from None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def _check_keys(
    message_type: descriptor.Descriptor,
    value: Any,
    discard: bool,
    where: str,
    pool: descriptor_pool.DescriptorPool | None,
) -> Any:
    """A copy of ``value`` without unknown keys (or JsonError when they are not allowed)."""
    if not isinstance(value, dict):
        return value
    if message_type.full_name == "google.protobuf.Any":
        return _check_any(value, discard, where, pool)
    if message_type.full_name in WELL_KNOWN:
        return value
    by_name: dict[str, descriptor.FieldDescriptor] = {}
    for field in message_type.fields:
        by_name[field.name] = field
        by_name[field.json_name] = field
    result: dict[str, Any] = {}
    for key, item in value.items():
        field = by_name.get(key)
        if field is None:
            if key.startswith("[") and key.endswith("]"):
                result[key] = item  # extension syntax: json_format resolves or rejects it
                continue
            if discard:
                continue
            raise JsonError(f'unknown field "{key}" in {message_type.full_name} (at {where})')
        path = f"{where}.{field.name}"
        _check_shape(field, item, path)
        if field.message_type is None:
            result[key] = item
        elif is_map(field):
            item_type = field.message_type.fields_by_name["value"].message_type
            if item_type is not None and isinstance(item, dict):
                item = {k: _check_keys(item_type, v, discard, f"{path}[{k}]", pool) for k, v in item.items()}
            result[key] = item
        elif is_repeated(field) and isinstance(item, list):
            result[key] = [
                _check_keys(field.message_type, v, discard, f"{path}[{i}]", pool) for i, v in enumerate(item)
            ]
        else:
            result[key] = _check_keys(field.message_type, item, discard, path, pool)
    return result


def _check_shape(field: descriptor.FieldDescriptor, item: Any, path: str) -> None:
    """Containers and messages must arrive as the JSON kind the mapping gives them."""
    if item is None:
        return
    if is_map(field) and not isinstance(item, dict):
        raise JsonError(f"{path}: expected a JSON object (a map), got {_json_kind(item)}")
    if is_repeated(field) and not is_map(field) and not isinstance(item, list):
        raise JsonError(f"{path}: expected a JSON array, got {_json_kind(item)}")
    if (
        not is_repeated(field)
        and field.message_type is not None
        and field.message_type.full_name not in WELL_KNOWN
        and not isinstance(item, dict)
    ):
        raise JsonError(
            f"{path}: expected a JSON object ({field.message_type.full_name}), got {_json_kind(item)}"
        )


def _check_any(value: dict[str, Any], discard: bool, where: str, pool: Any) -> dict[str, Any]:
    type_url = value.get("@type")
    if not isinstance(type_url, str):
        return value
    try:
        embedded = (pool or descriptor_pool.Default()).FindMessageTypeByName(type_url.rsplit("/", 1)[-1])
    except KeyError:
        return value  # json_format reports the unresolvable type
    if embedded.full_name in WELL_KNOWN:
        return value
    rest = {k: v for k, v in value.items() if k != "@type"}
    return {"@type": type_url, **_check_keys(embedded, rest, discard, where, pool)}
