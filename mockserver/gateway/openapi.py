"""OpenAPI 3.0 documents generated from the compiled routes and the descriptors.

One document per API family: every binding of every annotated method becomes
an operation (path and query parameters, request body, response and error
schemas), and every message reachable from them becomes a component schema.
Schemas describe the JSON the gateway writes for that family: proto field
names, int64 as strings, enums by name, well-known types in their JSON form;
for a gateway that emits unpopulated fields (grpc-gateway v2) unset message
fields are ``null``.  Served at ``/openapi/<family>.json``; ``/openapi/`` is
a page for people listing the routes.
"""

from __future__ import annotations

import html
import importlib.metadata
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.protobuf import descriptor
from protoconform.mockserver.gateway import jsonmap
from protoconform.mockserver.gateway.conventions import JSON, WILDCARD, Convention, Marshaler
from protoconform.mockserver.gateway.routes import Route, resolve_field
from protoconform.specs.wellknown import FROM_ONE_STRING, WRAPPERS

if TYPE_CHECKING:
    from protoconform.mockserver.gateway.handler import Gateway

FD = descriptor.FieldDescriptor
OPENAPI_VERSION = "3.0.3"
QUERY_DEPTH = 3  # nested message levels flattened into dotted query parameters

_INT32 = {FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32}
_INT64 = {FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64}
_UINT32 = {FD.TYPE_UINT32, FD.TYPE_FIXED32}
_UINT64 = {FD.TYPE_UINT64, FD.TYPE_FIXED64}
_WRAPPED = WRAPPERS
_QUERY_WKT = FROM_ONE_STRING  # well-known types the query-string parser can fill from one value


def documented_marshaler(convention: Convention) -> Marshaler:
    """The JSON style a document describes: ``application/json`` where registered, else the default."""
    return convention.marshalers.get(JSON, convention.marshalers[WILDCARD])


def scalar_schema(
    field_type: int, enum: descriptor.EnumDescriptor | None = None, query: bool = False
) -> dict:
    if field_type in _INT32:
        return {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
    if field_type in _UINT32:
        return {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
    if field_type in _INT64:
        if query:
            return {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}
        return {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
    if field_type in _UINT64:
        if query:
            return {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**63 - 1}
        return {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}
    if field_type == FD.TYPE_FLOAT:
        return {"type": "number", "format": "float", "minimum": -3.4e38, "maximum": 3.4e38}
    if field_type == FD.TYPE_DOUBLE:
        return {"type": "number", "format": "double"}
    if field_type == FD.TYPE_BOOL:
        return {"type": "boolean"}
    if field_type == FD.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    if field_type == FD.TYPE_ENUM and enum is not None:
        return {"type": "string", "enum": [value.name for value in enum.values]}
    return {"type": "string"}


def _wkt_schema(name: str, query: bool = False) -> dict | None:
    if name == "google.protobuf.Timestamp":
        return {"type": "string", "format": "date-time"}
    if name == "google.protobuf.Duration":
        if query:
            return {"type": "string", "description": "Go duration syntax, e.g. 1h2m3.5s"}
        return {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"}
    if name == "google.protobuf.FieldMask":
        return {"type": "string"}
    if name == "google.protobuf.Struct":
        return {"type": "object", "additionalProperties": True}
    if name == "google.protobuf.Value":
        return {"nullable": True}
    if name == "google.protobuf.ListValue":
        return {"type": "array", "items": {}}
    if name == "google.protobuf.Any":
        return {
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "required": ["@type"],
            "additionalProperties": True,
        }
    if name in _WRAPPED:
        return scalar_schema(_WRAPPED[name], query=query)
    return None


class DocumentBuilder:
    """Builds one family's document; component schemas are shared across its operations."""

    def __init__(self, family: str, routes: list[Route], convention: Convention) -> None:
        self.family = family
        self.routes = routes
        self.convention = convention
        self.marshaler = documented_marshaler(convention)
        self.schemas: dict[str, dict] = {}

    # -- schemas ---------------------------------------------------------------
    def ref(self, message_type: descriptor.Descriptor) -> dict:
        wkt = _wkt_schema(message_type.full_name)
        if wkt is not None:
            return dict(wkt)
        name = message_type.full_name
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder first: message types may be recursive
            self.schemas[name] = self._message_schema(message_type)
        return {"$ref": f"#/components/schemas/{name}"}

    def _key(self, field: descriptor.FieldDescriptor) -> str:
        return field.name if self.marshaler.proto_names else field.json_name

    def _message_schema(self, message_type: descriptor.Descriptor) -> dict:
        properties = {self._key(field): self.field_schema(field) for field in message_type.fields}
        schema: dict[str, Any] = {"type": "object", "title": message_type.name, "properties": properties}
        schema["additionalProperties"] = False
        oneofs = [o for o in message_type.oneofs if not _synthetic(o)]
        if oneofs:
            schema["description"] = "At most one field of each group is set: " + "; ".join(
                f"{o.name} ({', '.join(f.name for f in o.fields)})" for o in oneofs
            )
        return schema

    def field_schema(self, field: descriptor.FieldDescriptor) -> dict:
        if jsonmap.is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self._single(value_field)}
        if jsonmap.is_repeated(field):
            return {"type": "array", "items": self._single(field)}
        schema = self._single(field)
        nullable = self.marshaler.emit_unpopulated and field.containing_oneof is None
        if field.message_type is not None and nullable:
            if "$ref" in schema:
                return {"nullable": True, "allOf": [schema]}
            return {**schema, "nullable": True}
        return schema

    def _single(self, field: descriptor.FieldDescriptor) -> dict:
        if field.message_type is not None:
            return self.ref(field.message_type)
        return scalar_schema(field.type, field.enum_type)

    def error_schema(self) -> dict:
        any_schema = _wkt_schema("google.protobuf.Any")
        if self.convention.version == 1:
            name = "grpc.gateway.runtime.Error"
            schema = {
                "type": "object",
                "description": "grpc-gateway v1 error body; zero values are left out.",
                "properties": {
                    "error": {"type": "string"},
                    "code": {"type": "integer", "format": "int32"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": any_schema},
                },
                "additionalProperties": False,
            }
        else:
            name = "google.rpc.Status"
            schema = {
                "type": "object",
                "description": "grpc-gateway v2 error body (google.rpc.Status).",
                "properties": {
                    "code": {"type": "integer", "format": "int32"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": any_schema},
                },
                "additionalProperties": False,
            }
        self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    # -- operations ------------------------------------------------------------
    def build(self) -> dict:
        paths: dict[str, dict] = {}
        shapes: dict[str, tuple[str, list[str]]] = {}  # path shape -> (path key, placeholder names)
        for route in self.routes:
            key, names = self._path_key(route, shapes)
            operation = self.operation(route, names)
            paths.setdefault(key, {})[route.http_method.lower()] = operation
        services = sorted({route.method.service for route in self.routes})
        distribution = _version()
        return {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": f"{self.family} REST API",
                "version": distribution,
                "description": (
                    f"REST routes of the {self.family} API family as served by the protoconform mock server, "
                    f"transcoded like {self.convention.name}. Generated from the google.api.http annotations "
                    f"of {', '.join(services)}."
                    + (
                        " Responses use proto field names and include unpopulated fields when the request "
                        "sends `Content-Type: application/json` or `Accept: application/json`; otherwise "
                        "grpc-gateway's default marshaler answers in lowerCamelCase."
                        if JSON in self.convention.marshalers
                        else ""
                    )
                ),
            },
            "servers": [{"url": "/"}],
            "tags": [{"name": service.rsplit(".", 1)[-1], "description": service} for service in services],
            "paths": paths,
            "components": {"schemas": dict(sorted(self.schemas.items()))},
        }

    def _path_key(self, route: Route, shapes: dict[str, tuple[str, list[str]]]) -> tuple[str, list[str]]:
        """The OpenAPI path; routes whose paths differ only in variable names share the first one's key."""
        template = route.template
        pieces: list[str] = []
        names: list[str] = []
        index = 0
        variables = {v.start: v for v in template.variables}
        while index < len(template.segments):
            variable = variables.get(index)
            if variable is not None:
                pieces.append("{%s}")
                names.append(_placeholder(variable.field_path, names))
                index = variable.end
            else:
                segment = template.segments[index]
                pieces.append(str(segment) if segment.kind == "literal" else segment.kind.upper())
                index += 1
        shape = "/" + "/".join(pieces) + (f":{template.verb}" if template.verb else "")
        if shape in shapes:
            return shapes[shape][0], shapes[shape][1]
        key = shape % tuple(names) if names else shape
        shapes[shape] = (key, names)
        return key, names

    def operation(self, route: Route, placeholders: list[str]) -> dict:
        method = route.method
        request_type = method.descriptor.input_type
        parameters = []
        for placeholder, variable in zip(placeholders, route.template.variables, strict=True):
            field = resolve_field(request_type, variable.field_path)[-1]
            schema = (
                self._single(field)
                if field.message_type is None
                else (_wkt_schema(field.message_type.full_name) or {})
            )
            schema = dict(schema)
            pattern = variable.pattern(route.template.segments)
            if (
                pattern == "*"
                and schema.get("type") == "string"
                and "enum" not in schema
                and "format" not in schema
            ):
                schema.update({"minLength": 1, "pattern": "^[^/]+$"})
            description = f"Binds request field `{variable.field_path}`"
            if pattern != "*":
                description += f" (segments matching `{pattern}`)"
            parameters.append(
                {
                    "name": placeholder,
                    "in": "path",
                    "required": True,
                    "description": description,
                    "schema": schema,
                }
            )
        if route.body != "*":
            excluded = [v.field_path.split(".") for v in route.template.variables]
            if route.body:
                excluded.append([route.body])
            parameters.extend(self.query_parameters(request_type, "", excluded, (request_type.full_name,)))
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "tags": [method.service.rsplit(".", 1)[-1]],
            "summary": method.name,
            "description": f"gRPC `{method.path}`"
            + (f" (additional binding {route.index})" if route.index else "")
            + ('. Streams newline-delimited `{"result": ...}` objects.' if method.server_streaming else "."),
        }
        if parameters:
            operation["parameters"] = parameters
        if route.body:
            if route.body == "*":
                body_schema = self.ref(request_type)
                if method.client_streaming:
                    operation["description"] += " The body carries one JSON request message after another."
            else:
                body_schema = self.field_schema(request_type.fields_by_name[route.body])
                body_schema.pop("nullable", None)
            operation["requestBody"] = {"content": {JSON: {"schema": body_schema}}}
        operation["responses"] = self.responses(route)
        return operation

    def query_parameters(
        self,
        message_type: descriptor.Descriptor,
        prefix: str,
        excluded: list[list[str]],
        seen: tuple[str, ...],
    ) -> list[dict]:
        parameters = []
        for field in message_type.fields:
            name = prefix + field.name
            parts = name.split(".")
            if any(parts[: len(p)] == p for p in excluded) or jsonmap.is_map(field):
                continue
            repeated = jsonmap.is_repeated(field)
            if field.message_type is not None and field.message_type.full_name not in _QUERY_WKT:
                nested = field.message_type.full_name
                if repeated or nested in seen or len(seen) > QUERY_DEPTH or nested in jsonmap.WELL_KNOWN:
                    continue
                parameters.extend(
                    self.query_parameters(field.message_type, name + ".", excluded, (*seen, nested))
                )
                continue
            if field.message_type is not None:
                schema = _wkt_schema(field.message_type.full_name, query=True) or {"type": "string"}
            else:
                schema = scalar_schema(field.type, field.enum_type, query=True)
            if repeated:
                schema = {"type": "array", "items": schema}
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": schema,
                    **({"style": "form", "explode": True} if repeated else {}),
                }
            )
        return parameters

    def responses(self, route: Route) -> dict:
        method = route.method
        response_type = method.descriptor.output_type
        if route.response_body:
            schema = self.field_schema(response_type.fields_by_name[route.response_body])
        else:
            schema = self.ref(response_type)
        error = self.error_schema()
        if method.server_streaming:
            schema = {
                "type": "object",
                "description": "One line of the response stream.",
                "properties": {"result": schema, "error": error},
                "additionalProperties": False,
            }
        responses: dict[str, Any] = {
            "200": {"description": f"{response_type.full_name}", "content": {JSON: {"schema": schema}}},
            "default": {
                "description": "The call failed; the HTTP status is mapped from the gRPC status code.",
                "content": {JSON: {"schema": error}},
            },
        }
        if self.convention.version == 1:
            responses["404"] = {
                "description": "Not found: the call's own NOT_FOUND (JSON), or no route matched the path "
                "(plain text, e.g. a path parameter holding '/').",
                "content": {JSON: {"schema": error}, "text/plain": {"schema": {"type": "string"}}},
            }
        return responses


def _placeholder(field_path: str, taken: list[str]) -> str:
    """A path placeholder for a field path: dots would read as attribute access to URI-template tools."""
    name = field_path.replace(".", "_")
    while name in taken:
        name += "_"
    return name


def _synthetic(oneof: descriptor.OneofDescriptor) -> bool:
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


def _version() -> str:
    try:
        return importlib.metadata.version("protoconform")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def build_document(family: str, routes: list[Route], convention: Convention) -> dict:
    return DocumentBuilder(family, routes, convention).build()


# -- HTTP ----------------------------------------------------------------------


def add_routes(app: web.Application, gateway: Gateway) -> None:
    documents: dict[str, dict] = {}

    def document(family: str) -> dict:
        if family not in documents:
            mux = gateway.muxes[family]
            documents[family] = build_document(family, mux.routes, mux.convention)
        return documents[family]

    async def serve_document(request: web.Request) -> web.Response:
        family = request.match_info["family"]
        if family not in gateway.muxes:
            raise web.HTTPNotFound(
                text=f"no REST routes for family {family!r}; known: {', '.join(gateway.muxes)}\n"
            )
        return web.json_response(document(family))

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=index_page(gateway), content_type="text/html")

    app.router.add_get("/openapi", index)
    app.router.add_get("/openapi/", index)
    app.router.add_get(r"/openapi/{family:[a-z0-9_-]+}.json", serve_document)


def index_page(gateway: Gateway) -> str:
    sections = []
    for family, mux in gateway.muxes.items():
        rows = "\n".join(
            f"<tr><td><code>{html.escape(route.http_method)}</code></td>"
            f"<td><code>{html.escape(str(route.template))}</code></td>"
            f"<td><code>{html.escape(route.method.service)}.{html.escape(route.method.name)}</code></td>"
            f"<td>{'<code>' + html.escape(route.body) + '</code>' if route.body else ''}</td></tr>"
            for route in mux.routes
        )
        methods = len({route.method.path for route in mux.routes})
        sections.append(
            f"<h2 id='{html.escape(family)}'>{html.escape(family)}</h2>"
            f"<p>{methods} annotated methods, {len(mux.routes)} routes, transcoded like "
            f"{html.escape(mux.convention.name)}. OpenAPI document: "
            f"<a href='/openapi/{html.escape(family)}.json'>{html.escape(family)}.json</a></p>"
            f"<table><thead><tr><th>HTTP</th><th>Path</th><th>RPC</th><th>Body</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ddd;padding:.25em .75em;text-align:left;vertical-align:top}"
        "td:nth-child(2){word-break:break-all;max-width:48em}"
        "code{font-size:.9em}"
    )
    links = " · ".join(f"<a href='#{html.escape(f)}'>{html.escape(f)}</a>" for f in gateway.muxes)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>protoconform REST routes</title>"
        f"<style>{style}</style></head><body><h1>REST routes</h1><p>{links}</p>"
        + "".join(sections)
        + "</body></html>"
    )
