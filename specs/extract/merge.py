"""Fold the documents of one family into one set of declarations."""

from __future__ import annotations

from protoconform.specs.extract.model import Doc, DocEnum, DocMessage, DocService


def _compatible(a: str, b: str) -> bool:
    """The same type written more or less qualified (``Task`` vs ``flyteidl.admin.Task``)."""
    a, b = a.lstrip("."), b.lstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _longer(a: str, b: str) -> str:
    return a if len(a.lstrip(".")) >= len(b.lstrip(".")) else b


class Merger:
    """Fold several documents of one family into one; the first mention wins."""

    def __init__(self) -> None:
        self.messages: dict[str, DocMessage] = {}
        self.enums: dict[str, DocEnum] = {}
        self.services: dict[str, DocService] = {}
        self.notes: list[str] = []

    def add(self, doc: Doc) -> None:
        for message in doc.messages:
            self._merge_message(doc.source, message)
        for enum in doc.enums:
            self._merge_enum(doc.source, enum)
        for service in doc.services:
            self._merge_service(doc.source, service)

    def _conflict(self, source: str, subject: str, what: str, kept: object, other: object) -> None:
        self.notes.append(f"{source}: {subject}: {what} {other!r} conflicts with {kept!r} (kept)")

    def _merge_message(self, source: str, message: DocMessage) -> None:
        kept = self.messages.setdefault(message.name, message)
        if kept is message:
            return
        by_name = {f.name: f for f in kept.fields}
        for new in message.fields:
            old = by_name.get(new.name)
            subject = f"{message.name}.{new.name}"
            if old is None:
                self.notes.append(f"{source}: {subject} documented only here")
                kept.fields.append(new)
                continue
            if not _compatible(old.type, new.type):
                self._conflict(source, subject, "type", old.type, new.type)
            else:
                old.type = _longer(old.type, new.type)
            if old.label != new.label:
                self._conflict(source, subject, "label", old.label, new.label)
            if old.number is None:
                old.number = new.number
            elif new.number is not None and new.number != old.number:
                self._conflict(source, subject, "number", old.number, new.number)
            old.description = old.description or new.description

    def _merge_enum(self, source: str, enum: DocEnum) -> None:
        kept = self.enums.setdefault(enum.name, enum)
        if kept is enum:
            return
        by_name = {v.name: v for v in kept.values}
        for new in enum.values:
            old = by_name.get(new.name)
            if old is None:
                self.notes.append(f"{source}: {enum.name}.{new.name} documented only here")
                kept.values.append(new)
            elif old.number != new.number:
                self._conflict(source, f"{enum.name}.{new.name}", "number", old.number, new.number)

    def _merge_service(self, source: str, service: DocService) -> None:
        kept = self.services.setdefault(service.name, service)
        if kept is service:
            return
        by_name = {m.name: m for m in kept.methods}
        for new in service.methods:
            old = by_name.get(new.name)
            subject = f"{service.name}.{new.name}"
            if old is None:
                self.notes.append(f"{source}: {subject} documented only here")
                kept.methods.append(new)
                continue
            for attr in ("request", "response"):
                mine, theirs = getattr(old, attr), getattr(new, attr)
                if _compatible(mine, theirs):
                    setattr(old, attr, _longer(mine, theirs))
                else:
                    self._conflict(source, subject, attr, mine, theirs)
            for attr in ("client_streaming", "server_streaming"):
                if getattr(old, attr) != getattr(new, attr):
                    self._conflict(source, subject, attr, getattr(old, attr), getattr(new, attr))
            old.description = old.description or new.description


def coverage_note(source: str, doc: Doc, merger: Merger) -> str | None:
    """Summarise what an overlapping later document leaves out (an older revision)."""
    lacking = []
    for service in doc.services:
        names = {m.name for m in service.methods}
        lacking += [
            f"{service.name}.{m.name}" for m in merger.services[service.name].methods if m.name not in names
        ]
    for message in doc.messages:
        names = {f.name for f in message.fields}
        lacking += [
            f"{message.name}.{f.name}" for f in merger.messages[message.name].fields if f.name not in names
        ]
    if not lacking:
        return None
    return f"{source}: lacks {len(lacking)} method(s)/field(s) the other documents give: {', '.join(lacking)}"
