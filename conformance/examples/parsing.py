"""Valid requests, as data: reading ``specs/<family>/examples.yaml`` and ``effects.yaml``.

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
          # error: {field: details.0.already_in_terminal_state.current_phase, in: [SUCCEEDED]}
          #        (the refusal as {code, message, details}: google.rpc.Status details, protojson
          #        with their "@type"; a step that expects a code checks the same view with reply:)
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

An example may run *inside* a place the harness provides (``inside: PLACE``, or
``inside: {PLACE: {settings}}``); the place is set up before the steps that need
what it binds (the others run first), the call and those steps run there, and the
place is left before ``then:`` steps run.  A family declares its places as data, and
provides them in code (``places.py`` of its models package, which documents the
settings; e.g. ``conformance/models/armonik/workerhost.py``)::

    places:
      worker:                        # a task the target handed to the harness's worker
        binds: task                  # its ProcessRequest, held until the case ends
        calls: [Tasks.SubmitTasks, ...]   # what entering the place calls (for --read-only)
    examples:
      Agent.CreateResultsMetaData:
        inside: worker
        request:
          communication_token: "${task.communication_token}"
          session_id: "${task.session_id}"
          results: [{name: "${unique}"}]

Placeholders: ``${name.path}`` (a bound reply, protojson with proto field names;
list items by index; a string holding JSON is walked into), ``${ns}`` (the run's
namespace), ``${unique}`` (a new name inside the namespace), ``${uuid}`` (a fresh
id), ``${now}`` (RFC 3339); ``${name.path+N}`` adds N to a bound number, and
``${bytes:N}`` / ``${bytes:name.path+N}`` is that many bytes, base64-encoded as
protojson wants them (e.g. one more than a size limit a step read).
``${name:LABEL}`` is a fresh name inside the namespace, the same wherever one case
writes that label (steps, request, ``then:``): for APIs whose create calls answer
nothing, the case names what it creates and refers to it again by the label.
A string that is exactly one placeholder takes the bound value as is
(numbers, objects); otherwise values are spliced into the text.

Two steps are not RPCs, for what an API hands to plain HTTP (signed upload and
download URLs)::

    put:                             # an HTTP request; binds {status, body, headers}
      http: {method: PUT, url: "${reply.signed_url}", headers: {Content-MD5: "..."}, body: hello}
      reply: {field: status, in: [200, 201]}
    later: {wait: 3}                 # server seconds: the mock's clock moved (--control), else a sleep

An HTTP step's body is text (sent as UTF-8); its reply's ``body`` is the answer as text.

``effects.yaml`` lists the methods that change nothing (``effects.read_only``), and
the reply fields of a method that differ on every call by design (``effects.per_call``:
compared by no parity check);
every other method counts as mutating, which is what ``--read-only`` relies on.

This module reads that data into :class:`FamilyExamples` (one per family, :func:`book`);
:mod:`.running` runs it against a target.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from protoconform.conformance.examples import expectations
from protoconform.conformance.verdict import short_method
from protoconform.specs import rules as spec_rules
from protoconform.specs.registry import Registry

PLACEHOLDER = re.compile(r"\$\{(?:(?P<fn>[a-z]+):)?(?P<ref>[A-Za-z_][\w.\-]*|\d+)(?:\+(?P<plus>\d+))?\}")
BUILTINS = frozenset({"ns", "unique", "uuid", "now"})
NAMING = frozenset({"name"})  # ${name:LABEL}: its argument is a label, not a bound name
FUNCTIONS = frozenset({"bytes"}) | NAMING


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
    http: bool = False  # an HTTP request (``request`` holds method, url, headers, body), not an RPC
    wait: float = 0.0  # server seconds to let pass (no call)


HTTP_KEYS = frozenset({"method", "url", "headers", "body"})


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
    reply: tuple[dict[str, Any], ...] = ()  # counter-examples: what the in-band reply holds (expectations)
    error: tuple[dict[str, Any], ...] = ()  # counter-examples: the refusal ({code, message, details})
    then: tuple[Step, ...] = ()  # steps after the call, to see its effect (``reply`` is bound)
    inside: str = ""  # the place the call runs in (``places:``), "" = anywhere
    inside_settings: dict[str, Any] = field(default_factory=dict)  # what the example asks of the place
    binds: str = ""  # the name the place binds ("" when none)

    @property
    def template(self) -> Any:
        """The request template (a list of them for client streams)."""
        return list(self.requests) if self.requests is not None else (self.request or {})


def placeholders(obj: Any) -> set[str]:
    """Root names referenced by ``${...}`` anywhere in ``obj``."""
    found: set[str] = set()
    if isinstance(obj, str):
        found.update(
            m["ref"].split(".")[0]
            for m in PLACEHOLDER.finditer(obj)
            if not m["ref"].isdigit() and m["fn"] not in NAMING
        )
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
        self.places: dict[str, tuple[str, frozenset[str]]] = {}  # place -> (name it binds, calls)
        for name, raw in (rules.extra.get("places") or {}).items():
            if not isinstance(raw, dict):
                raise ExampleError(f"places.{name}: a mapping with binds: and calls:")
            calls = frozenset(self.qualify(m) for m in raw.get("calls") or [])
            self.places[name] = (str(raw.get("binds") or ""), calls)
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
                self._add_case(rule_id, method, raw, where)
        # Rule authors may give counter-examples in the rule itself (`examples:` of requests).
        for rule in rules.rules.values():
            for i, raw in enumerate(rule.params.get("examples") or []):
                if not isinstance(raw, dict) or not ({"request", "requests"} & raw.keys()):
                    continue
                where = f"rule {rule.id} examples[{i}]"
                method = self.qualify(raw["method"]) if "method" in raw else rule.methods[0]
                self._add_case(rule.id, method, raw, where)
        effects = rules.extra.get("effects") or {}
        self.read_only = {self.qualify(n) for n in effects.get("read_only", [])}
        # reply fields that differ on every call by design (a freshly signed URL and its expiry)
        self.per_call = {self.qualify(n): tuple(f) for n, f in (effects.get("per_call") or {}).items()}
        for method, names in self.per_call.items():
            reply = self.registry.message_descriptor(self.registry.method(method).response_type)
            unknown = sorted(set(names) - set(reply.fields_by_name))
            if unknown:
                missing = ", ".join(unknown)
                raise ExampleError(f"effects.per_call.{method}: {missing} not in {reply.full_name}")

    def _add_case(self, rule_id: str, method: str, raw: dict[str, Any], where: str) -> None:
        """A counter-example: a call of ``method`` that must break ``rule_id``."""
        example = self._example(method, raw, where=where)
        counter = replace(
            example,
            rule=rule_id,
            expect=str(raw.get("expect", "")),
            reply=self._expectations(raw.get("reply"), where),
            error=self._expectations(raw.get("error"), where, "error"),
        )
        if counter.reply and counter.error:
            raise ExampleError(f"{where}: reply: is an in-band answer, error: a refusal; not both")
        self.cases.setdefault(rule_id, []).append(counter)

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
        if "wait" in raw:
            seconds = raw["wait"]
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds <= 3600:
                raise ExampleError(f"{where}.{name}.wait: seconds, > 0 and <= 3600")
            return Step(name=name, method="", example=False, wait=float(seconds))
        if "http" in raw:
            spec = raw["http"]
            if not isinstance(spec, dict) or not {"method", "url"} <= spec.keys() or spec.keys() - HTTP_KEYS:
                raise ExampleError(f"{where}.{name}.http: a mapping of method, url (, headers, body)")
            reply = self._expectations(raw.get("reply"), f"{where}.{name}")
            return Step(name=name, method="", example=False, request=dict(spec), http=True, reply=reply)
        if "example" in raw:
            method, is_example = self.qualify(raw["example"]), True
        elif "call" in raw:
            method, is_example = self.qualify(raw["call"]), False
        else:
            raise ExampleError(f"{where}.{name}: a step needs `example:`, `call:`, `http:` or `wait:`")
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
    def _expectations(raw: Any, where: str, key: str = "reply") -> tuple[dict[str, Any], ...]:
        items = [raw] if isinstance(raw, dict) else list(raw or [])
        for item in items:
            problem = expectations.malformed(item)
            if problem:
                raise ExampleError(f"{where}.{key}: {problem}")
        return tuple(items)

    def _inside(self, raw: Any, where: str) -> tuple[str, dict[str, Any]]:
        """``inside:`` -> (place, settings)."""
        if raw is None:
            return "", {}
        if isinstance(raw, str):
            place, settings = raw, {}
        elif isinstance(raw, dict) and len(raw) == 1:
            place, settings = next(iter(raw.items()))
            settings = settings or {}
        else:
            raise ExampleError(f"{where}.inside: a place name, or {{place: {{settings}}}}")
        if place not in self.places:
            known = ", ".join(self.places) or "none declared in places:"
            raise ExampleError(f"{where}.inside: no place {place!r}; known: {known}")
        if not isinstance(settings, dict):
            raise ExampleError(f"{where}.inside.{place}: settings are a mapping")
        return place, dict(settings)

    def _example(self, method: str, raw: dict[str, Any], where: str) -> Example:
        inside, settings = self._inside(raw.get("inside"), where)
        binds = self.places[inside][0] if inside else ""
        place_names = {binds} - {""}
        given = tuple(self._step(n, r, where) for n, r in (raw.get("given") or {}).items())
        names = [s.name for s in given]
        clash = set(names) & place_names
        if clash:
            raise ExampleError(f"{where}.given: {sorted(clash)} is what the place binds")
        self._check_bound(given, place_names, f"{where}.given")
        templates = [raw.get("request"), raw.get("requests"), settings]
        unknown = placeholders(templates) - BUILTINS - set(names) - place_names
        if unknown:
            raise ExampleError(f"{where}: refers to unbound {sorted(unknown)}")
        then = tuple(self._step(n, r, where) for n, r in (raw.get("then") or {}).items())
        clash = {s.name for s in then} & {*names, "reply", *place_names}
        if clash:
            raise ExampleError(f"{where}.then: {sorted(clash)} already bound")
        self._check_bound(then, {*names, "reply", *place_names}, f"{where}.then")
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
            inside=inside,
            inside_settings=settings,
            binds=binds,
        )

    @staticmethod
    def _check_bound(steps: tuple[Step, ...], bound: set[str], where: str) -> None:
        """Each step refers only to names bound before it (``bound``, then earlier steps)."""
        known = set(bound)
        for step in steps:
            unknown = placeholders([step.request, step.requests, list(step.reply)]) - BUILTINS - known
            if unknown:
                raise ExampleError(f"{where}.{step.name}: refers to {sorted(unknown)} before they are bound")
            known.add(step.name)

    # -- lookups ------------------------------------------------------------------------
    def example(self, method: str) -> Example | None:
        return self.examples.get(method)

    def mutating(self, method: str) -> bool:
        """Whether calling ``method`` validly changes state: effects.yaml says so, or its example
        runs in a place whose setup does (a held task needs a session and a task)."""
        if method not in self.read_only:
            return True
        return any(call not in self.read_only for call in self.place_calls(self.examples.get(method)))

    def needed(self, example: Example, template: Any) -> tuple[Step, ...]:
        """The steps ``template`` depends on, directly or through other steps, in order."""
        by_name = {s.name: s for s in example.given}
        wanted = placeholders([template, example.inside_settings]) & by_name.keys()
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

    def place_calls(self, example: Example | None) -> set[str]:
        """What entering the example's place calls (none outside a place)."""
        return set(self.places[example.inside][1]) if example is not None and example.inside else set()

    def calls(self, steps: Iterable[Step], _seen: frozenset[str] = frozenset()) -> set[str]:
        """Every method the steps call, including the steps of examples they run."""
        methods: set[str] = set()
        for step in steps:
            if not step.method:  # an HTTP request or a wait: no RPC
                continue
            methods.add(step.method)
            if step.example and step.method not in _seen:
                nested = self.examples.get(step.method)
                if nested is None:
                    raise ExampleError(f"step {step.name}: no example for {short_method(step.method)}")
                methods |= self.calls(nested.given, _seen | {step.method}) | self.place_calls(nested)
        return methods


@cache
def _book(family: str) -> FamilyExamples:
    from protoconform.specs.registry import default_registry

    return FamilyExamples(family, default_registry(), spec_rules.load(family))


def book(family: str) -> FamilyExamples:
    """The examples of a family (parsed once per process)."""
    return _book(family)
