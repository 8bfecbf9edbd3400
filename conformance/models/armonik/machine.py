"""The ArmoniK session machine: sessions, their results and tasks.

Generic parts come from specs/armonik: the ``session`` state machine (every
Sessions RPC it lists, the refusal rules), the not-found rules and their codes.
What the machine remembers on top, family knowledge the specs state in prose:

- a new session is RUNNING, open for submission, with its creation time
  (``armonik.sessions.create.initial-state``); StopSubmission, Cancel, Close and
  Purge close client submission, which refuses new tasks
  (``armonik.sessions.stop-submission``, ``armonik.tasks.submission-closed``);
  Close sets closed_at and duration = closed_at - created_at
  (``armonik.sessions.close-effects``);
- results: CREATED by CreateResultsMetaData, COMPLETED with their data by
  CreateResults or an upload (a refused upload stores nothing), DELETED by
  DeleteResultsData; cancelling the session aborts CREATED ones, purging it
  deletes the data of all; each result's owner (``armonik.results.*``,
  ``armonik.sessions.cancel-effects``, ``armonik.sessions.purge-effects``);
- tasks (:mod:`.task_rules`, :mod:`.tasks`): submitted in order with their options merged
  (``armonik.tasks.submit.reply-order``, ``armonik.tasks.options-inheritance``),
  moving on their own along the lifecycle as their inputs get data, paused and
  resumed with their session, cancelled with it or by CancelTasks (unknown ids
  ignored, outputs aborted, dependent tasks cancelled), counted by status, their
  outputs and statuses looked up (``armonik.tasks.*``, ``armonik.submitter.status-lookups``);
- a deleted session takes its results and tasks along.
"""

from __future__ import annotations

from typing import Any, ClassVar

from google.protobuf import json_format
from hypothesis import strategies as st
from hypothesis.stateful import rule
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.armonik import tasks as tk
from protoconform.conformance.models.armonik.requests import (
    ABORTED,
    COMPLETED,
    CREATED,
    RESULT_DELETED,
    RESULT_ENUM,
    SESSION_DELETED,
    SUBMISSION_CLOSED,
    b64,
    delete_session,
    download,
    session_request,
    upload_requests,
)
from protoconform.conformance.models.armonik.task_rules import TaskRules
from protoconform.conformance.models.armonik.tasks import ANY_RESULT, ResultModel
from protoconform.conformance.models.base import expect_codes, expect_rule, fail
from protoconform.conformance.models.machine import LifecycleMachine, Tracked

__all__ = ["ResultModel", "SessionMachine"]


class SessionMachine(TaskRules, LifecycleMachine):
    MACHINE = "session"
    SERVICE = "Sessions"
    ID_FIELD = "session_id"
    READ = "Sessions.GetSession"
    CREATE_RULE = "armonik.sessions.create.initial-state"
    DOMAIN_RULE = "armonik.sessions.status-domain"
    GONE = frozenset({SESSION_DELETED})

    STOP_RULE: ClassVar[str] = "armonik.sessions.stop-submission"
    CANCEL_RULE: ClassVar[str] = "armonik.sessions.cancel-effects"
    CLOSE_RULE: ClassVar[str] = "armonik.sessions.close-effects"
    PAUSE_RULE: ClassVar[str] = "armonik.sessions.pause-effects"
    PURGE_RULE: ClassVar[str] = "armonik.sessions.purge-effects"
    UPLOAD_RULE: ClassVar[str] = "armonik.results.upload.effects"
    REPEATED_ID_RULE: ClassVar[str] = "armonik.results.upload.id-repeated"
    DOWNLOAD_RULE: ClassVar[str] = "armonik.results.download.chunking"
    DELETE_DATA_RULE: ClassVar[str] = "armonik.results.delete-data"
    OWNER_RULE: ClassVar[str] = "armonik.results.owner.unknown-omitted"
    RESULT_OUTPUT_RULE: ClassVar[str] = "armonik.results.output"
    RESULT_DOMAIN_RULE: ClassVar[str] = "armonik.results.status-domain"

    # -- entity ---------------------------------------------------------------------
    def create_entity(self, data: st.DataObject) -> Tracked:
        return self.create_variant(0, data.draw(st.integers(1, 99), label="priority"))

    def create_variant(self, variant: int, priority: int = 1) -> Tracked:
        request = session_request(priority)
        reply = self.env.rpc("Sessions.CreateSession", request)
        expect_codes(reply, {"OK"}, self.CREATE_RULE, "a session with valid default options")
        entity = self.track(
            reply.response.session_id,
            client=True,
            results={},
            tasks={},
            defaults=request["default_task_option"],
        )
        read = self.env.rpc(self.READ, {"session_id": entity.key})
        expect_codes(read, {"OK"}, self.CREATE_RULE, "reading a new session")
        session = read.response.session
        wrong = [
            what
            for what, bad in (
                ("status SESSION_STATUS_RUNNING", self.session_status(session) != self.lifecycle.initial),
                ("client_submission true", not session.client_submission),
                ("worker_submission true", not session.worker_submission),
                ("created_at set", not session.HasField("created_at")),
            )
            if bad
        ]
        if wrong:
            raise fail(
                self.CREATE_RULE, read, ", ".join(wrong), json_format.MessageToJson(session, indent=None)
            )
        self.env.covered(self.CREATE_RULE)
        entity.memory["defaults"] = {
            **entity.memory["defaults"],
            "partition_id": session.options.partition_id,
        }
        return entity

    def session_status(self, session: Any) -> str:
        return self.status_name(self.lifecycle.machine.enum, session.status)

    def read(self, entity: Tracked) -> tuple[Reply, str | None]:
        reply = self.env.rpc(self.READ, {"session_id": entity.key})
        if not reply.ok:
            return reply, None
        return reply, self.session_status(reply.response.session)

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
        if entity.memory.get("stopped"):
            self.env.covered(self.STOP_RULE)

    def after_action(self, entity: Tracked, action: str, reply: Reply) -> None:
        response = reply.response
        session = None
        if "session" in response.DESCRIPTOR.fields_by_name and response.HasField("session"):
            session = response.session
            state = self.session_status(session)
            if state not in entity.states:
                raise fail(entity.rule, reply, f"session.status in {sorted(entity.states)}", state)
        closed = entity.states & SUBMISSION_CLOSED
        if closed and entity.states <= SUBMISSION_CLOSED | self.GONE:
            entity.memory["client"] = False
        if session is not None:
            self.check_session_effect(entity, action, session, reply)
        results: dict[str, ResultModel] = entity.memory["results"]
        tasks: dict[str, tk.TaskModel] = entity.memory["tasks"]
        if action == "CancelSession":
            for result in results.values():
                if CREATED in result.states:
                    result.states = (result.states - {CREATED}) | {ABORTED}
                    result.rule = self.CANCEL_RULE
            for task in tasks.values():
                task.states, task.rule = tk.cancelled(task.states), self.CANCEL_RULE
        elif action == "PurgeSession":
            for result in results.values():
                result.states, result.rule, result.data = frozenset({RESULT_DELETED}), self.PURGE_RULE, None
        elif action == "PauseSession":
            for task in tasks.values():
                if task.judged and task.states & tk.QUEUED:
                    task.states, task.rule = (task.states - tk.QUEUED) | {tk.PAUSED}, self.PAUSE_RULE
        elif action == "ResumeSession":
            for task in tasks.values():
                if task.judged and tk.PAUSED in task.states:
                    task.states, task.rule = (task.states - {tk.PAUSED}) | {tk.SUBMITTED}, self.PAUSE_RULE
        self.refresh(entity)

    def check_session_effect(self, entity: Tracked, action: str, session: Any, reply: Reply) -> None:
        """The fields a successful transition sets (its reply is the session afterwards)."""
        stamp = {"CancelSession": "cancelled_at", "CloseSession": "closed_at", "PurgeSession": "purged_at"}
        rule = {
            "CancelSession": self.CANCEL_RULE,
            "CloseSession": self.CLOSE_RULE,
            "PurgeSession": self.PURGE_RULE,
        }.get(action)
        if rule is None:
            return
        if not session.HasField(stamp[action]):
            raise fail(rule, reply, f"session.{stamp[action]} set", "unset")
        if session.client_submission:
            raise fail(rule, reply, "session.client_submission false", "true")
        if action == "CloseSession":
            expected = session.closed_at.ToNanoseconds() - session.created_at.ToNanoseconds()
            got = session.duration.ToNanoseconds() if session.HasField("duration") else None
            if got is None or abs(got - expected) > 1_000_000:  # times may be stored to the millisecond
                shown = "unset" if got is None else session.duration.ToJsonString()
                raise fail(
                    rule, reply, f"session.duration = closed_at - created_at ({expected / 1e9:g}s)", shown
                )
        self.env.covered(rule)

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
        session = reply.response.session
        if (client and session.client_submission) or (worker and session.worker_submission):
            raise fail(
                self.STOP_RULE,
                reply,
                f"submission closed as asked (client={client}, worker={worker})",
                f"client {session.client_submission}, worker {session.worker_submission}",
            )
        if client:
            entity.memory["client"] = False
            entity.memory["stopped"] = True
        self.env.covered(self.STOP_RULE)

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
        self.results_of(entity)[created[0].result_id] = ResultModel(
            frozenset({CREATED if payload is None else COMPLETED}),
            self.RESULTS_RULE,
            payload,
            owner="" if payload is None else entity.key,
        )

    def pick_result(
        self, entity: Tracked, data: st.DataObject, usable: Any = None
    ) -> tuple[str, ResultModel] | None:
        """A result of ``entity`` that ``usable`` accepts, or None (no such result)."""
        results = self.results_of(entity)
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
        if states != ANY_RESULT:
            if status not in states:
                raise fail(rule_id, reply, f"result.status in {sorted(states)}", status)
            self.env.covered(rule_id)
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
        if result.judged:
            result.states = frozenset({self.status_name(RESULT_ENUM, reply.response.result.status)})
            self.refresh(entity)  # an output still CREATED may complete later

    @rule(
        entity=LifecycleMachine.entities,
        data=st.data(),
        payload=st.binary(max_size=256),
        cuts=st.lists(st.integers(1, 255), max_size=4),
        refused=st.booleans(),
    )
    def upload(
        self, entity: Tracked, data: st.DataObject, payload: bytes, cuts: list[int], refused: bool
    ) -> None:
        picked = self.pick_result(
            entity, data, lambda r: r.states <= {CREATED, COMPLETED} and not r.task_output
        )
        if picked is None:
            return
        key, result = picked
        requests = upload_requests(entity.key, key, payload, cuts)
        if refused:  # an identifier after the data: the whole stream is refused
            requests.append(requests[0])
        reply = self.env.rpc("Results.UploadResultData", requests=requests)
        if entity.gone:
            self.expect_gone(reply, "session_id")
            return
        if refused:
            expect_rule(self.env, reply, self.env.rule(self.REPEATED_ID_RULE), "an identifier after data")
            return  # nothing stored: later reads and downloads see the result as it was
        expect_codes(reply, {"OK"}, self.UPLOAD_RULE, "uploading to a CREATED or COMPLETED result")
        raw = reply.response.result
        if raw.size != len(payload):
            raise fail(self.UPLOAD_RULE, reply, f"result.size {len(payload)}", raw.size)
        self.env.covered(self.UPLOAD_RULE)
        result.states, result.rule, result.data = frozenset({COMPLETED}), self.UPLOAD_RULE, payload
        self.refresh(entity)  # the tasks waiting for it may go on

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
            expect_codes(reply, {"OK"}, result.rule, "downloading stored data")
            if got != result.data:
                raise fail(result.rule, reply, f"{len(result.data)} bytes as stored", f"{len(got)} bytes")
            self.env.covered(result.rule, self.DOWNLOAD_RULE)
        elif result.data is None and result.states <= {CREATED, ABORTED, RESULT_DELETED}:
            no_data_rule = self.env.rule("armonik.results.download.no-data")
            expect_rule(self.env, reply, no_data_rule, f"result is {next(iter(result.states))}")

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def delete_data(self, entity: Tracked, data: st.DataObject) -> None:
        picked = self.pick_result(entity, data)
        if picked is None:
            return
        key, result = picked
        unknown = self.fresh_id(data)
        reply = self.env.rpc(
            "Results.DeleteResultsData", {"session_id": entity.key, "result_id": [key, unknown]}
        )
        expect_codes(reply, {"OK"}, self.DELETE_DATA_RULE, "unknown ids are ignored" if entity.gone else "")
        if list(reply.response.result_id) != [key, unknown]:
            raise fail(
                self.DELETE_DATA_RULE, reply, f"result_id echoed {[key, unknown]}", reply.response.result_id
            )
        if entity.gone:
            return
        result.states, result.rule, result.data = frozenset({RESULT_DELETED}), self.DELETE_DATA_RULE, None
        self.refresh(entity)

    @rule(entity=LifecycleMachine.entities, data=st.data())
    def owners(self, entity: Tracked, data: st.DataObject) -> None:
        """GetOwnerTaskId: the owner of each known result of the session, unknown ids left out."""
        known = [k for k, r in self.results_of(entity).items() if r.owner is not None]
        chosen = (
            data.draw(st.lists(st.sampled_from(known), max_size=3, unique=True), label="results")
            if known
            else []
        )
        unknown = self.fresh_id(data)
        reply = self.env.rpc(
            "Results.GetOwnerTaskId", {"session_id": entity.key, "result_id": [*chosen, unknown]}
        )
        expect_codes(reply, {"OK"}, self.OWNER_RULE, "looking up owners")
        results = self.results_of(entity)
        expected = {} if entity.gone else {k: results[k].owner for k in chosen}
        entries = list(reply.response.result_task)
        if self.env.lenient:  # the real server names each entry by the result's name: owners only
            got: Any = sorted(e.task_id for e in entries)
            want: Any = sorted(expected.values())
        else:
            got = {e.result_id: e.task_id for e in entries}
            want = expected
        if got != want or len(entries) != len(expected):
            raise fail(self.OWNER_RULE, reply, f"owners {want}", got)
        self.env.covered(self.OWNER_RULE)

    # -- tasks -------------------------------------------------------------------------
