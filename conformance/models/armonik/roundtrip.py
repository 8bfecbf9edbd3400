"""ArmoniK's round trips: a session's default task options and a result's metadata come back
as they were sent."""

from __future__ import annotations

from typing import Any

from protoconform.conformance.models.armonik.requests import delete_session, new_session, session_request
from protoconform.conformance.models.base import Env
from protoconform.conformance.models.roundtrip import RoundTrip

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


def results_request(env: Env) -> dict[str, Any]:
    """A CreateResultsMetaData request in a session the run's round trips share."""
    key = "armonik.roundtrip.session"
    if key not in env.cache:
        env.cache[key] = new_session(env, "result round trips")
        env.cleanup.append(lambda session=env.cache[key]: delete_session(env, session))
    return {"session_id": env.cache[key], "results": [{"name": "r"}]}


def round_trips() -> list[RoundTrip]:
    return [
        RoundTrip(
            create="Sessions.CreateSession",
            rule="armonik.sessions.output",
            base=lambda env: session_request(),
            read=lambda env, r: env.rpc("Sessions.GetSession", {"session_id": r.response.session_id}),
            pairs=tuple((f"default_task_option.{f}", f"session.options.{f}") for f in OPTION_FIELDS),
            vary=tuple(f"default_task_option.{f}" for f in OPTION_FIELDS[3:]),
            undo=lambda env, r: delete_session(env, r.response.session_id),
        ),
        RoundTrip(
            create="Results.CreateResultsMetaData",
            rule="armonik.results.create.effects",
            base=results_request,
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
