"""The harness reads a refusal as data: code, message and the google.rpc.Status details decoded by type
(what ``error:`` expectations of counter-examples and ``reply:`` of steps that expect a code check)."""

from __future__ import annotations

from protoconform.conformance.caller import Caller
from protoconform.conformance.target import Target
from protoconform.specs.registry import default_registry
from test_flyte_events import Propeller, at, run  # noqa: F401  (the fixture)


def test_a_refused_event_shows_its_failure_reason(run: Propeller) -> None:  # noqa: F811
    run.workflow("QUEUED", 0)
    run.workflow("SUCCEEDED", 1)
    target = Target(run.admin.server.grpc_address)
    channel = target.channel()
    try:
        rpc = Caller(channel, default_registry(), target)
        event = {
            "execution_id": run.execution,
            "phase": "RUNNING",
            "occurred_at": at(2),
            "producer_id": "propeller",
        }
        refused = rpc("AdminService.CreateWorkflowEvent", {"event": event})
        accepted = rpc("AdminService.GetExecution", {"id": run.execution})
    finally:
        channel.close()
    view = refused.error_view(rpc.registry)
    assert view["code"] == "FAILED_PRECONDITION" and view["message"] == refused.message
    assert view["details"] == [
        {
            "@type": "flyteidl.admin.EventFailureReason",
            "already_in_terminal_state": {"current_phase": "SUCCEEDED"},
        }
    ]
    assert accepted.ok and accepted.error_view(rpc.registry)["details"] == []
