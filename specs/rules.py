"""Rules of an API family, read from ``specs/<family>/*.yaml``.

The rules are the single truth for semantics: the mock server raises the
status a rule names (:func:`protoconform.mockserver.validation.rule_error`) and
checks request rules generically, and the conformance suites turn the same
rules into test cases.  See ``specs/README.md`` for the file format.

Every rule has a stable ``id`` (``<family>.<topic>.<name>``) so a failing
conformance case names the rule it checked.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import grpc
import yaml

# Rule kinds the engines understand.  Request-shape kinds are enforced
# generically by the mock and turned into negative cases by the suites.
REQUEST_KINDS = frozenset({"required", "range", "pattern", "length", "nonempty", "enum_defined"})
KINDS = REQUEST_KINDS | frozenset(
    {
        "not_found",  # an id that names nothing -> code
        "already_exists",  # creating what exists -> code
        "precondition",  # a call refused in the entity's current state -> code
        "transition",  # a state machine edge is illegal -> code (see state_machines)
        "output",  # response fields that must be set
        "enum_domain",  # response enum fields stay inside the documented domain
        "behaviour",  # any other documented effect, checked by suites in code
    }
)


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    methods: tuple[str, ...]  # full method names "pkg.Service.Method"
    code: str  # the status this mock answers (the sane one)
    description: str
    field: str = ""  # dotted field path the rule is about (named in error messages)
    real_code: str = ""  # what the real server answers when it differs (by accident or version)
    real_note: str = ""
    not_checkable: str = ""  # why no client can check it over the wire (reported apart from coverage)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # kind-specific: min, max, regex...
    # Where the rule is written (reports point at it); not part of what the rule means.
    source: str = dataclasses.field(default="", compare=False)  # "specs/<family>/<file>.yaml"
    line: int = dataclasses.field(default=0, compare=False)  # line of its "- id:" entry (1-based)

    @property
    def where(self) -> str:
        """``specs/<family>/<file>.yaml:<line>`` ("" when the rule was not read from a file)."""
        if not self.source:
            return ""
        return f"{self.source}:{self.line}" if self.line else self.source

    @property
    def status(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.code]

    def accepted_codes(self, strict: bool = True) -> set[str]:
        """Strict checks want the documented code; lenient ones also accept the real server's."""
        return {self.code} if strict or not self.real_code else {self.code, self.real_code}

    def matches(self, value: str) -> bool:
        regex = self.params.get("regex")
        return bool(regex is None or re.fullmatch(regex, value))


@dataclass(frozen=True)
class StateMachine:
    name: str
    enum: str  # full enum name of the state field
    states: tuple[str, ...]
    transitions: dict[str, dict[str, str]]  # action -> {from_state: to_state}
    terminal: tuple[str, ...] = ()
    illegal_rule: str = ""  # id of the rule giving the code for an illegal transition
    description: str = ""

    def target(self, action: str, state: str) -> str | None:
        """The state ``action`` leads to from ``state``, or None when illegal."""
        return self.transitions.get(action, {}).get(state)


@dataclass(frozen=True)
class FamilyRules:
    family: str
    rules: dict[str, Rule]
    state_machines: dict[str, StateMachine]
    lists: dict[str, dict[str, Any]]  # full method name -> pagination/sort/filter contract
    extra: dict[str, Any]  # family-specific data sections (e.g. limits, defaults)

    def rule(self, rule_id: str) -> Rule:
        try:
            return self.rules[rule_id]
        except KeyError:
            raise KeyError(f"no rule {rule_id!r} in specs/{self.family}") from None

    def for_method(self, method: str, kind: str | None = None) -> list[Rule]:
        return [r for r in self._by_method.get(method, []) if kind is None or r.kind == kind]

    @cached_property
    def _by_method(self) -> dict[str, list[Rule]]:
        """Rules indexed by method, built once: the mock looks them up on every call."""
        index: dict[str, list[Rule]] = {}
        for rule in self.rules.values():
            for method in rule.methods:
                index.setdefault(method, []).append(rule)
        return index

    def of_kind(self, *kinds: str) -> list[Rule]:
        return [r for r in self.rules.values() if r.kind in kinds]

    @cached_property
    def services(self) -> frozenset[str]:
        """Full names of the services some rule is about: a documented service outside this set
        has no semantics in specs yet, so nothing can be checked of it."""
        return frozenset(method.rpartition(".")[0] for method in self._by_method)


def _qualify(method: str, package_services: dict[str, str]) -> str:
    """Accept ``Service.Method`` shorthands when the service name is unique in the family."""
    service, _, name = method.rpartition(".")
    if service in package_services:
        return f"{package_services[service]}.{name}"
    return method


class _Origins:
    """Where each key was defined, so a second definition names both files."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], str] = {}

    def claim(self, where: tuple[str, ...], source: str) -> None:
        if where in self._seen:
            raise ValueError(f"{'.'.join(where)} is defined in {self._seen[where]} and again in {source}")
        self._seen[where] = source


# Sections whose entries are lists of independent items (the counter-examples of a rule): the same key
# in two files joins its items, so each area's file can check a rule another file also checks.
JOINED_SECTIONS = frozenset({"cases"})


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _merge(into: dict[str, Any], section: str, value: Any, source: str, origins: _Origins) -> None:
    """Merge one top-level section: a mapping's keys join those of other files; a key twice is an error
    (except in :data:`JOINED_SECTIONS`, where the key's items join)."""
    if not isinstance(value, dict):
        origins.claim((section,), source)
        into[section] = value
        return
    target = into.setdefault(section, {})
    if not isinstance(target, dict):
        origins.claim((section,), source)  # a plain value elsewhere: defined twice
    for key, item in value.items():
        if section in JOINED_SECTIONS and key in target:
            target[key] = _items(target[key]) + _items(item)
            continue
        origins.claim((section, str(key)), source)
        target[key] = item


def parse(
    family: str,
    documents: list[dict[str, Any]],
    services: list[str],
    sources: list[str] | None = None,
    lines: list[dict[str, int]] | None = None,
) -> FamilyRules:
    """The rules of ``documents`` (one per file, named by ``sources``), merged; duplicates are errors.
    ``lines`` gives, per document, the line of each rule id (see :func:`read_yaml`)."""
    short = {s.rpartition(".")[2]: s for s in services}
    rules: dict[str, Rule] = {}
    machines: dict[str, StateMachine] = {}
    lists: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    origins = _Origins()
    for index, doc in enumerate(documents):
        source = sources[index] if sources else f"document {index + 1}"
        where = lines[index] if lines else {}
        for raw in doc.get("rules", []):
            raw = dict(raw)
            rule_id = raw.pop("id")
            kind = raw.pop("kind")
            if kind not in KINDS:
                raise ValueError(f"rule {rule_id}: unknown kind {kind!r}")
            origins.claim(("rules", rule_id), source)
            methods = raw.pop("methods", None) or [raw.pop("method")]
            code = raw.pop("code", "OK")
            grpc.StatusCode[code]  # fail early on a misspelt code
            rules[rule_id] = Rule(
                id=rule_id,
                kind=kind,
                methods=tuple(_qualify(m, short) for m in methods),
                code=code,
                description=raw.pop("description", ""),
                field=raw.pop("field", ""),
                real_code=raw.pop("real_code", ""),
                real_note=raw.pop("real_note", ""),
                not_checkable=raw.pop("not_checkable", ""),
                params=raw,
                source=source if sources else "",
                line=where.get(rule_id, 0),
            )
        for name, raw in (doc.get("state_machines") or {}).items():
            origins.claim(("state_machines", name), source)
            machines[name] = StateMachine(
                name=name,
                enum=raw["enum"],
                states=tuple(raw["states"]),
                transitions={action: dict(edges) for action, edges in raw["transitions"].items()},
                terminal=tuple(raw.get("terminal", ())),
                illegal_rule=raw.get("illegal_rule", ""),
                description=raw.get("description", ""),
            )
        for method, contract in (doc.get("lists") or {}).items():
            origins.claim(("lists", _qualify(method, short)), source)
            lists[_qualify(method, short)] = contract
        for key, value in doc.items():
            if key not in {"rules", "state_machines", "lists", "family"}:
                _merge(extra, key, value, source, origins)
    return FamilyRules(family, rules, machines, lists, extra)


# libyaml when the yaml package has it: the specs are read at every start of the mock.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader, noting the line where each mapping starts (keyed by the mapping's id)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[int, int] = {}

    def construct_located_map(self, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
        data: dict[Any, Any] = {}
        self.lines[id(data)] = node.start_mark.line + 1
        yield data
        data.update(self.construct_mapping(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_located_map)


def read_yaml(text: str) -> tuple[dict[str, Any], dict[str, int]]:
    """A rules file: its document, and the line (1-based) of each rule's ``- id:`` entry by rule id."""
    loader = _LineLoader(text)
    try:
        document = loader.get_single_data() or {}
    finally:
        loader.dispose()
    rules = document.get("rules") if isinstance(document, dict) else None
    found = {
        str(raw["id"]): loader.lines.get(id(raw), 0)
        for raw in rules or ()
        if isinstance(raw, dict) and "id" in raw
    }
    return document, found


def load_folder(family: str, folder: Any, services: list[str]) -> FamilyRules:
    """The rules of every ``*.yaml`` file in ``folder`` (a path or package resource), merged."""
    documents, sources, lines = [], [], []
    if folder.is_dir():
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.endswith((".yaml", ".yml")):
                document, found = read_yaml(entry.read_text(encoding="utf-8"))
                documents.append(document)
                lines.append(found)
                sources.append(f"specs/{family}/{entry.name}")
    return parse(family, documents, services, sources, lines)


@cache
def load(family: str) -> FamilyRules:
    """All rules of a family, from the YAML files of its specs folder (``specs/<family>/``)."""
    from protoconform.specs import families, served_services

    services = served_services(family)
    return load_folder(family, families.family(family).rules_folder(), services)
