"""Suite *surface*: the target exposes the documented API, shaped as the descriptors say.

From the documented inventory (``specs/inventory/<family>.json``):

- every documented service is listed by server reflection;
- every documented method is there with the request and response types and
  the streaming shape of the descriptors, and the messages it exchanges have
  the descriptors' fields (numbers, names, types, labels) and enum values;
- an unknown method of a served service answers UNIMPLEMENTED.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor
from protoconform.conformance.reflection import ReflectionClient, ReflectionError
from protoconform.conformance.target import Target
from protoconform.conformance.verdict import Mismatch, check
from protoconform.specs import FAMILIES, load_inventory

SUITE = "surface"
UNKNOWN_METHOD = "NoSuchMethodProtoconform"
MAX_MESSAGES = 300  # bound on the messages compared per method (closure of request and response)


def _documented() -> list[tuple[str, dict, list[dict]]]:
    result = []
    for family in FAMILIES:
        for service in load_inventory(family)["services"]:
            result.append((family, service["name"], service["methods"]))
    return result


def _mark(family: str, service: str, method: str = "") -> pytest.MarkDecorator:
    return pytest.mark.conformance(
        family=family, service=service, method=method, suite=SUITE, rule="", calls=()
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    name = metafunc.function.__name__
    params = []
    for family, service, methods in _documented():
        short = service.rpartition(".")[2]
        if name == "test_service_listed" or name == "test_unknown_method":
            params.append(pytest.param(service, marks=_mark(family, service), id=f"{family}:{short}"))
        elif name == "test_method_shape":
            for method in methods:
                params.append(
                    pytest.param(
                        service,
                        method,
                        marks=_mark(family, service, method["name"]),
                        id=f"{family}:{short}.{method['name']}",
                    )
                )
    if name == "test_method_shape":
        metafunc.parametrize(("service", "documented"), params)
    elif name in ("test_service_listed", "test_unknown_method"):
        metafunc.parametrize("service", params)


class Reflected:
    """What the target says through reflection, fetched once per run."""

    def __init__(self, client: ReflectionClient) -> None:
        self.client = client
        self._services: list[str] | None = None
        self._loaded: set[str] = set()
        self.error = ""

    def services(self) -> list[str]:
        if self._services is None:
            self._services = self.client.list_services()
        return self._services

    def service(self, name: str) -> descriptor.ServiceDescriptor | None:
        if name not in self.services():
            return None
        if name not in self._loaded:
            self.client.load_symbol(name)
            self._loaded.add(name)
        return self.client.service(name)


@pytest.fixture(scope="session")
def reflected(channel: grpc.Channel, target: Target) -> Reflected:
    return Reflected(ReflectionClient(channel, timeout=target.timeout))


def _reflected_service(reflected: Reflected, service: str) -> descriptor.ServiceDescriptor:
    try:
        found = reflected.service(service)
    except ReflectionError as exc:
        raise Mismatch("server reflection describing the service", str(exc)) from None
    if found is None:
        raise Mismatch(f"{service} listed by reflection", "not listed")
    return found


def test_service_listed(service: str, reflected: Reflected) -> None:
    try:
        listed = reflected.services()
    except ReflectionError as exc:
        raise Mismatch("server reflection listing services", str(exc)) from None
    check(service in listed, f"{service} listed by reflection", f"{len(listed)} services without it")


def _field_text(field: descriptor.FieldDescriptor) -> str:
    kind = {v: k for k, v in descriptor.FieldDescriptor.__dict__.items() if k.startswith("TYPE_")}.get(
        field.type, str(field.type)
    )
    nested = field.message_type or field.enum_type
    label = "repeated " if field.is_repeated else ""
    type_name = kind.removeprefix("TYPE_").lower() + (f" {nested.full_name}" if nested else "")
    return f"{label}{type_name} {field.name} = {field.number}"


def _compare_messages(expected: descriptor.Descriptor, actual: descriptor.Descriptor) -> None:
    """Walk both closures together; raise at the first difference."""
    queue = [(expected, actual)]
    seen: set[str] = set()
    while queue and len(seen) < MAX_MESSAGES:
        want, got = queue.pop(0)
        if want.full_name in seen:
            continue
        seen.add(want.full_name)
        check(got.full_name == want.full_name, f"message {want.full_name}", f"message {got.full_name}")
        got_fields = {f.number: f for f in got.fields}
        for field in want.fields:
            other = got_fields.get(field.number)
            if other is None:
                raise Mismatch(f"{want.full_name}: {_field_text(field)}", "no field with that number")
            check(
                _field_text(other) == _field_text(field),
                f"{want.full_name}: {_field_text(field)}",
                _field_text(other),
            )
            if field.message_type is not None:
                queue.append((field.message_type, other.message_type))
            elif field.enum_type is not None:
                got_values = {v.number: v.name for v in other.enum_type.values}
                for value in field.enum_type.values:
                    check(
                        got_values.get(value.number) == value.name,
                        f"{field.enum_type.full_name}.{value.name} = {value.number}",
                        got_values.get(value.number, "no such value"),
                    )
        extra = sorted(set(got_fields) - {f.number for f in want.fields})
        check(not extra, f"{want.full_name} with the descriptors' fields", f"extra field numbers {extra}")


def test_method_shape(service: str, documented: dict, reflected: Reflected, registry: object) -> None:
    found = _reflected_service(reflected, service)
    name = documented["name"]
    method = found.methods_by_name.get(name)
    if method is None:
        raise Mismatch(f"{service}.{name} in the reflected service", "no such method")
    try:
        expected = registry.method(f"{service}.{name}").descriptor  # type: ignore[attr-defined]
    except KeyError:
        expected = None
    if expected is None:  # documented but absent from the descriptors: compare with the docs
        check(
            method.input_type.full_name == documented["request"],
            documented["request"],
            method.input_type.full_name,
        )
        check(
            method.output_type.full_name == documented["response"],
            documented["response"],
            method.output_type.full_name,
        )
        return

    def shape(m: descriptor.MethodDescriptor) -> str:
        cs = "stream " if m.client_streaming else ""
        ss = "stream " if m.server_streaming else ""
        return f"({cs}{m.input_type.full_name}) returns ({ss}{m.output_type.full_name})"

    check(shape(method) == shape(expected), shape(expected), shape(method))
    _compare_messages(expected.input_type, method.input_type)
    _compare_messages(expected.output_type, method.output_type)


def test_unknown_method(service: str, channel: grpc.Channel, target: Target) -> None:
    path = f"/{service}/{UNKNOWN_METHOD}"
    call = channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        call(b"", timeout=target.timeout)
        code, message = grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        code, message = exc.code(), exc.details() or ""
    if code != grpc.StatusCode.UNIMPLEMENTED:
        transport = "--http2-prior-knowledge " if not target.tls else ""
        command = f"buf curl --protocol grpc {transport}-d '{{}}' {target.scheme}://{target.address}{path}"
        raise Mismatch(
            "UNIMPLEMENTED",
            f"{code.name} ({message})" if message else code.name,
            reproducer={"method": path, "request": "{}", "command": command},
        )
