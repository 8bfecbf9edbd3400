"""Valid requests, as data: ``specs/<family>/examples.yaml`` and ``effects.yaml``.

A rule case starts from a request that is valid for its method and changes one
thing.  What "valid" means (which entities must exist first, which ids to
use) is data, written next to the rules::

    examples:
      Sessions.GetSession:
        given:                       # steps run first, in order; each binds a name
          session: Sessions.CreateSession          # run that method's own example
          result:                                   # or an ad hoc call
            call: Results.CreateResultsMetaData
            request: {session_id: "${session.session_id}", results: [{name: "${ns}-r"}]}
        request: {session_id: "${session.session_id}"}
        stream: {window: 1.0}        # server streams that stay open: read for 1 s (or max_responses)
        cleanup:                     # best effort, after the case (${reply...} is this call's reply)
          - {call: Sessions.DeleteSession, request: {session_id: "${reply.session_id}"}}
    cases:                           # rules that need a particular state: a call that must break them
      armonik.sessions.illegal-transition:
        - method: Sessions.PauseSession
          given: {...}
          request: {...}
          # expect: CODE                 (instead of the rule's code)
          # reply: {field: results.1.status, in: [DUPLICATE_REPORTING]}   (an in-band status)
      kfp.runs.terminate.effect:     # a rule whose code is OK: the call, then what it changed
        - method: RunService.TerminateRun
          given: {...}
          request: {...}
          then:                      # steps after the call (``${reply...}`` is its reply)
            stopped:
              call: RunService.GetRun
              request: {run_id: "${created.run.id}"}
              until: {field: run.status, in: [Succeeded, Failed, Error], advance: 5}
              reply:                 # what the step's (last) reply must hold
                - {field: run.status, in: [Failed]}
                - {field: run.finished_at, not_in: ["1970-01-01T00:00:00Z"]}

Placeholders: ``${name.path}`` (a bound reply, protojson with proto field names;
list items by index; a string holding JSON is walked into), ``${ns}`` (the run's
namespace), ``${unique}`` (a new name inside the namespace), ``${uuid}`` (a fresh
id), ``${now}`` (RFC 3339); ``${name.path+N}`` adds N to a bound number, and
``${bytes:N}`` / ``${bytes:name.path+N}`` is that many bytes, base64-encoded as
protojson wants them (e.g. one more than a size limit a step read).
A string that is exactly one placeholder takes the bound value as is
(numbers, objects); otherwise values are spliced into the text.

``effects.yaml`` lists the methods that change nothing (``effects.read_only``);
every other method counts as mutating, which is what ``--read-only`` relies on.

:class:`Scenario` runs examples against the target (the ``scenario`` fixture).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import itertools
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import grpc
from google.protobuf import json_format, message
from protoconform.conformance import paths
from protoconform.conformance.caller import Caller, Reply
from protoconform.conformance.verdict import Mismatch, short_method
from protoconform.specs import rules as spec_rules
from protoconform.specs.registry import Registry

PLACEHOLDER = re.compile(r"\$\{(?:(?P<fn>[a-z]+):)?(?P<ref>[A-Za-z_][\w.\-]*|\d+)(?:\+(?P<plus>\d+))?\}")
BUILTINS = frozenset({"ns", "unique", "uuid", "now"})
FUNCTIONS = frozenset({"bytes"})


class ExampleError(ValueError):
    """examples.yaml or effects.yaml says something that cannot be used."""


@dataclass(frozen=True)
class Step:
    """One call made before the case's own call; its reply is bound to ``name``."""

    name: str
    method: str  # full method name
    example: bool  # True: run the method's example (with its own steps); False: ad hoc request
    request: Any = None
    requests: tuple[Any, ...] | None = None
    stream: dict[str, Any] = field(default_factory=dict)
    until: dict[str, Any] = field(default_factory=dict)
    expect: str = "OK"
    reply: tuple[dict[str, Any], ...] = ()  # what the (last) reply must hold: {field, in | not_in}


@dataclass(frozen=True)
class Example:
    """A valid call of ``method``: the steps it needs, then the request."""

    method: str
    given: tuple[Step, ...] = ()
    request: Any = None
    requests: tuple[Any, ...] | None = None
    stream: dict[str, Any] = field(default_factory=dict)
    cleanup: tuple[dict[str, Any], ...] = ()
    rule: str = ""  # set for counter-examples: the rule the call must break
    expect: str = ""  # counter-examples: a code other than the rule's
    reply: dict[str, Any] = field(default_factory=dict)  # counter-examples: {field: path, in: [values]}
    then: tuple[Step, ...] = ()  # steps after the call, to see its effect (``reply`` is bound)

    @property
    def template(self) -> Any:
        """The request template (a list of them for client streams)."""
        return list(self.requests) if self.requests is not None else (self.request or {})


def placeholders(obj: Any) -> set[str]:
    """Root names referenced by ``${...}`` anywhere in ``obj``."""
    found: set[str] = set()
    if isinstance(obj, str):
        found.update(m["ref"].split(".")[0] for m in PLACEHOLDER.finditer(obj) if not m["ref"].isdigit())
    elif isinstance(obj, dict):
        for value in obj.values():
            found |= placeholders(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            found |= placeholders(value)
    return found


def functions(obj: Any) -> set[str]:
    """Names of the placeholder functions (``${fn:...}``) used anywhere in ``obj``."""
    if isinstance(obj, str):
        return {m["fn"] for m in PLACEHOLDER.finditer(obj) if m["fn"]}
    values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list | tuple) else ()
    return set().union(*(functions(v) for v in values))


def without(template: Any, path: str, everywhere: bool = False) -> Any:
    """A copy of a request template with the value at ``path`` removed (first element of
    repeated steps, or all of them); for client streams, in the first message that has the
    path's first field (the first message when none has it)."""
    result = copy.deepcopy(template)
    target = result
    if isinstance(result, list):
        holding = [item for item in result if isinstance(item, dict) and _key(item, path.split(".")[0])]
        target = holding[0] if holding else (result[0] if result else None)
    if isinstance(target, dict):
        _remove(target, path.split("."), everywhere)
    return result


def _key(data: dict[str, Any], name: str) -> str | None:
    if name in data:
        return name
    camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)
    return camel if camel in data else None


def _remove(data: dict[str, Any], parts: list[str], everywhere: bool) -> None:
    key = _key(data, parts[0])
    if key is None:
        return
    if len(parts) == 1:
        del data[key]
        return
    value = data[key]
    items = value if isinstance(value, list) else [value]
    if not everywhere:
        items = items[:1]
    for item in items:
        if isinstance(item, dict):
            _remove(item, parts[1:], everywhere)


# -- the book of one family ------------------------------------------------------------


class FamilyExamples:
    """Examples, counter-examples and effects of one family, names resolved against the registry."""

    def __init__(self, family: str, registry: Registry, rules: spec_rules.FamilyRules) -> None:
        self.family = family
        self.registry = registry
        self.rules = rules
        self._services = {s.rpartition(".")[2]: s for s in registry.families.get(family, [])}
        self.examples: dict[str, Example] = {}
        for name, raw in (rules.extra.get("examples") or {}).items():
            method = self.qualify(name)
            self.examples[method] = self._example(method, raw, where=f"examples.{name}")
        self.cases: dict[str, list[Example]] = {}
        for rule_id, raws in (rules.extra.get("cases") or {}).items():
            if rule_id not in rules.rules:
                raise ExampleError(f"cases.{rule_id}: no such rule in specs/{family}")
            rule = rules.rules[rule_id]
            for i, raw in enumerate(raws if isinstance(raws, list) else [raws]):
                where = f"cases.{rule_id}[{i}]"
                method = self.qualify(raw["method"]) if "method" in raw else None
                if method is None:
                    if len(rule.methods) != 1:
                        raise ExampleError(f"{where}: the rule has several methods; say which one")
                    method = rule.methods[0]
                example = self._example(method, raw, where=where)
                self.cases.setdefault(rule_id, []).append(
                    Example(
                        **{
                            **example.__dict__,
                            "rule": rule_id,
                            "expect": str(raw.get("expect", "")),
                            "reply": dict(raw.get("reply") or {}),
                        }
                    )
                )
        # Rule authors may give counter-examples in the rule itself (`examples:` of requests).
        for rule in rules.rules.values():
            for i, raw in enumerate(rule.params.get("examples") or []):
                if not isinstance(raw, dict) or not ({"request", "requests"} & raw.keys()):
                    continue
                where = f"rule {rule.id} examples[{i}]"
                method = self.qualify(raw["method"]) if "method" in raw else rule.methods[0]
                example = self._example(method, raw, where=where)
                self.cases.setdefault(rule.id, []).append(
                    Example(
                        **{
                            **example.__dict__,
                            "rule": rule.id,
                            "expect": str(raw.get("expect", "")),
                            "reply": dict(raw.get("reply") or {}),
                        }
                    )
                )
        effects = rules.extra.get("effects") or {}
        self.read_only = {self.qualify(n) for n in effects.get("read_only", [])}

    # -- names ------------------------------------------------------------------------
    def qualify(self, name: str) -> str:
        service, _, method = name.rpartition(".")
        full = f"{self._services.get(service, service)}.{method}"
        try:
            self.registry.method(full)
        except KeyError:
            raise ExampleError(f"specs/{self.family}: {name!r} is not a served method") from None
        return full

    def _step(self, name: str, raw: Any, where: str) -> Step:
        if isinstance(raw, str):
            return Step(name=name, method=self.qualify(raw), example=True)
        if not isinstance(raw, dict):
            raise ExampleError(f"{where}.{name}: a step is a method name or a mapping")
        if "example" in raw:
            method, is_example = self.qualify(raw["example"]), True
        elif "call" in raw:
            method, is_example = self.qualify(raw["call"]), False
        else:
            raise ExampleError(f"{where}.{name}: a step needs `example:` or `call:`")
        return Step(
            name=name,
            method=method,
            example=is_example,
            request=raw.get("request"),
            requests=tuple(raw["requests"]) if "requests" in raw else None,
            stream=dict(raw.get("stream") or {}),
            until=dict(raw.get("until") or {}),
            expect=str(raw.get("expect", "OK")),
            reply=self._expectations(raw.get("reply"), f"{where}.{name}"),
        )

    @staticmethod
    def _expectations(raw: Any, where: str) -> tuple[dict[str, Any], ...]:
        items = [raw] if isinstance(raw, dict) else list(raw or [])
        for item in items:
            if not isinstance(item, dict) or "field" not in item or not ({"in", "not_in"} & item.keys()):
                raise ExampleError(f"{where}.reply: each entry is {{field: path, in: [...]}} or not_in")
        return tuple(items)

    def _example(self, method: str, raw: dict[str, Any], where: str) -> Example:
        given = tuple(self._step(n, r, where) for n, r in (raw.get("given") or {}).items())
        names = [s.name for s in given]
        self._check_bound(given, set(), f"{where}.given")
        unknown = placeholders([raw.get("request"), raw.get("requests")]) - BUILTINS - set(names)
        if unknown:
            raise ExampleError(f"{where}: refers to unbound {sorted(unknown)}")
        then = tuple(self._step(n, r, where) for n, r in (raw.get("then") or {}).items())
        clash = {s.name for s in then} & {*names, "reply"}
        if clash:
            raise ExampleError(f"{where}.then: {sorted(clash)} already bound")
        self._check_bound(then, {*names, "reply"}, f"{where}.then")
        templates = [raw.get("request"), raw.get("requests")]
        templates += [[s.request, s.requests] for s in (*given, *then)]
        unknown_fns = functions(templates) - FUNCTIONS
        if unknown_fns:
            raise ExampleError(f"{where}: no placeholder function {sorted(unknown_fns)}")
        return Example(
            method=method,
            given=given,
            request=raw.get("request"),
            requests=tuple(raw["requests"]) if "requests" in raw else None,
            stream=dict(raw.get("stream") or {}),
            cleanup=tuple(raw.get("cleanup") or ()),
            then=then,
        )

    @staticmethod
    def _check_bound(steps: tuple[Step, ...], bound: set[str], where: str) -> None:
        """Each step refers only to names bound before it (``bound``, then earlier steps)."""
        known = set(bound)
        for step in steps:
            unknown = placeholders([step.request, step.requests]) - BUILTINS - known
            if unknown:
                raise ExampleError(f"{where}.{step.name}: refers to {sorted(unknown)} before they are bound")
            known.add(step.name)

    # -- lookups ------------------------------------------------------------------------
    def example(self, method: str) -> Example | None:
        return self.examples.get(method)

    def mutating(self, method: str) -> bool:
        return method not in self.read_only

    def needed(self, example: Example, template: Any) -> tuple[Step, ...]:
        """The steps ``template`` depends on, directly or through other steps, in order."""
        by_name = {s.name: s for s in example.given}
        wanted = placeholders(template) & by_name.keys()
        changed = True
        while changed:
            changed = False
            for name in list(wanted):
                step = by_name[name]
                more = placeholders([step.request, step.requests]) & by_name.keys()
                if not more <= wanted:
                    wanted |= more
                    changed = True
        return tuple(s for s in example.given if s.name in wanted)

    def calls(self, steps: Iterable[Step], _seen: frozenset[str] = frozenset()) -> set[str]:
        """Every method the steps call, including the steps of examples they run."""
        methods: set[str] = set()
        for step in steps:
            methods.add(step.method)
            if step.example and step.method not in _seen:
                nested = self.examples.get(step.method)
                if nested is None:
                    raise ExampleError(f"step {step.name}: no example for {short_method(step.method)}")
                methods |= self.calls(nested.given, _seen | {step.method})
        return methods


@cache
def _book(family: str) -> FamilyExamples:
    from protoconform.specs.registry import default_registry

    return FamilyExamples(family, default_registry(), spec_rules.load(family))


def book(family: str) -> FamilyExamples:
    """The examples of a family (parsed once per process)."""
    return _book(family)


# -- running -------------------------------------------------------------------------


def lookup(bindings: dict[str, Any], dotted: str) -> Any:
    parts = dotted.split(".")
    value: Any = bindings
    for i, part in enumerate(parts):
        if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
            with contextlib.suppress(ValueError):  # a string holding JSON (a workflow manifest): walk in
                value = json.loads(value)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            where = ".".join(parts[:i]) or parts[0]
            raise KeyError(f"${{{dotted}}}: {where} has no {part!r}")
    return value


def as_dict(msg: message.Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class Scenario:
    """Runs examples against the target: steps, the valid request, cleanup afterwards."""

    def __init__(
        self,
        rpc: Caller,
        namespace: str,
        rng: random.Random,
        cleanup: list[Callable[[], None]],
        control: Any = None,
        books: Callable[[str], FamilyExamples] = book,
    ) -> None:
        self.rpc = rpc
        self.namespace = namespace
        self.rng = rng
        self.cleanup = cleanup
        self.control = control
        self.books = books
        self._counter = itertools.count(1)

    def book_of(self, method: str) -> FamilyExamples:
        return self.books(self.rpc.resolve(method).family)

    # -- templates ---------------------------------------------------------------------
    def fresh_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _builtin(self, name: str) -> str:
        if name == "ns":
            return self.namespace
        if name == "unique":
            return f"{self.namespace}-{next(self._counter)}"
        if name == "uuid":
            return self.fresh_id()
        if name == "now":
            return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise KeyError(name)

    def resolve(self, template: Any, bindings: dict[str, Any]) -> Any:
        """``template`` with every placeholder replaced."""
        if isinstance(template, str):
            whole = PLACEHOLDER.fullmatch(template)
            if whole:
                return self._placeholder(whole, bindings)
            return PLACEHOLDER.sub(lambda m: str(self._placeholder(m, bindings)), template)
        if isinstance(template, dict):
            return {k: self.resolve(v, bindings) for k, v in template.items()}
        if isinstance(template, list | tuple):
            return [self.resolve(v, bindings) for v in template]
        return template

    def _placeholder(self, match: re.Match[str], bindings: dict[str, Any]) -> Any:
        ref = match["ref"]
        value: Any = int(ref) if ref.isdigit() else self._value(ref, bindings)
        if match["plus"] is not None:
            value = _number(value, ref) + int(match["plus"])
        if match["fn"] == "bytes":  # protojson carries bytes as base64
            return base64.b64encode(b"x" * max(0, _number(value, ref))).decode()
        return value

    def _value(self, dotted: str, bindings: dict[str, Any]) -> Any:
        if dotted in BUILTINS:
            return self._builtin(dotted)
        try:
            return lookup(bindings, dotted)
        except KeyError as exc:
            raise Mismatch(
                f"a reply carrying {dotted.partition('.')[2] or dotted}",
                "no such field",
                rule="",
                detail=str(exc.args[0]),
            ) from None

    # -- calls ------------------------------------------------------------------------
    def call(
        self, method: str, template: Any, bindings: dict[str, Any], stream: dict[str, Any] | None = None
    ) -> Reply:
        data = self.resolve(template, bindings)
        stream = stream or {}
        kwargs = {"window": stream.get("window"), "max_responses": stream.get("max_responses")}
        m = self.rpc.resolve(method)
        if m.client_streaming:
            return self.rpc(m, requests=data if isinstance(data, list) else [data], **kwargs)
        return self.rpc(m, data, **kwargs)

    def bind(self, reply: Reply) -> Any:
        if reply.method.server_streaming:
            return [as_dict(r) for r in reply.responses]
        return as_dict(reply.response) if reply.response is not None else {}

    def run_steps(self, steps: Iterable[Step]) -> dict[str, Any]:
        bindings: dict[str, Any] = {}
        for step in steps:
            bindings[step.name] = self.bind(self._run_step(step, bindings))
        return bindings

    def follow(self, example: Example, bindings: dict[str, Any], reply: Reply) -> None:
        """Run the example's ``then`` steps after its call (``reply`` bound to the call's reply).

        A deviation there is the case's own (its rule), not a failed preparation."""
        scope = {**bindings, "reply": self.bind(reply)}
        for step in example.then:
            try:
                scope[step.name] = self.bind(self._run_step(step, scope, phase="after the call, in step"))
            except Mismatch as exc:
                exc.rule = None
                raise

    def _run_step(self, step: Step, bindings: dict[str, Any], phase: str = "preparing step") -> Reply:
        if step.example:
            example = self.book_of(step.method).example(step.method)
            if example is None:
                raise Mismatch("an example", "none", detail=f"no example for {short_method(step.method)}")
            reply = self._until(step, lambda: self.run(example)[0])
        else:
            template = list(step.requests) if step.requests is not None else (step.request or {})
            reply = self._until(step, lambda: self.call(step.method, template, bindings, step.stream))
        if reply.code.name != step.expect:
            raise Mismatch(
                step.expect,
                reply.status(),
                rule="",
                method=reply.name,
                reply=reply,
                detail=f"{phase} {step.name!r}",
            )
        if step.reply:
            data = self.bind(reply)
            for wanted in step.reply:
                problem = field_mismatch(data, wanted)
                if problem is not None:
                    raise Mismatch(
                        *problem, rule="", method=reply.name, reply=reply, detail=f"{phase} {step.name!r}"
                    )
        return reply

    def _until(self, step: Step, once: Callable[[], Reply]) -> Reply:
        """Repeat a step until a field of its reply has one of the wanted values."""
        reply = once()
        if not step.until or not reply.ok:
            return reply
        path, wanted = step.until["field"], [str(v) for v in step.until["in"]]
        deadline = time.monotonic() + float(step.until.get("timeout", 30))
        interval = float(step.until.get("interval", 0.1))
        while True:
            value = _lookup_or_none(self.bind(reply), path)
            if str(value) in wanted:
                return reply
            if time.monotonic() > deadline:
                raise Mismatch(
                    f"{path} in {wanted}",
                    value,
                    rule="",
                    method=reply.name,
                    reply=reply,
                    detail=f"waiting in step {step.name!r}",
                )
            if self.control is not None and step.until.get("advance"):
                self.control.advance(float(step.until["advance"]))  # our mock: move its clock along
            time.sleep(interval)
            reply = once()
            if not reply.ok:
                return reply

    def run(self, example: Example, steps: Iterable[Step] | None = None) -> tuple[Reply, dict[str, Any]]:
        """Run the steps (all, or those given) and the example's own call."""
        bindings = self.run_steps(example.given if steps is None else steps)
        reply = self.call(example.method, example.template, bindings, example.stream)
        if reply.ok and example.cleanup:
            self._register_cleanup(example, {**bindings, "reply": self.bind(reply)})
        return reply, bindings

    def _register_cleanup(self, example: Example, bindings: dict[str, Any]) -> None:
        for raw in example.cleanup:
            method = self.book_of(example.method).qualify(raw["call"])
            template = raw.get("request") or {}

            def undo(method: str = method, template: Any = template) -> None:
                with contextlib.suppress(Exception):  # best effort; the case already has its verdict
                    self.call(method, template, bindings)

            self.cleanup.append(undo)

    def prepare(self, method: str, template: Any = None, steps: Iterable[Step] | None = None) -> Any:
        """The resolved request data of ``method``'s example (after running its steps)."""
        full = self.rpc.resolve(method)
        example = self.book_of(method).example(f"{full.service}.{full.name}")
        if example is None:
            raise Mismatch("an example", "none", detail=f"no example for {short_method(method)}")
        bindings = self.run_steps(example.given if steps is None else steps)
        return self.resolve(example.template if template is None else template, bindings)

    def message(self, method: str, data: Any) -> message.Message | list[message.Message]:
        m = self.rpc.resolve(method)
        if m.client_streaming:
            return [self.rpc.build(m, d) for d in (data if isinstance(data, list) else [data])]
        return self.rpc.build(m, data)


def field_mismatch(data: Any, wanted: dict[str, Any]) -> tuple[str, str] | None:
    """``(expected, actual)`` when ``data`` breaks ``{field: path, in: [...]}`` (or ``not_in``), else None.

    Values compare as text (enum names, protojson numbers and timestamps); a missing field
    satisfies neither form."""
    path = str(wanted["field"])
    value = _lookup_or_none(data, path)
    shown = "nothing" if value is None else (str(value) or "''")
    if "in" in wanted:
        accepted = [str(v) for v in wanted["in"]]
        if value is None or str(value) not in accepted:
            return f"{path} in {accepted}", shown
    if "not_in" in wanted:
        refused = [str(v) for v in wanted["not_in"]]
        if value is None or str(value) in refused:
            return f"{path} not in {refused}", shown
    return None


def _number(value: Any, ref: str) -> int:
    try:
        return int(value)  # protojson writes 64-bit integers as strings
    except (TypeError, ValueError):
        raise Mismatch("a number", value, rule="", detail=f"${{{ref}}} is not a number") from None


def _lookup_or_none(data: Any, dotted: str) -> Any:
    try:
        return lookup(data, dotted)
    except KeyError:
        return None


def expected_codes(rule: spec_rules.Rule, strict: bool, override: str = "") -> set[str]:
    if override:
        return {override}
    return rule.accepted_codes(strict)


def code_name(code: grpc.StatusCode) -> str:
    return code.name


__all__ = [
    "Example",
    "ExampleError",
    "FamilyExamples",
    "Scenario",
    "Step",
    "book",
    "paths",
    "placeholders",
    "without",
]
