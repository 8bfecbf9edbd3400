"""The simulated ArmoniK task engine, driven by the shared virtual clock.

A task is created in CREATING (by :mod:`.submission`), then handed to
:meth:`Engine.submit`.  From there:

    CREATING -> PENDING (until its data dependencies are COMPLETED)
             -> SUBMITTED (queued; PAUSED instead while its session is paused)
             -> DISPATCHED (a slot of ``max_parallel`` is taken)
             -> PROCESSING (the executor runs it)
             -> COMPLETED | ERROR | TIMEOUT | RETRIED (+ a retry task ``<initial>###<n>``)

Cancellation (CancelTasks, CancelSession, an aborted dependency) moves a
non-final task to CANCELLING, then CANCELLED after ``cancel_delay``; its
CREATED outputs become ABORTED, which cancels the tasks depending on them.

**The processing hook.**  ``engine.executor`` decides what processing a task
means (``engine.executors`` overrides it for the tasks of some partitions).  It
receives a :class:`TaskRun` (the task, its session, a fresh communication token,
and buffers for what the task produces) and returns an :class:`Outcome`, either
directly (the engine then waits ``outcome.duration`` virtual seconds) or as an
awaitable (an attached worker; the engine enforces ``max_duration`` on the
virtual clock meanwhile).  The default is :class:`BuiltinExecutor`; an attached
worker replaces it with its own object (see ``worker_address`` and a
partition's ``worker`` in the family options, and :mod:`.attach`).  While a run
is alive, :meth:`Engine.run_for_token` finds it by its communication token, so
the Agent service can check tokens and fill ``run.result_data`` / ``run.children``.

What happens at the end of a run:

- SUCCESS: every result in ``run.result_data`` and ``outcome.outputs`` that is
  still CREATED gets that content (COMPLETED); ``run.children`` (subtasks
  created during the run, kept in CREATING) are submitted; the task is COMPLETED.
- ERROR (the worker answered ``Output.error``): the task is ERROR, no retry; its
  outputs are ABORTED; children are cancelled.
- CRASH (the worker call failed): RETRIED with a new task taking over the
  outputs while ``retries < max_retries``, ERROR otherwise.
- TIMEOUT (``max_duration`` elapsed): TIMEOUT; outputs ABORTED; children cancelled.

Everything runs on the event loop; timers are plain clock callbacks, so with a
manual clock ``clock.advance(s)`` runs the built-in lifecycle deterministically.

**After a restart** (a durable store, ``serve --store sqlite:PATH``) timers and
runs are gone; :meth:`Engine.resume` goes on as ArmoniK does when its control
plane and polling agents come back (the task table and the queue survive, the
agents do not): SUBMITTED tasks are queued again; DISPATCHED ones, whose
acquisition was lost, go back to SUBMITTED and are queued (an acquisition that
timed out is released); PROCESSING ones lost their agent mid-run, which ArmoniK
treats as a failed attempt: RETRIED with a new task ``<initial>###<n>`` taking
over the outputs while ``retries < max_retries``, ERROR otherwise, and what the
lost run produced is dropped (its subtasks still CREATING are cancelled, the
results it created are aborted); CANCELLING ones end CANCELLED after
``cancel_delay``; PENDING ones wait again for the dependencies that are still
not COMPLETED (or start, or are cancelled when one was aborted meanwhile).
The same holds with an attached worker (``--armonik-worker``): its run was lost
with the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import inspect
import itertools
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from protoconform.mockserver.apis.armonik.state import (
    Result,
    ResultStatuses,
    Session,
    SessionStatuses,
    Task,
    TaskStatuses,
)

if TYPE_CHECKING:
    from protoconform.mockserver.apis.armonik.state import ArmonikState

log = logging.getLogger(__name__)

SUCCESS = "success"
ERROR = "error"
CRASH = "crash"
TIMEOUT = "timeout"

# Task options (the ``options`` map) understood by the built-in worker.
OPTION_FAIL = "mock.fail"  # "error" | "crash" | "timeout"
OPTION_FAIL_ATTEMPTS = "mock.fail_attempts"  # fail only the first N attempts (default: all)
OPTION_DURATION = "mock.duration"  # processing time in virtual seconds
OPTION_OUTPUT = "mock.output"  # "concat" (default) | "payload" | "sha256"
OUTPUT_MODES = ("concat", "payload", "sha256")


@dataclass
class Outcome:
    """How one processing attempt ended."""

    kind: str = SUCCESS  # SUCCESS | ERROR | CRASH | TIMEOUT
    message: str = ""
    duration: float | None = None  # simulated processing time; None = the configured default
    outputs: dict[str, bytes] = field(default_factory=dict)  # result id -> content


@dataclass(eq=False)
class TaskRun:
    """One processing attempt of one task, alive while the task is PROCESSING."""

    task: Task
    session: Session
    token: str
    data_folder: str = ""
    result_data: dict[str, bytes] = field(default_factory=dict)  # notified during the run
    created_results: list[str] = field(default_factory=list)  # result ids created during the run
    children: list[Task] = field(default_factory=list)  # subtasks, CREATING until the run succeeds
    finished: bool = False
    future: asyncio.Future[Outcome] | None = None

    @property
    def handed_to_worker(self) -> bool:
        """Whether a worker got the run (and its token): only such a run talks to the Agent."""
        return bool(self.data_folder)


class Executor(Protocol):
    def process(self, run: TaskRun) -> Outcome | Awaitable[Outcome]: ...


class BuiltinExecutor:
    """Processing without a worker: deterministic outputs, failures on request.

    Every expected output gets the same content, chosen by the ``mock.output``
    task option: ``concat`` (default) = payload data followed by the data of each
    data dependency in order; ``payload`` = the payload data; ``sha256`` = the hex
    SHA-256 of what ``concat`` gives.  ``mock.fail`` = ``error`` | ``crash`` |
    ``timeout`` makes the attempt fail that way (only the first
    ``mock.fail_attempts`` attempts when set); ``mock.duration`` sets the
    processing time in virtual seconds.
    """

    def __init__(self, state: ArmonikState) -> None:
        self.state = state

    def process(self, run: TaskRun) -> Outcome:
        task = run.task
        opts = task.options.options
        duration = _float(opts.get(OPTION_DURATION), self.state.options.processing_time)
        fail = opts.get(OPTION_FAIL, "")
        attempts = int(_float(opts.get(OPTION_FAIL_ATTEMPTS), 0))
        if fail and (attempts <= 0 or task.retries < attempts):
            why = f"failure requested by task option {OPTION_FAIL}={fail} (attempt {task.retries + 1})"
            if fail == ERROR:
                return Outcome(ERROR, why, duration)
            if fail == TIMEOUT:
                limit = _seconds(task.options.max_duration)
                return Outcome(SUCCESS, why, (limit or duration) * 2 + 1.0)
            return Outcome(CRASH, why, duration)
        data = self.output_data(task)
        return Outcome(SUCCESS, "", duration, {rid: data for rid in task.expected_output_ids})

    def output_data(self, task: Task) -> bytes:
        def content(result_id: str) -> bytes:
            result = self.state.results.get(result_id)
            return (self.state.result_data(result) if result is not None else None) or b""

        mode = task.options.options.get(OPTION_OUTPUT, "concat")
        payload = content(task.payload_id) if task.payload_id else b""
        if mode == "payload":
            return payload
        joined = payload + b"".join(content(d) for d in task.data_dependencies)
        if mode == "sha256":
            return hashlib.sha256(joined).hexdigest().encode()
        return joined


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


def _seconds(duration: object) -> float:
    return getattr(duration, "seconds", 0) + getattr(duration, "nanos", 0) / 1e9


class Engine:
    """Moves tasks through their lifecycle; see the module docstring."""

    def __init__(self, state: ArmonikState) -> None:
        self.state = state
        self.clock = state.clock
        self.executor: Executor = BuiltinExecutor(state)
        self.executors: dict[str, Executor] = {}  # partition id -> its own executor (a routed worker)
        self._queue: list[tuple[int, int, str]] = []  # (-priority, seq, task id)
        self._seq = itertools.count()
        self._active: set[str] = set()  # task ids holding a slot (DISPATCHED or PROCESSING)
        self._runs: dict[str, TaskRun] = {}  # token -> live run
        self._run_of_task: dict[str, TaskRun] = {}
        self._pump_timer: object | None = None
        self._pods = itertools.count(1)

    # -- queries ---------------------------------------------------------------------
    def run_for_token(self, token: str) -> TaskRun | None:
        """The live run a communication token belongs to (None once it ended)."""
        return self._runs.get(token)

    def run_of_task(self, task_id: str) -> TaskRun | None:
        return self._run_of_task.get(task_id)

    def executor_for(self, task: Task) -> Executor:
        """The executor of the task's partition (the default one unless the partition is routed)."""
        return self.executors.get(task.options.partition_id, self.executor)

    @property
    def live_runs(self) -> int:
        """Runs in progress."""
        return len(self._runs)

    @property
    def worker_runs(self) -> int:
        """Runs a worker is processing (the Agent answers UNAVAILABLE when there is none: a run
        of the built-in executor has no worker that could call it)."""
        return sum(1 for run in self._runs.values() if run.handed_to_worker)

    @property
    def busy(self) -> int:
        """Tasks holding a slot now."""
        return len(self._active)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- entry points ----------------------------------------------------------------
    def submit(self, tasks: Iterable[Task]) -> None:
        """Start the lifecycle of freshly created (CREATING) tasks."""
        for task in tasks:
            if task.status != TaskStatuses.CREATING:
                continue
            remaining = set()
            lost = ""
            for dep in task.data_dependencies:
                result = self.state.results.get(dep)
                if result is None or result.status in (ResultStatuses.ABORTED, ResultStatuses.DELETED):
                    lost = dep
                elif result.status != ResultStatuses.COMPLETED:
                    remaining.add(dep)
            if lost:  # e.g. a subtask whose input was aborted before its parent ended
                self.cancel_tasks([task], f"data dependency {lost} can never complete")
                continue
            task.remaining_dependencies = remaining
            if remaining:
                for dep in remaining:
                    self.state.tasks.add_waiter(dep, task.task_id)
                self.state.set_task_status(task, TaskStatuses.PENDING)
            else:
                self._make_ready(task)

    def result_completed(self, result: Result) -> None:
        """A result got its data: tasks waiting only for it become ready."""
        for task in self.state.tasks.take_waiters(result.result_id):
            task.remaining_dependencies.discard(result.result_id)
            if not task.remaining_dependencies and task.status == TaskStatuses.PENDING:
                self._make_ready(task)

    def result_aborted(self, result: Result) -> None:
        """A result will never get data: the tasks waiting for it are cancelled."""
        waiters = [t for t in self.state.tasks.take_waiters(result.result_id) if not t.final]
        if waiters:
            self.cancel_tasks(waiters, f"data dependency {result.result_id} was aborted")

    def pause_session(self, session_id: str) -> None:
        """Queued and dispatched tasks of the session wait in PAUSED; running ones go on."""
        for task in self.state.tasks.by_session(session_id):
            if task.status in (TaskStatuses.SUBMITTED, TaskStatuses.DISPATCHED):
                self._release(task.task_id)
                self.state.set_task_status(task, TaskStatuses.PAUSED)
        self._schedule_pump()

    def resume_session(self, session_id: str) -> None:
        for task in self.state.tasks.by_session(session_id):
            if task.status == TaskStatuses.PAUSED:
                self._queue_task(task)

    def cancel_session(self, session_id: str) -> None:
        """Cancel every unfinished task of the session and abort its CREATED results."""
        tasks = [t for t in self.state.tasks.by_session(session_id) if not t.final]
        self.cancel_tasks(tasks, "the session was cancelled")
        for result in self.state.results.by_session(session_id):
            if result.status == ResultStatuses.CREATED:
                self.state.abort_result(result)

    def cancel_tasks(self, tasks: Iterable[Task], reason: str = "cancelled on request") -> list[Task]:
        """Non-final tasks go CANCELLING (then CANCELLED); returns those that changed."""
        changed = []
        for task in tasks:
            if task.final or task.status == TaskStatuses.CANCELLING:
                continue
            changed.append(task)
            run = self._run_of_task.get(task.task_id)
            if run is not None:
                self._end_run(run)
                self._discard_products(run)
            self._release(task.task_id)
            self.state.set_task_status(task, TaskStatuses.CANCELLING, reason)
            self.clock.call_later(self.state.options.cancel_delay, lambda t=task: self._cancelled(t))
        for task in changed:
            self._abort_outputs(task)
        self._schedule_pump()
        return changed

    def forget_session(self, session_id: str) -> None:
        """The session is being deleted: drop its live runs and slots."""
        for task in self.state.tasks.by_session(session_id):
            run = self._run_of_task.get(task.task_id)
            if run is not None:
                self._end_run(run)
            self._release(task.task_id)
        self._schedule_pump()

    def resume(self) -> None:
        """Go on after a restart from a durable store (see the module docstring)."""
        tasks = list(self.state.tasks.all())
        lost = [t.task_id for t in tasks if t.status == TaskStatuses.PROCESSING]
        for task in tasks:
            if task.status == TaskStatuses.SUBMITTED:
                heapq.heappush(self._queue, (-task.options.priority, next(self._seq), task.task_id))
            elif task.status == TaskStatuses.DISPATCHED:
                self._queue_task(task)
            elif task.status == TaskStatuses.CANCELLING:
                self.clock.call_later(self.state.options.cancel_delay, lambda t=task: self._cancelled(t))
            elif task.status == TaskStatuses.PENDING:
                self._wait_again(task)
        if lost:
            # What each lost run produced: its subtasks still CREATING, the results it created.
            lost_set = set(lost)
            children: dict[str, list[Task]] = {}
            for task in tasks:
                if task.created_by in lost_set and task.status == TaskStatuses.CREATING:
                    children.setdefault(task.created_by, []).append(task)
            created: dict[str, list[Result]] = {}
            for result in self.state.results.all():
                if result.created_by in lost_set and result.status == ResultStatuses.CREATED:
                    created.setdefault(result.created_by, []).append(result)
            for task_id in lost:
                task = self.state.tasks.get(task_id)
                if task is not None and task.status == TaskStatuses.PROCESSING:
                    self._lost_run(task, children.get(task_id, []), created.get(task_id, []))
        self._schedule_pump()

    def _wait_again(self, task: Task) -> None:
        remaining = set()
        for dep in task.data_dependencies:
            result = self.state.results.get(dep)
            if result is None or result.status in (ResultStatuses.ABORTED, ResultStatuses.DELETED):
                self.cancel_tasks([task], f"data dependency {dep} can never complete")
                return
            if result.status != ResultStatuses.COMPLETED:
                remaining.add(dep)
        task.remaining_dependencies = remaining
        self.state.tasks.save(task)
        for dep in remaining:
            self.state.tasks.add_waiter(dep, task.task_id)
        if not remaining:
            self._make_ready(task)

    def _lost_run(self, task: Task, children: list[Task], created: list[Result]) -> None:
        """A task PROCESSING when the server stopped: its agent is gone, the attempt failed."""
        if children:
            self.cancel_tasks(children, f"parent task {task.task_id} did not complete")
        for result in created:
            self.state.abort_result(result)
        now = self.state.now()
        task.processed_at = task.ended_at = now
        message = "the agent processing the task was lost (control plane restart)"
        if task.retries < task.options.max_retries:
            self._retry(task, message)
        else:
            task.output_success, task.output_error = False, message
            self.state.set_task_status(task, TaskStatuses.ERROR, message)
            self._abort_outputs(task)

    # -- lifecycle steps -------------------------------------------------------------
    def _make_ready(self, task: Task) -> None:
        session = self.state.sessions.get(task.session_id)
        if session is not None and session.status == SessionStatuses.PAUSED:
            self.state.set_task_status(task, TaskStatuses.PAUSED)
            return
        self._queue_task(task)

    def _queue_task(self, task: Task) -> None:
        if task.submitted_at is None:
            task.submitted_at = self.state.now()
        self.state.set_task_status(task, TaskStatuses.SUBMITTED)
        heapq.heappush(self._queue, (-task.options.priority, next(self._seq), task.task_id))
        self._schedule_pump()

    def _schedule_pump(self) -> None:
        if self._pump_timer is None and self._queue:
            self._pump_timer = self.clock.call_later(self.state.options.dispatch_delay, self._pump)

    def _pump(self) -> None:
        self._pump_timer = None
        limit = max(1, self.state.options.max_parallel)
        while self._queue and len(self._active) < limit:
            _, _, task_id = heapq.heappop(self._queue)
            task = self.state.tasks.get(task_id)
            if task is None or task.status != TaskStatuses.SUBMITTED or task_id in self._active:
                continue
            self._active.add(task_id)
            pod = next(self._pods)
            task.owner_pod_id = f"mock-pod-{pod % max(1, limit)}"
            task.pod_hostname = task.owner_pod_id
            task.acquired_at = self.state.now()
            self.state.set_task_status(task, TaskStatuses.DISPATCHED)
            self.clock.call_later(self.state.options.start_delay, lambda t=task: self._start(t))

    def _start(self, task: Task) -> None:
        if task.status != TaskStatuses.DISPATCHED or self.state.tasks.get(task.task_id) is not task:
            self._release(task.task_id)
            self._schedule_pump()
            return
        session = self.state.sessions.get(task.session_id)
        if session is None:
            self._release(task.task_id)
            return
        now = self.state.now()
        task.received_at = task.fetched_at = task.started_at = now
        self.state.set_task_status(task, TaskStatuses.PROCESSING)
        run = TaskRun(task, session, self.state.new_id())
        self._runs[run.token] = run
        self._run_of_task[task.task_id] = run
        limit = _seconds(task.options.max_duration)
        try:
            produced = self.executor_for(task).process(run)
        except Exception as exc:  # an executor bug is a crashed attempt, not a dead engine
            log.exception("executor failed for task %s", task.task_id)
            produced = Outcome(CRASH, f"{type(exc).__name__}: {exc}", 0.0)
        if inspect.isawaitable(produced):
            future = asyncio.ensure_future(produced)
            run.future = future
            future.add_done_callback(lambda f, r=run: self._awaited(r, f))
            if limit > 0:
                self.clock.call_later(limit, lambda r=run: self._timed_out(r))
            return
        outcome = produced
        duration = self.state.options.processing_time if outcome.duration is None else outcome.duration
        if limit > 0 and duration > limit:
            self.clock.call_later(limit, lambda r=run: self._timed_out(r))
        else:
            self.clock.call_later(duration, lambda r=run, o=outcome: self.finish(r, o))

    def _awaited(self, run: TaskRun, future: asyncio.Future[Outcome]) -> None:
        if future.cancelled():
            outcome = Outcome(CRASH, "processing was cancelled")
        elif future.exception() is not None:
            exc = future.exception()
            outcome = Outcome(CRASH, f"{type(exc).__name__}: {exc}")
        else:
            outcome = future.result()
        self.finish(run, outcome)

    def _timed_out(self, run: TaskRun) -> None:
        if not run.finished:
            limit = _seconds(run.task.options.max_duration)
            self.finish(run, Outcome(TIMEOUT, f"max_duration of {limit:g}s exceeded"))

    def finish(self, run: TaskRun, outcome: Outcome) -> None:
        """End a run with ``outcome`` (called by the engine; idempotent)."""
        if run.finished:
            return
        self._end_run(run)
        task = run.task
        self._release(task.task_id)
        if task.status != TaskStatuses.PROCESSING or self.state.tasks.get(task.task_id) is not task:
            self._discard_products(run)  # cancelled, paused or deleted meanwhile
            self._schedule_pump()
            return
        now = self.state.now()
        task.processed_at = task.ended_at = now
        if outcome.kind == SUCCESS:
            for result_id, data in {**run.result_data, **outcome.outputs}.items():
                result = self.state.results.get(result_id)
                if result is not None and result.status == ResultStatuses.CREATED:
                    self.state.complete_result(result, data)
            task.output_success, task.output_error = True, ""
            self.state.set_task_status(task, TaskStatuses.COMPLETED, "")
            self._hand_over_outputs(run)
            self.submit(run.children)
        elif outcome.kind == CRASH and task.retries < task.options.max_retries:
            self._discard_products(run)
            self._retry(task, outcome.message)
        else:
            self._discard_products(run)
            status = TaskStatuses.TIMEOUT if outcome.kind == TIMEOUT else TaskStatuses.ERROR
            task.output_success, task.output_error = False, outcome.message
            self.state.set_task_status(task, status, outcome.message)
            self._abort_outputs(task)
        self._schedule_pump()

    def _retry(self, task: Task, message: str) -> None:
        task.output_success, task.output_error = False, message
        self.state.set_task_status(task, TaskStatuses.RETRIED, message)
        initial = task.initial_task_id or task.task_id
        retry = Task(
            task_id=f"{initial}###{task.retries + 1}",
            session_id=task.session_id,
            options=task.options,
            payload_id=task.payload_id,
            created_at=self.state.now(),
            data_dependencies=list(task.data_dependencies),
            expected_output_ids=list(task.expected_output_ids),
            initial_task_id=initial,
            parent_task_ids=list(task.parent_task_ids),
            retry_of_ids=[*task.retry_of_ids, task.task_id],
            created_by=task.created_by,
        )
        self.state.add_task(retry)
        for result_id in retry.expected_output_ids:
            result = self.state.results.get(result_id)
            if result is not None and result.owner_task_id == task.task_id:
                self.state.set_result_owner(result, retry.task_id)
        self.submit([retry])

    def _hand_over_outputs(self, run: TaskRun) -> None:
        """Outputs the subtasks expect become theirs once the parent succeeded (not before:
        a parent that fails or is retried keeps them)."""
        for child in run.children:
            for result_id in child.expected_output_ids:
                result = self.state.results.get(result_id)
                if result is not None and result.owner_task_id in ("", run.task.task_id):
                    self.state.set_result_owner(result, child.task_id)

    def _cancelled(self, task: Task) -> None:
        if task.status == TaskStatuses.CANCELLING and self.state.tasks.get(task.task_id) is task:
            task.ended_at = self.state.now()
            self.state.set_task_status(task, TaskStatuses.CANCELLED)

    # -- helpers ---------------------------------------------------------------------
    def _abort_outputs(self, task: Task) -> None:
        for result_id in task.expected_output_ids:
            result = self.state.results.get(result_id)
            if result is not None and result.owner_task_id == task.task_id:
                self.state.abort_result(result)

    def _discard_products(self, run: TaskRun) -> None:
        """What a failed or cancelled run produced never lands: children cancelled, results aborted."""
        if run.children:
            self.cancel_tasks(run.children, f"parent task {run.task.task_id} did not complete")
        for result_id in run.created_results:
            result = self.state.results.get(result_id)
            if result is not None:
                self.state.abort_result(result)
        run.result_data.clear()

    def _end_run(self, run: TaskRun) -> None:
        run.finished = True
        self._runs.pop(run.token, None)
        if self._run_of_task.get(run.task.task_id) is run:
            del self._run_of_task[run.task.task_id]
        if run.future is not None and not run.future.done():
            run.future.cancel()

    def _release(self, task_id: str) -> None:
        self._active.discard(task_id)
