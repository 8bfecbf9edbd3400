"""Merge a family's documents into the inventory JSON shape."""

from __future__ import annotations

from collections.abc import Iterable

from protoconform.specs.extract.families import FAMILY_PREFIXES
from protoconform.specs.extract.merge import Merger, coverage_note
from protoconform.specs.extract.model import Doc
from protoconform.specs.extract.resolve import TypeResolver


def normalise(family: str, docs: list[Doc], extra_notes: Iterable[str] = ()) -> dict:
    """Merge a family's documents into the inventory JSON shape."""
    merger = Merger()
    notes = list(extra_notes)
    for doc in docs:
        notes += doc.notes
        overlapping = any(s.name in merger.services for s in doc.services) or any(
            m.name in merger.messages for m in doc.messages
        )
        merger.add(doc)
        if overlapping and (note := coverage_note(doc.source, doc, merger)):
            notes.append(note)
    notes += merger.notes

    resolve = TypeResolver([*merger.messages, *merger.enums])
    ours = FAMILY_PREFIXES[family]

    def own(name: str) -> bool:
        return name.startswith(ours)

    services = []
    for service in sorted(merger.services.values(), key=lambda s: s.name):
        if not own(service.name):
            continue
        package = service.name.rpartition(".")[0]
        methods = [
            {
                "name": m.name,
                "request": resolve(m.request, package, f"{service.name}.{m.name}"),
                "response": resolve(m.response, package, f"{service.name}.{m.name}"),
                "client_streaming": m.client_streaming,
                "server_streaming": m.server_streaming,
                "description": m.description,
            }
            for m in service.methods
        ]
        services.append({"name": service.name, "methods": methods})
    messages = []
    for message in sorted(merger.messages.values(), key=lambda m: m.name):
        if not own(message.name):
            continue
        fields = [
            {
                "name": f.name,
                "type": resolve(f.type, message.name, f"{message.name}.{f.name}"),
                "label": f.label,
                "number": f.number,
                "description": f.description,
            }
            for f in message.fields
        ]
        messages.append({"name": message.name, "fields": fields})
    enums = [
        {
            "name": enum.name,
            "values": [
                {"name": v.name, "number": v.number, "description": v.description} for v in enum.values
            ],
        }
        for enum in sorted(merger.enums.values(), key=lambda e: e.name)
        if own(enum.name)
    ]
    return {
        "family": family,
        "sources": [doc.source for doc in docs],
        "services": services,
        "messages": messages,
        "enums": enums,
        "notes": notes + resolve.notes,
    }
