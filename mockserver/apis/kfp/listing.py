"""ListRuns mechanics: ``sort_by`` parsing, ``api.Filter`` evaluation, page tokens.

The contract (sortable fields, filter keys, operator classes) is the ``lists``
entry of ``specs/kfp`` for ``api.RunService.ListRuns``; the codes come from the
rules it names.  Pagination is keyset-based like the real server's: the opaque
token carries the sort and filter of the first request and the sort key of the
first run of the next page, so runs created or deleted between pages neither
shift nor repeat items.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, message
from protoconform.mockserver import safejson
from protoconform.mockserver.apis.kfp.errors import Violation

RULE_SORT_FORMAT = "kfp.runs.list.sort-format"
RULE_SORT_FIELD = "kfp.runs.list.sort-field"
RULE_TOKEN_INVALID = "kfp.runs.list.page-token-invalid"
RULE_TOKEN_MISMATCH = "kfp.runs.list.page-token-mismatch"
RULE_FILTER_PARSE = "kfp.runs.list.filter-parse"
RULE_FILTER_KEY = "kfp.runs.list.filter-key"
RULE_FILTER_PREDICATE = "kfp.runs.list.filter-predicate"

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Sort:
    field: str  # a sortable field or "metric:<name>"
    desc: bool = False

    def to_json(self) -> list[Any]:
        return [self.field, self.desc]


class Contract:
    """The list contract of ListRuns, read from specs/kfp."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.sort_fields: list[str] = list(data["sort_fields"])
        self.sort_prefixes: list[str] = list(data.get("sort_prefixes", []))
        self.default_sort = Sort(data["default_sort"])
        self.filter_keys: list[str] = list(data["filter_keys"])
        self.operators: dict[str, str] = dict(data["filter_operators"])  # op name -> scalar|list|substring
        self.model = data.get("model", "Run")

    def sortable(self, field: str) -> bool:
        return field in self.sort_fields or any(
            field.startswith(p) and len(field) > len(p) for p in self.sort_prefixes
        )


# -- sort ---------------------------------------------------------------------------


def parse_sort(text: str, contract: Contract) -> Sort:
    """``"field"``, ``"field asc"`` or ``"field desc"``, case-insensitive; "" = the default sort."""
    words = text.lower().split()
    if not words:
        return contract.default_sort
    if len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
        raise Violation(
            RULE_SORT_FORMAT,
            f'Received invalid sort by format "{text}". Supported format: "field_name", "field_name desc", '
            'or "field_name asc"',
        )
    if not contract.sortable(words[0]):
        raise Violation(
            RULE_SORT_FIELD, f'Invalid sorting field: "{words[0]}" on listable type {contract.model}'
        )
    return Sort(words[0], len(words) == 2 and words[1] == "desc")


def field_value(run: message.Message, field: str) -> Any:
    """The value a run is sorted and filtered by (times in Unix seconds, enums by name)."""
    if field.startswith("metric:"):
        name = field.partition(":")[2]
        for metric in run.metrics:
            if metric.name.lower() == name:
                return metric.number_value
        return None
    if field in ("created_at", "scheduled_at", "finished_at"):
        return getattr(run, field).seconds
    if field == "storage_state":
        enum = run.DESCRIPTOR.fields_by_name["storage_state"].enum_type
        value = enum.values_by_number.get(run.storage_state)
        return value.name if value is not None else str(run.storage_state)
    return getattr(run, field)


def sort_key(run: message.Message, sort: Sort) -> list[Any]:
    """Sort value, then id as tie-breaker; a missing value (metric not reported) sorts first."""
    value = field_value(run, sort.field)
    return [value is not None, value, run.id]


# -- filter -------------------------------------------------------------------------


def parse_filter(
    text: str, filter_class: type[message.Message], contract: Contract
) -> message.Message | None:
    """The ``filter`` parameter: URL-encoded JSON of ``api.Filter`` (decoded once more, like the server)."""
    if not text:
        return None
    if _BAD_ESCAPE.search(text):
        raise Violation(RULE_FILTER_PARSE, f'failed to parse valid filter from "{text}": invalid URL escape')
    return _filter_from_json(urllib.parse.unquote_plus(text), filter_class, contract)


def _filter_from_json(
    decoded: str, filter_class: type[message.Message], contract: Contract
) -> message.Message:
    try:
        safejson.check_json_text(decoded, "filter")  # json_format.Parse recurses once per level
    except safejson.DocumentRejected as exc:
        raise Violation(RULE_FILTER_PARSE, str(exc)) from None
    try:
        parsed = json_format.Parse(decoded, filter_class())
    except json_format.ParseError as exc:
        raise Violation(RULE_FILTER_PARSE, f'failed to parse valid filter from "{decoded}": {exc}') from None
    for predicate in parsed.predicates:
        _check_predicate(predicate, contract)
    for predicate in parsed.predicates:
        if predicate.key not in contract.filter_keys:
            raise Violation(
                RULE_FILTER_KEY, f'no support for filtering on unrecognized field "{predicate.key}"'
            )
    return parsed


def _check_predicate(predicate: message.Message, contract: Contract) -> None:
    op = predicate.DESCRIPTOR.fields_by_name["op"].enum_type.values_by_number.get(predicate.op)
    op_name = op.name if op is not None else str(predicate.op)
    kind = contract.operators.get(op_name)
    if kind is None:
        raise Violation(RULE_FILTER_PREDICATE, f"invalid predicate operation: {op_name}")
    value = predicate.WhichOneof("value")
    if value is None:
        raise Violation(RULE_FILTER_PREDICATE, f'no value set for predicate on key "{predicate.key}"')
    is_list = value.endswith("_values")
    if kind == "list" and not is_list:
        raise Violation(RULE_FILTER_PREDICATE, f"cannot use IN operator with scalar type {value}")
    if kind != "list" and is_list:
        raise Violation(RULE_FILTER_PREDICATE, f"cannot use scalar operator {op_name} on array type {value}")
    if kind == "substring" and value != "string_value":
        raise Violation(
            RULE_FILTER_PREDICATE, f"cannot use non string value type {value} with substring operator"
        )


def canonical_filter(parsed: message.Message | None) -> str:
    """A stable text of a filter, kept in page tokens and compared with later requests."""
    if parsed is None or not parsed.predicates:
        return ""
    return json.dumps(json_format.MessageToDict(parsed, preserving_proto_field_name=True), sort_keys=True)


def _predicate_value(predicate: message.Message) -> Any:
    which = predicate.WhichOneof("value")
    value = getattr(predicate, which)
    if which == "timestamp_value":
        return value.seconds  # compared as Unix seconds
    if which.endswith("_values"):
        return list(value.values)
    return value


def _coerce(value: Any, like: Any) -> Any:
    """Compare like with like: numbers with numbers, text with text."""
    if isinstance(like, str):
        return value if isinstance(value, str) else str(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return value


def matches(run: message.Message, parsed: message.Message | None, contract: Contract) -> bool:
    if parsed is None:
        return True
    return all(_holds(run, predicate, contract) for predicate in parsed.predicates)


def _holds(run: message.Message, predicate: message.Message, contract: Contract) -> bool:
    return holds(field_value(run, predicate.key), predicate)


def holds(actual: Any, predicate: message.Message) -> bool:
    """Whether a run whose ``predicate.key`` field has the value ``actual`` passes ``predicate``."""
    wanted = _predicate_value(predicate)
    op = predicate.DESCRIPTOR.fields_by_name["op"].enum_type.values_by_number[predicate.op].name
    if op == "IN":
        return any(_coerce(w, actual) == actual for w in wanted)
    if op == "IS_SUBSTRING":
        return str(wanted).lower() in str(actual).lower()  # SQL LIKE under a case-insensitive collation
    wanted = _coerce(wanted, actual)
    if wanted is None:
        actual, wanted = str(actual), str(_predicate_value(predicate))
    comparisons = {
        "EQUALS": lambda a, b: a == b,
        "NOT_EQUALS": lambda a, b: a != b,
        "GREATER_THAN": lambda a, b: a > b,
        "GREATER_THAN_EQUALS": lambda a, b: a >= b,
        "LESS_THAN": lambda a, b: a < b,
        "LESS_THAN_EQUALS": lambda a, b: a <= b,
    }
    return bool(comparisons[op](actual, wanted))


# -- page tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class PageToken:
    sort: Sort
    filter: str  # canonical_filter() of the first request
    key: list[Any]  # sort_key() of the first run of the page

    def encode(self, model: str) -> str:
        payload = {"model": model, "sort": self.sort.to_json(), "filter": self.filter, "key": self.key}
        return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_token(text: str, contract: Contract) -> PageToken:
    invalid = Violation(RULE_TOKEN_INVALID, "Invalid package token.")
    try:
        payload = safejson.loads(base64.b64decode(text.encode(), validate=True).decode(), "page_token")
        field, desc = payload["sort"]
        key = payload["key"]
        if (
            payload.get("model") != contract.model
            or not isinstance(field, str)
            or not isinstance(desc, bool)
            or not contract.sortable(field)
            or not isinstance(payload["filter"], str)
            or not (
                isinstance(key, list)
                and len(key) == 3
                and isinstance(key[0], bool)
                and isinstance(key[2], str)
            )
        ):
            raise invalid
        safejson.check_json_text(payload["filter"], "page_token")  # parsed later by token_filter
        return PageToken(Sort(field, desc), payload["filter"], key)
    except safejson.DocumentRejected as exc:
        raise Violation(RULE_TOKEN_INVALID, str(exc)) from None
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise invalid from None


def token_filter(
    token: PageToken, filter_class: type[message.Message], contract: Contract
) -> message.Message | None:
    """The filter a token carries, checked like a request's: a forged one makes the token invalid."""
    if not token.filter:
        return None
    try:
        return _filter_from_json(token.filter, filter_class, contract)
    except Violation:
        raise Violation(RULE_TOKEN_INVALID, "Invalid package token.") from None


def after_or_at(key: list[Any], start: list[Any], desc: bool) -> bool:
    """Whether a run with ``key`` is on or after the page starting at ``start``."""
    try:
        return key <= start if desc else key >= start
    except TypeError:  # a token whose value type does not fit the field
        raise Violation(RULE_TOKEN_INVALID, "Invalid package token.") from None
