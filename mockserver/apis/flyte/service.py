"""How AdminService handlers are registered, and the request-shape rules they apply first.

flyteadmin validates a request in a fixed order and interleaves shape checks
(``missing project``) with lookups (is the project registered?), each with its
own wording.  The shape rules of ``specs/flyte`` are therefore applied here, in
the order the spec files list them and with the rule's ``message``, instead of
by the dispatcher's generic check; they are written only where flyteadmin checks
them before any lookup, so applying them first keeps its order.  Every other
failure is a :class:`Violation` raised by the handler.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from google.protobuf import message
from protoconform.mockserver.apis.flyte.errors import Violation, api_error
from protoconform.mockserver.apis.flyte.wire import text
from protoconform.mockserver.rpc import CallContext, handler
from protoconform.mockserver.validation import violation
from protoconform.specs.fieldpath import MISSING, values_at
from protoconform.specs.rules import REQUEST_KINDS, FamilyRules, Rule

ADMIN = "flyteidl.service.AdminService"


def _shown(rule: Rule, request: message.Message) -> dict[str, Any]:
    """Values a shape rule's message may print: the offending value and the message holding it."""
    parent_path, _, leaf = rule.field.rpartition(".")
    holders = values_at(request, parent_path) if parent_path else [request]
    holder = next((h for h in holders if isinstance(h, message.Message)), None)
    shown: dict[str, Any] = {"expected": rule.params.get("expected", "")}
    if holder is None or holder is MISSING:
        return shown
    shown["id"] = text(holder)
    field = holder.DESCRIPTOR.fields_by_name[leaf]
    value = getattr(holder, leaf)
    if field.enum_type is not None and not field.is_repeated:
        named = field.enum_type.values_by_number.get(value)
        value = named.name.lower() if named is not None else str(value)
    shown["value"] = value
    return shown


def check_shape(rules: FamilyRules, method: str, request: message.Message) -> None:
    """Raise the first request-shape rule of ``method`` (``pkg.Service.Method``) that ``request`` breaks."""
    for rule in rules.for_method(method):
        if rule.kind in REQUEST_KINDS and violation(rule, request) is not None:
            raise Violation(rule.id, **_shown(rule, request))


def admin(name: str, service: str = ADMIN) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an AdminService handler: shape rules first, violations become the rule's status."""
    full = f"{service}.{name}"

    def wrap(fn: Callable[[Any, CallContext], Any]) -> Callable[..., Any]:
        @wraps(fn)
        def run(request: message.Message, ctx: CallContext) -> message.Message:
            rules = ctx.state.rules
            try:
                check_shape(rules, full, request)
                return fn(request, ctx)
            except Violation as broken:
                raise api_error(rules, broken) from None

        # The shape rules are applied above, in flyteadmin's order and wording.
        return handler(service, name, validate=False)(run)

    return wrap
