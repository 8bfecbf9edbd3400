"""Broken rules of ``specs/flyte``, raised anywhere below the handlers and turned into statuses.

A :class:`Violation` names a rule and the values its ``message`` (flyteadmin's
wording, a format string in the rule) needs.  The handler wrapper turns it into
an ``ApiError`` whose code is the rule's and whose message starts with the field
the rule is about, as every family of this mock does, followed by flyteadmin's
text.  Details (``EventFailureReason``, ``InactiveProject``...) travel along.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import message
from protoconform.mockserver.rpc import ApiError
from protoconform.specs.rules import FamilyRules


class Violation(Exception):
    def __init__(
        self,
        rule_id: str,
        field: str | None = None,
        details: Sequence[message.Message] = (),
        **values: Any,
    ) -> None:
        super().__init__(rule_id)
        self.rule_id = rule_id
        self.field = field  # overrides the rule's field where one rule serves several request shapes
        self.details = tuple(details)
        self.values = values


class _Lenient(dict[str, Any]):
    """Format values: a placeholder nobody filled stays visible instead of failing the call."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, values: Mapping[str, Any]) -> str:
    return string.Formatter().vformat(template, (), _Lenient(values))


def api_error(rules: FamilyRules, violation: Violation) -> ApiError:
    rule = rules.rule(violation.rule_id)
    text = render(str(rule.params.get("message", rule.description)), violation.values)
    field = rule.field if violation.field is None else violation.field
    prefix = f"{field}: " if field and not text.startswith(field + ":") else ""
    return ApiError(rule.status, prefix + text, violation.details)
