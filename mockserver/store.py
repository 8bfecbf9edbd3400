"""Where the families' state lasts: nowhere (memory, the default) or a SQLite file (``--store sqlite:PATH``).

The families keep their working set in memory (their repositories and indexes
answer every read); a durable store is a *mirror* they write through.  A
repository stages each change with :meth:`StoredTable.put` or
:meth:`StoredTable.delete`; :meth:`Store.commit` writes everything staged in
one transaction, with the virtual clock, and the server commits before it
answers a call (and after every batch of clock timers), so every write a client
saw acknowledged is on disk (WAL, ``synchronous=FULL``) and a crash loses only
work nobody was told about.  At start, a family loads its tables back (in the
order their records were first written) and resumes its engines.

Records are pickled; protobuf messages inside them are stored as their wire
bytes (classes found again by import path or by full name in the registry), and
loading admits only the classes of this project, protobuf messages and a few
standard types, so a store file cannot name arbitrary code.  The file is the
server's own: one server at a time, and a file of another format is refused.
"""

from __future__ import annotations

import importlib
import io
import pickle
import sqlite3
import sys
from collections.abc import Callable, Hashable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import message

FORMAT = "protoconform-store/1"
_DELETED = object()

# Modules whose classes a stored record may hold (besides protobuf message classes).
_ALLOWED_MODULE_PREFIXES = ("protoconform.",)
_ALLOWED_GLOBALS = {
    ("datetime", "datetime"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("datetime", "date"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("collections", "OrderedDict"),
    ("collections", "deque"),
    ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
}
_MESSAGE_MODULE_PREFIXES = ("armonik.", "flyteidl.", "google.", "protoconform.")


class StoreError(Exception):
    """The store cannot be opened or written; the message says which file and why."""


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, message.Message):
            cls = type(obj)
            data = obj.SerializeToString()
            module = sys.modules.get(cls.__module__)
            if module is not None and getattr(module, cls.__qualname__, None) is cls:
                return ("cls", cls.__module__, cls.__qualname__, data)
            return ("msg", obj.DESCRIPTOR.full_name, data)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, message_class: Callable[[str], type[message.Message]]) -> None:
        super().__init__(io.BytesIO(data))
        self._message_class = message_class

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS or module.startswith(_ALLOWED_MODULE_PREFIXES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a stored record names {module}.{name}, which a store may not hold")

    def persistent_load(self, pid: Any) -> Any:
        if pid[0] == "cls":
            _, module_name, qualname, data = pid
            if not module_name.startswith(_MESSAGE_MODULE_PREFIXES):
                raise pickle.UnpicklingError(f"a stored message names module {module_name}")
            cls = getattr(importlib.import_module(module_name), qualname)
            if not (isinstance(cls, type) and issubclass(cls, message.Message)):
                raise pickle.UnpicklingError(f"{module_name}.{qualname} is not a protobuf message")
        else:
            _, full_name, data = pid
            cls = self._message_class(full_name)
        found = cls()
        found.ParseFromString(data)
        return found


class StoredTable:
    """One table of one family: changes staged by key, written at the store's next commit."""

    def __init__(self, store: Store, name: str, raw: bool) -> None:
        self.store = store
        self.name = name
        self.raw = raw  # values are bytes, stored as they are (objects, blobs)

    def put(self, key: Hashable, value: Any, scope: Hashable = None) -> None:
        """Stage ``value`` (the live record: it is serialised at commit, as it is then)."""
        if self.store.durable:
            self.store._stage(self, key, (scope, value))

    def delete(self, key: Hashable) -> None:
        if self.store.durable:
            self.store._stage(self, key, _DELETED)

    def load(self) -> Iterator[tuple[Hashable, Any]]:
        """(scope, value) of every stored record, in the order records were first written."""
        return self.store._load(self)


class FamilyStore:
    """A family's part of the store: its tables and its own small values (counters...)."""

    def __init__(self, store: Store, family: str) -> None:
        self.store = store
        self.family = family

    @property
    def durable(self) -> bool:
        return self.store.durable

    def table(self, name: str, raw: bool = False) -> StoredTable:
        return StoredTable(self.store, f"{self.family}__{name}", raw)

    def get_meta(self, name: str, default: Any = None) -> Any:
        return self.store.get_meta(f"{self.family}.{name}", default)

    def set_meta(self, name: str, value: Any) -> None:
        self.store.set_meta(f"{self.family}.{name}", value)


class Store:
    """No store at all: every stage is dropped, nothing is loaded (the in-memory default)."""

    durable = False
    description = "memory"

    def family(self, name: str) -> FamilyStore:
        return FamilyStore(self, name)

    def _stage(self, table: StoredTable, key: Hashable, entry: Any) -> None:
        pass

    def _load(self, table: StoredTable) -> Iterator[tuple[Hashable, Any]]:
        return iter(())

    def get_meta(self, name: str, default: Any = None) -> Any:
        return default

    def set_meta(self, name: str, value: Any) -> None:
        pass

    def pending(self) -> int:
        return 0

    def commit(self, clock_state: tuple[datetime, float] | None = None, force: bool = False) -> None:
        pass

    def clock_state(self) -> tuple[datetime, float] | None:
        """The virtual clock as last committed: (epoch, elapsed seconds); None when never."""
        return None

    def clear(self) -> None:
        pass

    def close(self) -> None:
        pass


class SqliteStore(Store):
    """Every family's tables in one SQLite file (WAL; each commit is synced before the call answers)."""

    durable = True

    def __init__(self, path: str, message_class: Callable[[str], type[message.Message]]) -> None:
        self.path = Path(path)
        self.description = f"sqlite:{path}"
        self._message_class = message_class
        self._pending: dict[tuple[str, str], tuple[StoredTable, Any, bool]] = {}
        self._meta: dict[str, bytes] = {}  # name -> pickled value
        self._dirty_meta: set[str] = set()
        self._known_tables: set[str] = set()
        if not self.path.parent.is_dir():
            raise StoreError(f"store {path}: folder {self.path.parent} does not exist")
        try:
            # timeout=0: a file held by another server is refused at once, not after sqlite's 5 s wait
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=0")
            # One server per file: a second one would interleave its writes with ours.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB)")
            self._db.execute("COMMIT")
            self._meta = dict(self._db.execute("SELECT name, value FROM meta"))
            self._known_tables = {
                row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.Error as exc:
            if "locked" in str(exc):
                raise StoreError(f"store {path} is in use by another server ({exc})") from None
            raise StoreError(f"store {path}: {exc}") from None
        found = self.get_meta("format")
        if found is None:
            self.set_meta("format", FORMAT)
            self.commit()
        elif found != FORMAT:
            raise StoreError(f"store {path} holds {found}, this server writes {FORMAT}: use a new file")

    # -- staging and committing ------------------------------------------------------------
    def _stage(self, table: StoredTable, key: Hashable, entry: Any) -> None:
        slot = (table.name, repr(key))
        previous = self._pending.get(slot)
        # A record deleted and written again in one commit goes to the end, as a new one.
        reinsert = previous is not None and (previous[1] is _DELETED or previous[2])
        self._pending[slot] = (table, entry, reinsert and entry is not _DELETED)

    def pending(self) -> int:
        return len(self._pending)

    def _dumps(self, value: Any) -> bytes:
        out = io.BytesIO()
        _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        return out.getvalue()

    def _loads(self, data: bytes) -> Any:
        return _Unpickler(data, self._message_class).load()

    def _ensure_table(self, name: str) -> None:
        if name not in self._known_tables:
            self._db.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}" (key TEXT UNIQUE NOT NULL, scope BLOB, value BLOB)'
            )
            self._known_tables.add(name)

    def commit(self, clock_state: tuple[datetime, float] | None = None, force: bool = False) -> None:
        """Write what is staged (and the clock) in one transaction, synced to disk before it returns.

        The clock alone is written only when ``force``d (it was moved by hand): running time is
        saved with the next change, so a restart resumes at the last change at the latest."""
        if not self._pending and not self._dirty_meta and not force:
            return
        pending, self._pending = self._pending, {}
        dirty_meta, self._dirty_meta = self._dirty_meta, set()
        if clock_state is not None:
            self._meta["clock"] = self._dumps(clock_state)
            dirty_meta.add("clock")
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            for (name, key_text), (table, entry, reinsert) in pending.items():
                self._ensure_table(name)
                if entry is _DELETED or reinsert:
                    db.execute(f'DELETE FROM "{name}" WHERE key = ?', (key_text,))
                if entry is _DELETED:
                    continue
                scope, value = entry
                blob = bytes(value) if table.raw else self._dumps(value)
                db.execute(
                    f'INSERT INTO "{name}" (key, scope, value) VALUES (?, ?, ?) '
                    "ON CONFLICT(key) DO UPDATE SET scope = excluded.scope, value = excluded.value",
                    (key_text, self._dumps(scope), blob),
                )
            for name in dirty_meta:
                db.execute(
                    "INSERT INTO meta (name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    (name, self._meta[name]),
                )
            db.execute("COMMIT")
        except (sqlite3.Error, pickle.PicklingError, TypeError, AttributeError) as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            # Kept for the next commit: a full disk may clear, and memory is still ahead of it.
            self._pending = {**pending, **self._pending}
            self._dirty_meta |= dirty_meta
            raise StoreError(f"store {self.path}: writing failed: {exc}") from exc

    # -- reading back ------------------------------------------------------------------------
    def _load(self, table: StoredTable) -> Iterator[tuple[Hashable, Any]]:
        if table.name not in self._known_tables:
            return
        rows = self._db.execute(f'SELECT scope, value FROM "{table.name}" ORDER BY rowid')
        for scope, value in rows:
            yield self._loads(scope), (bytes(value) if table.raw else self._loads(value))

    def get_meta(self, name: str, default: Any = None) -> Any:
        if name not in self._meta:
            return default
        return self._loads(self._meta[name])

    def set_meta(self, name: str, value: Any) -> None:
        self._meta[name] = self._dumps(value)
        self._dirty_meta.add(name)

    def clock_state(self) -> tuple[datetime, float] | None:
        return self.get_meta("clock")

    def clear(self) -> None:
        """Forget every record (the control API's reset), keeping the file."""
        self._pending.clear()
        self._db.execute("BEGIN IMMEDIATE")
        for name in list(self._known_tables):
            if name != "meta":
                self._db.execute(f'DROP TABLE IF EXISTS "{name}"')
        self._db.execute("DELETE FROM meta WHERE name != 'format'")
        self._db.execute("COMMIT")
        self._known_tables = {"meta"}
        self._meta = {k: v for k, v in self._meta.items() if k == "format"}
        self._dirty_meta = set()

    def close(self) -> None:
        self.commit()
        self._db.close()


def open_store(spec: str, message_class: Callable[[str], type[message.Message]]) -> Store:
    """``memory`` or ``sqlite:PATH`` (the ``serve --store`` option)."""
    if spec == "memory":
        return Store()
    kind, _, path = spec.partition(":")
    if kind == "sqlite" and path:
        return SqliteStore(path, message_class)
    raise StoreError(f"--store: expected 'memory' or 'sqlite:PATH', got {spec!r}")
