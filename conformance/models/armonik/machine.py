"""The ArmoniK session machine: sessions, their results and tasks.

Generic parts come from specs/armonik: the ``session`` state machine (every
Sessions RPC it lists, the refusal rules), the not-found rules and their codes.
What the machine remembers on top, family knowledge the specs state in prose:

- a session in one of ``SUBMISSION_CLOSED`` (or after StopSubmission) refuses
  new tasks (``armonik.tasks.submission-closed``);
- results: CREATED by CreateResultsMetaData, COMPLETED with their data by
  CreateResults or an upload, DELETED by DeleteResultsData; cancelling the
  session aborts CREATED ones, purging it deletes the data of all
  (``armonik.sessions.cancel-effects``, ``armonik.sessions.purge-effects``);
- a deleted session takes its results and tasks along.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import rule
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.armonik.requests import (
    ABORTED,
    COMPLETED,
    CREATED,
    RESULT_DELETED,
    RESULT_ENUM,
    SESSION_DELETED,
    SUBMISSION_CLOSED,
    TASK_ENUM,
    b64,
    delete_session,
    download,
    session_request,
    upload_requests,
)
from protoconform.conformance.models.base import expect_codes, expect_rule, fail
from protoconform.conformance.models.machine import LifecycleMachine, Tracked


@dataclass
class ResultModel:
    """What a result may be now."""

    states: frozenset[str]
    rule: str  # the rule that says so
    data: bytes | None = None  # known data, when COMPLETED by us
    task_output: bool = False


class SessionMachine(LifecycleMachine):
    MACHINE = "session"
    SERVICE = "Sessions"
    ID_FIELD = "session_id"
    READ = "Sessions.GetSession"
    CREATE_RULE = "armonik.sessions.create.initial-state"
    DOMAIN_RULE = "armonik.sessions.status-domain"
    GONE = frozenset({SESSION_DELETED})

    SUBMISSION_RULE: ClassVar[str] = "armonik.tasks.submission-closed"
    STOP_RULE: ClassVar[str] = "armonik.sessions.stop-submission"
    CANCEL_RULE: ClassVar[str] = "armonik.sessions.cancel-effects"
    PURGE_RULE: ClassVar[str] = "armonik.sessions.purge-effects"
    RESULTS_RULE: ClassVar[str] = "armonik.results.create.effects"
    UPLOAD_RULE: ClassVar[str] = "armonik.results.upload.effects"
    DOWNLOAD_RULE: ClassVar[str] = "armonik.results.download.chunking"
    DELETE_DATA_RULE: ClassVar[str] = "armonik.results.delete-data"
    RESULT_OUTPUT_RULE: ClassVar[str] = "armonik.results.output"
    RESULT_DOMAIN_RULE: ClassVar[str] = "armonik.results.status-domain"
    TASK_DOMAIN_RULE: ClassVar[str] = "armonik.tasks.status-domain"
    SUBMIT_RULE: ClassVar[str] = "armonik.tasks.submit.reply-order"

    # -- entity ---------------------------------------------------------------------
    def create_entity(self, data: st.DataObject) -> Tracked:
        return self.create_variant(0, data.draw(st.integers(1, 99), label="priority"))

    def create_variant(self, variant: int, priority: int = 1) -> Tracked:
        reply = self.env.rpc("Sessions.CreateSession", session_request(priority))
        expect_codes(reply, {"OK"}, self.CREATE_RULE, "a session with valid default options")
        entity = self.track(reply.response.session_id, client=True, results={}, tasks=[])
        return entity

    def status_name(self, enum_name: str, number: int) -> str:
        value = self.env.rpc.registry.enum(enum_name).values_by_number.get(number)
        return value.name if value is not None else str(number)

    def read(self, entity: Tracked) -> tuple[Reply, str | None]:
        reply = self.env.rpc(self.READ, {"session_id": entity.key})
        if not reply.ok:
            return reply, None
        return reply, self.status_name(self.lifecycle.machine.enum, reply.response.session.status)

    def after_read(self, entity: Tracked, reply: Reply) -> None:
        session = reply.response.session
        if session.session_id != entity.key:
            raise fail(entity.rule, reply, f"session.session_id {entity.key!r}", repr(session.session_id))
        if session.client_submission != entity.memory["client"]:
            raise fail(
                self.STOP_RULE,
                reply,
                f"client_submission {entity.memory['client']}",
                session.client_submission,
            )

    def after_action(self, entity: Tracked, action: str, reply: Reply) -> None:
        response = reply.response
        if "session" in response.DESCRIPTOR.fields_by_name and response.HasField("session"):
            state = self.status_name(self.lifecycle.machine.enum, response.session.status)
            if state not in entity.states:
                raise fail(entity.rule, reply, f"session.status in {sorted(entity.states)}", state)
        closed = entity.states & SUBMISSION_CLOSED
        if closed and entity.states <= SUBMISSION_CLOSED | self.GONE:
            entity.memory["client"] = False
        results: dict[str, ResultModel] = entity.memory["results"]
        if action == "CancelSession":
            for result in results.values():
                if CREATED in result.states:
                    result.states = (result.states - {CREATED}) | {ABORTED}
                    result.rule = self.CANCEL_RULE
        elif action == "PurgeSession":
            for result in results.values():
                result.states, result.rule, result.data = frozenset({RESULT_DELETED}), self.PURGE_RULE, None

    def delete(self, entity: Tracked) -> None:
        delete_session(self.env, entity.key)

    # -- submission -------------------------------------------------------------------
    @rule(entity=LifecycleMachine.entities, client=st.booleans(), worker=st.booleans())
    def stop_submission(self, entity: Tracked, client: bool, worker: bool) -> None:
        reply = self.env.rpc(
            "Sessions.StopSubmission", {"session_id": entity.key, "client": client, "worker": worker}
        )
        if entity.gone:
            self.expect_gone(reply)
            return
        expect_codes(reply, {"OK"}, self.STOP_RULE, "StopSubmission is accepted in any status")
        if client:
            entity.memory["client"] = False

    # -- results ----------------------------------------------------------------------
    @rule(entity=LifecycleMachine.entities, payload=st.one_of(st.none(), st.binary(max_size=64)))
    def create_result(self, entity: Tracked, payload: bytes | None) -> None:
        name = self.env.unique("result")
        if payload is None:
            reply = self.env.rpc(
                "Results.CreateResultsMetaData", {"session_id": entity.key, "results": [{"name": name}]}
            )
        else:
            reply = self.env.rpc(
                "Results.CreateResults",
                {"session_id": entity.key, "results": [{"name": name, "data": b64(payload)}]},
            )
        if entity.gone:
            self.expect_gone(reply)
            return
        expect_codes(reply, {"OK"}, self.RESULTS_RULE, "results can be created in an existing session")
        created = list(reply.response.results)
        if len(created) != 1 or created[0].name != name:
            raise fail(self.RESULTS_RULE, reply, f"one result named {name!r}", [r.name for r in created])
        self.check_result_raw(
            reply, created[0], frozenset({CREATED if payload is None else COMPLETED}), self.RESULTS_RULE
        )
        entity.memory["results"][created[0].result_id] = ResultModel(
            frozenset({CREATED if payload is None else COMPLETED}), self.RESULTS_RULE, payload
        )

    def pick_result(
        self, entity: Tracked, data: st.DataObject, usable: Any = None
    ) -> tuple[str, ResultModel] | None:
        """A result of ``entity`` that ``usable`` accepts, or None (no such result)."""
        results: dict[str, ResultModel] = entity.memory["results"]
        # Creation order, not the ids (which differ from run to run): replays must draw alike.
        candidates = [k for k, v in results.items() if usable is None or usable(v)]
        if not candidates:
            return None
        key = candidates[data.draw(st.integers(0, len(candidates) - 1), label="result")]
        return key, results[key]

    def check_result_raw(self, reply: Reply, raw: Any, states: frozenset[str], rule_id: str) -> None:
        status = self.status_name(RESULT_ENUM, raw.status)
        enum = self.env.rpc.registry.enum(RESULT_ENUM)
        if status not in enum.values_by_name:
            raise fail(self.RESULT_DOMAIN_RULE, reply, "result.status in ResultStatus", status)
        if status not in states:
            raise fail(rule_id, reply, f"result.status in {sorted(states)}", status)
        if not raw.HasField("created_at"):
            raise fail(self.RESULT_OUTPUT_RULE, reply, "result.created_at set", "unset")

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def get_result(self, entity: Tracked, data: st.DataObject) -> None:
        picked = self.pick_result(entity, data)
        if picked is None:
            return
        key, result = picked
        reply = self.env.rpc("Results.GetResult", {"result_id": key})
        if entity.gone:
            self.expect_gone(reply, "result_id")
            return
        expect_codes(reply, {"OK"}, result.rule, "reading an existing result")
        self.check_result_raw(reply, reply.response.result, result.states, result.rule)
        observed = self.status_name(RESULT_ENUM, reply.response.result.status)
        if not result.task_output or observed != CREATED:  # an output still CREATED may complete any time
            result.states = frozenset({observed})

    @rule(
        entity=LifecycleMachine.entities,
        data=st.data(),
        payload=st.binary(max_size=256),
        cuts=st.lists(st.integers(1, 255), max_size=4),
    )
    def upload(self, entity: Tracked, data: st.DataObject, payload: bytes, cuts: list[int]) -> None:
        picked = self.pick_result(
            entity, data, lambda r: r.states <= {CREATED, COMPLETED} and not r.task_output
        )
        if picked is None:
            return
        key, result = picked
        reply = self.env.rpc(
            "Results.UploadResultData", requests=upload_requests(entity.key, key, payload, cuts)
        )
        if entity.gone:
            self.expect_gone(reply, "session_id")
            return
        expect_codes(reply, {"OK"}, self.UPLOAD_RULE, "uploading to a CREATED or COMPLETED result")
        raw = reply.response.result
        if raw.size != len(payload):
            raise fail(self.UPLOAD_RULE, reply, f"result.size {len(payload)}", raw.size)
        result.states, result.rule, result.data = frozenset({COMPLETED}), self.UPLOAD_RULE, payload

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def fetch(self, entity: Tracked, data: st.DataObject) -> None:
        picked = self.pick_result(entity, data, lambda r: len(r.states) == 1 and not r.task_output)
        if picked is None:
            return
        key, result = picked
        reply, got = download(self.env, entity.key, key)
        if entity.gone:
            self.expect_gone(reply, "result_id")
            return
        if result.states == {COMPLETED} and result.data is not None:
            expect_codes(reply, {"OK"}, self.DOWNLOAD_RULE, "downloading stored data")
            if got != result.data:
                raise fail(
                    self.DOWNLOAD_RULE, reply, f"{len(result.data)} bytes as stored", f"{len(got)} bytes"
                )
        elif result.data is None and result.states <= {CREATED, ABORTED, RESULT_DELETED}:
            no_data_rule = self.env.rule("armonik.results.download.no-data")
            expect_rule(self.env, reply, no_data_rule, f"result is {next(iter(result.states))}")

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def delete_data(self, entity: Tracked, data: st.DataObject) -> None:
        picked = self.pick_result(entity, data)
        if picked is None:
            return
        key, result = picked
        reply = self.env.rpc("Results.DeleteResultsData", {"session_id": entity.key, "result_id": [key]})
        expect_codes(reply, {"OK"}, self.DELETE_DATA_RULE, "unknown ids are ignored" if entity.gone else "")
        if entity.gone:
            return
        result.states, result.rule, result.data = frozenset({RESULT_DELETED}), self.DELETE_DATA_RULE, None

    # -- tasks -------------------------------------------------------------------------
    @rule(entity=LifecycleMachine.entities, payload=st.binary(max_size=32))
    def submit(self, entity: Tracked, payload: bytes) -> None:
        if entity.gone:
            return
        name = self.env.unique("task")
        made = self.env.rpc(
            "Results.CreateResults",
            {"session_id": entity.key, "results": [{"name": f"{name}-in", "data": b64(payload)}]},
        )
        out = self.env.rpc(
            "Results.CreateResultsMetaData", {"session_id": entity.key, "results": [{"name": f"{name}-out"}]}
        )
        expect_codes(made, {"OK"}, self.RESULTS_RULE)
        expect_codes(out, {"OK"}, self.RESULTS_RULE)
        payload_id, output_id = made.response.results[0].result_id, out.response.results[0].result_id
        results: dict[str, ResultModel] = entity.memory["results"]
        results[payload_id] = ResultModel(frozenset({COMPLETED}), self.RESULTS_RULE, payload)
        results[output_id] = ResultModel(frozenset({CREATED}), self.RESULTS_RULE)
        reply = self.env.rpc(
            "Tasks.SubmitTasks",
            {
                "session_id": entity.key,
                "task_creations": [{"payload_id": payload_id, "expected_output_keys": [output_id]}],
            },
        )
        open_states = entity.states - SUBMISSION_CLOSED
        if not entity.memory["client"] or not open_states:
            expect_rule(
                self.env, reply, self.env.rule(self.SUBMISSION_RULE), f"session {sorted(entity.states)}"
            )
            return
        if entity.states & SUBMISSION_CLOSED:
            return  # the session may or may not have closed yet: either answer is right
        expect_codes(reply, {"OK"}, self.SUBMIT_RULE, "a task in a session open for submission")
        infos = list(reply.response.task_infos)
        if (
            len(infos) != 1
            or list(infos[0].expected_output_ids) != [output_id]
            or infos[0].payload_id != payload_id
        ):
            raise fail(
                self.SUBMIT_RULE, reply, f"one task with payload {payload_id} and output {output_id}", infos
            )
        task_id = infos[0].task_id
        entity.memory["tasks"].append(task_id)
        # The output completes when the task does (or is aborted by a cancel): any of these may be seen.
        results[output_id] = ResultModel(
            frozenset({CREATED, COMPLETED}), "armonik.tasks.lifecycle", task_output=True
        )
        task = self.env.rpc("Tasks.GetTask", {"task_id": task_id})
        expect_codes(task, {"OK"}, "armonik.tasks.lifecycle", "reading a submitted task")
        status = self.status_name(TASK_ENUM, task.response.task.status)
        if status not in self.env.rpc.registry.enum(TASK_ENUM).values_by_name:
            raise fail(self.TASK_DOMAIN_RULE, task, "task.status in TaskStatus", status)
        if task.response.task.session_id != entity.key:
            raise fail(
                "armonik.tasks.output", task, f"task.session_id {entity.key!r}", task.response.task.session_id
            )
