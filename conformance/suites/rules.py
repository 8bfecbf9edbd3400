"""Suite *rules*: every field, enum and status rule of ``specs/<family>/*.yaml`` as cases.

Generated from the rule data and the valid requests of ``examples.yaml``:

- each example: its valid request is accepted (OK);
- request-shape rules (``required``, ``nonempty``, ``range``, ``pattern``,
  ``length``, ``enum_defined``): per method, the valid request with exactly
  that rule broken -> the rule's status, and a message naming the field;
- ``not_found``: the valid request with a fresh id in the rule's field -> the
  rule's status, naming the field;
- ``already_exists``: the valid request sent twice -> the rule's status;
- ``output``: the fields the rule lists are set in the valid reply;
- ``enum_domain``: enum values in the valid reply stay in the documented domain;
- any rule with counter-examples (``cases:`` in examples.yaml; state-dependent
  rules such as preconditions and transitions): each one -> the rule's status,
  then its ``then:`` steps, if any, see the call's effect.

Strict runs want the documented ``code``; ``--lenient`` also accepts ``real_code``
and does not insist on the field being named.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from google.protobuf import descriptor, message
from protoconform.conformance import examples as ex
from protoconform.conformance import paths
from protoconform.conformance import strategies as st
from protoconform.conformance.caller import Reply
from protoconform.conformance.suites._shared import parametrize_cases
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch, short_method
from protoconform.specs import FAMILIES, load_inventory
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import REQUEST_KINDS, FamilyRules, Rule, load

SUITE = "rules"
FD = descriptor.FieldDescriptor


@dataclass(frozen=True)
class Case:
    id: str
    family: str
    kind: str  # example | shape | not_found | already_exists | output | enum_domain | counter | broken
    method: str  # full method name
    rule: str = ""
    paths: tuple[str, ...] = ()  # the rule's field(s), fitted to this method's request or response
    example: ex.Example | None = None
    steps: tuple[ex.Step, ...] = ()
    template: Any = None
    calls: tuple[str, ...] = ()
    skip: str = ""

    @property
    def service(self) -> str:
        return self.method.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.method.rpartition(".")[2]


def _fit(rule: Rule, field_path: str, desc: descriptor.Descriptor, side: str) -> str:
    registry = default_registry()
    others = []
    for name in rule.methods:
        try:
            method = registry.method(name)
        except KeyError:
            continue
        others.append(
            registry.message_descriptor(method.request_type if side == "request" else method.response_type)
        )
    try:
        return paths.fit(field_path, desc, paths.reference_for(field_path, others))
    except paths.PathError:
        own = _own_id(field_path, desc)
        if own is None:
            raise
        return own


def _own_id(field_path: str, desc: descriptor.Descriptor) -> str | None:
    """``<entity>_id`` names the ``id`` of a message that is that entity itself (the legacy
    ``Session {id}`` request of ``Submitter.CancelSession`` for a rule about ``session_id``)."""
    entity = re.sub(r"(?<!^)(?=[A-Z])", "_", desc.name).lower()
    if field_path == f"{entity}_id" and "id" in desc.fields_by_name:
        return "id"
    return None


def cases_for(
    family: str, rules: FamilyRules | None = None, book: ex.FamilyExamples | None = None
) -> list[Case]:
    """The cases of one family, from its rules and examples (by default, those in specs/)."""
    registry = default_registry()
    rules = rules or load(family)
    try:
        book = book or ex.book(family)
    except (ex.ExampleError, KeyError, ValueError) as exc:
        return [Case(f"{family}:examples", family, "broken", "", skip=f"specs/{family}/examples.yaml: {exc}")]
    cases: list[Case] = []

    def calls_of(method: str, steps: tuple[ex.Step, ...], example: ex.Example | None) -> tuple[str, ...]:
        return tuple(sorted({method} | book.calls(steps) | book.place_calls(example)))

    for method, example in book.examples.items():
        cases.append(
            Case(
                f"example[{short_method(method)}]",
                family,
                "example",
                method,
                example=example,
                steps=example.given,
                template=example.template,
                calls=calls_of(method, example.given + example.then, example),
            )
        )
    for rule in sorted(rules.rules.values(), key=lambda r: r.id):
        counters = book.cases.get(rule.id)
        if counters:
            for i, counter in enumerate(counters):
                suffix = f"#{i + 1}" if len(counters) > 1 else ""
                cases.append(
                    Case(
                        f"{rule.id}[{short_method(counter.method)}]{suffix}",
                        family,
                        "counter",
                        counter.method,
                        rule.id,
                        (rule.field,) if rule.field else (),
                        counter,
                        counter.given,
                        counter.template,
                        calls_of(counter.method, counter.given + counter.then, counter),
                    )
                )
            continue
        kind = {"not_found": "not_found", "already_exists": "already_exists", "output": "output"}.get(
            rule.kind
        )
        kind = kind or (
            "shape" if rule.kind in REQUEST_KINDS else "enum_domain" if rule.kind == "enum_domain" else ""
        )
        if not kind:
            continue  # state machines, preconditions, behaviours: other suites (or counter-examples)
        for method_name in rule.methods:
            case_id = f"{rule.id}[{short_method(method_name)}]"
            try:
                method = registry.method(method_name)
            except KeyError:
                cases.append(Case(case_id, family, kind, method_name, rule.id, skip="method not served"))
                continue
            full = f"{method.service}.{method.name}"
            example = book.example(full)
            if example is None:
                reason = f"no valid example for {short_method(full)} in specs/{family}/examples.yaml"
                cases.append(Case(case_id, family, kind, full, rule.id, skip=reason))
                continue
            try:
                if kind in ("shape", "not_found"):
                    desc = registry.message_descriptor(method.request_type)
                    fitted = (_fit(rule, rule.field, desc, "request"),)
                elif kind in ("output", "enum_domain"):
                    desc = registry.message_descriptor(method.response_type)
                    wanted = rule.params.get("fields") or [rule.field]
                    fitted = tuple(_fit(rule, f, desc, "response") for f in wanted)
                else:
                    fitted = ()
            except paths.PathError as exc:
                cases.append(Case(case_id, family, kind, full, rule.id, skip=f"field path: {exc.args[0]}"))
                continue
            template = example.template
            steps = example.given
            if kind in ("shape", "not_found"):
                template = ex.without(template, fitted[0], everywhere=rule.kind == "nonempty")
                steps = book.needed(example, template)
            cases.append(
                Case(
                    case_id,
                    family,
                    kind,
                    full,
                    rule.id,
                    fitted,
                    example,
                    steps,
                    template,
                    calls_of(full, steps, example),
                )
            )
    return cases


@cache
def all_cases() -> tuple[Case, ...]:
    return tuple(case for family in FAMILIES for case in cases_for(family))


def _mark(case: Case) -> dict[str, Any]:
    return {"service": case.service, "method": case.name, "rule": case.rule, "calls": case.calls}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_cases(metafunc, SUITE, all_cases, _mark, case_id=lambda case: f"{case.family}:{case.id}")


# -- verdicts ---------------------------------------------------------------------------


def _names_field(message_text: str, field_path: str) -> bool:
    leaf = field_path.split(".")[-1]
    camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), leaf)
    return leaf in message_text or camel in message_text


def _expect_status(reply: Reply, rule: Rule, target: Target, field_path: str, override: str = "") -> None:
    wanted = {override} if override else rule.accepted_codes(target.strict)
    naming = target.strict and bool(field_path) and not override
    got_code = reply.code.name
    if got_code not in wanted or (naming and not _names_field(reply.message, field_path)):
        expected = " or ".join(sorted(wanted))
        if naming:
            expected += f" naming {field_path.split('.')[-1]}"
        raise Mismatch(expected, reply.status(), reply=reply)


def _expect_reply_field(
    reply: Reply, wanted: tuple[dict[str, Any], ...], scenario: ex.Scenario, bindings: dict[str, Any]
) -> None:
    data = scenario.bind(reply)
    for entry in wanted:
        problem = ex.field_mismatch(data, {**scenario.resolve(entry, bindings), "field": entry["field"]})
        if problem is not None:
            raise Mismatch(*problem, reply=reply)


def _holder(msgs: Any, path: str) -> int:
    """Which message of a client stream the case changes: the first one carrying the path's
    first field (oneof members tell the kinds of stream messages apart), else the first."""
    if not isinstance(msgs, list):
        return -1
    head = path.split(".")[0]
    for index, msg in enumerate(msgs):
        field = msg.DESCRIPTOR.fields_by_name.get(head)
        if field is not None and (msg.HasField(head) if not field.is_repeated else len(getattr(msg, head))):
            return index
    return 0


def _pick(msgs: Any, index: int) -> message.Message:
    return msgs if index < 0 else msgs[index]


def _put(msgs: Any, index: int, changed: message.Message) -> Any:
    if index < 0:
        return changed
    return [*msgs[:index], changed, *msgs[index + 1 :]]


def _copy(msg: message.Message) -> message.Message:
    clone = type(msg)()
    clone.CopyFrom(msg)
    return clone


def _local(rule: Rule, field_path: str) -> Rule:
    return dataclasses.replace(rule, field=field_path) if rule.field != field_path else rule


def _shape_rules(case: Case) -> list[Rule]:
    """Request-shape rules of the case's method that apply literally to its request type."""
    registry = default_registry()
    desc = registry.message_descriptor(registry.method(case.method).request_type)
    found = []
    for rule in load(case.family).for_method(case.method):
        if rule.kind in REQUEST_KINDS and paths.fields_of(desc, rule.field) is not None:
            found.append(rule)
    return found


def _numeric_candidates(rule: Rule, field: FD) -> list[Any]:
    low, high = rule.params.get("min"), rule.params.get("max")
    values: list[Any] = []
    floating = field.type in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE)
    for bound, step in ((low, -1), (high, 1)):
        if bound is None:
            continue
        if floating:
            values.append(bound + step * max(1.0, abs(bound) * 0.5))
        else:
            values += [int(bound) + step, int(bound) + step * 1000]
    return values


def _text_candidates(rule: Rule, current: Any) -> list[Any]:
    current = current if isinstance(current, str) and current else "a"
    if rule.kind == "length":
        low, high = rule.params.get("min", 0), rule.params.get("max")
        values = []
        if high is not None:
            values += [current + current[-1] * (high + 1 - len(current)), "a" * (high + 1)]
        if low:
            values += [current[: low - 1], "a" * (low - 1)]
        return values
    return [
        current + "!",
        "!" + current,
        current + " x",
        current.upper() + "#",
        "-",
        "!",
        " ",
        "a b",
        "é",
        "_x",
        "0",
        "a/b",
        "a" * 300,
        "",
    ]


def _bad_values(rule: Rule, msg: message.Message, path: str) -> list[Any]:
    _, field = paths.parent_of(_copy(msg), path)
    current = paths.current_value(msg, path)
    if rule.kind == "range":
        return _numeric_candidates(rule, field)
    if rule.kind in ("pattern", "length"):
        if field.type == FD.TYPE_BYTES:
            high = rule.params.get("max")
            return [b"x" * (high + 1)] if high is not None else []
        return _text_candidates(rule, current)
    if rule.kind == "enum_defined":
        enum = field.enum_type
        if enum is None:
            return []
        top = max(v.number for v in enum.values)
        return [top + 1, top + 1000, -1]
    return []


def _break(case: Case, rule: Rule, base: message.Message) -> message.Message | None:
    """``base`` with exactly ``rule`` broken (at the case's path), or None when no candidate does."""
    path = case.paths[0]
    local = _local(rule, path)
    others = [r for r in _shape_rules(case) if r.id != rule.id]
    if rule.kind in ("required", "nonempty"):
        others = [r for r in others if not r.field.startswith(path + ".")]  # emptied along, not a 2nd fault
    candidates: list[message.Message] = []
    if rule.kind in ("required", "nonempty"):
        changed = _copy(base)
        paths.clear(changed, path, everywhere=rule.kind == "nonempty")
        candidates.append(changed)
    else:
        for value in _bad_values(rule, base, path):
            changed = _copy(base)
            try:
                paths.assign(changed, path, value)
            except (ValueError, TypeError, paths.PathError):
                continue
            candidates.append(changed)
    for changed in candidates:
        if st.broken(local, changed) and not any(st.broken(r, changed) for r in others):
            return changed
    return None


def _fresh(case: Case, scenario: ex.Scenario, base: message.Message) -> message.Message | None:
    """``base`` with a fresh, well-formed id at the case's path."""
    path = case.paths[0]
    shape = _shape_rules(case)
    options = [scenario.fresh_id(), f"{scenario.namespace}-missing-{scenario.rng.getrandbits(32):08x}"]
    options.append(f"{scenario.rng.getrandbits(96):024x}")
    for value in options:
        changed = _copy(base)
        try:
            paths.assign(changed, path, value)
        except (ValueError, TypeError, paths.PathError):
            return None
        if not any(st.broken(r, changed) for r in shape):
            return changed
    return None


def _documented_domain(family: str, enum: descriptor.EnumDescriptor, rule: Rule) -> dict[int, str]:
    named = rule.params.get("values")
    if named:
        return {
            (v if isinstance(v, int) else enum.values_by_name[v].number): str(v)
            for v in named
            if isinstance(v, int) or v in enum.values_by_name
        }
    documented = {e["name"]: e for e in load_inventory(family)["enums"]}
    values = documented.get(enum.full_name, {}).get("values") or [
        {"name": v.name, "number": v.number} for v in enum.values
    ]
    domain = {v["number"]: v["name"] for v in values}
    for excluded in rule.params.get("exclude", []):
        number = excluded if isinstance(excluded, int) else enum.values_by_name[excluded].number
        domain.pop(number, None)
    return domain


def _run_valid(case: Case, scenario: ex.Scenario) -> Reply:
    assert case.example is not None
    reply, _ = scenario.run(case.example)
    if not reply.ok:
        raise Mismatch("OK for the valid request of specs examples", reply.status(), reply=reply)
    return reply


def test_rule(case: Case, scenario: ex.Scenario, target: Target, rpc: Any) -> None:
    if case.kind == "broken":
        raise Mismatch("usable examples", "an error", detail=case.skip)
    if case.skip:
        pytest.skip(case.skip)
    unavailable = scenario.unavailable(case.example, case.calls)  # no place to run in, a service not served
    if unavailable:
        pytest.skip(unavailable)
    rule = load(case.family).rules.get(case.rule) if case.rule else None

    if case.kind == "example":
        reply, bindings = scenario.run(case.example)  # type: ignore[arg-type]
        if not reply.ok:
            raise Mismatch("OK", reply.status(), reply=reply)
        scenario.follow(case.example, bindings, reply)  # type: ignore[arg-type]
        return
    assert rule is not None

    if case.kind in ("shape", "not_found"):
        assert case.example is not None
        with scenario.within(case.example, case.steps) as bindings:  # inside its place, if it has one
            msgs = scenario.message(case.method, scenario.resolve(case.template, bindings))
            index = _holder(msgs, case.paths[0])
            base = _pick(msgs, index) if not isinstance(msgs, list) or msgs else None
            if base is None:
                pytest.skip(f"the example of {short_method(case.method)} sends no message to change")
            changed = _break(case, rule, base) if case.kind == "shape" else _fresh(case, scenario, base)
            if changed is None:
                pytest.skip(
                    f"no request breaks {rule.id} alone from the example of {short_method(case.method)}"
                )
            method = rpc.resolve(case.method)
            items = _put(msgs, index, changed)
            reply = rpc(method, requests=items) if method.client_streaming else rpc(method, items)
        _expect_status(reply, rule, target, case.paths[0])
        return

    if case.kind == "already_exists":
        first = _run_valid(case, scenario)
        method = first.method
        again = (
            rpc(method, requests=first.requests)
            if method.client_streaming
            else rpc(method, first.requests[0])
        )
        _expect_status(again, rule, target, rule.field)
        return

    if case.kind == "counter":
        example = case.example
        assert example is not None
        with scenario.within(example, case.steps) as bindings:  # left before the verdict and `then:`
            reply = scenario.call(case.method, case.template, bindings, example.stream)
        if example.reply:  # an in-band answer: the call succeeds, a field of the reply says no
            _expect_status(reply, rule, target, "", example.expect or "OK")
            _expect_reply_field(reply, example.reply, scenario, bindings)
        else:
            _expect_status(reply, rule, target, rule.field, example.expect)
            # the refusal's code was this project's (not a real server's other one, --lenient): now
            # its message and details
            if example.error and reply.code.name == (example.expect or rule.code):
                _expect_reply_field(reply, example.error, scenario, bindings)
        scenario.follow(example, bindings, reply)  # effects: what the call changed (`then:` steps)
        return

    reply = _run_valid(case, scenario)
    responses = reply.responses
    if not responses:
        raise Mismatch("a reply to check", "no response", reply=reply)
    for path in case.paths:
        values = [v for response in responses for v in paths.values_at(response, path)]
        if not values:
            raise Mismatch(f"{path} in the reply", "no item carrying it", reply=reply)
        if case.kind == "output":
            missing = sum(1 for v in values if not paths.is_set(v))
            if missing:
                raise Mismatch(f"{path} set", f"unset in {missing} of {len(values)}", reply=reply)
        else:
            field = paths.fields_of(responses[0].DESCRIPTOR, path)
            enum = field[-1].enum_type if field else None
            if enum is None:
                pytest.skip(f"{path} is not an enum field")
            domain = _documented_domain(case.family, enum, rule)
            outside = sorted({v for v in values if v not in domain})
            if outside:
                names = ", ".join(sorted(domain.values()))
                raise Mismatch(f"{path} in {{{names}}}", f"{', '.join(map(str, outside))}", reply=reply)
