"""Apply request rules from ``specs/`` to a request, and raise rule-named errors.

Handlers call :func:`check_request` first (required fields, ranges, patterns,
lengths: the generic kinds) and :func:`rule_error` for rules that need state
(not found, already exists, illegal transition).  The status code always comes
from the rule, never from the handler.
"""

from __future__ import annotations

import re
from typing import Any

import grpc
from google.protobuf import message
from protoconform.mockserver.rpc import ApiError
from protoconform.specs.fieldpath import MISSING, values_at
from protoconform.specs.rules import REQUEST_KINDS, FamilyRules, Rule


def rule_error(rules: FamilyRules, rule_id: str, detail: str) -> ApiError:
    """The error a rule prescribes; the message starts with the field it is about."""
    rule = rules.rule(rule_id)
    prefix = f"{rule.field}: " if rule.field and not detail.startswith(rule.field) else ""
    return ApiError(rule.status, f"{prefix}{detail}")


def field_values(msg: message.Message, path: str) -> list[Any]:
    """Values at a dotted path; repeated fields fan out (``items.name`` -> every item's name).

    Unset singular message fields yield MISSING so ``required`` can tell unset from empty.
    """
    return values_at(msg, path)


def _empty(value: Any) -> bool:
    if value is MISSING or value is None:
        return True
    if isinstance(value, message.Message):
        return value.ByteSize() == 0 and not value.ListFields()
    try:
        return len(value) == 0
    except TypeError:
        return value == 0 and not isinstance(value, bool)


def violation(rule: Rule, request: message.Message) -> str | None:
    """Why ``request`` breaks a request-shape rule, or None when it holds."""
    if rule.kind not in REQUEST_KINDS:
        return None
    if rule.kind == "nonempty":
        return "must not be empty" if all(_empty(v) for v in field_values(request, rule.field)) else None
    for value in field_values(request, rule.field):
        if rule.kind == "required":
            # presence: a set message counts even when empty (proto3 submessages carry presence)
            missing = (value is MISSING) if rule.params.get("presence") else _empty(value)
            if missing:
                return "is required"
        elif value is MISSING:
            continue  # shape rules apply only to values that are there
        elif rule.kind == "range":
            low, high = rule.params.get("min"), rule.params.get("max")
            number = _number(value)
            if (low is not None and number < low) or (high is not None and number > high):
                bounds = (
                    f"between {low} and {high}"
                    if low is not None and high is not None
                    else (f"at least {low}" if low is not None else f"at most {high}")
                )
                return f"must be {bounds}, got {number}"
        elif rule.kind == "pattern":
            checked = value != "" or rule.params.get("check_empty", False)
            if checked and not re.fullmatch(rule.params["regex"], str(value)):
                return f"{value!r} does not match {rule.params['regex']}"
        elif rule.kind == "length":
            low, high = rule.params.get("min", 0), rule.params.get("max")
            if len(value) < low or (high is not None and len(value) > high):
                return f"length must be between {low} and {high}, got {len(value)}"
        elif rule.kind == "enum_defined" and isinstance(value, int):
            enum = _enum_of(request, rule.field)
            if enum is not None and enum.values_by_number.get(value) is None:
                return f"{value} is not a value of {enum.full_name}"
    return None


def _number(value: Any) -> float:
    if isinstance(value, message.Message) and value.DESCRIPTOR.full_name == "google.protobuf.Duration":
        return value.seconds + value.nanos / 1e9
    return float(value)


def _enum_of(request: message.Message, path: str) -> Any:
    descriptor = request.DESCRIPTOR
    field_descriptor = None
    for part in path.split("."):
        field_descriptor = descriptor.fields_by_name[part]
        descriptor = field_descriptor.message_type
    return field_descriptor.enum_type if field_descriptor is not None else None


def request_rules(rules: FamilyRules, method: str) -> list[Rule]:
    """The request-shape rules of ``method`` (full dotted name or gRPC path), in the order checked."""
    if method.startswith("/"):
        method = method[1:].replace("/", ".")
    return [rule for rule in rules.for_method(method) if rule.kind in REQUEST_KINDS]


def check_rules(checks: list[Rule], request: message.Message) -> None:
    """Raise the first of ``checks`` (from :func:`request_rules`) that ``request`` breaks."""
    for rule in checks:
        reason = violation(rule, request)
        if reason is not None:
            raise ApiError(grpc.StatusCode[rule.code], f"{rule.field}: {reason} (rule {rule.id})")


def check_request(rules: FamilyRules, method: str, request: message.Message) -> None:
    """Raise the first request-shape rule of ``method`` that ``request`` breaks.

    ``method`` is the full dotted name (``pkg.Service.Method``) or gRPC path.
    """
    check_rules(request_rules(rules, method), request)
