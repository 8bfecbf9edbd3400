"""The agents the mock serves and the jobs they run, on the virtual clock.

Agents come from ``serve --flyte-agent NAME=TYPE[@VERSION][,TYPE...][:sync]`` (the
defaults and every limit are in ``specs/flyte/agents.yaml``, section ``agents``).
A job keeps its template, inputs and the outputs it will answer; its phase is
not stored but follows from the clock: QUEUED for a propeller step, RUNNING for
the task's duration, then SUCCEEDED (or FAILED / RETRYABLE_FAILED when its
template config asks), or ABORTED from the moment DeleteTask cancelled it.

A job is named by an opaque ``resource_meta``: its id and an HMAC over the id and
task category, keyed by a secret of this state, so a client can neither forge one
nor point one issued for one task category at another.  A reset makes a new
secret: metas issued before are then refused, never mistaken for new jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from protoconform.mockserver.apis.flyte import literals
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.state import AgentJobRecord

if TYPE_CHECKING:
    from protoconform.mockserver.apis.flyte.state import State

TABLE = "agent_jobs"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "RETRYABLE_FAILED", "ABORTED"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}(@[0-9]{1,9})?")
_META = re.compile(r"(?P<job>[0-9a-f]{32})\.(?P<sig>[0-9a-f]{32})")


# -- the agents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentSpec:
    name: str
    categories: tuple[tuple[str, int], ...]  # (task type, version)
    is_sync: bool


def parse_agent(text: str) -> AgentSpec:
    """``NAME=TYPE[@VERSION][,TYPE...][:sync|:async]``; ValueError says what is wrong."""
    body, _, mode = text.strip().partition(":")
    if mode not in ("", "sync", "async"):
        raise ValueError(f"{text!r}: the suffix is :sync or :async, not :{mode}")
    name, equals, types = body.partition("=")
    if not equals or not _NAME.fullmatch(name.strip()):
        raise ValueError(f"{text!r}: expected NAME=TASK_TYPE[,TASK_TYPE...][:sync]")
    categories = []
    for item in types.split(","):
        item = item.strip()
        if not _TYPE.fullmatch(item):
            raise ValueError(f"{text!r}: {item!r} is not a task type (letters, digits, . _ -, then @VERSION)")
        task_type, _, version = item.partition("@")
        categories.append((task_type, int(version or 0)))
    return AgentSpec(name.strip(), tuple(categories), mode == "sync")


def check_agents(texts: tuple[str, ...] | list[str]) -> list[AgentSpec]:
    """The agents of the serve options; one name or task category twice is an error (as flytekit's)."""
    specs = [parse_agent(t) for t in texts]
    names: set[str] = set()
    served: dict[tuple[str, int], str] = {}
    for spec in specs:
        if spec.name in names:
            raise ValueError(f"agent {spec.name!r} is given twice")
        names.add(spec.name)
        for category in spec.categories:
            if category in served:
                raise ValueError(
                    f"task type {category[0]}@{category[1]} is served by {served[category]!r} already"
                )
            served[category] = spec.name
    return specs


class Agents:
    """The configured agents, by name and by the task category they serve."""

    def __init__(self, specs: list[AgentSpec]) -> None:
        self.by_name = {s.name: s for s in specs}
        self.by_category = {c: s for s in specs for c in s.categories}

    def serving(self, task_type: str, version: int) -> AgentSpec | None:
        return self.by_category.get((task_type, version))


def config(state: State) -> dict[str, Any]:
    return dict(state.rules.extra["agents"])


def agents(state: State) -> Agents:
    found = state.caches.get("agents")
    if found is None:
        texts = state.settings.agents or tuple(config(state)["default"])
        found = state.caches["agents"] = Agents(check_agents(texts))
    return found


def agent_message(state: State, spec: AgentSpec) -> Any:
    agent = state.wire.new("admin.Agent", name=spec.name, is_sync=spec.is_sync)
    for task_type, version in spec.categories:
        agent.supported_task_types.append(task_type)
        agent.supported_task_categories.add(name=task_type, version=version)
    return agent


def lookup(state: State, rule: str, task_type: str, version: int, field: str | None = None) -> AgentSpec:
    """The agent serving the task category, else the rule's NOT_FOUND."""
    spec = agents(state).serving(task_type, version)
    if spec is None:
        raise Violation(rule, field=field, type=task_type)
    return spec


# -- resource_meta ---------------------------------------------------------------------------------


def _secret(state: State) -> bytes:
    # A key of the state's, not an object: the objects are what signed download URLs can reach.
    return state.store.secret("agents")


def _signature(state: State, job_id: str, category: tuple[str, int]) -> str:
    text = f"{job_id}\n{category[0]}\n{category[1]}".encode()
    return hmac.new(_secret(state), text, hashlib.sha256).hexdigest()[:32]


def issue(state: State, job: AgentJobRecord) -> bytes:
    return f"{job.job_id}.{_signature(state, job.job_id, job.category)}".encode()


def read(state: State, meta: bytes, category: tuple[str, int], rule: str, field: str) -> AgentJobRecord:
    """The job ``meta`` names, for a request about ``category``; the rule's violation when it is not
    one this state issued (or was issued for another category), ``forgotten`` when it was dropped."""
    limit = int(config(state)["max_meta_bytes"])
    text = meta[:limit].decode("ascii", errors="replace") if len(meta) <= limit else ""
    found = _META.fullmatch(text)
    if found is None:
        problem = "missing" if not meta else "not one this agent server issued (malformed)"
        raise Violation(rule, field=field, problem=problem)
    job_id, signature = found["job"], found["sig"]
    job = state.table(TABLE).get(job_id)
    if job is not None and hmac.compare_digest(signature, _signature(state, job_id, job.category)):
        if job.category != category:
            issued = f"{job.category[0]}@{job.category[1]}"
            raise Violation(rule, field=field, problem=f"issued for task type {issued}, not {category[0]}")
        return job
    if job is None and hmac.compare_digest(signature, _signature(state, job_id, category)):
        raise Violation("flyte.agents.jobs.forgotten", field=field, job=job_id)
    raise Violation(rule, field=field, problem="not one this agent server issued (bad signature)")


# -- jobs ------------------------------------------------------------------------------------------


def _seconds(value: str, default: float) -> float:
    try:
        seconds = float(value) if value else default
    except ValueError:
        return default
    return min(max(seconds, 0.0), 10**6) if seconds == seconds else default  # NaN: the default


def timeline(state: State, job: AgentJobRecord) -> tuple[datetime, datetime]:
    """When the job starts RUNNING and when it ends (unless cancelled first)."""
    keys = config(state)["keys"]
    duration = _seconds(job.template.config.get(keys["duration"], ""), state.settings.node_seconds)
    running = job.created_at + timedelta(seconds=state.settings.step_seconds)
    return running, running + timedelta(seconds=duration)


def outcome(state: State, template: Any) -> str:
    """The terminal phase the template asks for."""
    asked = template.config.get(config(state)["keys"]["fail"], "").strip().lower()
    if not asked:
        return "SUCCEEDED"
    return "RETRYABLE_FAILED" if asked == "retryable" else "FAILED"


def phase(state: State, job: AgentJobRecord, at: datetime | None = None) -> str:
    at = state.now() if at is None else at
    running, end = timeline(state, job)
    if job.deleted_at is not None and job.deleted_at < end and at >= job.deleted_at:
        return "ABORTED"
    if at < running:
        return "QUEUED"
    if at < end:
        return "RUNNING"
    return outcome(state, job.template)


def finished(state: State, job: AgentJobRecord) -> bool:
    return job.deleted_at is not None or phase(state, job) in TERMINAL


def _size(*messages: Any) -> int:
    return sum(m.ByteSize() for m in messages)


def _make_room(state: State, size: int) -> None:
    """Forget the oldest finished jobs until ``size`` more bytes and one more job fit, else refuse."""
    settings = config(state)
    max_jobs = state.settings.agent_max_jobs or int(settings["max_jobs"])
    max_bytes = int(settings["max_job_bytes"])
    table = state.table(TABLE)
    jobs = list(table.scan())
    count, total = len(jobs), sum(j.size for j in jobs)
    for job in jobs:  # oldest first
        if count < max_jobs and total + size <= max_bytes:
            return
        if finished(state, job):
            table.delete(job.job_id)
            count, total = count - 1, total - job.size
    if count >= max_jobs or total + size > max_bytes:
        limit = f"{max_jobs} jobs, {max_bytes} bytes"
        raise Violation("flyte.agents.jobs.capacity", jobs=count, bytes=total + size, limit=limit)


def create(state: State, spec: AgentSpec, template: Any, inputs: Any, output_prefix: str) -> AgentJobRecord:
    keys = config(state)["keys"]
    outputs = literals.compute_outputs(state.wire, template, inputs, keys["op"])
    size = _size(template, inputs, outputs) + len(output_prefix)
    _make_room(state, size)
    now = state.now()
    job = AgentJobRecord(
        row=state.store.next_row(),
        created_at=now,
        updated_at=now,
        job_id=uuid.uuid4().hex,
        agent=spec.name,
        category=(template.type, template.task_type_version),
        template=template,
        inputs=inputs,
        outputs=outputs,
        output_prefix=output_prefix,
        size=size,
    )
    state.table(TABLE).insert(job.job_id, spec.name, job)
    return job


def delete(state: State, job: AgentJobRecord) -> None:
    """Cancel a job that has not finished; a finished or deleted one stays as it is."""
    if job.deleted_at is None and phase(state, job) not in TERMINAL:
        job.deleted_at = job.updated_at = state.now()
        state.table(TABLE).update(job.job_id, job)


# -- what a job answers ------------------------------------------------------------------------------

_STATE = {
    "QUEUED": "PENDING",
    "RUNNING": "RUNNING",
    "SUCCEEDED": "SUCCEEDED",
    "FAILED": "PERMANENT_FAILURE",
    "RETRYABLE_FAILED": "RETRYABLE_FAILURE",
    "ABORTED": "PERMANENT_FAILURE",
}


def legacy_state(current: str) -> str:
    """The deprecated ``State`` a phase stands for."""
    return _STATE[current]


def _message(current: str, job_id: str) -> str:
    return {
        "QUEUED": "waiting for the agent to start the job",
        "RUNNING": "job is running",
        "SUCCEEDED": "job succeeded",
        "FAILED": f"job {job_id} failed (simulated)",
        "RETRYABLE_FAILED": f"job {job_id} failed and may be retried (simulated)",
        "ABORTED": "job was deleted before it finished",
    }[current]


def log_link(state: State, job: AgentJobRecord) -> Any:
    uri = "/".join([state.config["log_prefix"], "agents", job.agent, job.job_id])
    return state.wire.new("core.TaskLog", uri=uri, name=config(state)["log_name"])


def result(state: State, template: Any, outputs: Any, current: str, job_id: str) -> Any:
    """An ``admin.Resource`` in phase ``current``."""
    wire = state.wire
    resource = wire.new("admin.Resource", message=_message(current, job_id))
    resource.phase = wire.number("core.TaskExecution.Phase", current)
    resource.state = wire.number("admin.State", legacy_state(current))
    if current == "SUCCEEDED":
        resource.outputs.CopyFrom(outputs)
    elif current in ("FAILED", "RETRYABLE_FAILED"):
        resource.agent_error.code = "USER:Failed"
        resource.agent_error.kind = wire.number(
            "admin.AgentError.Kind", "RECOVERABLE" if current == "RETRYABLE_FAILED" else "NON_RECOVERABLE"
        )
        resource.agent_error.origin = wire.number("core.ExecutionError.ErrorKind", "USER")
    resource.custom_info.update({"job_id": job_id, "task_type": template.type})
    return resource


def resource(state: State, job: AgentJobRecord) -> Any:
    current = phase(state, job)
    found = result(state, job.template, job.outputs, current, job.job_id)
    if current != "QUEUED" and not (current == "ABORTED" and job.deleted_at < timeline(state, job)[0]):
        found.log_links.append(log_link(state, job))
    return found


def log_lines(state: State, job: AgentJobRecord) -> list[tuple[datetime, str]]:
    """What the job has logged so far."""
    now = state.now()
    running, end = timeline(state, job)
    lines = [
        (job.created_at, f"job {job.job_id} of agent {job.agent} created for task type {job.template.type}")
    ]
    stopped = job.deleted_at if job.deleted_at is not None and job.deleted_at < end else None
    if running <= now and (stopped is None or running < stopped):
        lines.append((running, "job is running"))
        for name in sorted(job.inputs.literals)[:20]:  # a few lines of its own, for paging
            lines.append((running, f"read input {name}"))
    if stopped is not None and stopped <= now:
        lines.append((stopped, "job deleted: cancelled"))
    elif stopped is None and end <= now:
        lines.append((end, f"job finished: {outcome(state, job.template)}"))
    return lines


def metric_value(state: State, job: AgentJobRecord, metric: str, at: datetime) -> float:
    if phase(state, job, at) != "RUNNING":
        return 0.0
    return 0.5 if "CPU" in metric else float(64 * 2**20)
