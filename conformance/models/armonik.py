"""The model of an ArmoniK control plane: sessions, their results and tasks.

Generic parts come from specs/armonik: the ``session`` state machine (every
Sessions RPC it lists, the refusal rules), the not-found rules and their codes.
What the model remembers on top, family knowledge the specs state in prose:

- a session in one of ``SUBMISSION_CLOSED`` (or after StopSubmission) refuses
  new tasks (``armonik.tasks.submission-closed``);
- results: CREATED by CreateResultsMetaData, COMPLETED with their data by
  CreateResults or an upload, DELETED by DeleteResultsData; cancelling the
  session aborts CREATED ones, purging it deletes the data of all
  (``armonik.sessions.cancel-effects``, ``armonik.sessions.purge-effects``);
- a deleted session takes its results and tasks along.
"""

from __future__ import annotations

import base64
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import grpc
from hypothesis import strategies as st
from hypothesis.stateful import rule
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import expect_codes, expect_rule, fail
from protoconform.conformance.models.listing import ListDialect, Population, Sort
from protoconform.conformance.models.machine import LifecycleMachine, Tracked
from protoconform.conformance.models.roundtrip import RoundTrip
from protoconform.conformance.models.streams import StreamCheck, StreamEnded, StreamReader

FAMILY = "armonik"
DELETED = "SESSION_STATUS_DELETED"
SUBMISSION_CLOSED = frozenset({"SESSION_STATUS_CANCELLED", "SESSION_STATUS_CLOSED", "SESSION_STATUS_PURGED"})
CREATED, COMPLETED, ABORTED, RESULT_DELETED = (
    "RESULT_STATUS_CREATED",
    "RESULT_STATUS_COMPLETED",
    "RESULT_STATUS_ABORTED",
    "RESULT_STATUS_DELETED",
)
RESULT_ENUM = "armonik.api.grpc.v1.result_status.ResultStatus"
TASK_ENUM = "armonik.api.grpc.v1.task_status.TaskStatus"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def session_request(priority: int = 1) -> dict[str, Any]:
    """A session with valid default options in the default partition."""
    return {"default_task_option": {"max_duration": "60s", "max_retries": 1, "priority": priority}}


def upload_requests(session_id: str, result_id: str, data: bytes, cuts: list[int]) -> list[dict[str, Any]]:
    """An UploadResultData stream: the identifier, then ``data`` cut at the given offsets."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)] or [b""]
    return [{"id": {"session_id": session_id, "result_id": result_id}}] + [
        {"data_chunk": b64(c)} for c in chunks
    ]


def download(env: Any, session_id: str, result_id: str) -> tuple[Reply, bytes]:
    reply = env.rpc("Results.DownloadResultData", {"session_id": session_id, "result_id": result_id})
    return reply, b"".join(r.data_chunk for r in reply.responses)


@dataclass
class ResultModel:
    """What a result may be now."""

    states: frozenset[str]
    rule: str  # the rule that says so
    data: bytes | None = None  # known data, when COMPLETED by us
    task_output: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class SessionMachine(LifecycleMachine):
    MACHINE = "session"
    SERVICE = "Sessions"
    ID_FIELD = "session_id"
    READ = "Sessions.GetSession"
    CREATE_RULE = "armonik.sessions.create.initial-state"
    DOMAIN_RULE = "armonik.sessions.status-domain"
    GONE = frozenset({DELETED})

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
        self.env.rpc("Sessions.DeleteSession", {"session_id": entity.key})

    # -- submission -------------------------------------------------------------------
    @rule(entity=LifecycleMachine.entities, client=st.booleans(), worker=st.booleans())
    def stop_submission(self, entity: Tracked, client: bool, worker: bool) -> None:
        if entity is None:
            return
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
        if entity is None:
            return
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
        self, entity: Tracked | None, data: st.DataObject, usable: Any = None
    ) -> tuple[str, ResultModel] | None:
        """A result of ``entity`` that ``usable`` accepts, or None (no entity, or no such result)."""
        if entity is None:
            return None
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
            rule_ = self.env.rule("armonik.results.download.no-data")
            expect_rule(self.env, reply, rule_, f"result is {next(iter(result.states))}")

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
        if entity is None or entity.gone:
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


def machines() -> list[type[LifecycleMachine]]:
    return [SessionMachine]


# -- lists ----------------------------------------------------------------------------------

TASK_FINAL = frozenset(
    {
        "TASK_STATUS_COMPLETED",
        "TASK_STATUS_ERROR",
        "TASK_STATUS_CANCELLED",
        "TASK_STATUS_TIMEOUT",
        "TASK_STATUS_RETRIED",
    }
)
ORDERED_TYPES = ("string", "number", "date", "status", "boolean", "duration")
TIER_KEY = "pc-tier"  # a generic task option the populations set, so filters and sorts can use it


@dataclass(frozen=True)
class FieldRef:
    """One filterable/sortable field: the member of the entity's *Field oneof, its enum (or key), its type."""

    member: str
    name: str
    type: str

    def json(self) -> dict[str, Any]:
        return {self.member: {"field": self.name}}

    def __str__(self) -> str:
        return self.name if "generic" not in self.member else f"options[{self.name}]"


def time_value(value: Any) -> tuple[int, int]:
    return (value.seconds, value.nanos)


def rfc3339(value: tuple[int, int]) -> str:
    from google.protobuf import timestamp_pb2

    return timestamp_pb2.Timestamp(seconds=value[0], nanos=value[1]).ToJsonString()


def duration_text(value: tuple[int, int]) -> str:
    from google.protobuf import duration_pb2

    return duration_pb2.Duration(seconds=value[0], nanos=value[1]).ToJsonString()


class ArmonikList(ListDialect):
    """Page-number lists filtered by an OR of ANDs of typed field conditions (specs/armonik lists.yaml)."""

    PAGINATION_RULE = TOTAL_RULE = SORT_RULE = "armonik.lists.pagination"
    FILTER_RULE = CONTAINS_RULE = "armonik.filters.semantics"

    def __init__(self, env: Any, method: str) -> None:
        super().__init__(env, method)
        contract = env.rules.lists[env.full(method)]
        self.entity: str = contract["entity"]
        self.items_field: str = contract["items"]
        self.multi = contract.get("sort") == "multi-field"
        self.fields: dict[str, Any] = env.rules.extra["fields"][self.entity]
        self.types: dict[str, Any] = env.rules.extra["filter_types"]

    # -- fields -------------------------------------------------------------------------
    def refs(self) -> list[FieldRef]:
        found = []
        for member, spec in self.fields.items():
            if isinstance(spec, dict):
                found += [FieldRef(member, name, kind) for name, kind in spec.items()]
            else:
                found.append(FieldRef(member, TIER_KEY, spec))
        return found

    def value(self, item: Any, ref: FieldRef) -> Any:
        if "generic" in ref.member:
            return item.options.options.get(ref.name) if item.HasField("options") else None
        if ref.member == "task_option_field" and not item.HasField("options"):
            return None
        holder = item.options if ref.member == "task_option_field" else item
        attr = ref.name.partition("_ENUM_FIELD_")[2].lower()
        fields = holder.DESCRIPTOR.fields_by_name
        if attr not in fields and attr == f"{self.entity}_id":
            attr = "id"
        if attr not in fields:
            return None
        field = fields[attr]
        value = getattr(holder, attr)
        if field.is_repeated:
            return list(value)
        if field.message_type is not None:
            return time_value(value) if holder.HasField(attr) else None
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, bytes):
            return None  # a bytes field listed as a string: how it compares is not documented
        return value

    def key(self, item: Any) -> str:
        if self.entity == "application":
            return "/".join([item.name, item.version, item.namespace, item.service])
        ident = self.value(item, self.id_ref()) if self.id_ref() else None
        return str(ident)

    def id_ref(self) -> FieldRef | None:
        for ref in self.refs():
            suffix = ref.name.partition("_ENUM_FIELD_")[2]
            if suffix in (f"{self.entity.upper()}_ID", "ID"):
                return ref
        return None

    # -- requests ------------------------------------------------------------------------
    def condition(self, ref: FieldRef, operator: str, value: Any) -> dict[str, Any]:
        kind = self.types[ref.type]
        if ref.type == "date":
            value = rfc3339(value)
        elif ref.type == "duration":
            value = duration_text(value)
        elif ref.type == "boolean":
            value = bool(value)
        return {"field": ref.json(), kind["condition"]: {"value": value, "operator": operator}}

    def page(
        self, population: Population, size: int, cursor: Any, sort: Sort | None, where: Any
    ) -> tuple[Reply, list[Any], Any, int]:
        page = cursor or 0
        scope: list[list[dict[str, Any]]] = population.scope or [[]]
        extra: list[list[dict[str, Any]]] = self.page_where(where) if where else [[]]
        ors = [a + b for a in scope for b in extra if a + b]
        sort = sort or self.stable_sort()
        assert sort is not None
        direction = "SORT_DIRECTION_DESC" if sort.descending else "SORT_DIRECTION_ASC"
        refs = sort.spec if isinstance(sort.spec, list) else [sort.spec]
        sort_json = (
            {"fields": [r.json() for r in refs], "direction": direction}
            if self.multi
            else {"field": refs[0].json(), "direction": direction}
        )
        request = {
            "page": page,
            "page_size": size,
            "filters": {"or": [{"and": a} for a in ors]},
            "sort": sort_json,
        }
        if "with_task_options" in self.request_type().fields_by_name:
            request["with_task_options"] = True  # so items carry the options filters and sorts read
        reply = self.env.rpc(self.METHOD, request)
        if not reply.ok:
            return reply, [], None, -1
        items = list(getattr(reply.response, self.items_field))
        total = reply.response.total
        following = page + 1 if size > 0 and (page + 1) * size < total else None
        return reply, items, following, total

    # -- sorts -----------------------------------------------------------------------------
    def stable_sort(self) -> Sort | None:
        if self.entity == "application":
            refs = [r for r in self.refs() if r.type == "string"]
            return Sort("name, version, namespace, service", refs)
        ref = self.id_ref()
        return Sort(str(ref), ref) if ref else None

    def sorts(self, items: list[Any]) -> list[Sort]:
        found = []
        for ref in self.refs():
            if ref.type not in ORDERED_TYPES or any(self.value(i, ref) is None for i in items):
                continue
            found += [Sort(str(ref), ref, False), Sort(str(ref), ref, True)]
        return found

    def sort_value(self, item: Any, sort: Sort) -> Any:
        refs = sort.spec if isinstance(sort.spec, list) else [sort.spec]
        values = [self.value(item, r) for r in refs]
        return values[0] if len(values) == 1 else tuple(values)

    # -- filters ---------------------------------------------------------------------------
    def filters(self, items: list[Any]) -> st.SearchStrategy[Any]:
        usable = [
            r
            for r in self.refs()
            if r.type in ORDERED_TYPES
            and self.filterable(r)
            and items
            and all(self.value(i, r) is not None for i in items)
        ]
        if not usable:
            return st.just([[]])

        def values_for(ref: FieldRef, operator: str) -> st.SearchStrategy[Any]:
            seen = sorted({self.value(i, ref) for i in items}, key=repr)
            if ref.type == "string":
                pieces = {v[:k] for v in seen for k in (1, 3)} | {v[-3:] for v in seen} | {"zz-none"}
                return st.sampled_from(sorted(set(seen) | pieces))
            if ref.type == "number":
                return st.sampled_from(sorted({v + d for v in seen for d in (-1, 0, 1)}))
            if ref.type == "boolean":
                return st.sampled_from([0, 1])
            if ref.type == "status":
                enum_values = (
                    [v.number for v in self.status_enum(ref).values] if self.status_enum(ref) else []
                )
                return st.sampled_from(sorted(set(seen) | set(enum_values)))
            return st.sampled_from(seen)  # date, duration: values that exist

        def conditions() -> st.SearchStrategy[dict[str, Any]]:
            return st.sampled_from(usable).flatmap(
                lambda ref: st.sampled_from(self.types[ref.type]["operators"]).flatmap(
                    lambda op: values_for(ref, op).map(lambda v: {"ref": ref, "op": op, "value": v})
                )
            )

        conjunction = st.lists(conditions(), min_size=1, max_size=2)
        return st.lists(conjunction, min_size=1, max_size=2).map(
            lambda ors: [
                [self.condition(c["ref"], c["op"], c["value"]) | {"_model": c} for c in a] for a in ors
            ]
        )

    def request_type(self) -> Any:
        return self.env.rpc.registry.message_descriptor(self.env.rpc.resolve(self.METHOD).request_type)

    def filter_field(self) -> Any:
        """The descriptor of one condition (FilterField) of this list's filters."""
        filters = self.request_type().fields_by_name["filters"].message_type
        conjunction = filters.fields_by_name["or"].message_type
        return conjunction.fields_by_name["and"].message_type

    def filterable(self, ref: FieldRef) -> bool:
        """Whether this list's FilterField has the condition the ref's type needs (the descriptors decide)."""
        return self.types[ref.type]["condition"] in self.filter_field().fields_by_name

    def status_enum(self, ref: FieldRef) -> Any:
        condition = self.filter_field().fields_by_name[self.types[ref.type]["condition"]]
        return condition.message_type.fields_by_name["value"].enum_type

    def page_where(self, where: Any) -> Any:
        return [[{k: v for k, v in c.items() if k != "_model"} for c in a] for a in where]

    def evaluate(self, where: Any, item: Any) -> bool:
        return any(all(self.holds(c["_model"], item) for c in conjunction) for conjunction in where)

    def holds(self, condition: dict[str, Any], item: Any) -> bool:
        ref, op, wanted = condition["ref"], condition["op"], condition["value"]
        actual = self.value(item, ref)
        verb = op.rpartition("_OPERATOR_")[2]
        if ref.type == "array":
            return (wanted in actual) == (verb == "CONTAINS")
        if actual is None:
            return verb == "NOT_EQUAL"
        text = {
            "EQUAL": actual == wanted,
            "NOT_EQUAL": actual != wanted,
            "IS": actual == wanted,
        }
        if verb in text:
            return bool(text[verb])
        if ref.type == "string":
            return {
                "CONTAINS": wanted in actual,
                "NOT_CONTAINS": wanted not in actual,
                "STARTS_WITH": actual.startswith(wanted),
                "ENDS_WITH": actual.endswith(wanted),
            }[verb]
        order = {
            "LESS_THAN": actual < wanted,
            "LESS_THAN_OR_EQUAL": actual <= wanted,
            "GREATER_THAN_OR_EQUAL": actual >= wanted,
            "GREATER_THAN": actual > wanted,
            "BEFORE": actual < wanted,
            "BEFORE_OR_EQUAL": actual <= wanted,
            "AFTER_OR_EQUAL": actual >= wanted,
            "AFTER": actual > wanted,
            "SHORTER_THAN": actual < wanted,
            "SHORTER_THAN_OR_EQUAL": actual <= wanted,
            "LONGER_THAN_OR_EQUAL": actual >= wanted,
            "LONGER_THAN": actual > wanted,
        }
        return bool(order[verb])

    def describe(self, where: Any) -> str:
        def one(model: dict[str, Any]) -> str:
            return f"{model['ref']} {model['op'].rpartition('_OPERATOR_')[2]} {model['value']!r}"

        return " or ".join(" and ".join(one(c["_model"]) for c in a) for a in where)

    # -- populations ---------------------------------------------------------------------------
    def populate(self) -> Population:
        maker = {
            "session": populate_sessions,
            "result": populate_results,
            "task": populate_tasks,
            "application": populate_applications,
        }.get(self.entity)
        if maker is None:  # what the server has (partitions are configured, not created)
            return Population([], None)
        key = f"armonik.population.{self.entity}"
        if key not in self.env.cache:
            self.env.cache[key] = maker(self.env)
        return self.env.cache[key]


def eq(ref_member: str, ref_name: str, value: str) -> dict[str, Any]:
    return {
        "field": {ref_member: {"field": ref_name}},
        "filter_string": {"value": value, "operator": "FILTER_STRING_OPERATOR_EQUAL"},
    }


def populate_sessions(env: Any) -> Population:
    keys = []
    for i in range(5):
        request = session_request(i + 1)
        request["default_task_option"]["application_name"] = f"{env.namespace}-app{i % 2}"
        request["default_task_option"]["options"] = {TIER_KEY: ("gold", "silver")[i % 2]}
        reply = env.rpc("Sessions.CreateSession", request)
        expect_codes(reply, {"OK"}, "armonik.sessions.create.initial-state", "populating sessions")
        keys.append(reply.response.session_id)
    for key, action in zip(keys, ["CancelSession", "PauseSession", "CloseSession"], strict=False):
        env.rpc(f"Sessions.{action}", {"session_id": key})
    scope = [[eq("session_raw_field", "SESSION_RAW_ENUM_FIELD_SESSION_ID", k)] for k in keys]
    return Population(
        keys, scope, [lambda k=k: env.rpc("Sessions.DeleteSession", {"session_id": k}) for k in keys]
    )


def _session(env: Any, what: str) -> str:
    reply = env.rpc("Sessions.CreateSession", session_request())
    expect_codes(reply, {"OK"}, "armonik.sessions.create.initial-state", f"a session for {what}")
    return reply.response.session_id


def populate_results(env: Any) -> Population:
    session = _session(env, "results")
    names = [f"{env.namespace}-r{i}" for i in range(6)]
    meta = env.rpc(
        "Results.CreateResultsMetaData",
        {
            "session_id": session,
            "results": [{"name": n, "manual_deletion": i % 2 == 0} for i, n in enumerate(names[:3])],
        },
    )
    data = env.rpc(
        "Results.CreateResults",
        {
            "session_id": session,
            "results": [{"name": n, "data": b64(n.encode() * (i + 1))} for i, n in enumerate(names[3:])],
        },
    )
    expect_codes(meta, {"OK"}, "armonik.results.create.effects", "populating results")
    expect_codes(data, {"OK"}, "armonik.results.create.effects", "populating results")
    keys = [r.result_id for r in [*meta.response.results, *data.response.results]]
    scope = [[eq("result_raw_field", "RESULT_RAW_ENUM_FIELD_SESSION_ID", session)]]
    return Population(keys, scope, [lambda: env.rpc("Sessions.DeleteSession", {"session_id": session})])


def populate_tasks(env: Any) -> Population:
    """Six tasks in one session with varied options; waits until they are all finished."""
    key = "armonik.population.task"
    if key in env.cache:
        return env.cache[key]
    session = _session(env, "tasks")
    payload = env.rpc(
        "Results.CreateResults", {"session_id": session, "results": [{"name": "payload", "data": b64(b"x")}]}
    )
    expect_codes(payload, {"OK"}, "armonik.results.create.effects", "populating tasks")
    payload_id = payload.response.results[0].result_id
    outputs = env.rpc(
        "Results.CreateResultsMetaData",
        {"session_id": session, "results": [{"name": f"out{i}"} for i in range(6)]},
    )
    expect_codes(outputs, {"OK"}, "armonik.results.create.effects", "populating tasks")
    creations = []
    for i, output in enumerate(outputs.response.results):
        options = {
            "max_duration": "60s",
            "max_retries": 1,
            "priority": i + 1,
            "application_name": f"{env.namespace}-app-{'abc'[i % 3]}",
            "application_version": str(1 + i % 2),
            "options": {TIER_KEY: ("gold", "silver")[i % 2]},
        }
        creations.append(
            {"payload_id": payload_id, "expected_output_keys": [output.result_id], "task_options": options}
        )
    reply = env.rpc("Tasks.SubmitTasks", {"session_id": session, "task_creations": creations})
    expect_codes(reply, {"OK"}, "armonik.tasks.submit.reply-order", "populating tasks")
    keys = [t.task_id for t in reply.response.task_infos]
    scope = [[eq("task_summary_field", "TASK_SUMMARY_ENUM_FIELD_SESSION_ID", session)]]
    deadline = 0
    while deadline < 40:  # until every task is finished (statuses and times then stay put)
        listing = env.rpc(
            "Tasks.ListTasks",
            {
                "page": 0,
                "page_size": 100,
                "filters": {"or": [{"and": scope[0]}]},
                "sort": {
                    "field": {"task_summary_field": {"field": "TASK_SUMMARY_ENUM_FIELD_TASK_ID"}},
                    "direction": "SORT_DIRECTION_ASC",
                },
            },
        )
        enum = env.rpc.registry.enum(TASK_ENUM)
        if listing.ok and all(
            enum.values_by_number.get(t.status) is not None
            and enum.values_by_number[t.status].name in TASK_FINAL
            for t in listing.response.tasks
        ):
            break
        env.wait(0.5)
        deadline += 1
    population = Population(keys, scope, [lambda: env.rpc("Sessions.DeleteSession", {"session_id": session})])
    env.cache[key] = population
    return population


def populate_applications(env: Any) -> Population:
    tasks = populate_tasks(env)
    prefix = f"{env.namespace}-app-"
    scope = [
        [
            {
                "field": {"application_field": {"field": "APPLICATION_RAW_ENUM_FIELD_NAME"}},
                "filter_string": {"value": prefix, "operator": "FILTER_STRING_OPERATOR_STARTS_WITH"},
            }
        ]
    ]
    keys = [f"{prefix}{c}/{v}//" for c, v in (("a", 1), ("b", 2), ("c", 1), ("a", 2), ("b", 1), ("c", 2))]
    return Population(sorted(set(keys)), scope, tasks.cleanup)


def lists(env: Any) -> list[ListDialect]:
    """A dialect for every list method of specs/armonik that has a contract."""
    found = []
    for method in env.rules.lists:
        service, _, name = method.rpartition(".")
        found.append(ArmonikList(env, f"{service.rpartition('.')[2]}.{name}"))
    return found


# -- round trips ------------------------------------------------------------------------------

OPTION_FIELDS = (
    "priority",
    "max_retries",
    "max_duration",
    "application_name",
    "application_version",
    "application_namespace",
    "application_service",
    "engine_type",
    "options",
)


def _session_for_results(env: Any) -> dict[str, Any]:
    key = "armonik.roundtrip.session"
    if key not in env.cache:
        env.cache[key] = _session(env, "result round trips")
        env.cleanup.append(lambda s=env.cache[key]: env.rpc("Sessions.DeleteSession", {"session_id": s}))
    return {"session_id": env.cache[key], "results": [{"name": "r"}]}


def roundtrips() -> list[RoundTrip]:
    return [
        RoundTrip(
            create="Sessions.CreateSession",
            rule="armonik.sessions.output",
            base=lambda env: session_request(),
            read=lambda env, r: env.rpc("Sessions.GetSession", {"session_id": r.response.session_id}),
            pairs=tuple((f"default_task_option.{f}", f"session.options.{f}") for f in OPTION_FIELDS),
            vary=tuple(f"default_task_option.{f}" for f in OPTION_FIELDS[3:]),
            undo=lambda env, r: env.rpc("Sessions.DeleteSession", {"session_id": r.response.session_id}),
        ),
        RoundTrip(
            create="Results.CreateResultsMetaData",
            rule="armonik.results.create.effects",
            base=_session_for_results,
            read=lambda env, r: env.rpc("Results.GetResult", {"result_id": r.response.results[0].result_id}),
            pairs=(
                ("session_id", "result.session_id"),
                ("results.name", "result.name"),
                ("results.manual_deletion", "result.manual_deletion"),
            ),
            vary=("results.name", "results.manual_deletion"),
            fixed=("session_id",),
        ),
    ]


# -- streams -----------------------------------------------------------------------------------

RESULT_NEW = "new_result"
RESULT_UPDATE = "result_status_update"


def _stream_session(env: Any, what: str) -> str:
    session = _session(env, what)
    env.cleanup.append(lambda: env.rpc("Sessions.DeleteSession", {"session_id": session}))
    return session


def _new_result(env: Any, session: str, name: str) -> str:
    reply = env.rpc("Results.CreateResultsMetaData", {"session_id": session, "results": [{"name": name}]})
    expect_codes(reply, {"OK"}, "armonik.results.create.effects", "a result for a stream check")
    return reply.response.results[0].result_id


def check_chunking(env: Any, run: Callable[..., None]) -> None:
    """Upload any data in any cut, download it: the chunks respect data_chunk_max_size and
    their concatenation is the data (rule armonik.results.download.chunking)."""
    rule = "armonik.results.download.chunking"
    config = env.rpc("Results.GetServiceConfiguration", {})
    expect_codes(config, {"OK"}, rule, "the chunk size the downloads must respect")
    limit = config.response.data_chunk_max_size
    if limit <= 0:
        raise fail(rule, config, "data_chunk_max_size > 0", limit)
    session = _stream_session(env, "chunking")
    sizes = st.one_of(
        st.sampled_from([0, 1, limit - 1, limit, limit + 1, 2 * limit + 3]), st.integers(0, 4096)
    )

    def trip(size: int, seed: int, cut: int) -> None:
        data = random.Random(seed).randbytes(size)
        cut = max(min(cut, limit), -(-size // 64), 1)  # at most 64 chunks up, each within the limit
        result_id = _new_result(env, session, env.unique("chunks"))
        uploaded = env.rpc(
            "Results.UploadResultData",
            requests=upload_requests(session, result_id, data, list(range(cut, size, cut))),
        )
        expect_codes(uploaded, {"OK"}, "armonik.results.upload.effects", f"uploading {size} bytes")
        if uploaded.response.result.size != size:
            raise fail(
                "armonik.results.upload.effects",
                uploaded,
                f"result.size {size}",
                uploaded.response.result.size,
            )
        reply, got = download(env, session, result_id)
        expect_codes(reply, {"OK"}, rule, f"downloading {size} bytes")
        largest = max((len(r.data_chunk) for r in reply.responses), default=0)
        if largest > limit:
            raise fail(rule, reply, f"chunks of at most {limit} bytes", f"a chunk of {largest}")
        if got != data:
            detail = f"{len(reply.responses)} chunks"
            raise fail(
                rule,
                reply,
                f"the {size} bytes uploaded",
                f"{len(got)} bytes{' (different)' * (len(got) == size)}",
                detail,
            )

    run(trip, size=sizes, seed=st.integers(0, 2**32 - 1), cut=st.integers(1, max(1, limit)))


def check_events(env: Any, run: Callable[..., None]) -> None:
    """A subscription gets the snapshot, then live events, and lasts until cancelled."""
    session = _stream_session(env, "events")
    before = _new_result(env, session, env.unique("before"))
    call = env.rpc.open("Events.GetEvents", {"session_id": session}, timeout=60)
    reader = StreamReader(call, env.rpc.history[-1])
    try:
        _expect_event(
            reader,
            "armonik.events.snapshot",
            "NewResult of the existing result",
            3.0,
            lambda e: e.WhichOneof("update") == RESULT_NEW and e.new_result.result_id == before,
        )
        after = _new_result(env, session, env.unique("after"))
        _expect_event(
            reader,
            "armonik.events.live",
            "NewResult of a result created later",
            3.0,
            lambda e: e.WhichOneof("update") == RESULT_NEW and e.new_result.result_id == after,
        )
        uploaded = env.rpc("Results.UploadResultData", requests=upload_requests(session, after, b"done", []))
        expect_codes(uploaded, {"OK"}, "armonik.results.upload.effects")
        completed = env.rpc.registry.enum(RESULT_ENUM).values_by_name[COMPLETED].number
        _expect_event(
            reader,
            "armonik.events.live",
            "ResultStatusUpdate to COMPLETED",
            3.0,
            lambda e: (
                e.WhichOneof("update") == RESULT_UPDATE
                and e.result_status_update.result_id == after
                and e.result_status_update.status == completed
            ),
        )
        try:
            reader.quiet(0.3)
        except StreamEnded as ended:
            raise fail(
                "armonik.events.never-ends",
                reader.reply,
                "the stream open until cancelled",
                f"closed with {ended.code.name}",
            ) from None
    finally:
        reader.cancel()
    if not reader.ended(5.0) or reader.code != grpc.StatusCode.CANCELLED:
        raise fail(
            "armonik.events.never-ends",
            reader.reply,
            "the stream cancelled when the client cancels",
            reader.code.name if reader.code else "still open",
        )


def _expect_event(
    reader: StreamReader, rule: str, what: str, timeout: float, predicate: Callable[[Any], bool]
) -> None:
    try:
        event = reader.wait_for(predicate, timeout)
    except StreamEnded as ended:
        raise fail(
            "armonik.events.never-ends",
            reader.reply,
            f"the stream open (waiting for {what})",
            f"closed with {ended.code.name} after {len(reader.received)} events",
        ) from None
    if event is None:
        raise fail(
            rule, reader.reply, what, f"nothing within {timeout:g}s ({len(reader.received)} other events)"
        )


def check_deadline(env: Any, run: Callable[..., None]) -> None:
    """A subscription with a deadline lasts until the deadline: the server does not end it first."""
    session = _stream_session(env, "deadline")
    _new_result(env, session, env.unique("seen"))
    deadline = 0.8
    started = time.monotonic()
    reply = env.rpc("Events.GetEvents", {"session_id": session}, timeout=deadline)
    elapsed = time.monotonic() - started
    if reply.code != grpc.StatusCode.DEADLINE_EXCEEDED or elapsed < deadline * 0.9:
        raise fail(
            "armonik.events.never-ends",
            reply,
            f"DEADLINE_EXCEEDED after {deadline:g}s",
            f"{reply.code.name} after {elapsed:.2f}s ({len(reply.responses)} events)",
        )


def check_watch(env: Any, run: Callable[..., None]) -> None:
    """WatchResults answers the current status of watched ids at once."""
    rule = env.rule("armonik.results.watch")
    session = _stream_session(env, "watch")
    result_id = _new_result(env, session, env.unique("watched"))
    request = {"fetch_statuses": [CREATED], "watch_statuses": [COMPLETED], "result_ids": [result_id]}
    reply = env.rpc("Results.WatchResults", requests=[request], window=1.0, max_responses=1)
    if reply.code.name != "OK":
        expect_rule(env, reply, rule)  # a documented real-server answer (UNIMPLEMENTED) passes when lenient
        return
    if not reply.responses:
        raise fail(rule, reply, f"the status of {result_id}", "no answer")
    first = reply.responses[0]
    created = env.rpc.registry.enum(RESULT_ENUM).values_by_name[CREATED].number
    if first.status != created or list(first.result_ids) != [result_id]:
        raise fail(
            rule, reply, f"{CREATED} for [{result_id}]", f"{first.status} for {list(first.result_ids)}"
        )


def streams() -> list[StreamCheck]:
    return [
        StreamCheck(
            "chunking", "Results.DownloadResultData", "armonik.results.download.chunking", check_chunking
        ),
        StreamCheck("events", "Events.GetEvents", "armonik.events.live", check_events),
        StreamCheck("deadline", "Events.GetEvents", "armonik.events.never-ends", check_deadline),
        StreamCheck("watch", "Results.WatchResults", "armonik.results.watch", check_watch),
    ]
