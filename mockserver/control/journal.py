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
from typing import Any

from google.protobuf import json_format, message
from protoconform.mockserver.auth import TOKEN_KEYS
from protoconform.mockserver.dispatch import CallRecord
from protoconform.specs.registry import Registry

DEFAULT_CAPACITY = 10_000
MAX_KEPT_BYTES = 64 * 1024  # larger messages are journaled by size only
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # the whole journal; the oldest entries go first


class Entry:
    """One call as the journal keeps it: turned into JSON only when somebody reads it.

    A plain slotted class filled positionally (one is made for every call); it
    copies what it shows of the record and keeps messages as bytes only.
    """

    __slots__ = (
        "code",
        "duration",
        "error",
        "faults",
        "metadata",
        "method",
        "peer",
        "protocol",
        "requests",
        "responses",
        "seq",
        "size",
        "started",
    )

    def __init__(
        self,
        seq: int,
        record: CallRecord,
        requests: tuple[bytes | int, ...],
        responses: tuple[bytes | int, ...],
    ) -> None:
        self.seq = seq
        self.method = record.method
        self.protocol = record.protocol
        self.peer = record.peer
        self.started = record.started
        self.duration = record.duration
        self.code = record.code
        self.error = record.error
        self.metadata = record.metadata  # the call's own copy: nothing changes it once the call ended
        self.faults = record.faults
        self.requests = requests
        self.responses = responses
        size = 0  # bytes of messages kept (those journaled by size only do not count)
        for kept in requests:
            if type(kept) is bytes:
                size += len(kept)
        for kept in responses:
            if type(kept) is bytes:
                size += len(kept)
        self.size = size


class Journal:
    def __init__(self, registry: Registry, capacity: int = DEFAULT_CAPACITY) -> None:
        self.registry = registry
        self.capacity = capacity
        self._entries: collections.deque[Entry] = collections.deque()
        self._bytes = 0
        self._seq = itertools.count(1)
        self._counts: collections.Counter[str] = collections.Counter()  # by gRPC path

    # -- CallObserver ------------------------------------------------------
    def before(self, record: CallRecord) -> None:
        return None  # nothing to wait for: the journal only records

    def after(self, record: CallRecord) -> None:
        self._counts[record.method.path] += 1
        wire = record.request_wire
        requests = (_kept(wire),) if wire is not None else tuple([_serialize(m) for m in record.requests])
        wire = record.response_wire
        responses = (_kept(wire),) if wire is not None else tuple([_serialize(m) for m in record.responses])
        entry = Entry(next(self._seq), record, requests, responses)
        self._entries.append(entry)
        self._bytes += entry.size
        while self._entries and (len(self._entries) > self.capacity or self._bytes > MAX_TOTAL_BYTES):
            self._bytes -= self._entries.popleft().size

    # -- reading -----------------------------------------------------------
    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self._counts.clear()

    @property
    def counts(self) -> dict[str, int]:
        """Calls per method (``pkg.Service.Method``), since the start or the last clear."""
        return {_name(path): n for path, n in self._counts.items()}

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
            if e.seq > since
            and (not wanted or (name := _name(e.method.path)) in wanted or _short(name) in wanted)
        ]
        if limit is not None:
            selected = selected[-limit:] if limit > 0 else []
        return [self._as_json(e) for e in selected]

    def _as_json(self, entry: Entry) -> dict[str, Any]:
        method = entry.method
        return {
            "seq": entry.seq,
            "family": method.family,
            "method": _name(method.path),
            "path": method.path,
            "protocol": entry.protocol,
            "peer": entry.peer,
            "started": entry.started,
            "duration_ms": round(entry.duration * 1000, 3),
            "code": entry.code.name,
            "error": entry.error,
            # Authorization values are not worth keeping in a log anyone can read.
            "metadata": {
                k: "<redacted>" if k.lower() in TOKEN_KEYS else v for k, v in sorted(entry.metadata.items())
            },
            "faults": list(entry.faults),
            "requests": [self._decode(method.request_type, raw) for raw in entry.requests],
            "responses": [self._decode(method.response_type, raw) for raw in entry.responses],
        }

    def _decode(self, type_name: str, raw: bytes | int) -> Any:
        if isinstance(raw, int):
            return {"@omitted_bytes": raw}
        try:
            msg = self.registry.message_class(type_name).FromString(raw)
            return json_format.MessageToDict(msg, preserving_proto_field_name=True)
        except Exception:  # a journal read must never fail on one odd message
            return {"@undecodable": base64.b64encode(raw).decode("ascii")}


def _name(path: str) -> str:
    """``/pkg.Service/Method`` -> ``pkg.Service.Method``."""
    return path[1:].replace("/", ".")


def _short(method: str) -> str:
    """``pkg.Service.Method`` -> ``Service.Method``."""
    return ".".join(method.split(".")[-2:])


def _kept(wire: bytes) -> bytes | int:
    """Wire bytes as kept: just their size when too big to keep (data chunks)."""
    return len(wire) if len(wire) > MAX_KEPT_BYTES else wire


def _serialize(msg: Any) -> bytes | int:
    """The message's bytes, or just its size when it is too big to keep (data chunks)."""
    if isinstance(msg, message.Message):
        try:
            size = msg.ByteSize()
            return size if size > MAX_KEPT_BYTES else msg.SerializeToString()
        except Exception:
            return b""
    return b""
