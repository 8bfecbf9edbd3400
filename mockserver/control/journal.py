"""The request journal: every call the dispatcher sees, kept for the control API.

The journal is a :class:`~protoconform.mockserver.dispatch.CallObserver`.  It
stores messages as serialized bytes when the call ends (cheap, and immune to a
handler changing a message it returned later; messages over 64 KiB, such as data
chunks, only by size) and turns them into protojson only when somebody reads the
journal.  It is bounded: the oldest entries go first.
Call counts per method are kept separately and are never trimmed.
"""

from __future__ import annotations

import base64
import collections
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, message
from protoconform.mockserver.auth import TOKEN_KEYS
from protoconform.mockserver.dispatch import CallRecord
from protoconform.specs.registry import Registry

DEFAULT_CAPACITY = 10_000
MAX_KEPT_BYTES = 64 * 1024  # larger messages are journaled by size only
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # the whole journal; the oldest entries go first


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs every call; nobody changes one
class Entry:
    seq: int
    family: str
    method: str  # full dotted name, "pkg.Service.Method"
    path: str  # gRPC path
    protocol: str
    peer: str
    started: float
    duration: float
    code: str
    error: str
    request_type: str
    response_type: str
    requests: tuple[bytes | int, ...]
    responses: tuple[bytes | int, ...]
    metadata: tuple[tuple[str, str], ...]
    faults: tuple[dict[str, str], ...] = ()  # fault rules that fired on the call
    size: int = 0  # bytes of messages kept (those journaled by size only do not count)


class Journal:
    def __init__(self, registry: Registry, capacity: int = DEFAULT_CAPACITY) -> None:
        self.registry = registry
        self.capacity = capacity
        self._entries: collections.deque[Entry] = collections.deque()
        self._bytes = 0
        self._seq = itertools.count(1)
        self.counts: collections.Counter[str] = collections.Counter()
        self._names: dict[str, str] = {}  # gRPC path -> "pkg.Service.Method"

    # -- CallObserver ------------------------------------------------------
    def before(self, record: CallRecord) -> None:
        return None  # nothing to wait for: the journal only records

    def after(self, record: CallRecord) -> None:
        method = record.method
        name = self._names.get(method.path)
        if name is None:
            name = self._names[method.path] = f"{method.service}.{method.name}"
        self.counts[name] += 1
        requests = tuple([_serialize(m) for m in record.requests])
        responses = tuple([_serialize(m) for m in record.responses])
        entry = Entry(
            next(self._seq),
            method.family,
            name,
            method.path,
            record.protocol,
            record.peer,
            record.started,
            record.duration,
            record.code.name,
            record.error,
            method.request_type,
            method.response_type,
            requests,
            responses,
            # Authorization values are not worth keeping in a log anyone can read.
            tuple(
                sorted(
                    (k, "<redacted>" if k.lower() in TOKEN_KEYS else v) for k, v in record.metadata.items()
                )
            ),
            tuple(record.faults),
            sum([len(m) for m in requests if type(m) is bytes])
            + sum([len(m) for m in responses if type(m) is bytes]),
        )
        self._entries.append(entry)
        self._bytes += entry.size
        while self._entries and (len(self._entries) > self.capacity or self._bytes > MAX_TOTAL_BYTES):
            self._bytes -= self._entries.popleft().size

    # -- reading -----------------------------------------------------------
    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self.counts.clear()

    def last_seq(self) -> int:
        return self._entries[-1].seq if self._entries else 0

    def entries(
        self, since: int = 0, methods: Iterable[str] = (), limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Entries with ``seq > since``, optionally only for some methods (full or ``Service.Method``)."""
        wanted = set(methods)
        selected = [
            e
            for e in self._entries
            if e.seq > since and (not wanted or e.method in wanted or _short(e.method) in wanted)
        ]
        if limit is not None:
            selected = selected[-limit:] if limit > 0 else []
        return [self._as_json(e) for e in selected]

    def _as_json(self, entry: Entry) -> dict[str, Any]:
        return {
            "seq": entry.seq,
            "family": entry.family,
            "method": entry.method,
            "path": entry.path,
            "protocol": entry.protocol,
            "peer": entry.peer,
            "started": entry.started,
            "duration_ms": round(entry.duration * 1000, 3),
            "code": entry.code,
            "error": entry.error,
            "metadata": dict(entry.metadata),
            "faults": list(entry.faults),
            "requests": [self._decode(entry.request_type, raw) for raw in entry.requests],
            "responses": [self._decode(entry.response_type, raw) for raw in entry.responses],
        }

    def _decode(self, type_name: str, raw: bytes | int) -> Any:
        if isinstance(raw, int):
            return {"@omitted_bytes": raw}
        try:
            msg = self.registry.message_class(type_name).FromString(raw)
            return json_format.MessageToDict(msg, preserving_proto_field_name=True)
        except Exception:  # a journal read must never fail on one odd message
            return {"@undecodable": base64.b64encode(raw).decode("ascii")}


def _short(method: str) -> str:
    """``pkg.Service.Method`` -> ``Service.Method``."""
    return ".".join(method.split(".")[-2:])


def _serialize(msg: Any) -> bytes | int:
    """The message's bytes, or just its size when it is too big to keep (data chunks)."""
    if isinstance(msg, message.Message):
        try:
            size = msg.ByteSize()
            return size if size > MAX_KEPT_BYTES else msg.SerializeToString()
        except Exception:
            return b""
    return b""
