"""Flyte literals: whether a value fits a type, default values, bindings, and what test tasks compute.

The type check is flyteadmin's intent (a value of the declared type, collections
and maps element-wise, unions by any variant) without its every cast; types it
does not know are accepted.  Outputs of simulated tasks are computed from the
inputs for a few known shapes (see :func:`compute_outputs`), else they are
type-correct defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from protoconform.mockserver.apis.flyte.compiler import START_NODE
from protoconform.mockserver.apis.flyte.wire import Wire, copy, text

_SIMPLE_FIELDS = {
    "INTEGER": "integer",
    "FLOAT": "float_value",
    "STRING": "string_value",
    "BOOLEAN": "boolean",
    "DATETIME": "datetime",
    "DURATION": "duration",
}


def type_text(literal_type: Any) -> str:
    return text(literal_type) or "none"


def infer_type(wire: Wire, literal: Any) -> Any:
    """The type a literal carries (for messages naming what was given)."""
    found = wire.new("core.LiteralType")
    kind = literal.WhichOneof("value")
    if kind == "collection":
        items = literal.collection.literals
        if items:
            found.collection_type.CopyFrom(infer_type(wire, items[0]))
        else:
            found.collection_type.simple = wire.number("core.SimpleType", "NONE")
    elif kind == "map":
        values = list(literal.map.literals.values())
        if values:
            found.map_value_type.CopyFrom(infer_type(wire, values[0]))
        else:
            found.map_value_type.simple = wire.number("core.SimpleType", "NONE")
    elif kind == "scalar":
        scalar = literal.scalar
        which = scalar.WhichOneof("value")
        if which == "primitive":
            primitive = scalar.primitive.WhichOneof("value")
            simple = {v: k for k, v in _SIMPLE_FIELDS.items()}.get(primitive or "", "NONE")
            found.simple = wire.number("core.SimpleType", simple)
        elif which == "none_type":
            found.simple = wire.number("core.SimpleType", "NONE")
        elif which == "binary":
            found.simple = wire.number("core.SimpleType", "BINARY")
        elif which == "error":
            found.simple = wire.number("core.SimpleType", "ERROR")
        elif which == "generic":
            found.simple = wire.number("core.SimpleType", "STRUCT")
        elif which == "blob":
            found.blob.CopyFrom(scalar.blob.metadata.type)
        elif which == "schema":
            found.schema.CopyFrom(scalar.schema.type)
        elif which == "structured_dataset":
            found.structured_dataset_type.CopyFrom(scalar.structured_dataset.metadata.structured_dataset_type)
        elif which == "union":
            found.CopyFrom(scalar.union.type)
    return found


def fits(wire: Wire, literal: Any, literal_type: Any) -> bool:
    """Whether ``literal`` is a value of ``literal_type``."""
    kind = literal_type.WhichOneof("type")
    value = literal.WhichOneof("value")
    if value == "offloaded_metadata":
        return True  # the value lives elsewhere; its inferred type is not checked here
    scalar = literal.scalar if value == "scalar" else None
    which = scalar.WhichOneof("value") if scalar is not None else None
    if which == "union" and kind != "union_type":
        return fits(wire, scalar.union.value, literal_type)
    if kind == "simple":
        simple = wire.name_of("core.SimpleType", literal_type.simple)
        if simple == "NONE":
            return which == "none_type"
        if simple in _SIMPLE_FIELDS:
            return which == "primitive" and scalar.primitive.WhichOneof("value") == _SIMPLE_FIELDS[simple]
        expected = {"BINARY": "binary", "ERROR": "error", "STRUCT": "generic"}.get(simple)
        return expected is None or which == expected
    if kind == "collection_type":
        return value == "collection" and all(
            fits(wire, item, literal_type.collection_type) for item in literal.collection.literals
        )
    if kind == "map_value_type":
        return value == "map" and all(
            fits(wire, item, literal_type.map_value_type) for item in literal.map.literals.values()
        )
    if kind == "blob":
        return which == "blob"
    if kind == "schema":
        return which in ("schema", "structured_dataset")
    if kind == "structured_dataset_type":
        return which in ("structured_dataset", "schema")
    if kind == "enum_type":
        return (
            which == "primitive"
            and scalar.primitive.WhichOneof("value") == "string_value"
            and (
                not literal_type.enum_type.values
                or scalar.primitive.string_value in literal_type.enum_type.values
            )
        )
    if kind == "union_type":
        inner = scalar.union.value if which == "union" else literal
        return any(fits(wire, inner, variant) for variant in literal_type.union_type.variants)
    return True  # a type this mock does not model


def default_literal(wire: Wire, literal_type: Any) -> Any:
    """A type-correct value: zero, empty, or the first enum or union variant."""
    literal = wire.new("core.Literal")
    kind = literal_type.WhichOneof("type")
    if kind == "simple":
        simple = wire.name_of("core.SimpleType", literal_type.simple)
        primitive = literal.scalar.primitive
        if simple == "INTEGER":
            primitive.integer = 0
        elif simple == "FLOAT":
            primitive.float_value = 0.0
        elif simple == "STRING":
            primitive.string_value = ""
        elif simple == "BOOLEAN":
            primitive.boolean = False
        elif simple == "DATETIME":
            primitive.datetime.FromDatetime(datetime(1970, 1, 1, tzinfo=UTC))
        elif simple == "DURATION":
            primitive.duration.SetInParent()
        elif simple == "BINARY":
            literal.scalar.binary.SetInParent()
        elif simple == "STRUCT":
            literal.scalar.generic.SetInParent()
        else:
            literal.scalar.none_type.SetInParent()
    elif kind == "collection_type":
        literal.collection.SetInParent()
    elif kind == "map_value_type":
        literal.map.SetInParent()
    elif kind == "blob":
        literal.scalar.blob.metadata.type.CopyFrom(literal_type.blob)
        literal.scalar.blob.uri = "s3://protoconform/default-blob"
    elif kind in ("schema", "structured_dataset_type"):
        literal.scalar.structured_dataset.uri = "s3://protoconform/default-dataset"
        if kind == "structured_dataset_type":
            literal.scalar.structured_dataset.metadata.structured_dataset_type.CopyFrom(
                literal_type.structured_dataset_type
            )
    elif kind == "enum_type":
        values = literal_type.enum_type.values
        literal.scalar.primitive.string_value = values[0] if values else ""
    elif kind == "union_type" and literal_type.union_type.variants:
        variant = literal_type.union_type.variants[0]
        literal.scalar.union.value.CopyFrom(default_literal(wire, variant))
        literal.scalar.union.type.CopyFrom(variant)
    else:
        literal.scalar.none_type.SetInParent()
    return literal


# -- bindings -----------------------------------------------------------------------------


class UnboundError(LookupError):
    """A binding reads an output that is not there (yet)."""


def resolve(wire: Wire, binding: Any, outputs: Mapping[str, Any]) -> Any:
    """The literal a ``BindingData`` stands for; ``outputs`` maps node id -> its output LiteralMap."""
    literal = wire.new("core.Literal")
    kind = binding.WhichOneof("value")
    if kind == "scalar":
        literal.scalar.CopyFrom(binding.scalar)
    elif kind == "collection":
        literal.collection.SetInParent()
        for item in binding.collection.bindings:
            literal.collection.literals.append(resolve(wire, item, outputs))
    elif kind == "map":
        literal.map.SetInParent()
        for key, item in binding.map.bindings.items():
            literal.map.literals[key].CopyFrom(resolve(wire, item, outputs))
    elif kind == "promise":
        produced = outputs.get(binding.promise.node_id or START_NODE)  # "": the workflow's inputs
        if produced is None or binding.promise.var not in produced.literals:
            raise UnboundError(f"{binding.promise.node_id}.{binding.promise.var}")
        literal.CopyFrom(produced.literals[binding.promise.var])
    elif kind == "offloaded_metadata":
        literal.offloaded_metadata.CopyFrom(binding.offloaded_metadata)
    return literal


def bind(wire: Wire, bindings: Any, outputs: Mapping[str, Any]) -> Any:
    found = wire.new("core.LiteralMap")
    for binding in bindings:
        found.literals[binding.var].CopyFrom(resolve(wire, binding.binding, outputs))
    return found


# -- what simulated tasks compute -------------------------------------------------------------


def _number(literal: Any) -> float | int | None:
    if literal.WhichOneof("value") != "scalar" or literal.scalar.WhichOneof("value") != "primitive":
        return None
    kind = literal.scalar.primitive.WhichOneof("value")
    if kind == "integer":
        return int(literal.scalar.primitive.integer)
    if kind == "float_value":
        return float(literal.scalar.primitive.float_value)
    return None


def _string(literal: Any) -> str | None:
    if literal.WhichOneof("value") != "scalar" or literal.scalar.WhichOneof("value") != "primitive":
        return None
    primitive = literal.scalar.primitive
    return str(primitive.string_value) if primitive.WhichOneof("value") == "string_value" else None


def _operation(template: Any, op_key: str) -> str:
    named = template.config.get(op_key, "") if op_key else ""
    if named:
        return named.lower()
    short = template.id.name.rpartition(".")[2].lower()
    for op, names in OPERATIONS.items():
        if short in names:
            return op
    return ""


OPERATIONS = {
    "sum": ("add", "sum", "plus"),
    "product": ("mul", "multiply", "product", "times"),
    "concat": ("concat", "join"),
    "identity": ("identity", "echo", "passthrough"),
}


def _computed(wire: Wire, op: str, inputs: list[Any], literal_type: Any) -> Any | None:
    """The value of ``op`` over the inputs (in name order) as ``literal_type``, or None."""
    literal = wire.new("core.Literal")
    simple = wire.name_of("core.SimpleType", literal_type.simple) if literal_type.HasField("simple") else ""
    if op == "identity":
        found = next((i for i in inputs if fits(wire, i, literal_type)), None)
        return copy(found) if found is not None else None
    if op in ("sum", "product") and simple in ("INTEGER", "FLOAT"):
        numbers = [n for n in (_number(i) for i in inputs) if n is not None]
        total: float | int = 0 if op == "sum" else 1
        for n in numbers:
            total = total + n if op == "sum" else total * n
        if simple == "INTEGER":  # int64 arithmetic wraps around, as the task's own language would
            literal.scalar.primitive.integer = (int(total) + 2**63) % 2**64 - 2**63
        else:
            literal.scalar.primitive.float_value = float(total)
        return literal
    if op in ("sum", "concat") and simple == "STRING":
        literal.scalar.primitive.string_value = "".join(
            s for s in (_string(i) for i in inputs) if s is not None
        )
        return literal
    return None


def compute_outputs(wire: Wire, template: Any, inputs: Any, op_key: str = "") -> Any:
    """Outputs of a simulated task run.

    The operation is the task's ``config[op_key]`` (``protoconform.io/op``: sum, product,
    concat, identity), else the one its short name says (``…add``, ``…sum``,
    ``…multiply``, ``…concat``, ``…echo``…).  Without one, an output takes the
    input of the same name and type, else the only input of its type; anything
    left gets a type-correct default.
    """
    ordered = [inputs.literals[name] for name in sorted(inputs.literals)]
    op = _operation(template, op_key)
    outputs = wire.new("core.LiteralMap")
    for name, variable in template.interface.outputs.variables.items():
        value = _computed(wire, op, ordered, variable.type) if op else None
        if value is None and name in inputs.literals and fits(wire, inputs.literals[name], variable.type):
            value = copy(inputs.literals[name])
        if value is None:
            same = [i for i in ordered if fits(wire, i, variable.type)]
            value = copy(same[0]) if len(same) == 1 else default_literal(wire, variable.type)
        outputs.literals[name].CopyFrom(value)
    return outputs
