"""Hypothesis strategies for any protobuf message, built from its descriptor.

:func:`messages` draws *any* message of a descriptor: every scalar type with
its edge values, enums, nested and repeated fields, maps, oneofs (at most one
member set), the well-known types (Timestamp, Duration, Struct/Value/ListValue,
Any packing a known type, wrappers, Empty, FieldMask) and recursive types cut
off at a depth.  Everything it draws survives a binary and a JSON round trip
(:func:`roundtrip_binary`, :func:`roundtrip_json`, compared by :func:`canonical`).

Nothing here knows about spec rules: :mod:`.rules` shapes requests on top of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import (
    any_pb2,
    descriptor,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    json_format,
    message,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from hypothesis import strategies as st
from protoconform.specs.fieldpath import is_map

FD = descriptor.FieldDescriptor

# -- scalar domains ------------------------------------------------------------

INT_BOUNDS: dict[int, tuple[int, int]] = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
FLOAT_TYPES = frozenset({FD.TYPE_FLOAT, FD.TYPE_DOUBLE})
# Enum numbers are int32 on the wire.
ENUM_BOUNDS = (-(2**31), 2**31 - 1)

# Timestamp and Duration limits from their .proto comments (and what JSON accepts).
TIMESTAMP_SECONDS = (-62135596800, 253402300799)  # 0001-01-01 .. 9999-12-31
DURATION_SECONDS = (-315576000000, 315576000000)  # +-10,000 years
NANOS_MAX = 999_999_999

# Any packs one of these (always in the default pool, so JSON can resolve the type URL).
ANY_PAYLOADS: tuple[type[message.Message], ...] = (
    empty_pb2.Empty,
    timestamp_pb2.Timestamp,
    duration_pb2.Duration,
    struct_pb2.Struct,
    wrappers_pb2.StringValue,
    wrappers_pb2.Int64Value,
    wrappers_pb2.BoolValue,
    wrappers_pb2.BytesValue,
)

TEXT_CHARS = st.characters(exclude_categories=("Cs",))  # protobuf strings are valid UTF-8


@dataclass(frozen=True)
class Options:
    """How big and how wild generated messages get."""

    max_depth: int = 3  # nested messages below this depth stay unset (recursive types end here)
    max_size: int = 3  # repeated fields, maps, Struct members
    max_text: int = 12  # strings and bytes
    invalid_enums: bool = False  # open enums may also get numbers outside their domain


DEFAULT = Options()


def int_edges(low: int, high: int) -> list[int]:
    candidates = [low, high, 0, 1, -1, low + 1, high - 1, 2**31 - 1, -(2**31), 2**32 - 1, 2**63 - 1]
    return sorted({c for c in candidates if low <= c <= high})


def integers(low: int, high: int) -> st.SearchStrategy[int]:
    """Integers in [low, high], the bounds and other edges drawn often."""
    return st.one_of(st.sampled_from(int_edges(low, high)), st.integers(low, high))


# protobuf's JSON printer writes float32 values in their shortest form, which for the very
# largest ones ("3.4028235e+38") parses back above the float32 range: stay below it.
FLOAT32_JSON_MAX = 3.3999999521443642e38  # 3.4e38 as a float32


def floats(field_type: int, *, allow_nan: bool = True) -> st.SearchStrategy[float]:
    """Floats of a float or double field: zeros, infinities, NaN (the one quiet NaN: payloads
    do not survive JSON), extremes and the rest."""
    width = 32 if field_type == FD.TYPE_FLOAT else 64
    edges = [0.0, -0.0, math.inf, -math.inf, 1.0, -1.0]
    edges += [FLOAT32_JSON_MAX, 1.401298464324817e-45] if width == 32 else [1.7976931348623157e308, 5e-324]
    if allow_nan:
        edges.append(math.nan)
    bound = FLOAT32_JSON_MAX if width == 32 else None
    finite = st.floats(
        width=width, allow_nan=False, allow_infinity=False, min_value=bound and -bound, max_value=bound
    )
    return st.one_of(st.sampled_from(edges), finite)


def texts(min_size: int = 0, max_size: int = DEFAULT.max_text) -> st.SearchStrategy[str]:
    edges = [
        s
        for s in ("", " ", "a", "é", "\U0001f600", "\x00", "-", "🙂x", "a b")
        if min_size <= len(s) <= max_size
    ]
    generated = st.text(TEXT_CHARS, min_size=min_size, max_size=max(min_size, max_size))
    return st.one_of(st.sampled_from(edges), generated) if edges else generated


def scalars(field: descriptor.FieldDescriptor, options: Options = DEFAULT) -> st.SearchStrategy[Any]:
    """Values of a non-message field (enum included), edges first."""
    if field.type in INT_BOUNDS:
        return integers(*INT_BOUNDS[field.type])
    if field.type in FLOAT_TYPES:
        return floats(field.type)
    if field.type == FD.TYPE_BOOL:
        return st.booleans()
    if field.type == FD.TYPE_STRING:
        return texts(0, options.max_text)
    if field.type == FD.TYPE_BYTES:
        return st.binary(max_size=options.max_text)
    if field.type == FD.TYPE_ENUM:
        return enum_numbers(field.enum_type, invalid=options.invalid_enums)
    raise TypeError(f"{field.full_name}: no scalar strategy for field type {field.type}")


def enum_numbers(enum: descriptor.EnumDescriptor, *, invalid: bool = False) -> st.SearchStrategy[int]:
    """Defined numbers of ``enum``; with ``invalid`` (open enums only) also numbers outside it."""
    defined = sorted({v.number for v in enum.values})
    strategy: st.SearchStrategy[int] = st.sampled_from(defined)
    if invalid and not enum.is_closed:
        strategy = st.one_of(strategy, undefined_enum_numbers(enum))
    return strategy


def undefined_enum_numbers(enum: descriptor.EnumDescriptor) -> st.SearchStrategy[int]:
    defined = {v.number for v in enum.values}
    edges = [max(defined) + 1, max(defined) + 100, min(defined) - 1, ENUM_BOUNDS[1], 999]
    candidates = sorted({e for e in edges if ENUM_BOUNDS[0] <= e <= ENUM_BOUNDS[1] and e not in defined})
    return st.one_of(st.sampled_from(candidates), st.integers(*ENUM_BOUNDS)).filter(
        lambda n: n not in defined
    )


# -- well-known types ----------------------------------------------------------


def timestamps() -> st.SearchStrategy[timestamp_pb2.Timestamp]:
    return st.builds(
        lambda s, n: timestamp_pb2.Timestamp(seconds=s, nanos=n),
        integers(*TIMESTAMP_SECONDS),
        st.one_of(st.just(0), integers(0, NANOS_MAX)),
    )


def durations() -> st.SearchStrategy[duration_pb2.Duration]:
    def build(seconds: int, nanos: int) -> duration_pb2.Duration:
        # seconds and nanos must share a sign (or one of them be zero)
        nanos = -abs(nanos) if seconds < 0 or (seconds == 0 and nanos < 0) else abs(nanos)
        return duration_pb2.Duration(seconds=seconds, nanos=nanos)

    return st.builds(
        build, integers(*DURATION_SECONDS), st.one_of(st.just(0), integers(-NANOS_MAX, NANOS_MAX))
    )


def json_values(options: Options = DEFAULT) -> st.SearchStrategy[Any]:
    """JSON-shaped Python values (what Struct/Value/ListValue can hold)."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),  # Value cannot hold NaN or infinities in JSON
        texts(0, options.max_text),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=options.max_size),
            st.dictionaries(texts(0, options.max_text), children, max_size=options.max_size),
        ),
        max_leaves=4 * options.max_size,
    )


def _value_of(python: Any) -> struct_pb2.Value:
    holder = struct_pb2.Struct()
    holder.update({"v": python})
    return holder.fields["v"]


def values(options: Options = DEFAULT) -> st.SearchStrategy[struct_pb2.Value]:
    return json_values(options).map(_value_of)


def structs(options: Options = DEFAULT) -> st.SearchStrategy[struct_pb2.Struct]:
    def build(mapping: dict[str, Any]) -> struct_pb2.Struct:
        result = struct_pb2.Struct()
        result.update(mapping)
        return result

    return st.dictionaries(texts(0, options.max_text), json_values(options), max_size=options.max_size).map(
        build
    )


def list_values(options: Options = DEFAULT) -> st.SearchStrategy[struct_pb2.ListValue]:
    def build(items: list[Any]) -> struct_pb2.ListValue:
        result = struct_pb2.ListValue()
        result.extend(items)
        return result

    return st.lists(json_values(options), max_size=options.max_size).map(build)


def field_masks(options: Options = DEFAULT) -> st.SearchStrategy[field_mask_pb2.FieldMask]:
    # JSON renders paths in lowerCamelCase: only snake_case segments survive the trip back.
    segment = st.from_regex(r"[a-z][a-z0-9]{0,5}(_[a-z][a-z0-9]{0,3}){0,2}", fullmatch=True)
    path = st.lists(segment, min_size=1, max_size=3).map(".".join)
    return st.lists(path, max_size=options.max_size).map(lambda paths: field_mask_pb2.FieldMask(paths=paths))


def anys(options: Options = DEFAULT) -> st.SearchStrategy[any_pb2.Any]:
    def pack(payload: message.Message) -> any_pb2.Any:
        result = any_pb2.Any()
        result.Pack(payload, deterministic=True)
        return result

    payloads = st.one_of(*(messages(cls.DESCRIPTOR, options) for cls in ANY_PAYLOADS))
    return payloads.map(pack)


WELL_KNOWN: dict[str, Callable[[Options], st.SearchStrategy[Any]]] = {
    "google.protobuf.Timestamp": lambda o: timestamps(),
    "google.protobuf.Duration": lambda o: durations(),
    "google.protobuf.Struct": structs,
    "google.protobuf.Value": values,
    "google.protobuf.ListValue": list_values,
    "google.protobuf.FieldMask": field_masks,
    "google.protobuf.Any": anys,
    # wrappers and Empty are ordinary messages: the generic builder covers them
}


# -- any message -----------------------------------------------------------------


def message_class(desc: descriptor.Descriptor) -> type[message.Message]:
    return message_factory.GetMessageClass(desc)


def is_message(field: descriptor.FieldDescriptor) -> bool:
    return field.type in (FD.TYPE_MESSAGE, FD.TYPE_GROUP)


def _real_oneof(field: descriptor.FieldDescriptor) -> descriptor.OneofDescriptor | None:
    """The field's oneof, unless it is the synthetic one proto3 ``optional`` creates."""
    oneof = field.containing_oneof
    if oneof is None or (len(oneof.fields) == 1 and oneof.name == f"_{field.name}"):
        return None
    return oneof


def assign(msg: message.Message, field: descriptor.FieldDescriptor, value: Any) -> None:
    """Set ``field`` of ``msg`` to a Python value (list for repeated, dict for maps)."""
    if is_map(field):
        container = getattr(msg, field.name)
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if is_message(value_field):
                container[key].CopyFrom(item)
            else:
                container[key] = item
    elif field.is_repeated:
        container = getattr(msg, field.name)
        if is_message(field):
            for item in value:
                container.add().CopyFrom(item)
        else:
            container.extend(value)
    elif is_message(field):
        getattr(msg, field.name).CopyFrom(value)
    else:
        setattr(msg, field.name, value)


def field_values(
    field: descriptor.FieldDescriptor, depth: int, options: Options
) -> st.SearchStrategy[Any] | None:
    """Values of one field at ``depth`` (None: leave unset, the depth limit is reached)."""
    if is_map(field):
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        item = field_values(value_field, depth, options)
        if item is None:
            return None
        return st.dictionaries(scalars(key_field, options), item, max_size=options.max_size)
    if is_message(field):
        if depth + 1 > options.max_depth:
            return None
        element = messages(field.message_type, options, depth + 1)
    else:
        element = scalars(field, options)
    if field.is_repeated:
        return st.lists(element, max_size=options.max_size)
    return element


_CACHE: dict[tuple[str, int, Options], st.SearchStrategy[Any]] = {}


def messages(
    desc: descriptor.Descriptor | type[message.Message], options: Options = DEFAULT, depth: int = 0
) -> st.SearchStrategy[message.Message]:
    """Any message of ``desc``; each field set or not, at most one member per oneof."""
    if isinstance(desc, type):
        desc = desc.DESCRIPTOR
    key = (desc.full_name, depth, options)
    if key in _CACHE:
        return _CACHE[key]
    if desc.full_name in WELL_KNOWN:
        strategy = WELL_KNOWN[desc.full_name](options)
    else:
        strategy = _generic(desc, options, depth)
    _CACHE[key] = strategy
    return strategy


def _generic(desc: descriptor.Descriptor, options: Options, depth: int) -> st.SearchStrategy[message.Message]:
    cls = message_class(desc)
    plain: dict[str, st.SearchStrategy[Any]] = {}
    oneofs: dict[str, list[tuple[str, st.SearchStrategy[Any]]]] = {}
    for field in desc.fields:
        strategy = field_values(field, depth, options)
        if strategy is None:
            continue
        oneof = _real_oneof(field)
        if oneof is None:
            plain[field.name] = strategy
        else:
            oneofs.setdefault(oneof.name, []).append((field.name, strategy))
    choices = [
        st.one_of(st.none(), *(st.tuples(st.just(name), s) for name, s in members))
        for members in oneofs.values()
    ]

    def build(parts: tuple[dict[str, Any], tuple[tuple[str, Any] | None, ...]]) -> message.Message:
        fields, chosen = parts
        msg = cls()
        for name, value in fields.items():
            assign(msg, desc.fields_by_name[name], value)
        for choice in chosen:
            if choice is not None:
                assign(msg, desc.fields_by_name[choice[0]], choice[1])
        return msg

    return st.tuples(st.fixed_dictionaries({}, optional=plain), st.tuples(*choices)).map(build)


# -- comparing and round trips ------------------------------------------------------


def canonical(msg: message.Message) -> bytes:
    """Deterministic bytes of ``msg``, with messages packed in Any re-serialized deterministically too
    (so two equal messages compare equal however their maps were filled)."""
    copy = type(msg)()
    copy.CopyFrom(msg)
    _canonicalize(copy)
    return copy.SerializeToString(deterministic=True)


def _canonicalize(msg: message.Message) -> None:
    if msg.DESCRIPTOR.full_name == "google.protobuf.Any" and msg.type_url:
        from google.protobuf import symbol_database

        try:
            cls = symbol_database.Default().GetSymbol(msg.type_url.rpartition("/")[2])
        except KeyError:
            return
        inner = cls()
        msg.Unpack(inner)
        msg.value = canonical(inner)
        return
    for field, value in msg.ListFields():
        if not is_message(field):
            continue
        if is_map(field):
            if is_message(field.message_type.fields_by_name["value"]):
                for item in value.values():
                    _canonicalize(item)
        elif field.is_repeated:
            for item in value:
                _canonicalize(item)
        else:
            _canonicalize(value)


def roundtrip_binary(msg: message.Message) -> message.Message:
    copy = type(msg)()
    copy.ParseFromString(msg.SerializeToString())
    return copy


def roundtrip_json(msg: message.Message) -> message.Message:
    return json_format.Parse(json_format.MessageToJson(msg), type(msg)())


def graft(
    example: message.Message, wild: message.Message, pick: Any, descend: float = 0.4, replace: float = 0.7
) -> message.Message:
    """``example`` with some of ``wild``'s fields (at any depth) put in place of its own: a valid
    request with hostile parts, which reaches deeper into a handler than a wholly wild one.

    ``pick`` is a ``random.Random``; for each set field of ``wild``, below ``descend`` the graft
    goes on inside a nested message, below ``replace`` the field is taken as it is."""
    result = type(example)()
    result.CopyFrom(example)
    for field, value in wild.ListFields():
        choice = pick.random()
        nested = is_message(field) and not field.is_repeated
        if nested and choice < descend and result.HasField(field.name):
            inner = graft(getattr(result, field.name), value, pick, descend, replace)
            getattr(result, field.name).CopyFrom(inner)
        elif choice < replace:
            result.ClearField(field.name)
            if is_map(field):
                assign(result, field, dict(value))
            else:
                assign(result, field, list(value) if field.is_repeated else value)
    return result
