"""Sessions: creation rules, the state machine of every transition from every status, submission flags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from akutil import Stubs, create_data, create_session, rpc_error, submit, task_options
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common.session_status_pb2 import SessionStatus
from protoconform.specs import rules

FP = grpc.StatusCode.FAILED_PRECONDITION
STATES = ("RUNNING", "PAUSED", "CLOSED", "CANCELLED", "PURGED")
# ArmoniK.Core's transitions (from each status, in STATES order); FP = refused with FAILED_PRECONDITION.
EXPECTED = {
    "CancelSession": ("CANCELLED", "CANCELLED", "CANCELLED", FP, FP),
    "PauseSession": ("PAUSED", FP, FP, FP, FP),
    "ResumeSession": ("RUNNING", "RUNNING", FP, FP, FP),
    "CloseSession": ("CLOSED", "CLOSED", FP, FP, FP),
    "PurgeSession": (FP, FP, "PURGED", "PURGED", FP),
}


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    return {"partitions": ["default", "gpu:priority=5"]}


def _call(stubs: Stubs, action: str, session_id: str) -> sc.SessionRaw:
    name = (
        "StopSubmissionRequest" if action == "StopSubmission" else action.replace("Session", "SessionRequest")
    )
    request_class = getattr(sc, name)
    return getattr(stubs.sessions, action)(request_class(session_id=session_id)).session


def _session_in(stubs: Stubs, status: str) -> str:
    sid = create_session(stubs)
    path: dict[str, list[str]] = {
        "RUNNING": [],
        "PAUSED": ["PauseSession"],
        "CLOSED": ["CloseSession"],
        "CANCELLED": ["CancelSession"],
        "PURGED": ["CloseSession", "PurgeSession"],
    }
    for action in path[status]:
        _call(stubs, action, sid)
    assert _call(stubs, "GetSession", sid).status == SessionStatus.Value(f"SESSION_STATUS_{status}")
    return sid


@pytest.mark.parametrize("action", sorted(EXPECTED))
def test_transition_table(stubs: Stubs, action: str) -> None:
    machine = rules.load("armonik").state_machines["session"]
    for current, expected in zip(STATES, EXPECTED[action], strict=True):
        sid = _session_in(stubs, current)
        # the specs say the same as the table
        spec_target = machine.target(action, f"SESSION_STATUS_{current}")
        assert spec_target == (None if expected is FP else f"SESSION_STATUS_{expected}"), (action, current)
        if expected is FP:
            error = rpc_error(_call, stubs, action, sid)
            assert error.code() == FP, (action, current)
            assert error.details().startswith("session_id:")
            assert f"SESSION_STATUS_{current}" in error.details()  # names the current status ...
            requested = machine.transitions[action][next(iter(machine.transitions[action]))]
            assert requested in error.details()  # ... and the requested one
            assert _call(stubs, "GetSession", sid).status == SessionStatus.Value(f"SESSION_STATUS_{current}")
        else:
            reply = _call(stubs, action, sid)
            assert reply.status == SessionStatus.Value(f"SESSION_STATUS_{expected}")
            assert _call(stubs, "GetSession", sid).status == reply.status


def test_pause_of_closed_session_records_the_real_code() -> None:
    rule = rules.load("armonik").rule("armonik.sessions.pause-resume-closed")
    assert rule.code == "FAILED_PRECONDITION" and rule.real_code == "UNKNOWN"


def test_delete_from_every_status_and_for_unknown_ids(stubs: Stubs) -> None:
    for status in STATES:
        sid = _session_in(stubs, status)
        reply = _call(stubs, "DeleteSession", sid)
        assert reply.status == SessionStatus.SESSION_STATUS_DELETED and reply.deleted_at.seconds > 0
        assert rpc_error(_call, stubs, "GetSession", sid).code() == grpc.StatusCode.NOT_FOUND
    unknown = _call(stubs, "DeleteSession", "no-such-session")
    assert (
        unknown.session_id == "no-such-session" and unknown.status == SessionStatus.SESSION_STATUS_UNSPECIFIED
    )


@pytest.mark.parametrize("action", [*sorted(EXPECTED), "GetSession", "StopSubmission"])
def test_unknown_session_is_not_found(stubs: Stubs, action: str) -> None:
    error = rpc_error(_call, stubs, action, "no-such-session")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "session_id: session 'no-such-session' was not found"


def test_created_session(stubs: Stubs) -> None:
    sid = create_session(stubs, partitions=["default", "gpu"], priority=3)
    session = _call(stubs, "GetSession", sid)
    assert session.status == SessionStatus.SESSION_STATUS_RUNNING
    assert session.client_submission and session.worker_submission
    assert list(session.partition_ids) == ["default", "gpu"]
    assert session.options.priority == 3 and session.options.partition_id == "default"
    assert session.created_at.seconds > 0
    closed = _call(stubs, "CloseSession", sid)
    assert closed.closed_at.ToDatetime() >= closed.created_at.ToDatetime()
    assert closed.duration.ToTimedelta() == closed.closed_at.ToDatetime() - closed.created_at.ToDatetime()
    assert not closed.client_submission and not closed.worker_submission


def _create(
    stubs: Stubs, options: object | None, partitions: list[str] | None = None
) -> Callable[[], object]:
    request = sc.CreateSessionRequest(partition_ids=partitions or [])
    if options is not None:
        request.default_task_option.CopyFrom(options)
    return lambda: stubs.sessions.CreateSession(request)


@pytest.mark.parametrize(
    ("options", "partitions", "code", "field"),
    [
        (None, [], grpc.StatusCode.INVALID_ARGUMENT, "default_task_option: is required"),
        (
            task_options(max_retries=0),
            [],
            grpc.StatusCode.INVALID_ARGUMENT,
            "default_task_option.max_retries",
        ),
        (task_options(priority=0), [], grpc.StatusCode.INVALID_ARGUMENT, "default_task_option.priority"),
        (task_options(priority=100), [], grpc.StatusCode.INVALID_ARGUMENT, "default_task_option.priority"),
        (
            task_options(seconds=0).__class__(max_retries=1, priority=1),
            [],
            grpc.StatusCode.INVALID_ARGUMENT,
            "default_task_option.max_duration",
        ),
        (task_options(), ["nope"], grpc.StatusCode.NOT_FOUND, "partition_ids[0]: partition 'nope'"),
        (task_options(), ["gpu", "gpu"], grpc.StatusCode.NOT_FOUND, "partition_ids[1]"),
        (
            task_options(partition_id="nope"),
            [],
            grpc.StatusCode.NOT_FOUND,
            "default_task_option.partition_id",
        ),
    ],
)
def test_create_refusals_leave_no_session(stubs: Stubs, options, partitions, code, field) -> None:
    before = stubs.sessions.ListSessions(_all_sessions()).total
    error = rpc_error(_create(stubs, options, partitions))
    assert error.code() == code
    assert error.details().startswith(field)
    assert stubs.sessions.ListSessions(_all_sessions()).total == before


def test_zero_max_duration_is_given(stubs: Stubs) -> None:
    # a set but zero Duration is present on the wire: the real validator only wants it non-null
    assert _create(stubs, task_options(seconds=0))().session_id


def _all_sessions() -> sc.ListSessionsRequest:
    from armonik.common import Session
    from armonik.common.filter import SessionFilter

    return sc.ListSessionsRequest(
        page_size=0,
        filters=SessionFilter().to_message(),
        sort=sc.ListSessionsRequest.Sort(field=Session.session_id.field, direction=1),
    )


def test_stop_submission_flags(stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    reply = stubs.sessions.StopSubmission(sc.StopSubmissionRequest(session_id=sid, worker=True)).session
    assert reply.client_submission and not reply.worker_submission
    assert submit(stubs, sid, payload, [])  # clients may still submit
    reply = stubs.sessions.StopSubmission(sc.StopSubmissionRequest(session_id=sid, client=True)).session
    assert not reply.client_submission and reply.status == SessionStatus.SESSION_STATUS_RUNNING
    error = rpc_error(submit, stubs, sid, payload, [])
    assert error.code() == FP and "client submission is closed" in error.details()


def test_session_list_with_task_options(stubs: Stubs) -> None:
    sid = create_session(stubs, priority=4)
    request = _all_sessions()
    request.page_size = 10
    assert not stubs.sessions.ListSessions(request).sessions[0].HasField("options")
    request.with_task_options = True
    listed = stubs.sessions.ListSessions(request).sessions[0]
    assert listed.session_id == sid and listed.options.priority == 4
