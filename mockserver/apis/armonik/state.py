"""ArmoniK state: entities, their repositories, events, and the session state machine.

Public API (kept stable; handlers, the engine, the Agent/Worker/Submitter
services and the compatibility layer build on it):

Entities (plain dataclasses, mutated in place, then ``repo.save(entity)``):
    :class:`Session`, :class:`Task`, :class:`Result`, :class:`Partition`.
    Status fields hold the protobuf enum *numbers* (``TaskStatuses.COMPLETED`` ...:
    the ``TaskStatuses``/``ResultStatuses``/``SessionStatuses`` classes below); task
    options are kept as the wire message ``armonik.api.grpc.v1.TaskOptions``.

Repositories (``state.sessions``, ``state.tasks``, ``state.results``,
``state.partitions``; object storage ``state.objects``): the only way to reach
stored entities.  Every repository has ``get(id) -> entity | None``,
``add(entity)``, ``save(entity)``, ``delete(id)``, ``all()`` and ``len()``;
tasks and results also ``by_session(session_id)``.  Sessions, tasks, results
and objects write through the family's store (``serve --store sqlite:PATH``:
``add``/``save``/``delete`` stage the record, the server commits before it
answers) and are read back when the state is created; partitions come from the
options at every start.  Sessions, tasks and results also keep a
:class:`.listindex.ListIndex` (ordered ids per session and status) for the list RPCs.

:class:`ArmonikState` (``ctx.state`` in every ArmoniK handler):
    - ``clock``, ``registry``, ``options`` (:class:`ArmonikOptions`), ``rules``
      (``specs/armonik/*.yaml``), ``engine`` (:class:`engine.Engine`),
      ``events`` (a :class:`pubsub.Topic` of :class:`Event`), ``handler_variant``;
    - lookups that raise the NOT_FOUND rule of the specs:
      ``require_session``, ``require_task``, ``require_result``, ``require_partition``;
    - mutations that keep events flowing (always use them instead of writing
      status fields by hand): ``add_task``, ``add_result``, ``set_task_status``,
      ``set_result_status``, ``set_result_owner``, ``complete_result``,
      ``abort_result``, ``delete_result_data``, ``drop_session``;
    - ``session_action(session, action, ...)``: apply one edge of the session
      state machine read from the specs, or raise its illegal-transition rule.

Everything here runs on the server's event loop (handlers and clock timers),
so there is no locking.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from armonik.protogen.common.events_common_pb2 import EventsEnum
from armonik.protogen.common.objects_pb2 import TaskOptions
from armonik.protogen.common.result_status_pb2 import ResultStatus
from armonik.protogen.common.session_status_pb2 import SessionStatus
from armonik.protogen.common.task_status_pb2 import TaskStatus
from protoconform.mockserver.apis.armonik.listindex import ListIndex
from protoconform.mockserver.apis.armonik.options import ArmonikOptions, PartitionSpec
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.pubsub import Topic
from protoconform.mockserver.rpc import ApiError
from protoconform.mockserver.store import FamilyStore, Store, StoredTable
from protoconform.mockserver.validation import rule_error
from protoconform.specs import rules as spec_rules

if TYPE_CHECKING:
    from protoconform.mockserver.apis.armonik.engine import Engine
    from protoconform.specs.registry import Registry

FAMILY = "armonik"
_FIELD_PREFIX = re.compile(r"^[a-z_][a-z0-9_]*(\[\d+\])?(\.[a-z_][a-z0-9_]*(\[\d+\])?)*: ")


def _enum_name(enum: Any, number: int) -> str:
    """The value's name, or the bare number when it is outside the enum (kept for error messages)."""
    return enum.Name(number) if number in enum.values() else str(number)


class TaskStatuses:
    """Task status numbers (``armonik.api.grpc.v1.task_status.TaskStatus``)."""

    UNSPECIFIED = TaskStatus.TASK_STATUS_UNSPECIFIED
    CREATING = TaskStatus.TASK_STATUS_CREATING
    SUBMITTED = TaskStatus.TASK_STATUS_SUBMITTED
    DISPATCHED = TaskStatus.TASK_STATUS_DISPATCHED
    COMPLETED = TaskStatus.TASK_STATUS_COMPLETED
    ERROR = TaskStatus.TASK_STATUS_ERROR
    TIMEOUT = TaskStatus.TASK_STATUS_TIMEOUT
    CANCELLING = TaskStatus.TASK_STATUS_CANCELLING
    CANCELLED = TaskStatus.TASK_STATUS_CANCELLED
    PROCESSING = TaskStatus.TASK_STATUS_PROCESSING
    PROCESSED = TaskStatus.TASK_STATUS_PROCESSED
    RETRIED = TaskStatus.TASK_STATUS_RETRIED
    PENDING = TaskStatus.TASK_STATUS_PENDING
    PAUSED = TaskStatus.TASK_STATUS_PAUSED

    FINAL = frozenset({COMPLETED, ERROR, TIMEOUT, CANCELLED, RETRIED, PROCESSED})

    @staticmethod
    def name(number: int) -> str:
        return _enum_name(TaskStatus, number)


class ResultStatuses:
    """Result status numbers (``armonik.api.grpc.v1.result_status.ResultStatus``)."""

    UNSPECIFIED = ResultStatus.RESULT_STATUS_UNSPECIFIED
    CREATED = ResultStatus.RESULT_STATUS_CREATED
    COMPLETED = ResultStatus.RESULT_STATUS_COMPLETED
    ABORTED = ResultStatus.RESULT_STATUS_ABORTED
    DELETED = ResultStatus.RESULT_STATUS_DELETED
    NOTFOUND = ResultStatus.RESULT_STATUS_NOTFOUND

    @staticmethod
    def name(number: int) -> str:
        return _enum_name(ResultStatus, number)


class SessionStatuses:
    """Session status numbers (``armonik.api.grpc.v1.session_status.SessionStatus``)."""

    UNSPECIFIED = SessionStatus.SESSION_STATUS_UNSPECIFIED
    RUNNING = SessionStatus.SESSION_STATUS_RUNNING
    CANCELLED = SessionStatus.SESSION_STATUS_CANCELLED
    PAUSED = SessionStatus.SESSION_STATUS_PAUSED
    CLOSED = SessionStatus.SESSION_STATUS_CLOSED
    PURGED = SessionStatus.SESSION_STATUS_PURGED
    DELETED = SessionStatus.SESSION_STATUS_DELETED

    @staticmethod
    def name(number: int) -> str:
        return _enum_name(SessionStatus, number)


# --------------------------------------------------------------------------- entities
@dataclass(slots=True, eq=False)
class Session:
    session_id: str
    partition_ids: list[str]
    options: TaskOptions
    created_at: datetime
    status: int = SessionStatuses.RUNNING
    client_submission: bool = True
    worker_submission: bool = True
    cancelled_at: datetime | None = None
    closed_at: datetime | None = None
    purged_at: datetime | None = None
    deleted_at: datetime | None = None
    duration: timedelta | None = None


@dataclass(slots=True, eq=False)
class Task:
    task_id: str
    session_id: str
    options: TaskOptions  # merged (session <- submission <- task)
    payload_id: str
    created_at: datetime
    data_dependencies: list[str] = field(default_factory=list)
    expected_output_ids: list[str] = field(default_factory=list)
    status: int = TaskStatuses.CREATING
    status_message: str = ""
    initial_task_id: str = ""
    parent_task_ids: list[str] = field(default_factory=list)  # ancestors, nearest last
    retry_of_ids: list[str] = field(default_factory=list)
    created_by: str = ""  # the task that submitted it ("" = a client)
    owner_pod_id: str = ""
    pod_hostname: str = ""
    submitted_at: datetime | None = None
    received_at: datetime | None = None
    acquired_at: datetime | None = None
    fetched_at: datetime | None = None
    started_at: datetime | None = None
    processed_at: datetime | None = None
    ended_at: datetime | None = None
    pod_ttl: datetime | None = None
    output_success: bool = False
    output_error: str = ""
    # engine bookkeeping: data dependencies not yet COMPLETED
    remaining_dependencies: set[str] = field(default_factory=set)

    @property
    def retries(self) -> int:
        return len(self.retry_of_ids)

    @property
    def final(self) -> bool:
        return self.status in TaskStatuses.FINAL


@dataclass(slots=True, eq=False)
class Result:
    result_id: str
    session_id: str
    name: str
    created_at: datetime
    status: int = ResultStatuses.CREATED
    owner_task_id: str = ""
    completed_at: datetime | None = None
    size: int = 0
    created_by: str = ""
    opaque_id: bytes = b""
    manual_deletion: bool = False


@dataclass(slots=True, eq=False)
class Partition:
    id: str
    parent_partition_ids: list[str] = field(default_factory=list)
    pod_reserved: int = 1
    pod_max: int = 100
    pod_configuration: dict[str, str] = field(default_factory=dict)
    preemption_percentage: int = 0
    priority: int = 1


@dataclass(slots=True, frozen=True, eq=False)
class Event:
    """One change, as GetEvents / WatchResults consumers see it.

    ``kind`` is an ``EventsEnum`` number; ``entity`` the task or result it is
    about (its current fields are used for filtering); ``status`` the status the
    change set; owners only for RESULT_OWNER_UPDATE.
    """

    kind: int
    session_id: str
    entity: Task | Result
    status: int = 0
    previous_owner: str = ""
    current_owner: str = ""


NEW_TASK = EventsEnum.EVENTS_ENUM_NEW_TASK
TASK_STATUS_UPDATE = EventsEnum.EVENTS_ENUM_TASK_STATUS_UPDATE
NEW_RESULT = EventsEnum.EVENTS_ENUM_NEW_RESULT
RESULT_STATUS_UPDATE = EventsEnum.EVENTS_ENUM_RESULT_STATUS_UPDATE
RESULT_OWNER_UPDATE = EventsEnum.EVENTS_ENUM_RESULT_OWNER_UPDATE


# ----------------------------------------------------------------------- repositories
class _Repository:
    """Storage of one entity kind, keyed by id: a dict, mirrored to the family's store.

    Entities are mutated in place; callers call ``save`` after a change, which
    stages the record for the store's next commit (a no-op in memory) and keeps
    the list index (:mod:`.listindex`) in step with the status.
    """

    key_attr = "id"
    indexed = False  # whether a ListIndex orders the entities for the list RPCs
    session_scoped = False

    def __init__(self, table: StoredTable | None = None) -> None:
        self._items: dict[str, Any] = {}
        self._table = table
        self.index: ListIndex | None = ListIndex(self.key_attr, self.session_scoped) if self.indexed else None

    def get(self, key: str) -> Any:
        return self._items.get(key)

    def add(self, item: Any) -> None:
        self.restore(item)
        if self._table is not None:
            self._table.put(getattr(item, self.key_attr), item)

    def restore(self, item: Any) -> None:
        """Put back an entity read from the store (nothing is staged)."""
        self._items[getattr(item, self.key_attr)] = item
        if self.index is not None:
            self.index.add(item)

    def restore_many(self, items: Iterable[Any]) -> None:
        """Put back every entity read from the store, then index them all at once."""
        index, self.index = self.index, None
        try:
            for item in items:
                self.restore(item)
        finally:
            self.index = index
        if index is not None:
            index.build(self._items.values())

    def save(self, item: Any) -> None:
        key = getattr(item, self.key_attr)
        if self._items.get(key) is not item:
            return  # deleted meanwhile (a late timer): nothing to keep
        if self._table is not None:
            self._table.put(key, item)
        if self.index is not None:
            self.index.update(item)

    def delete(self, key: str) -> Any:
        item = self._items.pop(key, None)
        if item is not None:
            if self._table is not None:
                self._table.delete(key)
            if self.index is not None:
                self.index.remove(item)
        return item

    def all(self) -> Iterator[Any]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items


class _SessionScoped(_Repository):
    """A repository with a per-session index (tasks and results)."""

    session_scoped = True

    def __init__(self, table: StoredTable | None = None) -> None:
        super().__init__(table)
        self._by_session: dict[str, dict[str, Any]] = {}

    def restore(self, item: Any) -> None:
        super().restore(item)
        self._by_session.setdefault(item.session_id, {})[getattr(item, self.key_attr)] = item

    def delete(self, key: str) -> Any:
        item = super().delete(key)
        if item is not None:
            scoped = self._by_session.get(item.session_id)
            if scoped is not None:
                scoped.pop(key, None)
                if not scoped:
                    del self._by_session[item.session_id]
        return item

    def by_session(self, session_id: str) -> list[Any]:
        return list(self._by_session.get(session_id, {}).values())

    def delete_session(self, session_id: str) -> int:
        items = self._by_session.pop(session_id, {})
        for key, item in items.items():
            self._items.pop(key, None)
            if self._table is not None:
                self._table.delete(key)
            if self.index is not None:
                self.index.remove(item)
        return len(items)


class SessionRepository(_Repository):
    key_attr = "session_id"
    indexed = True

    def get(self, key: str) -> Session | None:
        return self._items.get(key)

    def all(self) -> Iterator[Session]:
        return iter(list(self._items.values()))


class TaskRepository(_SessionScoped):
    key_attr = "task_id"
    indexed = True

    def __init__(self, table: StoredTable | None = None) -> None:
        super().__init__(table)
        self._waiting: dict[str, set[str]] = {}  # result id -> ids of tasks waiting for it

    def get(self, key: str) -> Task | None:
        return self._items.get(key)

    def all(self) -> Iterator[Task]:
        return iter(list(self._items.values()))

    def by_session(self, session_id: str) -> list[Task]:
        return super().by_session(session_id)

    def add_waiter(self, result_id: str, task_id: str) -> None:
        self._waiting.setdefault(result_id, set()).add(task_id)

    def take_waiters(self, result_id: str) -> list[Task]:
        """Tasks that were waiting for ``result_id`` (the index entry is consumed)."""
        ids = self._waiting.pop(result_id, set())
        return [t for t in (self._items.get(i) for i in ids) if t is not None]

    def waiters(self, result_id: str) -> list[Task]:
        return [t for t in (self._items.get(i) for i in self._waiting.get(result_id, ())) if t is not None]


class ResultRepository(_SessionScoped):
    key_attr = "result_id"
    indexed = True

    def get(self, key: str) -> Result | None:
        return self._items.get(key)

    def all(self) -> Iterator[Result]:
        return iter(list(self._items.values()))

    def by_session(self, session_id: str) -> list[Result]:
        return super().by_session(session_id)


class PartitionRepository(_Repository):
    key_attr = "id"

    def get(self, key: str) -> Partition | None:
        return self._items.get(key)

    def all(self) -> Iterator[Partition]:
        return iter(list(self._items.values()))


class ObjectStore:
    """Result payloads, keyed by opaque id (what object storage would hold), mirrored to the store."""

    def __init__(self, table: StoredTable | None = None) -> None:
        self._objects: dict[bytes, bytes] = {}
        self._table = table

    def put(self, key: bytes, data: bytes) -> None:
        self._objects[key] = data
        if self._table is not None:
            self._table.put(key, data, scope=key)  # the scope carries the key back at load

    def restore(self, key: bytes, data: bytes) -> None:
        self._objects[key] = data

    def get(self, key: bytes) -> bytes | None:
        return self._objects.get(key)

    def delete(self, key: bytes) -> None:
        if self._objects.pop(key, None) is not None and self._table is not None:
            self._table.delete(key)

    def __contains__(self, key: bytes) -> bool:
        return key in self._objects

    def total_bytes(self) -> int:
        return sum(len(v) for v in self._objects.values())


# ------------------------------------------------------------------------------ state
class ArmonikState:
    """Everything one ArmoniK control plane knows; ``ctx.state`` of its handlers."""

    def __init__(
        self,
        options: ArmonikOptions,
        clock: Clock,
        registry: Registry | None,
        store: FamilyStore | None = None,
    ) -> None:
        from protoconform.mockserver.apis.armonik.engine import Engine

        self.options = options
        self.clock = clock
        self.registry = registry
        self.store = store if store is not None else Store().family(FAMILY)
        self.rules = spec_rules.load(FAMILY)
        self.handler_variant = options.handler_variant
        durable = self.store.durable
        self.sessions = SessionRepository(self.store.table("sessions") if durable else None)
        self.tasks = TaskRepository(self.store.table("tasks") if durable else None)
        self.results = ResultRepository(self.store.table("results") if durable else None)
        self.partitions = PartitionRepository()  # from the options, at every start
        self.objects = ObjectStore(self.store.table("objects", raw=True) if durable else None)
        # Keys: the session id, plus the task or result id; bounded per stream (--armonik-event-buffer).
        self.events: Topic[Event] = Topic(options.event_buffer)
        self.session_machine = self.rules.state_machines["session"]
        for spec in options.partitions:
            self.partitions.add(_partition_of(spec))
        self.engine: Engine = Engine(self)
        if durable:
            self._load()

    def _load(self) -> None:
        """Read the store back into the repositories (first-written order, so per-session
        orders are as before); the engine resumes later (:meth:`engine.Engine.resume`)."""
        for name, repository in (
            ("sessions", self.sessions),
            ("results", self.results),
            ("tasks", self.tasks),
        ):
            repository.restore_many(record for _, record in self.store.table(name).load())
        for key, data in self.store.table("objects", raw=True).load():
            self.objects.restore(key, data)

    # -- small helpers -------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock.now()

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def error(self, rule_id: str, detail: str) -> ApiError:
        """The error a rule of ``specs/armonik`` prescribes (status comes from the YAML).

        ``detail`` starts with the offending field's path when it is more precise
        than the rule's field (``task_creations[3].payload_id: ...``); otherwise the
        rule's field is put in front.
        """
        if _FIELD_PREFIX.match(detail):
            return ApiError(self.rules.rule(rule_id).status, detail)
        return rule_error(self.rules, rule_id, detail)

    # -- lookups raising NOT_FOUND -------------------------------------------------
    def require_session(self, session_id: str, field_name: str = "session_id") -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise self.error(
                "armonik.sessions.not-found", f"{field_name}: session '{session_id}' was not found"
            )
        return session

    def require_task(self, task_id: str, field_name: str = "task_id") -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise self.error("armonik.tasks.not-found", f"{field_name}: task '{task_id}' was not found")
        return task

    def require_result(self, result_id: str, field_name: str = "result_id") -> Result:
        result = self.results.get(result_id)
        if result is None:
            raise self.error("armonik.results.not-found", f"{field_name}: result '{result_id}' was not found")
        return result

    def require_partition(self, partition_id: str, field_name: str = "id") -> Partition:
        partition = self.partitions.get(partition_id)
        if partition is None:
            raise self.error(
                "armonik.partitions.not-found", f"{field_name}: partition '{partition_id}' was not found"
            )
        return partition

    # -- mutations that publish events --------------------------------------------
    def add_session(self, session: Session) -> None:
        self.sessions.add(session)

    def add_task(self, task: Task) -> None:
        self.tasks.add(task)
        self.events.publish(
            Event(NEW_TASK, task.session_id, task, task.status), task.session_id, task.task_id
        )

    def add_result(self, result: Result) -> None:
        self.results.add(result)
        self.events.publish(
            Event(NEW_RESULT, result.session_id, result, result.status), result.session_id, result.result_id
        )

    def set_task_status(self, task: Task, status: int, message: str | None = None) -> None:
        if message is not None:
            task.status_message = message
        if task.status == status:
            self.tasks.save(task)
            return
        task.status = status
        self.tasks.save(task)
        self.events.publish(
            Event(TASK_STATUS_UPDATE, task.session_id, task, status), task.session_id, task.task_id
        )

    def set_result_status(self, result: Result, status: int) -> None:
        if result.status == status:
            return
        result.status = status
        self.results.save(result)
        self.events.publish(
            Event(RESULT_STATUS_UPDATE, result.session_id, result, status),
            result.session_id,
            result.result_id,
        )

    def set_result_owner(self, result: Result, owner_task_id: str) -> None:
        previous = result.owner_task_id
        if previous == owner_task_id:
            return
        result.owner_task_id = owner_task_id
        self.results.save(result)
        self.events.publish(
            Event(RESULT_OWNER_UPDATE, result.session_id, result, result.status, previous, owner_task_id),
            result.session_id,
            result.result_id,
        )

    def complete_result(self, result: Result, data: bytes) -> None:
        """Store ``data`` as the result's content, mark it COMPLETED, unblock waiting tasks."""
        if not result.opaque_id:
            result.opaque_id = result.result_id.encode()
        self.objects.put(result.opaque_id, data)
        result.size = len(data)
        result.completed_at = self.now()
        self.results.save(result)
        self.set_result_status(result, ResultStatuses.COMPLETED)
        self.engine.result_completed(result)

    def result_data(self, result: Result) -> bytes | None:
        """The stored content of a result, or None when there is none."""
        if not result.opaque_id:
            return None
        return self.objects.get(result.opaque_id)

    def abort_result(self, result: Result) -> None:
        """A CREATED result that will never get data (owner failed or cancelled)."""
        if result.status != ResultStatuses.CREATED:
            return
        self.set_result_status(result, ResultStatuses.ABORTED)
        self.engine.result_aborted(result)

    def delete_result_data(self, result: Result) -> None:
        """Drop the content (DeleteResultsData, PurgeSession): DELETED, opaque id cleared."""
        if result.opaque_id:
            self.objects.delete(result.opaque_id)
        result.opaque_id = b""
        self.results.save(result)
        self.set_result_status(result, ResultStatuses.DELETED)

    def drop_session(self, session_id: str) -> None:
        """Delete a session with its tasks, results and their data (DeleteSession)."""
        self.engine.forget_session(session_id)
        for result in self.results.by_session(session_id):
            if result.opaque_id:
                self.objects.delete(result.opaque_id)
        self.results.delete_session(session_id)
        self.tasks.delete_session(session_id)
        self.sessions.delete(session_id)

    # -- session state machine -----------------------------------------------------
    def session_target(self, action: str) -> int:
        """The status an action leads to (for messages about illegal transitions)."""
        edges = self.session_machine.transitions.get(action, {})
        target = next(iter(edges.values()), "")
        return SessionStatus.Value(target) if target else SessionStatuses.UNSPECIFIED

    def session_action(self, session: Session, action: str, allow: frozenset[int] = frozenset()) -> int:
        """Move ``session`` along the edge ``action`` of the specs' state machine.

        Returns the new status (the caller applies side effects and saves).
        Raises the machine's ``illegal_rule`` -- or, for an edge the specs
        list under ``real_unknown``, the rule documenting the real server's
        accident -- naming the current and the requested state.  ``allow`` lists
        current statuses to accept anyway (deliberate defects only).
        """
        current = SessionStatuses.name(session.status)
        target_name = self.session_machine.target(action, current)
        if target_name is None and session.status in allow:
            target_name = SessionStatuses.name(self.session_target(action))
        if target_name is None:
            requested = SessionStatuses.name(self.session_target(action))
            raise self.error(
                self._transition_rule(action, current),
                f"session_id: cannot {action} session '{session.session_id}': it is {current}, "
                f"and {current} -> {requested} is not a valid session transition",
            )
        session.status = SessionStatus.Value(target_name)
        return session.status

    def _transition_rule(self, action: str, current: str) -> str:
        """The rule refusing ``action`` from ``current``: a specific one (``from:``) or the machine's."""
        for rule in self.rules.of_kind("transition"):
            sources = rule.params.get("from")
            if sources and current in sources and any(m.rpartition(".")[2] == action for m in rule.methods):
                return rule.id
        return self.session_machine.illegal_rule


def _partition_of(spec: PartitionSpec) -> Partition:
    return Partition(
        id=spec.id,
        parent_partition_ids=list(spec.parent_partition_ids),
        pod_reserved=spec.pod_reserved,
        pod_max=spec.pod_max,
        pod_configuration=dict(spec.pod_configuration),
        preemption_percentage=spec.preemption_percentage,
        priority=spec.priority,
    )


def iter_ids(values: Iterable[str]) -> list[str]:
    """De-duplicated ids in first-seen order."""
    return list(dict.fromkeys(values))
