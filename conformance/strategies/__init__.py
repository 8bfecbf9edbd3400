"""Hypothesis strategies for protobuf messages, built from descriptors and spec rules.

Two layers:

- :mod:`.messages` draws *any* message of a descriptor (scalars with their edge
  values, enums, maps, oneofs, the well-known types, recursive types cut off at
  a depth), and compares messages after round trips.
- :mod:`.rules` shapes a method's request by the request rules of
  ``specs/<family>/*.yaml``: valid requests keep every rule, invalid ones break
  exactly one and say which.

The names the suites and tests use are re-exported here
(``from protoconform.conformance import strategies as S; S.valid_requests(...)``).
"""

from __future__ import annotations

from protoconform.conformance.strategies.messages import (
    DEFAULT,
    INT_BOUNDS,
    Options,
    assign,
    canonical,
    enum_numbers,
    floats,
    graft,
    integers,
    is_message,
    json_values,
    message_class,
    messages,
    roundtrip_binary,
    roundtrip_json,
    scalars,
    texts,
    undefined_enum_numbers,
)
from protoconform.conformance.strategies.rules import (
    PRESENCE_KINDS,
    VALUE_KINDS,
    Unbreakable,
    broken,
    invalid_request,
    invalid_requests,
    is_empty,
    parents_of,
    path_fields,
    resolve_method,
    set_path,
    shape_rules,
    valid_requests,
    valid_values,
    why_unbreakable,
)
from protoconform.specs.fieldpath import MISSING, is_map, values_at

__all__ = [
    "DEFAULT",
    "INT_BOUNDS",
    "MISSING",
    "PRESENCE_KINDS",
    "VALUE_KINDS",
    "Options",
    "Unbreakable",
    "assign",
    "broken",
    "canonical",
    "enum_numbers",
    "floats",
    "graft",
    "integers",
    "invalid_request",
    "invalid_requests",
    "is_empty",
    "is_map",
    "is_message",
    "json_values",
    "message_class",
    "messages",
    "parents_of",
    "path_fields",
    "resolve_method",
    "roundtrip_binary",
    "roundtrip_json",
    "scalars",
    "set_path",
    "shape_rules",
    "texts",
    "undefined_enum_numbers",
    "valid_requests",
    "valid_values",
    "values_at",
    "why_unbreakable",
]
