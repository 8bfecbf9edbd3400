"""ArmoniK's names and request builders, shared by the machine, the lists, the round trips and
the stream checks: status names, sessions and results made for a check, uploads, downloads."""

from __future__ import annotations

import base64
import itertools
from typing import Any

from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import Env, expect_codes

SESSION_DELETED = "SESSION_STATUS_DELETED"
SUBMISSION_CLOSED = frozenset({"SESSION_STATUS_CANCELLED", "SESSION_STATUS_CLOSED", "SESSION_STATUS_PURGED"})
CREATED, COMPLETED, ABORTED, RESULT_DELETED = (
    "RESULT_STATUS_CREATED",
    "RESULT_STATUS_COMPLETED",
    "RESULT_STATUS_ABORTED",
    "RESULT_STATUS_DELETED",
)
RESULT_ENUM = "armonik.api.grpc.v1.result_status.ResultStatus"
TASK_ENUM = "armonik.api.grpc.v1.task_status.TaskStatus"
TIER_KEY = "pc-tier"  # a generic task option the populations set, so filters and sorts can use it


def b64(data: bytes) -> str:
    """Bytes as protojson carries them."""
    return base64.b64encode(data).decode()


def session_request(priority: int = 1) -> dict[str, Any]:
    """A session with valid default options in the default partition."""
    return {"default_task_option": {"max_duration": "60s", "max_retries": 1, "priority": priority}}


def new_session(env: Env, what: str) -> str:
    """The id of a new session with default options (``what`` it is for goes into a failure)."""
    reply = env.rpc("Sessions.CreateSession", session_request())
    expect_codes(reply, {"OK"}, "armonik.sessions.create.initial-state", f"a session for {what}")
    return reply.response.session_id


def delete_session(env: Env, session_id: str) -> Reply:
    return env.rpc("Sessions.DeleteSession", {"session_id": session_id})


def stream_session(env: Env, what: str) -> str:
    """A new session for a check, deleted when the check's environment is cleaned up."""
    session = new_session(env, what)
    env.cleanup.append(lambda: delete_session(env, session))
    return session


def new_result(env: Env, session_id: str, name: str) -> str:
    """The id of a new result without data (CREATED) in ``session_id``."""
    reply = env.rpc("Results.CreateResultsMetaData", {"session_id": session_id, "results": [{"name": name}]})
    expect_codes(reply, {"OK"}, "armonik.results.create.effects", "a result for a stream check")
    return reply.response.results[0].result_id


def upload_requests(session_id: str, result_id: str, data: bytes, cuts: list[int]) -> list[dict[str, Any]]:
    """An UploadResultData stream: the identifier, then ``data`` cut at the given offsets."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    chunks = [data[start:end] for start, end in itertools.pairwise(bounds)] or [b""]
    return [{"id": {"session_id": session_id, "result_id": result_id}}] + [
        {"data_chunk": b64(chunk)} for chunk in chunks
    ]


def download(env: Env, session_id: str, result_id: str) -> tuple[Reply, bytes]:
    """DownloadResultData: the reply and the concatenated chunks."""
    reply = env.rpc("Results.DownloadResultData", {"session_id": session_id, "result_id": result_id})
    return reply, b"".join(r.data_chunk for r in reply.responses)


def string_equals(field_member: str, field_name: str, value: str) -> dict[str, Any]:
    """A list filter condition: the string field ``field_name`` (a ``field_member``) equals ``value``."""
    return {
        "field": {field_member: {"field": field_name}},
        "filter_string": {"value": value, "operator": "FILTER_STRING_OPERATOR_EQUAL"},
    }
