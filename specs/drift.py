"""Drift between the documented inventory and the descriptors the server uses.

Both directions are checked: what the docs promise and the descriptors lack,
and what the descriptors carry beyond the docs (extra methods, fields, enum
values, and whole services in a documented package).  Every difference is a
:class:`Difference`; ``specs/drift_known.json`` lists the ones we know about,
each with a reason.  ``python -m protoconform.specs.drift`` exits non-zero when
a difference is not in that list, or when a listed one no longer occurs (stale).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from protoconform import specs
from protoconform.specs.argtypes import readable_file
from protoconform.specs.families import TABLE
from protoconform.specs.registry import default_registry

_SCALAR_NAMES = {
    getattr(descriptor.FieldDescriptor, name): name.removeprefix("TYPE_").lower()
    for name in dir(descriptor.FieldDescriptor)
    if name.startswith("TYPE_") and name not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")
}


@dataclass(frozen=True, order=True)
class Difference:
    family: str
    kind: str
    subject: str  # full name of the service, method, message, field or enum value
    detail: str

    def __str__(self) -> str:
        return f"{self.family} {self.kind} {self.subject}: {self.detail}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Descriptors:
    """The descriptor pool to compare with, and the files it was filled from."""

    pool: descriptor_pool.DescriptorPool
    files: list[descriptor.FileDescriptor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- loading -----------------------------------------------------------------


def _wheel_files() -> list[descriptor.FileDescriptor]:
    """Every file the families' wheel packages (the family table) define or import: their services
    and, through imports, every message and enum those reach."""
    files: dict[str, descriptor.FileDescriptor] = {}
    pending = []
    for package_name in (name for family in TABLE.values() for name in family.wheel_packages):
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            if info.name.endswith("_pb2"):
                pending.append(importlib.import_module(info.name).DESCRIPTOR)
    while pending:
        file = pending.pop()
        if file.name not in files:
            files[file.name] = file
            pending.extend(file.dependencies)
    return sorted(files.values(), key=lambda f: f.name)


def _local_files(pool: descriptor_pool.DescriptorPool, notes: list[str]) -> list[descriptor.FileDescriptor]:
    """Our own compiled protos (KFP, Flyte's CacheService), added to the pool if absent."""
    try:
        from protoconform.protos import compile_protos

        compiled = compile_protos()
    except Exception as exc:  # the drift report must still cover the wheels
        notes.append(f"local protos not loaded ({type(exc).__name__}: {exc})")
        return []
    files = []
    for file_proto in compiled.file:
        try:
            files.append(pool.FindFileByName(file_proto.name))
        except KeyError:
            pool.AddSerializedFile(file_proto.SerializeToString())
            files.append(pool.FindFileByName(file_proto.name))
    return files


def load_descriptors() -> Descriptors:
    """Everything the server is built from, in protobuf's default pool.

    The server's registry fills the pool when it can be built; the wheels'
    modules are imported on top so that undocumented services show up too."""
    notes: list[str] = []
    try:
        default_registry()
    except Exception as exc:  # e.g. a documented service is absent: still report it
        notes.append(f"server registry not used ({type(exc).__name__}: {exc})")
    pool = descriptor_pool.Default()
    files = _wheel_files() + _local_files(pool, notes)
    return Descriptors(pool, files, notes)


# -- comparison --------------------------------------------------------------


class _Comparison:
    def __init__(self, family: str, descriptors: Descriptors) -> None:
        self.family = family
        self.pool = descriptors.pool
        # A missing declaration may just mean our own protos did not load: say so.
        self.missing_hint = f" ({'; '.join(descriptors.notes)})" if descriptors.notes else ""
        self.found: list[Difference] = []

    def add(self, kind: str, subject: str, detail: str) -> None:
        self.found.append(Difference(self.family, kind, subject, detail))

    def missing(self, kind: str, subject: str, what: str) -> None:
        self.add(kind, subject, f"documented {what} not in the descriptors{self.missing_hint}")

    def find(self, kind: str, name: str):  # -> descriptor or None
        finder = {
            "service": self.pool.FindServiceByName,
            "message": self.pool.FindMessageTypeByName,
            "enum": self.pool.FindEnumTypeByName,
        }[kind]
        try:
            return finder(name)
        except KeyError:
            return None

    def services(self, documented: list[dict], files: Iterable[descriptor.FileDescriptor]) -> None:
        for service in documented:
            found = self.find("service", service["name"])
            if found is None:
                self.missing("missing-service", service["name"], "service")
                continue
            self.methods(service, found)
        names = {service["name"] for service in documented}
        packages = {name.rpartition(".")[0] for name in names}
        seen = set()
        for file in files:
            if file.package not in packages:
                continue
            for candidate in file.services_by_name.values():
                if candidate.full_name not in names and candidate.full_name not in seen:
                    seen.add(candidate.full_name)
                    count = len(candidate.methods)
                    self.add(
                        "undocumented-service", candidate.full_name, f"{file.name} defines {count} method(s)"
                    )

    def methods(self, service: dict, found: descriptor.ServiceDescriptor) -> None:
        documented = {method["name"] for method in service["methods"]}
        for method in service["methods"]:
            subject = f"{service['name']}.{method['name']}"
            actual = found.methods_by_name.get(method["name"])
            if actual is None:
                self.missing("missing-method", subject, "method")
                continue
            for side, actual_type in (("request", actual.input_type), ("response", actual.output_type)):
                if method[side] != actual_type.full_name:
                    detail = f"docs {method[side]}, descriptors {actual_type.full_name}"
                    self.add(f"{side}-type-mismatch", subject, detail)
            doc_streams = (method["client_streaming"], method["server_streaming"])
            actual_streams = (bool(actual.client_streaming), bool(actual.server_streaming))
            if doc_streams != actual_streams:
                self.add(
                    "streaming-mismatch",
                    subject,
                    f"docs {_streams(*doc_streams)}, descriptors {_streams(*actual_streams)}",
                )
        for actual in found.methods:
            if actual.name not in documented:
                subject = f"{service['name']}.{actual.name}"
                detail = f"{actual.input_type.full_name} -> {actual.output_type.full_name}"
                self.add("undocumented-method", subject, detail)

    def message(self, message: dict) -> None:
        found = self.find("message", message["name"])
        if found is None:
            self.missing("missing-message", message["name"], "message")
            return
        proto = descriptor_pb2.DescriptorProto()
        found.CopyToProto(proto)
        proto3_optional = {f.name for f in proto.field if f.proto3_optional}
        documented = {f["name"] for f in message["fields"]}
        for doc_field in message["fields"]:
            subject = f"{message['name']}.{doc_field['name']}"
            actual = found.fields_by_name.get(doc_field["name"])
            if actual is None:
                self.missing("missing-field", subject, "field")
                continue
            label, type_name = _field_shape(
                actual, actual.name in proto3_optional, doc_field["label"] == "map"
            )
            if doc_field["label"] != label:
                self.add(
                    "field-label-mismatch",
                    subject,
                    f"docs {doc_field['label'] or '(none)'}, descriptors {label or '(none)'}",
                )
            if doc_field["type"] != type_name:
                self.add("field-type-mismatch", subject, f"docs {doc_field['type']}, descriptors {type_name}")
            if doc_field.get("number") is not None and doc_field["number"] != actual.number:
                self.add(
                    "field-number-mismatch",
                    subject,
                    f"docs {doc_field['number']}, descriptors {actual.number}",
                )
        for actual in found.fields:
            if actual.name not in documented:
                label, type_name = _field_shape(actual, actual.name in proto3_optional, False)
                detail = f"{(label + ' ') if label else ''}{type_name} {actual.name} = {actual.number}"
                self.add("undocumented-field", f"{message['name']}.{actual.name}", detail)

    def enum(self, enum: dict) -> None:
        found = self.find("enum", enum["name"])
        if found is None:
            self.missing("missing-enum", enum["name"], "enum")
            return
        documented = {value["name"] for value in enum["values"]}
        for value in enum["values"]:
            subject = f"{enum['name']}.{value['name']}"
            actual = found.values_by_name.get(value["name"])
            if actual is None:
                self.missing("missing-enum-value", subject, "enum value")
            elif actual.number != value["number"]:
                self.add(
                    "enum-value-number-mismatch",
                    subject,
                    f"docs {value['number']}, descriptors {actual.number}",
                )
        for actual in found.values:
            if actual.name not in documented:
                self.add("undocumented-enum-value", f"{enum['name']}.{actual.name}", f"= {actual.number}")


def _streams(client: bool, server: bool) -> str:
    return f"{'stream' if client else 'unary'} -> {'stream' if server else 'unary'}"


def _type_name(field_descriptor: descriptor.FieldDescriptor) -> str:
    if field_descriptor.message_type is not None:
        return field_descriptor.message_type.full_name
    if field_descriptor.enum_type is not None:
        return field_descriptor.enum_type.full_name
    return _SCALAR_NAMES[field_descriptor.type]


def _field_shape(
    field_descriptor: descriptor.FieldDescriptor, proto3_optional: bool, as_map: bool
) -> tuple[str, str]:
    """(label, type) as the docs write them.  A map is ``repeated XEntry`` in
    generated docs and ``map<K,V>`` in a .proto; ``as_map`` picks the latter."""
    entry = field_descriptor.message_type
    if as_map and entry is not None and entry.GetOptions().map_entry:
        key, value = (_type_name(entry.fields_by_name[name]) for name in ("key", "value"))
        return "map", f"map<{key},{value}>"
    if field_descriptor.is_repeated:
        label = "repeated"
    elif field_descriptor.is_required:
        label = "required"
    else:
        label = "optional" if proto3_optional else ""
    return label, _type_name(field_descriptor)


def compare(inventory: dict, descriptors: Descriptors) -> list[Difference]:
    """All differences between one family's inventory and the descriptors, sorted."""
    comparison = _Comparison(inventory["family"], descriptors)
    comparison.services(inventory["services"], descriptors.files)
    for message in inventory["messages"]:
        comparison.message(message)
    for enum in inventory["enums"]:
        comparison.enum(enum)
    return sorted(set(comparison.found))


def drift(families: Iterable[str] | None = None, descriptors: Descriptors | None = None) -> list[Difference]:
    """Differences of the committed inventories (all families by default)."""
    descriptors = descriptors or load_descriptors()
    found: list[Difference] = []
    for family in families or specs.FAMILIES:
        found += compare(specs.load_inventory(family), descriptors)
    return sorted(found)


# -- the known list ------------------------------------------------------------


def _key(entry: dict | Difference) -> tuple[str, str, str, str]:
    if isinstance(entry, Difference):
        return (entry.family, entry.kind, entry.subject, entry.detail)
    return (entry["family"], entry["kind"], entry["subject"], entry["detail"])


def load_known(path: Path | None = None) -> list[dict]:
    """The known differences: ``family``, ``kind``, ``subject``, ``detail``, ``reason``."""
    if path is None:
        text = resources.files("protoconform.specs").joinpath("drift_known.json").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return json.loads(text)


def check(found: list[Difference], known: list[dict]) -> tuple[list[Difference], list[dict]]:
    """(differences not in the known list, known entries that no longer occur)."""
    known_keys = {_key(entry) for entry in known}
    found_keys = {_key(difference) for difference in found}
    new = [difference for difference in found if _key(difference) not in known_keys]
    stale = sorted((entry for entry in known if _key(entry) not in found_keys), key=_key)
    return new, stale


def updated_known(found: list[Difference], known: list[dict], placeholder: str) -> list[dict]:
    """The known list rewritten to match ``found``, keeping the reasons we have."""
    reasons = {_key(entry): entry.get("reason", "") for entry in known}
    return [
        {**difference.to_dict(), "reason": reasons.get(_key(difference)) or placeholder}
        for difference in found
    ]


def dumps_known(entries: list[dict]) -> str:
    return json.dumps(entries, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- command line --------------------------------------------------------------

UNREVIEWED = "UNREVIEWED: explain this difference or fix its cause"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--known",
        type=lambda text: Path(readable_file(text)),
        help="known-differences file (default: the packaged drift_known.json)",
    )
    parser.add_argument(
        "--family", action="append", choices=specs.FAMILIES, help="limit to a family (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--update",
        action="store_true",
        help="rewrite the known file to the current differences, keeping their reasons "
        f"(new ones get {UNREVIEWED!r})",
    )


def run(args: argparse.Namespace) -> int:
    descriptors = load_descriptors()
    found = drift(args.family, descriptors)
    known = load_known(args.known)
    if args.family:
        known = [entry for entry in known if entry["family"] in args.family]
    new, stale = check(found, known)
    if args.update:
        target = args.known or Path(__file__).resolve().parent / "drift_known.json"
        kept = (
            [] if not args.family else [e for e in load_known(args.known) if e["family"] not in args.family]
        )
        entries = sorted(kept + updated_known(found, known, UNREVIEWED), key=_key)
        target.write_text(dumps_known(entries), encoding="utf-8")
        print(f"wrote {len(entries)} known differences to {target}", file=sys.stderr)
        return 0
    if args.json:
        report = {
            "differences": [d.to_dict() for d in found],
            "new": [d.to_dict() for d in new],
            "stale": stale,
            "notes": descriptors.notes,
        }
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        for note in descriptors.notes:
            print(f"note: {note}")
        for difference in found:
            print(f"{'NEW   ' if difference in new else 'known '} {difference}")
        for entry in stale:
            print(f"STALE  {entry['family']} {entry['kind']} {entry['subject']}: {entry['detail']}")
        counts: dict[str, int] = {}
        for difference in found:
            counts[difference.kind] = counts.get(difference.kind, 0) + 1
        by_kind = "".join(f", {kind} {count}" for kind, count in sorted(counts.items()))
        print(f"{len(found)} differences{by_kind}; {len(new)} new, {len(stale)} stale")
    return 1 if new or stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="protoconform specs drift", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
