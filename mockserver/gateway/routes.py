"""Routes compiled from the ``google.api.http`` annotations of every served method.

A path template (``/api/v1/tasks/{id.project}/{id.domain}``,
``/v1/{name=projects/*/runs/*}:cancel``, ``/v1/{path=**}``) is parsed once into
segments and variables; matching a request path is then a walk over its
``/``-separated components, the way grpc-gateway's compiled patterns do it:
``*`` and ``{var}`` take exactly one component (an empty one too), ``**`` takes
whatever the segments after it leave, a variable spanning several segments
captures them joined by ``/``, and a ``:verb`` suffix must match the request's.

Each family gets its own :class:`Mux` (a family's real server runs one
grpc-gateway mux), so per-family conventions such as verb splitting and route
precedence apply only to its own routes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor
from protoconform.mockserver.gateway.conventions import Convention, for_family
from protoconform.specs.registry import Method, Registry
from protoconform.specs.wellknown import FROM_ONE_STRING

log = logging.getLogger(__name__)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ValueError):
    """An annotation whose path template or field references cannot be served."""


@dataclass(frozen=True)
class Segment:
    kind: str  # "literal", "wild" (*) or "deep" (**)
    text: str = ""

    def __str__(self) -> str:
        return self.text if self.kind == "literal" else ("*" if self.kind == "wild" else "**")


@dataclass(frozen=True)
class Variable:
    field_path: str  # dotted request field path, e.g. "id.project"
    start: int  # first segment index it captures
    end: int  # one past the last

    def pattern(self, segments: tuple[Segment, ...]) -> str:
        return "/".join(str(s) for s in segments[self.start : self.end])


@dataclass(frozen=True)
class PathTemplate:
    source: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str = ""

    @classmethod
    def parse(cls, source: str) -> PathTemplate:
        if not source.startswith("/"):
            raise TemplateError(f"path template {source!r} must start with '/'")
        body, verb = _split_verb(source)
        segments: list[Segment] = []
        variables: list[Variable] = []
        text = body[1:]
        pos = 0
        while True:
            if text.startswith("{", pos):
                close = text.find("}", pos)
                if close < 0:
                    raise TemplateError(f"unbalanced '{{' in path template {source!r}")
                inner = text[pos + 1 : close]
                name, _, sub = inner.partition("=")
                if not all(_IDENT.fullmatch(part) for part in name.split(".")):
                    raise TemplateError(f"bad variable name {name!r} in path template {source!r}")
                start = len(segments)
                for piece in (sub or "*").split("/"):
                    segments.append(_segment(piece, source))
                variables.append(Variable(name, start, len(segments)))
                pos = close + 1
            else:
                stop = text.find("/", pos)
                piece = text[pos:] if stop < 0 else text[pos:stop]
                segments.append(_segment(piece, source))
                pos = len(text) if stop < 0 else stop
            if pos >= len(text):
                break
            if text[pos] != "/":
                raise TemplateError(f"expected '/' at offset {pos + 1} of path template {source!r}")
            pos += 1
            if pos >= len(text):
                raise TemplateError(f"path template {source!r} ends with '/'")
        if sum(s.kind == "deep" for s in segments) > 1:
            raise TemplateError(f"path template {source!r} has more than one '**'")
        names = [v.field_path for v in variables]
        if len(set(names)) != len(names):
            raise TemplateError(f"path template {source!r} binds a field twice")
        return cls(source, tuple(segments), tuple(variables), verb)

    def match(self, components: list[str], verb: str) -> dict[str, str] | None:
        """Bindings of the variables, or None when the components do not fit."""
        if self.verb != verb:
            return None
        count = len(components)
        deep = next((i for i, s in enumerate(self.segments) if s.kind == "deep"), None)
        if deep is None:
            if count != len(self.segments):
                return None
            spans = [(i, i + 1) for i in range(count)]
        else:
            tail = len(self.segments) - deep - 1
            if count < deep + tail:
                return None
            spans = [(i, i + 1) for i in range(deep)]
            spans.append((deep, count - tail))
            spans += [(count - tail + i, count - tail + i + 1) for i in range(tail)]
        for segment, (lo, _) in zip(self.segments, spans, strict=True):
            if segment.kind == "literal" and components[lo] != segment.text:
                return None
        return {
            v.field_path: "/".join(components[spans[v.start][0] : spans[v.end - 1][1]])
            for v in self.variables
        }

    def __str__(self) -> str:
        return self.source


def _split_verb(source: str) -> tuple[str, str]:
    """Split a trailing ``:verb`` that is outside every variable."""
    depth = 0
    last_colon = -1
    for index, char in enumerate(source):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "/" and depth == 0:
            last_colon = -1
        elif char == ":" and depth == 0:
            last_colon = index
    if last_colon < 0:
        return source, ""
    verb = source[last_colon + 1 :]
    if not verb:
        raise TemplateError(f"empty verb in path template {source!r}")
    return source[:last_colon], verb


def _segment(piece: str, source: str) -> Segment:
    """One segment; literals may appear inside variables too (``{name=projects/*}``)."""
    if piece == "*":
        return Segment("wild")
    if piece == "**":
        return Segment("deep")
    if not piece or any(c in piece for c in "{}=*"):
        raise TemplateError(f"bad segment {piece!r} in path template {source!r}")
    return Segment("literal", piece)


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one RPC."""

    method: Method
    http_method: str  # upper case: GET, POST, ...
    template: PathTemplate
    body: str  # "" (no body), "*" (the whole request) or a top-level request field name
    response_body: str
    index: int  # 0 for the main binding, 1.. for additional_bindings
    convention: Convention

    @property
    def family(self) -> str:
        return self.method.family

    @property
    def operation_id(self) -> str:
        service = self.method.service.rsplit(".", 1)[-1]
        return f"{service}_{self.method.name}" + (str(self.index + 1) if self.index else "")

    @property
    def path_fields(self) -> tuple[str, ...]:
        return tuple(v.field_path for v in self.template.variables)

    def __str__(self) -> str:
        return f"{self.http_method} {self.template} -> {self.method.path}"


def http_rule(method_descriptor: descriptor.MethodDescriptor) -> http_pb2.HttpRule | None:
    options = method_descriptor.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    return options.Extensions[annotations_pb2.http]


def _bindings(rule: http_pb2.HttpRule) -> Iterable[tuple[int, http_pb2.HttpRule]]:
    yield 0, rule
    yield from enumerate(rule.additional_bindings, start=1)


def _verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise TemplateError("http rule without a pattern")
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return kind.upper(), getattr(rule, kind)


def resolve_field(message: descriptor.Descriptor, path: str) -> list[descriptor.FieldDescriptor]:
    """The field descriptors along a dotted path (proto names), or TemplateError."""
    fields = []
    current: descriptor.Descriptor | None = message
    for part in path.split("."):
        if current is None:
            raise TemplateError(f"{'.'.join(f.name for f in fields)} is not a message in {message.full_name}")
        found = current.fields_by_name.get(part)
        if found is None:
            raise TemplateError(f"{message.full_name} has no field {path!r}")
        if fields and fields[-1].is_repeated:
            raise TemplateError(f"{path!r} in {message.full_name} goes through a repeated field")
        fields.append(found)
        current = found.message_type
    return fields


def compile_method(method: Method, convention: Convention) -> list[Route]:
    rule = http_rule(method.descriptor)
    if rule is None:
        return []
    routes = []
    request = method.descriptor.input_type
    for index, binding in _bindings(rule):
        http_method, path = _verb_and_path(binding)
        where = f"{method.path} binding {index}"
        try:
            template = PathTemplate.parse(path)
            for variable in template.variables:
                chain = resolve_field(request, variable.field_path)
                if chain[-1].message_type is not None and chain[-1].message_type.full_name not in _PATH_WKT:
                    raise TemplateError(f"path variable {variable.field_path!r} is a message")
            if binding.body not in ("", "*"):
                if "." in binding.body:
                    raise TemplateError(f"body {binding.body!r} must name a top-level field")
                resolve_field(request, binding.body)
            if binding.response_body:
                resolve_field(method.descriptor.output_type, binding.response_body)
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc}") from None
        routes.append(
            Route(method, http_method, template, binding.body, binding.response_body, index, convention)
        )
    return routes


_PATH_WKT = FROM_ONE_STRING  # message types grpc-gateway can fill from a single path component


@dataclass
class Resolution:
    """The outcome of routing one request within one family's mux."""

    outcome: str  # "match", "method_not_allowed" or "not_found"
    route: Route | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Mux:
    """The routes of one API family, matched the way that family's grpc-gateway matches them."""

    family: str
    convention: Convention
    routes: list[Route] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_method: dict[str, list[Route]] = {}
        for route in self.routes:
            self._by_method.setdefault(route.http_method, []).append(route)
        if self.convention.last_match_wins:
            for candidates in self._by_method.values():
                candidates.reverse()
        self.prefixes = {_first_literal(route.template) for route in self.routes} - {""}

    def owns(self, path: str) -> bool:
        """Whether an unmatched path looks like it was meant for this family (first segment)."""
        return path.lstrip("/").split("/", 1)[0] in self.prefixes

    def resolve(self, http_method: str, path: str) -> Resolution:
        if not path.startswith("/"):
            return Resolution("not_found")
        components = path[1:].split("/")
        last = components[-1]
        if self.convention.version == 1 and last.rfind(":") == 0:
            return Resolution("not_found")
        for route in self._by_method.get(http_method, []):
            if self.convention.version == 2 and route.template.verb and last == ":" + route.template.verb:
                return Resolution("not_found")
            params = self._match(route, components)
            if params is not None:
                return Resolution("match", route, params)
        for method, candidates in self._by_method.items():
            if method == http_method:
                continue
            if any(self._match(route, components) is not None for route in candidates):
                return Resolution("method_not_allowed")
        return Resolution("not_found")

    def _match(self, route: Route, components: list[str]) -> dict[str, str] | None:
        last = components[-1]
        if self.convention.version == 1:
            # v1 always splits the last component at its last ':' and compares verbs.
            colon = last.rfind(":")
            if colon > 0:
                return route.template.match([*components[:-1], last[:colon]], last[colon + 1 :])
            return route.template.match(components, "")
        # v2 splits only when the route has a verb and the component ends with it.
        verb = route.template.verb
        if verb:
            if last.endswith(":" + verb) and len(last) > len(verb) + 1:
                return route.template.match([*components[:-1], last[: -len(verb) - 1]], verb)
            return None
        return route.template.match(components, "")


def _first_literal(template: PathTemplate) -> str:
    first = template.segments[0] if template.segments else None
    return first.text if first is not None and first.kind == "literal" else ""


def compile_routes(registry: Registry, service_names: Iterable[str]) -> dict[str, Mux]:
    """One mux per family, holding every binding of every annotated method of the given services."""
    muxes: dict[str, Mux] = {}
    routes_by_family: dict[str, list[Route]] = {}
    for service_name in service_names:
        family = registry.family_of_service(service_name)
        convention = for_family(family)
        for method_descriptor in registry.service(service_name).methods:
            method = registry.method(f"/{service_name}/{method_descriptor.name}")
            try:
                routes = compile_method(method, convention)
            except TemplateError as exc:
                # One unusable annotation must not take the server down; gRPC still serves the method.
                log.error("REST route not served: %s", exc)
                continue
            routes_by_family.setdefault(family, []).extend(routes)
    for family, routes in routes_by_family.items():
        if routes:
            muxes[family] = Mux(family, for_family(family), routes)
    return muxes
