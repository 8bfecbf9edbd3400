"""The mock's control API through its Python client: reset, journal, counts, defect modes, clock."""

from __future__ import annotations

import base64

import grpc
import pytest
import requests
from engine_support import Engine, engine_server  # noqa: F401
from protoconform.conformance.caller import Caller
from protoconform.conformance.control import ControlError
from protoconform.conformance.target import Target
from protoconform.specs.registry import default_registry

SESSION = {"default_task_option": {"max_duration": "60s", "max_retries": 1, "priority": 1}}


@pytest.fixture
def engine(engine_server: Engine) -> Engine:  # noqa: F811
    engine_server.control.reset(defects=True)
    return engine_server


@pytest.fixture
def rpc(engine: Engine) -> Caller:
    target = Target(engine.grpc)
    channel = target.channel()
    yield Caller(channel, default_registry(), target)
    channel.close()


def test_defect_catalogue_lists_every_family(engine: Engine) -> None:
    catalogue = engine.control.defects()
    assert len(catalogue) >= 12
    assert {name.split(".")[0] for name in catalogue} >= {"armonik", "kfp", "rest"}
    assert all(description.strip() for description in catalogue.values())


def test_defect_switches_on_and_off_at_run_time(engine: Engine, rpc: Caller) -> None:
    name = "armonik.get-session-wrong-status-for-missing"
    missing = {"session_id": "00000000-0000-4000-8000-000000000000"}
    assert rpc("Sessions.GetSession", missing).code == grpc.StatusCode.NOT_FOUND
    with engine.control.defect(name):
        assert engine.control.active_defects() == [name]
        assert rpc("Sessions.GetSession", missing).code == grpc.StatusCode.INTERNAL
    assert engine.control.active_defects() == []
    assert rpc("Sessions.GetSession", missing).code == grpc.StatusCode.NOT_FOUND


def test_unknown_defect_is_refused(engine: Engine) -> None:
    with pytest.raises(ControlError, match="404"):
        engine.control.set_defect("no.such-defect")
    response = requests.put(f"{engine.http}/control/defects", json={"active": "not a list"}, timeout=5)
    assert response.status_code == 400


def test_journal_records_calls_as_json(engine: Engine, rpc: Caller) -> None:
    mark = engine.control.last_seq()
    created = rpc("Sessions.CreateSession", SESSION)
    assert created.ok
    rpc("Sessions.GetSession", {"session_id": "nope"})
    entries = engine.control.journal(since=mark)
    assert [e["method"].rpartition(".")[2] for e in entries] == ["CreateSession", "GetSession"]
    first, second = entries
    assert first["code"] == "OK" and first["protocol"] == "grpc"
    assert first["requests"][0]["default_task_option"]["max_retries"] == 1
    assert first["responses"][0]["session_id"] == created.response.session_id
    assert first["duration_ms"] >= 0
    assert second["code"] == "NOT_FOUND" and "session_id" in second["error"]
    only = engine.control.journal(since=mark, method="Sessions.GetSession")
    assert [e["seq"] for e in only] == [second["seq"]]
    counts = engine.control.calls()
    assert counts["armonik.api.grpc.v1.sessions.Sessions.CreateSession"] == 1


def test_reset_forgets_state_and_journal(engine: Engine, rpc: Caller) -> None:
    created = rpc("Sessions.CreateSession", SESSION)
    session = {"session_id": created.response.session_id}
    assert rpc("Sessions.GetSession", session).ok
    engine.control.reset()
    assert engine.control.journal() == []
    assert engine.control.calls() == {}
    assert rpc("Sessions.GetSession", session).code == grpc.StatusCode.NOT_FOUND


def test_clock_advances(engine: Engine) -> None:
    before = engine.control.clock()
    after = engine.control.advance(120)
    assert after["elapsed"] >= before["elapsed"] + 120
    with pytest.raises(ControlError, match="400"):
        engine.control.advance(-1)


def test_journal_keeps_metadata_without_secrets_and_big_messages_by_size(engine: Engine) -> None:
    target = Target(engine.grpc, token="s3cret")
    channel = target.channel()
    rpc = Caller(channel, default_registry(), target)
    session = rpc("Sessions.CreateSession", SESSION).response.session_id
    big = "x" * 100_000
    data = base64.b64encode(big.encode()).decode()
    rpc("Results.CreateResults", {"session_id": session, "results": [{"name": "big", "data": data}]})
    channel.close()
    entries = engine.control.journal(method="Results.CreateResults")
    assert entries[-1]["metadata"]["authorization"] == "<redacted>"
    assert "s3cret" not in str(entries)
    assert entries[-1]["requests"] == [{"@omitted_bytes": entries[-1]["requests"][0]["@omitted_bytes"]}]
    assert entries[-1]["requests"][0]["@omitted_bytes"] > 100_000
