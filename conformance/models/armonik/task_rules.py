"""The task rules of the ArmoniK session machine (:mod:`.machine`): submitting tasks with options
at every level, reading them, letting them move on, cancelling, counting and looking them up,
each answer compared with the task model of :mod:`.tasks`.

Tasks belong to the session entities of the machine; a task reads its inputs from the
session's results, so the model of both moves together (:meth:`TaskRules.refresh`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.armonik import tasks as tk
from protoconform.conformance.models.armonik.requests import (
    ABORTED,
    COMPLETED,
    CREATED,
    RESULT_DELETED,
    RESULT_ENUM,
    SUBMISSION_CLOSED,
    TASK_ENUM,
    b64,
    string_equals,
)
from protoconform.conformance.models.armonik.tasks import ANY_RESULT, ResultModel
from protoconform.conformance.models.base import Env, expect_codes, expect_rule, fail
from protoconform.conformance.models.machine import LifecycleMachine, Tracked

LEVEL_NAMES = ("application_name", "application_version", "application_namespace", "engine_type")


def task_levels() -> st.SearchStrategy[dict[str, Any] | None]:
    """Options of one submission level: absent, or a few fields set (never an all-default message,
    which proto3 cannot tell from an absent one)."""
    fields = st.fixed_dictionaries(
        {},
        optional={
            "priority": st.integers(0, 99),
            "max_retries": st.integers(0, 4),
            "max_duration": st.sampled_from(["0s", "30s", "90s"]),
            **{name: st.sampled_from(["", "x", "y"]) for name in LEVEL_NAMES},
            "options": st.dictionaries(
                st.sampled_from(["k1", "k2"]), st.sampled_from(["a", "b"]), max_size=2
            ),
        },
    )
    given = fields.map(lambda level: {**level, "application_service": "pc"})  # never all-default
    return st.one_of(st.none(), given)


class TaskRules:
    """Rules on the tasks of the machine's sessions (mixed into the session machine)."""

    SETTLE_ROUNDS: ClassVar[int] = 12  # server-time waits of SETTLE_STEP before tasks must have moved on
    SETTLE_STEP: ClassVar[float]
    RESULTS_RULE: ClassVar[str] = "armonik.results.create.effects"
    SUBMISSION_RULE: ClassVar[str] = "armonik.tasks.submission-closed"
    SUBMIT_RULE: ClassVar[str] = "armonik.tasks.submit.reply-order"
    OPTIONS_RULE: ClassVar[str] = "armonik.tasks.options-inheritance"
    CANCEL_TASKS_RULE: ClassVar[str] = "armonik.tasks.cancel.unknown-ignored"
    COUNT_RULE: ClassVar[str] = "armonik.tasks.count-by-status"
    RESULT_IDS_RULE: ClassVar[str] = "armonik.tasks.result-ids.unknown-omitted"
    LEGACY_STATUS_RULE: ClassVar[str] = "armonik.submitter.status-lookups"
    TASK_DOMAIN_RULE: ClassVar[str] = "armonik.tasks.status-domain"

    # What the machine provides (LifecycleMachine).
    env: Env
    tracked: list[Tracked]
    expect_gone: Callable[..., None]

    def status_name(self, enum_name: str, number: int) -> str:
        value = self.env.rpc.registry.enum(enum_name).values_by_number.get(number)
        return value.name if value is not None else str(number)

    def results_of(self, entity: Tracked) -> dict[str, ResultModel]:
        return entity.memory["results"]

    def tasks_of(self, entity: Tracked) -> dict[str, tk.TaskModel]:
        return entity.memory["tasks"]

    def fresh_id(self, data: st.DataObject) -> str:
        return str(uuid.UUID(int=data.draw(st.integers(0, 2**128 - 1), label="unknown id"), version=4))

    def refresh(self, entity: Tracked) -> None:
        """Let what the server may do by itself happen in the model: tasks whose inputs may be
        there move on, outputs complete or are aborted with their task, tasks waiting for an
        aborted output are cancelled."""
        results = self.results_of(entity)
        tasks = self.tasks_of(entity)
        for _ in range(len(tasks) + 1):  # chains of tasks settle in at most that many rounds
            changed = False
            for task in tasks.values():
                states = self.task_closure(entity, task)
                if states != task.states:
                    task.states, changed = states, True
                for key in task.outputs:
                    output = results[key]
                    grown = output.states
                    if not task.judged:
                        grown = ANY_RESULT
                    elif CREATED in output.states:
                        grown = grown | ({COMPLETED} if tk.COMPLETED in task.states else set())
                        grown = grown | (
                            {ABORTED} if task.states & (tk.STOPPED | {tk.ERROR, tk.TIMEOUT}) else set()
                        )
                    if grown != output.states:
                        output.states, changed = frozenset(grown), True
            if not changed:
                return

    def task_closure(self, entity: Tracked, task: tk.TaskModel) -> frozenset[str]:
        """Where ``task`` may be by now, given its session and its inputs."""
        if not task.judged:
            return task.states
        results = self.results_of(entity)
        inputs = [results[key] for key in task.dependencies]
        read = [*inputs, results[task.payload]]
        if task.states - tk.FINAL and any(not r.judged or RESULT_DELETED in r.states for r in read):
            return tk.ANY  # an input lost its data: the specs do not say what the task does then
        states = tk.closure(task.states, all(COMPLETED in r.states for r in inputs), entity.states)
        if any(r.states == {ABORTED} for r in inputs):
            states = tk.cancelled(states)  # waits for an aborted output: cancelled too
        elif any(ABORTED in r.states for r in inputs):
            states = states | (tk.STOPPED if states - tk.FINAL else frozenset())
        return states

    def pick_tasks(self, entity: Tracked, data: st.DataObject, most: int = 3) -> list[tk.TaskModel]:
        tasks = list(self.tasks_of(entity).values())
        if not tasks:
            return []
        chosen = data.draw(
            st.lists(st.integers(0, len(tasks) - 1), min_size=1, max_size=most, unique=True), label="tasks"
        )
        return [tasks[i] for i in chosen]

    def with_unknown(self, keys: list[str], data: st.DataObject) -> list[str]:
        """``keys`` with a fresh id at a drawn place."""
        where = data.draw(st.integers(0, len(keys)), label="unknown at")
        return [*keys[:where], self.fresh_id(data), *keys[where:]]

    def usable_input(self, result: ResultModel) -> bool:
        return result.judged and result.states <= {CREATED, COMPLETED}

    @rule(
        entity=LifecycleMachine.entities,
        data=st.data(),
        payload=st.binary(max_size=32),
        count=st.integers(1, 2),
        level=task_levels(),
    )
    def submit(
        self, entity: Tracked, data: st.DataObject, payload: bytes, count: int, level: dict[str, Any] | None
    ) -> None:
        if entity.gone:
            return
        results = self.results_of(entity)
        name = self.env.unique("task")
        made = self.env.rpc(
            "Results.CreateResults",
            {"session_id": entity.key, "results": [{"name": f"{name}-in", "data": b64(payload)}]},
        )
        wanted = [{"name": f"{name}-out{i}"} for i in range(count)] + [{"name": f"{name}-dep"}]
        out = self.env.rpc("Results.CreateResultsMetaData", {"session_id": entity.key, "results": wanted})
        expect_codes(made, {"OK"}, self.RESULTS_RULE)
        expect_codes(out, {"OK"}, self.RESULTS_RULE)
        payload_id = made.response.results[0].result_id
        results[payload_id] = ResultModel(
            frozenset({COMPLETED}), self.RESULTS_RULE, payload, owner=entity.key
        )
        *outputs, fresh_dep = [r.result_id for r in out.response.results]
        for key in (*outputs, fresh_dep):
            results[key] = ResultModel(frozenset({CREATED}), self.RESULTS_RULE, owner="")
        creations, task_levels_drawn = [], []
        for output in outputs:
            usable = [k for k, r in results.items() if self.usable_input(r) and k not in outputs]
            deps = data.draw(st.lists(st.sampled_from(usable), max_size=2, unique=True), label="dependencies")
            own = data.draw(task_levels(), label="task options")
            creation: dict[str, Any] = {
                "payload_id": payload_id,
                "expected_output_keys": [output],
                "data_dependencies": deps,
            }
            if own is not None:
                creation["task_options"] = own
            creations.append(creation)
            task_levels_drawn.append(own)
        request: dict[str, Any] = {"session_id": entity.key, "task_creations": creations}
        if level is not None:
            request["task_options"] = level
        reply = self.env.rpc("Tasks.SubmitTasks", request)
        open_states = entity.states - SUBMISSION_CLOSED
        if not entity.memory["client"] or not open_states:
            expect_rule(
                self.env, reply, self.env.rule(self.SUBMISSION_RULE), f"session {sorted(entity.states)}"
            )
            return
        if not reply.ok and entity.states & SUBMISSION_CLOSED:
            expect_rule(self.env, reply, self.env.rule(self.SUBMISSION_RULE), "the session may have closed")
            return
        expect_codes(reply, {"OK"}, self.SUBMIT_RULE, "tasks in a session open for submission")
        infos = list(reply.response.task_infos)
        got = [(i.payload_id, list(i.expected_output_ids), list(i.data_dependencies)) for i in infos]
        want = [(c["payload_id"], c["expected_output_keys"], c["data_dependencies"]) for c in creations]
        if got != want or len({i.task_id for i in infos}) != len(infos) or not all(i.task_id for i in infos):
            raise fail(self.SUBMIT_RULE, reply, f"one distinct task per creation, in order: {want}", got)
        self.env.covered(self.SUBMIT_RULE)
        for info, creation, own in zip(infos, creations, task_levels_drawn, strict=True):
            task = tk.TaskModel(
                info.task_id,
                frozenset({tk.CREATING}),
                tk.LIFECYCLE_RULE,
                payload_id,
                tuple(creation["data_dependencies"]),
                tuple(creation["expected_output_keys"]),
                (entity.memory["defaults"], level, own),
            )
            self.tasks_of(entity)[task.key] = task
            for key in task.outputs:
                results[key].owner = task.key
                results[key].task_output = True
                results[key].rule = tk.LIFECYCLE_RULE
        self.refresh(entity)
        for info in infos:
            self.read_task(entity, self.tasks_of(entity)[info.task_id], check_options=True)

    def read_task(self, entity: Tracked, task: tk.TaskModel, check_options: bool = False) -> None:
        reply = self.env.rpc("Tasks.GetTask", {"task_id": task.key})
        if entity.gone:
            self.expect_gone(reply, "task_id")
            return
        expect_codes(reply, {"OK"}, task.rule, "reading an existing task")
        detailed = reply.response.task
        if detailed.session_id != entity.key:
            raise fail("armonik.tasks.output", reply, f"task.session_id {entity.key!r}", detailed.session_id)
        if check_options:
            skip = tk.MERGE_REAL_DIFFERS if self.env.lenient else ()
            wrong = tk.option_differences(tk.merged_options(task.levels), detailed.options, skip)
            if wrong:
                raise fail(
                    self.OPTIONS_RULE, reply, "options merged session <- submit <- task", "; ".join(wrong)
                )
            self.env.covered(self.OPTIONS_RULE)
        self.seen_status(entity, task, self.status_name(TASK_ENUM, detailed.status), reply)

    def seen_status(self, entity: Tracked, task: tk.TaskModel, status: str, reply: Reply) -> None:
        """An observed status of ``task`` against the model."""
        if status not in self.env.rpc.registry.enum(TASK_ENUM).values_by_name:
            raise fail(self.TASK_DOMAIN_RULE, reply, "task.status in TaskStatus", status)
        if not task.judged:
            return
        if status not in task.states:
            raise fail(task.rule, reply, f"task {task.key[:8]} in {sorted(task.states)}", status)
        task.seen.append(status)
        if task.rule == tk.LIFECYCLE_RULE:
            problem = tk.path_problem(task.seen)
            if problem:
                raise fail(task.rule, reply, f"statuses along {' -> '.join(tk.PATH)}", problem)
        self.env.covered(task.rule)
        task.states = frozenset({status})
        if status == tk.COMPLETED:  # completing the expected outputs
            for key in task.outputs:
                output = self.results_of(entity)[key]
                if CREATED in output.states:
                    output.states, output.rule = (output.states - {CREATED}) | {COMPLETED}, tk.LIFECYCLE_RULE
        self.refresh(entity)

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def observe_task(self, entity: Tracked, data: st.DataObject) -> None:
        for task in self.pick_tasks(entity, data, most=1):
            self.read_task(entity, task)

    @precondition(lambda self: self.env.control is not None)
    @rule(entity=LifecycleMachine.entities)
    def settle_tasks(self, entity: Tracked) -> None:
        """Move the mock's clock until no task of the session can move on by itself: each must
        get where the lifecycle leads (a real server is not waited for in random sequences;
        the stream checks follow a task's whole lifecycle in real time)."""
        for _ in range(self.SETTLE_ROUNDS):
            if entity.gone:
                return
            moving = [t for t in self.tasks_of(entity).values() if self.task_moves(entity, t)]
            if not moving:
                return
            self.env.wait(self.SETTLE_STEP)
            for task in moving:
                self.read_task(entity, task)
        stuck = [t for t in self.tasks_of(entity).values() if self.task_moves(entity, t)]
        if stuck:
            task = stuck[0]
            raise fail(
                task.rule,
                None,
                f"task {task.key} out of {sorted(task.states)} in {self.SETTLE_ROUNDS * self.SETTLE_STEP:g}s",
                f"still {task.seen[-1] if task.seen else 'unread'}",
            )

    def task_moves(self, entity: Tracked, task: tk.TaskModel) -> bool:
        """Whether the server must still move ``task`` on by itself: it may be somewhere it does
        not rest (a PENDING task rests while an input may still lack data)."""
        if not task.judged:
            return False
        results = self.results_of(entity)
        inputs_there = all(results[k].states == {COMPLETED} for k in task.dependencies)
        resting = tk.FINAL | {tk.PAUSED} | (frozenset() if inputs_there else {tk.PENDING})
        return bool(task.states - resting)

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def cancel_tasks(self, entity: Tracked, data: st.DataObject) -> None:
        chosen = self.pick_tasks(entity, data)
        if not chosen:
            return
        reply = self.env.rpc(
            "Tasks.CancelTasks", {"task_ids": self.with_unknown([t.key for t in chosen], data)}
        )
        expect_codes(reply, {"OK"}, self.CANCEL_TASKS_RULE, "unknown ids are ignored")
        got = sorted(t.id for t in reply.response.tasks)
        want = [] if entity.gone else sorted(t.key for t in chosen)
        if got != want:
            raise fail(self.CANCEL_TASKS_RULE, reply, f"the tasks found: {want}", got)
        self.env.covered(self.CANCEL_TASKS_RULE)
        if entity.gone:
            return
        results = self.results_of(entity)
        for task in chosen:
            if not task.judged:
                continue
            if not task.states & tk.FINAL:  # certainly unfinished: its CREATED outputs are aborted
                for key in task.outputs:
                    if CREATED in results[key].states:
                        results[key].states = (results[key].states - {CREATED}) | {ABORTED}
                        results[key].rule = self.CANCEL_TASKS_RULE
            task.states, task.rule = tk.cancelled(task.states), self.CANCEL_TASKS_RULE
        self.refresh(entity)
        for task in self.tasks_of(entity).values():  # cancelled too: they wait for an aborted output
            stopped = task.states & tk.STOPPED and task.states <= tk.STOPPED | tk.FINAL
            if task not in chosen and task.judged and stopped:
                task.rule = self.CANCEL_TASKS_RULE

    @rule(entity=LifecycleMachine.entities)
    def count_tasks(self, entity: Tracked) -> None:
        scope = string_equals("task_summary_field", "TASK_SUMMARY_ENUM_FIELD_SESSION_ID", entity.key)
        reply = self.env.rpc("Tasks.CountTasksByStatus", {"filters": {"or": [{"and": [scope]}]}})
        expect_codes(reply, {"OK"}, self.COUNT_RULE, "counting the tasks of a session")
        counts: dict[str, int] = {}
        for entry in reply.response.status:
            status = self.status_name(TASK_ENUM, entry.status)
            if status in counts or entry.count <= 0:
                raise fail(self.COUNT_RULE, reply, "one entry per status present", f"{status}: {entry.count}")
            counts[status] = entry.count
        tasks = [] if entity.gone else list(self.tasks_of(entity).values())
        problems = []
        if sum(counts.values()) != len(tasks):
            problems.append(f"{sum(counts.values())} tasks counted, {len(tasks)} in the session")
        for status, number in counts.items():
            possible = sum(1 for t in tasks if status in t.states)
            if number > possible:
                problems.append(f"{number} {status}, at most {possible} can be")
        for status in {s for t in tasks for s in t.states}:
            certain = sum(1 for t in tasks if t.states == {status})
            if counts.get(status, 0) < certain:
                problems.append(f"{counts.get(status, 0)} {status}, at least {certain} are")
        if problems:
            model = {t.key[:8]: sorted(t.states) for t in tasks}
            raise fail(self.COUNT_RULE, reply, f"counts matching {model}", "; ".join(problems))
        self.env.covered(self.COUNT_RULE)

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def result_ids(self, entity: Tracked, data: st.DataObject) -> None:
        chosen = self.pick_tasks(entity, data)
        if not chosen:
            return
        reply = self.env.rpc(
            "Tasks.GetResultIds", {"task_id": self.with_unknown([t.key for t in chosen], data)}
        )
        expect_codes(reply, {"OK"}, self.RESULT_IDS_RULE, "looking up expected outputs")
        got = {e.task_id: list(e.result_ids) for e in reply.response.task_results}
        want = {} if entity.gone else {t.key: list(t.outputs) for t in chosen}
        if got != want or len(reply.response.task_results) != len(want):
            raise fail(self.RESULT_IDS_RULE, reply, f"outputs {want}", got)
        self.env.covered(self.RESULT_IDS_RULE)

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def legacy_statuses(self, entity: Tracked, data: st.DataObject) -> None:
        """The legacy status lookups answer the known ids, with statuses the model allows."""
        chosen = self.pick_tasks(entity, data)
        if chosen:
            reply = self.env.rpc(
                "Submitter.GetTaskStatus", {"task_ids": self.with_unknown([t.key for t in chosen], data)}
            )
            expect_codes(reply, {"OK"}, self.LEGACY_STATUS_RULE, "looking up task statuses")
            found = {s.task_id: self.status_name(TASK_ENUM, s.status) for s in reply.response.id_statuses}
            want = set() if entity.gone else {t.key for t in chosen}
            if set(found) != want or len(reply.response.id_statuses) != len(want):
                raise fail(self.LEGACY_STATUS_RULE, reply, f"statuses of {sorted(want)}", sorted(found))
            self.env.covered(self.LEGACY_STATUS_RULE)
            for task in chosen if not entity.gone else ():
                if task.judged and found[task.key] not in task.states:
                    raise fail(
                        task.rule, reply, f"task {task.key[:8]} in {sorted(task.states)}", found[task.key]
                    )
        results = self.results_of(entity)
        keys = list(results)
        picked = (
            data.draw(st.lists(st.sampled_from(keys), max_size=3, unique=True), label="results")
            if keys
            else []
        )
        others = [k for t in self.tracked if t is not entity and not t.gone for k in self.results_of(t)]
        foreign = [] if self.env.lenient or not others else [others[0]]  # the real server ignores session_id
        reply = self.env.rpc(
            "Submitter.GetResultStatus",
            {"session_id": entity.key, "result_ids": self.with_unknown([*picked, *foreign], data)},
        )
        expect_codes(reply, {"OK"}, self.LEGACY_STATUS_RULE, "looking up result statuses")
        found = {s.result_id: self.status_name(RESULT_ENUM, s.status) for s in reply.response.id_statuses}
        want = set() if entity.gone else set(picked)
        if set(found) != want or len(reply.response.id_statuses) != len(want):
            raise fail(
                self.LEGACY_STATUS_RULE, reply, f"statuses of the session's {sorted(want)}", sorted(found)
            )
        for key in want:
            if results[key].judged and found[key] not in results[key].states:
                raise fail(
                    results[key].rule, reply, f"result.status in {sorted(results[key].states)}", found[key]
                )
        self.env.covered(self.LEGACY_STATUS_RULE)
