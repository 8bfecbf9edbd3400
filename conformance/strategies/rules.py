"""Requests shaped by the request rules of ``specs/<family>/*.yaml``.

The rule kinds are ``required``, ``nonempty``, ``range``, ``pattern``, ``length``
and ``enum_defined``.  :func:`valid_requests` draws requests of a method that
keep every such rule; :func:`invalid_request` / :func:`invalid_requests` draw
requests that break exactly one and say which; :func:`why_unbreakable` tells
why no request can break a rule on its own.

The rule predicate here (:func:`broken`) is this package's own reading of
``specs/README.md``; the mock server has its own, so the two can be compared
instead of agreeing by construction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from google.protobuf import descriptor, duration_pb2, json_format, message
from hypothesis import assume
from hypothesis import strategies as st
from protoconform.conformance.strategies.messages import (
    DEFAULT,
    DURATION_SECONDS,
    ENUM_BOUNDS,
    FD,
    FLOAT_TYPES,
    INT_BOUNDS,
    Options,
    assign,
    enum_numbers,
    field_values,
    floats,
    integers,
    is_message,
    message_class,
    messages,
    scalars,
    texts,
    undefined_enum_numbers,
)
from protoconform.specs.fieldpath import MISSING, is_map, values_at
from protoconform.specs.rules import REQUEST_KINDS, FamilyRules, Rule

# -- what a path holds, and whether a rule is broken -----------------------------------

PRESENCE_KINDS = frozenset({"required", "nonempty"})
VALUE_KINDS = frozenset({"range", "pattern", "length", "enum_defined"})


class Unbreakable(ValueError):
    """A rule that no request can break on its own (e.g. ``required`` on a bool)."""


def path_fields(desc: descriptor.Descriptor, path: str) -> list[descriptor.FieldDescriptor]:
    """The field descriptors along a dotted path, from ``desc`` down."""
    chain = []
    current: descriptor.Descriptor | None = desc
    for part in path.split("."):
        if current is None or part not in current.fields_by_name:
            owner = current.full_name if current is not None else "a scalar"
            raise KeyError(f"{owner} has no field {part!r} (path {path!r})")
        field = current.fields_by_name[part]
        chain.append(field)
        current = field.message_type if is_message(field) and not is_map(field) else None
    return chain


def is_empty(value: Any) -> bool:
    """Empty as the rules mean it: unset, zero, "" or an empty message/list/map; a bool is never empty."""
    if value is MISSING or value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, message.Message):
        return value.ByteSize() == 0
    if isinstance(value, (str, bytes)):
        return len(value) == 0
    if isinstance(value, (int, float)):
        return value == 0
    return len(value) == 0


def as_number(value: Any) -> float:
    if isinstance(value, message.Message):
        if value.DESCRIPTOR.full_name in ("google.protobuf.Duration", "google.protobuf.Timestamp"):
            return value.seconds + value.nanos / 1e9
        raise TypeError(f"{value.DESCRIPTOR.full_name} is not a number")
    return float(value)


def broken(rule: Rule, msg: message.Message) -> bool:
    """Whether ``msg`` breaks a request-shape rule (False for the other kinds)."""
    if rule.kind not in REQUEST_KINDS:
        return False
    found = values_at(msg, rule.field)
    if rule.kind == "nonempty":
        return all(is_empty(v) for v in found)
    if rule.kind == "required":
        if rule.params.get("presence"):  # a set message counts even when it is empty
            return any(v is MISSING for v in found)
        return any(is_empty(v) for v in found)
    present = [v for v in found if v is not MISSING]
    if rule.kind == "range":
        low, high = rule.params.get("min"), rule.params.get("max")
        return any(
            (low is not None and as_number(v) < low) or (high is not None and as_number(v) > high)
            for v in present
        )
    if rule.kind == "pattern":
        check_empty = rule.params.get("check_empty", False)
        return any(
            (v != "" or check_empty) and not re.fullmatch(rule.params["regex"], str(v)) for v in present
        )
    if rule.kind == "length":
        low, high = rule.params.get("min", 0), rule.params.get("max")
        return any(len(v) < low or (high is not None and len(v) > high) for v in present)
    if rule.kind == "enum_defined":
        enum = path_fields(msg.DESCRIPTOR, rule.field)[-1].enum_type
        if enum is None:
            return False
        return any(isinstance(v, int) and enum.values_by_number.get(v) is None for v in present)
    return False


# -- which apply, and valid leaf values ------------------------------------------------


def resolve_method(method: Any) -> descriptor.MethodDescriptor:
    """A MethodDescriptor from a registry Method, a descriptor, or a name (``pkg.Svc.M``, ``/pkg.Svc/M``)."""
    if isinstance(method, descriptor.MethodDescriptor):
        return method
    if hasattr(method, "descriptor"):
        return method.descriptor
    from protoconform.specs.registry import default_registry

    return default_registry().method(str(method)).descriptor


def shape_rules(method: Any, rules: FamilyRules | Iterable[Rule]) -> list[Rule]:
    """The request-shape rules that apply to ``method``, in file order."""
    desc = resolve_method(method)
    candidates = rules.rules.values() if isinstance(rules, FamilyRules) else rules
    found = []
    for rule in candidates:
        if rule.kind in REQUEST_KINDS and desc.full_name in rule.methods and rule.field:
            try:
                path_fields(desc.input_type, rule.field)
            except KeyError:
                continue  # the rule's path names a field of another method's request
            found.append(rule)
    return found


def _bounds(rules: list[Rule], kind: str) -> tuple[float | None, float | None]:
    lows = [r.params["min"] for r in rules if r.kind == kind and r.params.get("min") is not None]
    highs = [r.params["max"] for r in rules if r.kind == kind and r.params.get("max") is not None]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _keeps(rules: list[Rule], field: descriptor.FieldDescriptor) -> Callable[[Any], bool]:
    """A predicate: does one value of ``field`` keep every value rule (and presence) in ``rules``."""

    def keeps(value: Any) -> bool:
        holder = message_class(field.containing_type)()
        assign(holder, field, [value] if field.is_repeated and not is_map(field) else value)
        return not any(broken(_local(r, field), holder) for r in rules)

    return keeps


def _local(rule: Rule, field: descriptor.FieldDescriptor) -> Rule:
    """The same rule, re-rooted at the field's own message (to test one value in isolation)."""
    return replace(rule, field=field.name)


def valid_values(
    field: descriptor.FieldDescriptor, rules: list[Rule], options: Options = DEFAULT
) -> st.SearchStrategy[Any]:
    """Single values of ``field`` (one element when repeated) keeping every rule given for it."""
    presence = any(r.kind in PRESENCE_KINDS for r in rules)
    low, high = _bounds(rules, "range")
    len_low, len_high = _bounds(rules, "length")
    patterns = [r.params["regex"] for r in rules if r.kind == "pattern"]
    strategy: st.SearchStrategy[Any]
    if field.type == FD.TYPE_STRING:
        if patterns:
            strategy = st.from_regex(patterns[0], fullmatch=True)
        else:
            minimum = int(len_low or (1 if presence else 0))
            maximum = int(len_high if len_high is not None else minimum + options.max_text)
            strategy = texts(minimum, maximum)
    elif field.type == FD.TYPE_BYTES:
        minimum = int(len_low or (1 if presence else 0))
        maximum = int(len_high if len_high is not None else minimum + options.max_text)
        strategy = st.binary(min_size=minimum, max_size=maximum)
    elif field.type in INT_BOUNDS:
        type_low, type_high = INT_BOUNDS[field.type]
        strategy = integers(
            max(type_low, math.ceil(low)) if low is not None else type_low,
            min(type_high, math.floor(high)) if high is not None else type_high,
        )
    elif field.type in FLOAT_TYPES:
        if low is None and high is None:
            strategy = floats(field.type)
        else:
            strategy = st.floats(
                min_value=low,
                max_value=high,
                allow_nan=False,
                width=32 if field.type == FD.TYPE_FLOAT else 64,
            )
    elif field.type == FD.TYPE_BOOL:
        strategy = st.booleans()
    elif field.type == FD.TYPE_ENUM:
        strategy = enum_numbers(field.enum_type)
    elif is_map(field):
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        item = field_values(value_field, 0, options)
        if item is None:
            item = st.just(message_class(value_field.message_type)())
        strategy = st.dictionaries(
            scalars(key_field, options), item, min_size=1 if presence else 0, max_size=options.max_size
        )
    elif field.message_type.full_name == "google.protobuf.Duration" and (low is not None or high is not None):
        seconds = integers(
            max(DURATION_SECONDS[0], math.ceil(low)) if low is not None else DURATION_SECONDS[0],
            min(DURATION_SECONDS[1], math.floor(high)) if high is not None else DURATION_SECONDS[1],
        )
        strategy = seconds.map(lambda s: duration_pb2.Duration(seconds=s))
    else:
        strategy = messages(field.message_type, options, depth=1)
    return strategy.filter(_keeps(rules, field))


# -- valid requests --------------------------------------------------------------------


def _as_message(
    cls: type[message.Message], base: message.Message | Mapping[str, Any] | None
) -> message.Message:
    msg = cls()
    if base is None:
        return msg
    if isinstance(base, message.Message):
        msg.CopyFrom(base)
    else:
        json_format.ParseDict(dict(base), msg)
    return msg


def parents_of(msg: message.Message, path: str, *, materialize: bool) -> list[message.Message]:
    """The messages holding the last field of ``path`` (repeated fields on the way fan out).

    With ``materialize``, unset singular messages on the way are set and empty
    repeated ones get one element, so the path exists at least once.
    """
    current = [msg]
    for part in path.split(".")[:-1]:
        following = []
        for holder in current:
            field = holder.DESCRIPTOR.fields_by_name[part]
            if field.is_repeated:
                container = getattr(holder, part)
                if materialize and len(container) == 0:
                    container.add()
                following.extend(container)
            elif holder.HasField(part) or materialize:
                child = getattr(holder, part)
                child.SetInParent()
                following.append(child)
        current = following
    return current


def set_path(msg: message.Message, path: str, value: Any) -> None:
    """Set a dotted path (in every element of repeated fields on the way), creating parents."""
    name = path.rpartition(".")[2]
    for holder in parents_of(msg, path, materialize=True):
        field = holder.DESCRIPTOR.fields_by_name[name]
        holder.ClearField(name)
        assign(holder, field, value)


def _by_path(rules: list[Rule]) -> dict[str, list[Rule]]:
    grouped: dict[str, list[Rule]] = {}
    for rule in rules:
        grouped.setdefault(rule.field, []).append(rule)
    return dict(sorted(grouped.items(), key=lambda item: item[0].count(".")))  # parents first


def _fill(
    draw: Callable[[st.SearchStrategy[Any]], Any],
    msg: message.Message,
    path: str,
    rules: list[Rule],
    options: Options,
    ensure: str = "",
) -> None:
    """Make every value at ``path`` keep ``rules`` (drawing new values for value rules)."""
    presence = any(r.kind in PRESENCE_KINDS for r in rules)
    redraw = any(r.kind in VALUE_KINDS for r in rules)
    materialize = presence or bool(ensure and (ensure == path or ensure.startswith(path + ".")))
    name = path.rpartition(".")[2]
    for holder in parents_of(msg, path, materialize=materialize):
        field = holder.DESCRIPTOR.fields_by_name[name]
        strategy = valid_values(field, rules, options)
        if field.is_repeated and not is_map(field):
            container = getattr(holder, name)
            items = list(container)
            if redraw:
                items = [draw(strategy) for _ in items]
            else:
                items = [item if not is_empty(item) else draw(strategy) for item in items]
            want_one = any(r.kind == "nonempty" for r in rules) or (ensure and ensure.startswith(path))
            if want_one and all(is_empty(item) for item in items):
                items.append(draw(strategy))
            holder.ClearField(name)
            assign(holder, field, items)
        else:
            unset = is_message(field) and not is_map(field) and not holder.HasField(name)
            missing = any(r.kind in PRESENCE_KINDS and broken(_local(r, field), holder) for r in rules)
            # Value rules: draw afresh (an optional message may also stay unset);
            # presence rules alone: keep what the base gave unless it is missing.
            replace = draw(st.booleans()) or not unset or presence if redraw else presence and missing
            if replace:
                holder.ClearField(name)
                assign(holder, field, draw(strategy))


def _build_valid(
    draw: Callable[[st.SearchStrategy[Any]], Any],
    method: descriptor.MethodDescriptor,
    rules: list[Rule],
    base: message.Message | Mapping[str, Any] | None,
    fixed: Mapping[str, Any] | None,
    options: Options,
    ensure: str = "",
) -> message.Message:
    msg = _as_message(message_class(method.input_type), base)
    if ensure:
        parents_of(msg, ensure, materialize=True)
    for path, group in _by_path(rules).items():
        _fill(draw, msg, path, group, options, ensure)
    for path, value in (fixed or {}).items():
        set_path(msg, path, value)
    return msg


def valid_requests(
    method: Any,
    rules: FamilyRules | Iterable[Rule],
    *,
    base: message.Message | Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    vary: Iterable[str] = (),
    options: Options = DEFAULT,
) -> st.SearchStrategy[message.Message]:
    """Requests of ``method`` that keep every request-shape rule for it.

    ``base`` (a message or its JSON dict) supplies the fields rules do not speak
    of (e.g. a well-formed payload); fields under value rules (range, pattern,
    length, enum_defined) are drawn afresh from their valid domain, fields under
    presence rules only when missing.  ``vary`` names more paths to draw afresh
    from their type's whole domain (in every element of repeated fields on the
    way).  ``fixed`` (dotted path -> value) is set last, e.g. the id of an
    entity that exists.
    """
    desc = resolve_method(method)
    applicable = shape_rules(desc, rules)
    varied = tuple(vary)
    for path in varied:
        path_fields(desc.input_type, path)  # fail early on a path that does not exist

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> message.Message:
        start = _as_message(message_class(desc.input_type), base)
        for path in varied:
            name = path.rpartition(".")[2]
            for holder in parents_of(start, path, materialize=True):
                field = holder.DESCRIPTOR.fields_by_name[name]
                strategy = field_values(field, 1, options)
                holder.ClearField(name)
                if strategy is not None:
                    assign(holder, field, draw(strategy))
        msg = _build_valid(draw, desc, applicable, start, fixed, options)
        assume(not any(broken(r, msg) for r in applicable))
        return msg

    return build()


# -- invalid requests (exactly one rule broken) ----------------------------------------


def why_unbreakable(rule: Rule, method: Any) -> str:
    """Why no request can break ``rule`` alone ("" when one can)."""
    desc = resolve_method(method)
    field = path_fields(desc.input_type, rule.field)[-1]
    if rule.kind == "required" and field.type == FD.TYPE_BOOL:
        return "a bool is never empty"
    if rule.kind == "required" and rule.params.get("presence") and not is_message(field):
        return "a scalar is always present"
    if rule.kind == "enum_defined" and (field.enum_type is None or field.enum_type.is_closed):
        return "a closed enum cannot carry an undefined number"
    if rule.kind == "range":
        low, high = rule.params.get("min"), rule.params.get("max")
        bounds = INT_BOUNDS.get(field.type, (-math.inf, math.inf))
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Duration":
            bounds = DURATION_SECONDS
        if (low is None or low <= bounds[0]) and (high is None or high >= bounds[1]):
            return "the range covers the whole type"
    if rule.kind == "length" and not rule.params.get("min") and rule.params.get("max") is None:
        return "the length has no bound"
    return ""


def _bad_values(rule: Rule, field: descriptor.FieldDescriptor, options: Options) -> st.SearchStrategy[Any]:
    """Single values of ``field`` that break ``rule`` (for required: the empty value)."""
    if rule.kind == "required":
        if is_message(field) and not is_map(field):
            return st.just(MISSING)
        if is_map(field):
            return st.just({})
        return st.just(field.default_value if not field.is_repeated else _zero(field))
    if rule.kind == "range":
        low, high = rule.params.get("min"), rule.params.get("max")
        if field.message_type is not None:  # Duration / Timestamp
            type_low, type_high = DURATION_SECONDS
            sides = []
            if low is not None and math.ceil(low) - 1 >= type_low:
                sides.append(integers(type_low, math.ceil(low) - 1))
            if high is not None and math.floor(high) + 1 <= type_high:
                sides.append(integers(math.floor(high) + 1, type_high))
            return st.one_of(*sides).map(lambda s: duration_pb2.Duration(seconds=s))
        if field.type in FLOAT_TYPES:
            width = 32 if field.type == FD.TYPE_FLOAT else 64
            sides = []
            if low is not None:
                sides.append(st.floats(max_value=low, exclude_max=True, allow_nan=False, width=width))
            if high is not None:
                sides.append(st.floats(min_value=high, exclude_min=True, allow_nan=False, width=width))
            return st.one_of(*sides)
        type_low, type_high = INT_BOUNDS.get(field.type, ENUM_BOUNDS)
        sides = []
        if low is not None and math.ceil(low) - 1 >= type_low:
            sides.append(integers(type_low, math.ceil(low) - 1))
        if high is not None and math.floor(high) + 1 <= type_high:
            sides.append(integers(math.floor(high) + 1, type_high))
        return st.one_of(*sides)
    if rule.kind == "pattern":
        regex, check_empty = rule.params["regex"], rule.params.get("check_empty", False)
        edges = ["", " ", "!", "-", "_x", "0", "Ab!", "a" * 300, "é", "a b", "a/b", "\n"]
        candidates = st.one_of(st.sampled_from(edges), texts(1, 2 * options.max_text))
        return candidates.filter(lambda v: (v != "" or check_empty) and not re.fullmatch(regex, v))
    if rule.kind == "length":
        low, high = rule.params.get("min", 0), rule.params.get("max")
        sizes = []
        if low:
            sizes.append(st.integers(0, low - 1))
        if high is not None:
            sizes.append(st.integers(high + 1, high + 8))
        size = st.one_of(*sizes)
        if field.type == FD.TYPE_BYTES:
            return size.flatmap(lambda n: st.binary(min_size=n, max_size=n))
        if is_map(field):
            key_field = field.message_type.fields_by_name["key"]
            item = field_values(field.message_type.fields_by_name["value"], 0, options)
            return size.flatmap(lambda n: st.dictionaries(scalars(key_field), item, min_size=n, max_size=n))
        return size.flatmap(lambda n: texts(n, n))
    if rule.kind == "enum_defined":
        return undefined_enum_numbers(field.enum_type)
    raise Unbreakable(f"rule {rule.id}: kind {rule.kind!r} has no bad values")


def _zero(field: descriptor.FieldDescriptor) -> Any:
    if is_message(field):
        return message_class(field.message_type)()
    return field.default_value if field.default_value != [] else ("" if field.type == FD.TYPE_STRING else 0)


def _break(
    draw: Callable[[st.SearchStrategy[Any]], Any],
    msg: message.Message,
    rule: Rule,
    options: Options,
    others: list[Rule],
) -> None:
    name = rule.field.rpartition(".")[2]
    holders = parents_of(msg, rule.field, materialize=True)
    if rule.kind == "nonempty":
        for holder in holders:
            holder.ClearField(name)
        return
    holder = holders[draw(st.integers(0, len(holders) - 1))]
    field = holder.DESCRIPTOR.fields_by_name[name]
    # A value that breaks this rule should keep the other rules on the same field (e.g. a
    # too-long id that still matches its pattern): try those first, any bad value otherwise.
    bad = _bad_values(rule, field, options)
    if rule.kind == "length" and field.type == FD.TYPE_STRING and any(r.kind == "pattern" for r in others):
        grow = valid_values(field, [r for r in others if r.kind == "pattern"], options).filter(bool)
        high = rule.params.get("max")
        if high is not None:
            bad = st.one_of(grow.map(lambda v: v * (high // len(v) + 1)), bad)
    value = draw(bad)
    if field.is_repeated and not is_map(field):
        container = getattr(holder, name)
        items = list(container)
        if rule.kind == "required":
            value = _zero(field)
        index = draw(st.integers(0, len(items))) if items else 0
        items[index : index + 1] = [value]
        holder.ClearField(name)
        assign(holder, field, items)
    elif value is MISSING:
        holder.ClearField(name)
    else:
        holder.ClearField(name)
        assign(holder, field, value)


def invalid_request(
    method: Any,
    rules: FamilyRules | Iterable[Rule],
    rule: Rule,
    *,
    base: message.Message | Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    options: Options = DEFAULT,
) -> st.SearchStrategy[message.Message]:
    """Requests of ``method`` that break ``rule`` and keep every other request-shape rule.

    Only rules on fields *below* a cleared required/nonempty field may break along
    with it (nothing is left there to keep them).
    """
    desc = resolve_method(method)
    why = why_unbreakable(rule, desc)
    if why:
        raise Unbreakable(f"rule {rule.id} cannot be broken alone: {why}")
    applicable = shape_rules(desc, rules)
    # Clearing a message also empties what lies below it: rules on those fields break
    # as a consequence, not as a second fault.
    below = rule.field + "."
    implied = rule.kind in PRESENCE_KINDS
    others = [r for r in applicable if r.id != rule.id and not (implied and r.field.startswith(below))]
    same_field = [r for r in others if r.field == rule.field]

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> message.Message:
        msg = _build_valid(draw, desc, applicable, base, fixed, options, ensure=rule.field)
        _break(draw, msg, rule, options, same_field)
        assume(broken(rule, msg))
        assume(not any(broken(r, msg) for r in others))
        return msg

    return build()


def invalid_requests(
    method: Any,
    rules: FamilyRules | Iterable[Rule],
    *,
    base: message.Message | Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    options: Options = DEFAULT,
) -> st.SearchStrategy[tuple[Rule, message.Message]]:
    """``(rule, request)`` pairs: the request breaks exactly that rule of ``method``."""
    desc = resolve_method(method)
    candidates = [r for r in shape_rules(desc, rules) if not why_unbreakable(r, desc)]
    if not candidates:
        return st.nothing()
    return st.sampled_from(candidates).flatmap(
        lambda r: invalid_request(desc, rules, r, base=base, fixed=fixed, options=options).map(
            lambda m: (r, m)
        )
    )
