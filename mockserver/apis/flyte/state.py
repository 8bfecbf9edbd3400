"""What the Flyte family remembers, behind a repository.

Records hold the messages Get/List calls return (``admin.Task``,
``admin.Execution``, ``admin.NodeExecution``...) plus the columns flyteadmin
keeps beside them (row ids, times, digests, states), so listing can filter and
sort on the same columns flyteadmin's database has.  Literal data (inputs,
outputs) is stored as objects under URIs like flyteadmin's blob store.

Storage sits behind :class:`Repository` (tables of records, objects);
:class:`MemoryRepository` keeps them in memory.  Handlers change a record and
hand it back with ``update`` so a durable store sees every change, and so that
list indexes, which follow a table's change log, see it too.

With a durable store (``serve --store sqlite:PATH``) the memory tables stay the
working set and every write is staged to the store as well (:class:`DurableTable`:
each insert, update and delete with its scope; objects as raw bytes; the row
counter and the per-server secrets in the store's meta).  At start the tables are
loaded back in the order their records were first written, so scans, change logs
and the list indexes derived from them come out as before the restart.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from google.protobuf import message
from protoconform.mockserver.apis.flyte.wire import Wire
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.store import FamilyStore, StoredTable
from protoconform.specs import rules as spec_rules
from protoconform.specs.registry import Registry

# -- keys ---------------------------------------------------------------------------------


class Key(NamedTuple):
    """A versioned entity: task, workflow, launch plan (and their description entities)."""

    project: str
    domain: str
    name: str
    version: str


class ExecKey(NamedTuple):
    project: str
    domain: str
    name: str


class NodeKey(NamedTuple):
    execution: ExecKey
    node_id: str


class TaskExecKey(NamedTuple):
    task: Key
    node: NodeKey
    retry_attempt: int


class SignalKey(NamedTuple):
    execution: ExecKey
    signal_id: str


class CatalogKey(NamedTuple):
    """A cached output: datacatalog's dataset (project, domain, name, version) and artifact tag."""

    project: str
    domain: str
    dataset: str
    version: str
    tag: str


def key_of(identifier: Any) -> Key:
    return Key(identifier.project, identifier.domain, identifier.name, identifier.version)


def exec_key_of(identifier: Any) -> ExecKey:
    return ExecKey(identifier.project, identifier.domain, identifier.name)


def node_key_of(identifier: Any) -> NodeKey:
    return NodeKey(exec_key_of(identifier.execution_id), identifier.node_id)


def task_exec_key_of(identifier: Any) -> TaskExecKey:
    return TaskExecKey(
        key_of(identifier.task_id), node_key_of(identifier.node_execution_id), identifier.retry_attempt
    )


# -- records ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Record:
    row: int  # flyteadmin's autoincrement id column; also the insertion order
    created_at: datetime
    updated_at: datetime


@dataclass(kw_only=True)
class ProjectRecord(Record):
    project: Any  # admin.Project, without domains (those come from configuration)


@dataclass(kw_only=True)
class TaskRecord(Record):
    key: Key
    task: Any  # admin.Task with its full closure
    digest: bytes


@dataclass(kw_only=True)
class WorkflowRecord(Record):
    key: Key
    workflow: Any  # admin.Workflow with its full closure
    digest: bytes


@dataclass(kw_only=True)
class LaunchPlanRecord(Record):
    key: Key
    launch_plan: Any  # admin.LaunchPlan; closure.state is the state column
    digest: bytes
    workflow_row: int


@dataclass
class NamedEntityRecord:
    """Metadata of a named entity (resource type, project, domain, name); absent until updated."""

    resource_type: int
    project: str
    domain: str
    name: str
    description: str = ""
    state: int | None = None


@dataclass(kw_only=True)
class DescriptionRecord(Record):
    resource_type: int
    key: Key
    entity: Any  # admin.DescriptionEntity


@dataclass(kw_only=True)
class ExecutionRecord(Record):
    key: ExecKey
    execution: Any  # admin.Execution
    launch_plan_row: int
    workflow_row: int
    task_row: int | None = None
    cluster: str = ""
    inputs_uri: str = ""
    user_inputs_uri: str = ""
    source_row: int | None = None


@dataclass(kw_only=True)
class NodeRecord(Record):
    key: NodeKey
    node: Any  # admin.NodeExecution
    parent_row: int | None = None
    parent_task_row: int | None = None
    dynamic_workflow: Any = None  # admin.DynamicWorkflowNodeMetadata, from a node event
    error_kind: str = ""
    error_code: str = ""


@dataclass(kw_only=True)
class TaskExecRecord(Record):
    key: TaskExecKey
    task_execution: Any  # admin.TaskExecution
    phase_version: int = 0


@dataclass(kw_only=True)
class SignalRecord(Record):
    key: SignalKey
    signal: Any  # admin.Signal: id, type and, once set, value
    type_bytes: bytes  # the type as flyteadmin stores it: GetOrCreate matches on these bytes


@dataclass(kw_only=True)
class CatalogRecord(Record):
    """One artifact of the simulated datacatalog: a cached task output."""

    key: CatalogKey
    artifact_id: str
    outputs_uri: str
    source: Any  # core.TaskExecutionIdentifier of the attempt that produced it


@dataclass
class AttributeRecord:
    project: str
    domain: str
    workflow: str
    launch_plan: str
    resource_type: int
    attributes: Any  # admin.MatchingAttributes
    org: str = ""

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.project, self.domain, self.workflow, self.launch_plan, self.resource_type)


@dataclass(kw_only=True)
class AgentJobRecord(Record):
    """A job an agent runs (AsyncAgentService, ExternalPluginService); its phase follows from the clock."""

    job_id: str
    agent: str
    category: tuple[str, int]  # (task type, version)
    template: Any  # core.TaskTemplate
    inputs: Any  # core.LiteralMap
    outputs: Any  # core.LiteralMap the job answers once it succeeds
    output_prefix: str
    size: int  # bytes of template, inputs and outputs, counted against the agents' limit
    deleted_at: datetime | None = None


# -- storage ------------------------------------------------------------------------------


class Change(NamedTuple):
    """One write to a table, as its change log reports it."""

    kind: str  # "insert", "update" or "delete"
    key: Hashable
    scope: Hashable


class Table(ABC):
    """Records by key, each in one scope (e.g. a project and domain), scanned per scope in insertion order.

    Derived data (list indexes, cached selections) follows a table without rescanning it:
    ``version`` counts writes, ``changes`` says which keys the latest writes touched.
    """

    @abstractmethod
    def get(self, key: Hashable) -> Any | None: ...

    @abstractmethod
    def insert(self, key: Hashable, scope: Hashable, record: Any) -> None: ...

    @abstractmethod
    def update(self, key: Hashable, record: Any) -> None: ...

    @abstractmethod
    def delete(self, key: Hashable) -> bool: ...

    @abstractmethod
    def scan(self, scope: Hashable | None = None) -> Iterator[Any]: ...

    @abstractmethod
    def items(self, scope: Hashable | None = None) -> Iterator[tuple[Hashable, Any]]:
        """(key, record) pairs in the order of ``scan``."""

    @abstractmethod
    def version(self, scope: Hashable | None = None) -> int:
        """The number of writes so far; with ``scope``, that number as of the scope's last write."""

    @abstractmethod
    def changes(self, since: int) -> list[Change] | None:
        """The writes after version ``since``, oldest first; None when they are no longer known."""

    @abstractmethod
    def scopes(self) -> Iterator[Hashable]:
        """The scopes holding records."""

    @abstractmethod
    def watch(self, watcher: Callable[[Change], None]) -> None:
        """Call ``watcher`` with each write once it is done (derived data kept up to date at write time)."""


CHANGE_LOG_SIZE = 10_000  # writes a table remembers for derived data to catch up with

TABLES = (
    "projects",
    "tasks",
    "workflows",
    "launch_plans",
    "named_entities",
    "descriptions",
    "executions",
    "node_executions",
    "task_executions",
    "attributes",
    "signals",
    "catalog",
    "agent_jobs",
    "uploads",  # sizes of DataProxy uploads by object URI (their limits count them)
)


class Repository(ABC):
    """The storage operations the handlers and the simulated propeller need."""

    durable = False  # True when every write also reaches a store that outlives the process

    @abstractmethod
    def table(self, name: str) -> Table: ...

    @abstractmethod
    def next_row(self) -> int: ...

    @abstractmethod
    def put_object(self, uri: str, data: bytes) -> None: ...

    @abstractmethod
    def get_object(self, uri: str) -> bytes | None: ...

    @abstractmethod
    def secret(self, name: str) -> bytes:
        """A random key of this server's, drawn once and kept as long as the data."""

    @abstractmethod
    def get_meta(self, name: str, default: Any = None) -> Any:
        """A small value kept beside the tables (engine bookkeeping)."""

    @abstractmethod
    def set_meta(self, name: str, value: Any) -> None: ...


class MemoryTable(Table):
    def __init__(self, log_size: int = CHANGE_LOG_SIZE) -> None:
        self._records: dict[Hashable, Any] = {}
        self._scopes: dict[Hashable, dict[Hashable, None]] = {}
        self._scope_of: dict[Hashable, Hashable] = {}
        self._scope_versions: dict[Hashable, int] = {}
        self._version = 0
        self._log: list[Change] = []  # the writes after version self._log_start
        self._log_start = 0
        self._log_size = log_size
        self._watchers: list[Callable[[Change], None]] = []

    def _wrote(self, kind: str, key: Hashable, scope: Hashable) -> None:
        self._version += 1
        self._scope_versions[scope] = self._version
        change = Change(kind, key, scope)
        self._log.append(change)
        if len(self._log) >= 2 * self._log_size:  # trimmed in halves, so a write costs O(1) on average
            del self._log[: self._log_size]
            self._log_start += self._log_size
        for watcher in self._watchers:
            watcher(change)

    def get(self, key: Hashable) -> Any | None:
        return self._records.get(key)

    def insert(self, key: Hashable, scope: Hashable, record: Any) -> None:
        if key in self._records:
            raise KeyError(key)
        self._records[key] = record
        self._scopes.setdefault(scope, {})[key] = None
        self._scope_of[key] = scope
        self._wrote("insert", key, scope)

    def update(self, key: Hashable, record: Any) -> None:
        self._records[key] = record  # records are live objects here; a persistent store writes them
        self._wrote("update", key, self._scope_of.get(key))

    def delete(self, key: Hashable) -> bool:
        if self._records.pop(key, None) is None:
            return False
        scope = self._scope_of.pop(key)
        self._scopes[scope].pop(key, None)
        self._wrote("delete", key, scope)
        return True

    def scan(self, scope: Hashable | None = None) -> Iterator[Any]:
        if scope is None:
            return iter(list(self._records.values()))
        return iter([self._records[k] for k in self._scopes.get(scope, {})])

    def items(self, scope: Hashable | None = None) -> Iterator[tuple[Hashable, Any]]:
        keys = list(self._records if scope is None else self._scopes.get(scope, {}))
        return zip(keys, map(self._records.__getitem__, keys), strict=True)

    def version(self, scope: Hashable | None = None) -> int:
        return self._version if scope is None else self._scope_versions.get(scope, 0)

    def changes(self, since: int) -> list[Change] | None:
        if since < self._log_start or since > self._version:
            return None
        return self._log[since - self._log_start :]

    def scopes(self) -> Iterator[Hashable]:
        return iter([scope for scope, keys in self._scopes.items() if keys])

    def watch(self, watcher: Callable[[Change], None]) -> None:
        self._watchers.append(watcher)


class DurableTable(MemoryTable):
    """A memory table that stages every write to a durable store (the record with its key and scope)."""

    def __init__(self, stored: StoredTable, log_size: int = CHANGE_LOG_SIZE) -> None:
        super().__init__(log_size)
        self._stored = stored

    def load(self) -> None:
        """Fill the (empty) table from the store, in first-written order; nothing is staged again."""
        for scope, (key, record) in self._stored.load():
            super().insert(key, scope, record)

    def insert(self, key: Hashable, scope: Hashable, record: Any) -> None:
        super().insert(key, scope, record)
        self._stored.put(key, (key, record), scope)

    def update(self, key: Hashable, record: Any) -> None:
        super().update(key, record)
        self._stored.put(key, (key, record), self._scope_of.get(key))

    def delete(self, key: Hashable) -> bool:
        if not super().delete(key):
            return False
        self._stored.delete(key)
        return True


_MISSING = object()


class MemoryRepository(Repository):
    """Tables and objects in memory; with a durable ``store``, written through to it and loaded from it."""

    def __init__(self, store: FamilyStore | None = None) -> None:
        self._store = store if store is not None and store.durable else None
        self.durable = self._store is not None
        self._objects: dict[str, bytes] = {}
        self._secrets: dict[str, bytes] = {}
        self._meta: dict[str, Any] = {}
        if self._store is None:
            self._tables: dict[str, MemoryTable] = {name: MemoryTable() for name in TABLES}
            self._row = 0
            return
        durable = {name: DurableTable(self._store.table(name)) for name in TABLES}
        for table in durable.values():
            table.load()
        self._tables = dict(durable)
        self._stored_objects = self._store.table("objects", raw=True)
        for uri, data in self._stored_objects.load():
            self._objects[uri] = data  # raw tables are loaded with their key as the scope
        self._row = int(self._store.get_meta("next_row", 0))
        self._secrets = dict(self._store.get_meta("secrets", {}))

    def table(self, name: str) -> Table:
        return self._tables[name]

    def next_row(self) -> int:
        self._row += 1
        if self._store is not None:
            self._store.set_meta("next_row", self._row)
        return self._row

    def put_object(self, uri: str, data: bytes) -> None:
        self._objects[uri] = data
        if self._store is not None:
            self._stored_objects.put(uri, data, scope=uri)

    def get_object(self, uri: str) -> bytes | None:
        return self._objects.get(uri)

    def get_meta(self, name: str, default: Any = None) -> Any:
        if name not in self._meta and self._store is not None:
            found = self._store.get_meta(f"state.{name}", _MISSING)
            if found is not _MISSING:
                self._meta[name] = found
        return self._meta.get(name, default)

    def set_meta(self, name: str, value: Any) -> None:
        """Keep ``value`` (written as it is now: hand it again after changing it)."""
        self._meta[name] = value
        if self._store is not None:
            self._store.set_meta(f"state.{name}", value)

    def secret(self, name: str) -> bytes:
        """A random key of this server's (e.g. for signing URLs), kept with the data it signs for."""
        found = self._secrets.get(name)
        if found is None:
            found = self._secrets[name] = os.urandom(32)
            if self._store is not None:
                self._store.set_meta("secrets", dict(self._secrets))
        return found


# -- the family's state ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Serve options of the Flyte family."""

    propeller: bool = True  # simulate flytepropeller; off: executions move only by events
    node_seconds: float = 2.0  # virtual seconds one task attempt runs
    step_seconds: float = 0.5  # virtual seconds between the propeller's other steps
    agents: tuple[str, ...] = ()  # serve --flyte-agent NAME=TYPE[,TYPE...][:sync]; () = specs' defaults
    agent_max_jobs: int = 0  # jobs the agents keep at once; 0 = specs' default
    auth_public_url: str = ""  # the auth server's issuer URL; "" = specs' default
    auth_client_id: str = ""  # public client id; "" = specs' default
    auth_redirect_uri: str = ""  # public client redirect URI; "" = specs' default


class State:
    """The Flyte family's state, handed to handlers as ``ctx.state``."""

    def __init__(
        self, clock: Clock, registry: Registry, settings: Settings, store: Repository | None = None
    ) -> None:
        from protoconform.mockserver.apis.flyte.propeller import Propeller

        self.clock = clock
        self.registry = registry
        self.settings = settings
        self.rules = spec_rules.load("flyte")
        self.wire = Wire(registry)
        self.store = store or MemoryRepository()
        self.config: dict[str, Any] = dict(self.rules.extra["admin"])
        self.started = self.store.get_meta("started")  # the version's build time: kept across restarts
        if self.started is None:
            self.started = clock.now()
            self.store.set_meta("started", self.started)
        self.caches: dict[str, Any] = {}  # derived data (list selections, row indexes), never the truth
        self.propeller = Propeller(self)

    def now(self) -> datetime:
        return self.clock.now()

    def table(self, name: str) -> Table:
        return self.store.table(name)

    # -- configuration ------------------------------------------------------------------
    def domains(self) -> list[dict[str, str]]:
        return list(self.config["domains"])

    def domain_ids(self) -> list[str]:
        return [d["id"] for d in self.config["domains"]]

    def storage(self, *parts: str) -> str:
        """A URI in the metadata store, like flyteadmin's ``<base>/metadata/...``."""
        return "/".join([self.config["storage_prefix"].rstrip("/"), *parts])

    # -- literal data ---------------------------------------------------------------------
    def put_literals(self, uri: str, literals: message.Message) -> str:
        self.store.put_object(uri, literals.SerializeToString(deterministic=True))
        return uri

    def get_literals(self, uri: str) -> Any:
        """The LiteralMap stored at ``uri``; an empty one when nothing is there (as flyteadmin)."""
        found = self.wire.new("core.LiteralMap")
        data = self.store.get_object(uri) if uri else None
        if data is not None:
            found.ParseFromString(data)
        return found
