"""ArmoniK tasks and results as a model follows them: the statuses a task may be in, given its
session and the results it waits for, the options a submission must give it, and what a result
may be.

A task moves on its own (``armonik.tasks.lifecycle``)::

    CREATING -> PENDING (while a data dependency is not COMPLETED)
             -> SUBMITTED (PAUSED instead while the session is paused)
             -> DISPATCHED -> PROCESSING -> COMPLETED (its outputs COMPLETED)

and by calls: cancelling moves an unfinished task to CANCELLING, then CANCELLED, and aborts its
CREATED outputs, which cancels the tasks waiting for them (``armonik.tasks.cancel.unknown-ignored``,
``armonik.sessions.cancel-effects``); pausing its session parks a queued task in PAUSED, resuming
queues it again (``armonik.sessions.pause-effects``).  As with any automatic progress, the model
keeps the *set* of statuses a task may be in: the closure of what it last saw under these edges.
A task whose input lost its data in a way the specs say nothing about is no longer judged
(:data:`ANY`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protoconform.conformance.models.armonik import requests as names

PREFIX = "TASK_STATUS_"
CREATING, PENDING, SUBMITTED, DISPATCHED, PROCESSING, COMPLETED = (
    f"{PREFIX}{s}" for s in ("CREATING", "PENDING", "SUBMITTED", "DISPATCHED", "PROCESSING", "COMPLETED")
)
PAUSED, CANCELLING, CANCELLED, ERROR, TIMEOUT, RETRIED = (
    f"{PREFIX}{s}" for s in ("PAUSED", "CANCELLING", "CANCELLED", "ERROR", "TIMEOUT", "RETRIED")
)
PATH = (CREATING, PENDING, SUBMITTED, DISPATCHED, PROCESSING, COMPLETED)  # the documented way, in order
QUEUED = frozenset({SUBMITTED, DISPATCHED})  # what pausing the session parks in PAUSED
FINAL = frozenset({COMPLETED, ERROR, TIMEOUT, CANCELLED, RETRIED})
STOPPED = frozenset({CANCELLING, CANCELLED})
ANY = frozenset({*PATH, PAUSED, CANCELLING, CANCELLED, ERROR, TIMEOUT, RETRIED, f"{PREFIX}PROCESSED"})

LIFECYCLE_RULE = "armonik.tasks.lifecycle"

# Automatic edges (the session decides where a ready task goes: see ready_states).
_NEXT = {
    SUBMITTED: {DISPATCHED},
    DISPATCHED: {PROCESSING, SUBMITTED},  # back to SUBMITTED when its acquisition times out
    PROCESSING: {COMPLETED},
    CANCELLING: {CANCELLED},
}


def path_problem(statuses: list[str]) -> str:
    """Why the statuses one task was seen in, in order, are not a walk along :data:`PATH`
    ('' when they are).  Observations are samples: a status may repeat or be skipped; PAUSED
    stands where SUBMITTED does (while the session is paused); a DISPATCHED task may go back to
    SUBMITTED (its acquisition timed out) or PAUSED (its session paused)."""
    previous = -1
    for status in statuses:
        if status not in PATH and status != PAUSED:
            return f"{status} is not on the path {' -> '.join(PATH)}"
        index = PATH.index(SUBMITTED if status == PAUSED else status)
        back_to_queue = index == PATH.index(SUBMITTED) and PATH[previous] == DISPATCHED
        if index < previous and not back_to_queue:
            return f"{status} after {PATH[previous]}"
        previous = index
    return ""


@dataclass
class TaskModel:
    """What a task may be now, and what it waits for and produces."""

    key: str
    states: frozenset[str]
    rule: str  # the rule that says so (the lifecycle, or the effect of the last call)
    payload: str = ""
    dependencies: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    levels: tuple[Mapping[str, Any] | None, ...] = ()  # its options: session default, submit, task level
    seen: list[str] = field(default_factory=list)  # statuses observed, in order

    @property
    def judged(self) -> bool:
        return self.states != ANY

    @property
    def final(self) -> bool:
        return self.states <= FINAL


ANY_RESULT = frozenset({names.CREATED, names.COMPLETED, names.ABORTED, names.RESULT_DELETED})


@dataclass
class ResultModel:
    """What a result may be now."""

    states: frozenset[str]
    rule: str  # the rule that says so
    data: bytes | None = None  # known data, when COMPLETED by us
    task_output: bool = False
    owner: str | None = None  # the owner task id ("" none, the session id for data given at creation)

    @property
    def judged(self) -> bool:
        return self.states != ANY_RESULT


def ready_states(session_states: Iterable[str]) -> frozenset[str]:
    """Where a task whose inputs are all there goes: PAUSED while its session is paused."""
    states = set(session_states)
    found = {PAUSED} if "SESSION_STATUS_PAUSED" in states else set()
    if states - {"SESSION_STATUS_PAUSED"}:
        found.add(SUBMITTED)
    return frozenset(found)


def closure(
    states: Iterable[str], inputs_may_complete: bool, session_states: Iterable[str]
) -> frozenset[str]:
    """``states`` and every status the server may move the task to by itself."""
    found = set(states)
    if found == ANY:
        return ANY
    frontier = list(found)
    ready = ready_states(session_states)
    while frontier:
        status = frontier.pop()
        following = set(_NEXT.get(status, ()))
        if status in (CREATING, PENDING):
            following |= {PENDING} | (ready if inputs_may_complete else set())
        for state in following - found:
            found.add(state)
            frontier.append(state)
    return frozenset(found)


def cancelled(states: frozenset[str]) -> frozenset[str]:
    """The statuses after a cancellation: unfinished ones stop, finished ones stay."""
    if states == ANY:
        return ANY
    finished = states & FINAL
    return finished | (STOPPED if states - FINAL else frozenset())


# -- options --------------------------------------------------------------------------------

STRING_OPTIONS = (
    "partition_id",
    "application_name",
    "application_version",
    "application_namespace",
    "application_service",
    "engine_type",
)
MERGE_REAL_DIFFERS = ("max_duration", "max_retries")  # merged the other way round by the real server


def merged_options(levels: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The options a task must get from its levels, most general first (session default, submit
    level, task level; protojson, absent levels None): a set field of a more specific level wins,
    the ``options`` maps merge, and a given level's priority is taken as given
    (``armonik.tasks.options-inheritance``)."""
    merged: dict[str, Any] = {"options": {}}
    for level in levels:
        if not level:
            continue
        merged["options"] = {**merged["options"], **(level.get("options") or {})}
        if level.get("max_duration") not in (None, "0s"):
            merged["max_duration"] = level["max_duration"]
        if level.get("max_retries"):
            merged["max_retries"] = level["max_retries"]
        merged["priority"] = level.get("priority", 0)
        for name in STRING_OPTIONS:
            if level.get(name):
                merged[name] = level[name]
    return merged


def option_differences(expected: Mapping[str, Any], actual: Any, skip: Iterable[str] = ()) -> list[str]:
    """The fields of the task's ``actual`` options (a TaskOptions message) that are not ``expected``."""
    skipped = set(skip)
    found = []
    for name in ("priority", "max_retries", *STRING_OPTIONS):
        if name in skipped or (name not in expected and name == "partition_id"):
            continue
        want = expected.get(name, 0 if name in ("priority", "max_retries") else "")
        got = getattr(actual, name)
        if got != want:
            found.append(f"{name} {got!r} (expected {want!r})")
    if "max_duration" not in skipped and "max_duration" in expected:
        got = actual.max_duration.ToJsonString() if actual.HasField("max_duration") else "unset"
        if got != expected["max_duration"]:
            found.append(f"max_duration {got} (expected {expected['max_duration']})")
    if dict(actual.options) != expected.get("options", {}):
        found.append(f"options {dict(actual.options)} (expected {expected.get('options', {})})")
    return found
