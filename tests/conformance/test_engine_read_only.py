"""`check --read-only` makes no call that changes state, as the mock's journal shows."""

from __future__ import annotations

from pathlib import Path

from engine_support import Engine, engine_server, run_check  # noqa: F401
from protoconform.conformance.caller import Caller
from protoconform.conformance.examples import book
from protoconform.conformance.target import Target
from protoconform.specs.registry import default_registry

# Methods whose names say "create" but that only sign a URL to existing data (nothing is stored).
NAMED_LIKE_WRITES = {
    "flyteidl.service.DataProxyService.CreateDownloadLink",
    "flyteidl.service.DataProxyService.CreateDownloadLocation",
}
# Verbs of methods that change state, as an independent cross-check of effects.yaml.
CHANGING_VERBS = (
    "Create",
    "Submit",
    "Delete",
    "Cancel",
    "Pause",
    "Resume",
    "Close",
    "Purge",
    "Stop",
    "Upload",
    "Import",
    "Archive",
    "Unarchive",
    "Terminate",
    "Retry",
    "Report",
    "Notify",
    "Process",
)


def _snapshot(rpc: Caller, session_id: str, run_id: str) -> tuple:
    sessions = rpc(
        "Sessions.ListSessions",
        {
            "page_size": 100,
            "filters": {},
            "sort": {
                "field": {"session_raw_field": {"field": "SESSION_RAW_ENUM_FIELD_SESSION_ID"}},
                "direction": "SORT_DIRECTION_ASC",
            },
        },
    )
    runs = rpc("RunService.ListRuns", {"page_size": 100})
    session = rpc("Sessions.GetSession", {"session_id": session_id})
    run = rpc("RunService.GetRun", {"run_id": run_id})
    return (
        sessions.response.total,
        sorted(s.session_id for s in sessions.response.sessions),
        runs.response.total_size,
        session.response.session.status,
        run.response.run.storage_state,
    )


def test_read_only_run_changes_nothing(engine_server: Engine, tmp_path: Path) -> None:  # noqa: F811
    control = engine_server.control
    control.reset(defects=True)
    target = Target(engine_server.grpc)
    rpc = Caller(target.channel(), default_registry(), target)
    session = rpc(
        "Sessions.CreateSession",
        {"default_task_option": {"max_duration": "60s", "max_retries": 1, "priority": 1}},
    )
    manifest = (
        '{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","spec":{"entrypoint":"m","templates":[]}}'
    )
    run = rpc(
        "RunService.CreateRun", {"run": {"name": "kept", "pipeline_spec": {"workflow_manifest": manifest}}}
    )
    assert session.ok and run.ok, (session.status(), run.status())
    before = _snapshot(rpc, session.response.session_id, run.response.run.id)
    mark = control.last_seq()

    result = run_check(["--read-only", "--api", "all"], tmp_path, engine=engine_server)
    assert result.status == 0, result.stdout[-4000:]
    assert result.report is not None
    assert result.report["totals"]["failed"] == 0
    assert result.report["totals"]["passed"] > 50  # it did check things
    skipped = [c for c in result.report["cases"] if c["reason"].startswith("read-only run")]
    assert skipped, "no case was left out: does the run know which calls change state?"

    calls = control.journal(since=mark)
    assert calls, "the read-only run called nothing"
    called = {entry["method"] for entry in calls}
    registry = default_registry()
    for name in sorted(called):
        method = registry.method(name)
        assert not book(method.family).mutating(name), f"{name} changes state (effects.yaml)"
        assert name in NAMED_LIKE_WRITES or not method.name.startswith(CHANGING_VERBS), name
    after = _snapshot(rpc, session.response.session_id, run.response.run.id)
    assert after == before
    rpc.channel.close()
