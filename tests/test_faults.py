"""Fault rules in the mock, driven through the control API client (``/control/faults``).

Latency, a status on the Nth call or by probability, a cut stream, a deadline,
a connection reset; each hit in the journal; bad rules refused naming the
field; the REST gateway failing as gRPC does.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from armonik.client import ArmoniKSessions
from armonik.common import TaskOptions
from fault_support import CHUNK, DATA, RETRYING, VERSIONS, Armonik, assert_reset_and_reconnect
from protoconform.conformance.control import ControlClient, ControlError
from protoconform.mockserver import cli
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.faults import MAX_RULES, Rule
from protoconform.mockserver.launcher import ServerProcess, ThreadedServer


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    config = ServerConfig(
        families=("armonik", "kfp"),
        clock_speed=0,
        grace_seconds=0.2,
        family_options={"armonik": {"data_chunk_max_size": CHUNK}},
    )
    with ThreadedServer(config) as srv:
        yield srv


def rule_named(control: ControlClient, name: str) -> dict:
    return next(r for r in control.faults()["rules"] if r["name"] == name)


def test_latency_shows_in_the_clients_time_and_in_the_journal(control: ControlClient, ak: Armonik) -> None:
    control.add_faults({"name": "slow", "method": "*/ListVersions", "latency": 0.4})
    assert ak.timed_versions() >= 0.3
    entry = control.journal(method="Versions.ListVersions")[-1]
    assert entry["faults"] == [{"name": "slow", "kind": "latency"}]
    assert entry["code"] == "OK"
    assert rule_named(control, "slow")["hits"] == 1


def test_random_latency_within_its_range(control: ControlClient, ak: Armonik) -> None:
    control.add_faults({"method": VERSIONS, "latency": [0.3, 0.5]})
    assert ak.timed_versions() >= 0.25


def test_status_on_the_nth_call_only(control: ControlClient, ak: Armonik) -> None:
    control.add_faults(
        {"name": "third", "method": VERSIONS, "status": "UNAVAILABLE", "message": "down", "nth": 3}
    )
    codes = [ak.code() for _ in range(5)]
    assert codes == [grpc.StatusCode.OK] * 2 + [grpc.StatusCode.UNAVAILABLE] + [grpc.StatusCode.OK] * 2
    rule = rule_named(control, "third")
    assert (rule["matched"], rule["hits"], rule["kind"]) == (5, 1, "status")
    failed = [e for e in control.journal(method="Versions.ListVersions") if e["faults"]]
    assert [(e["code"], e["error"], e["faults"]) for e in failed] == [
        ("UNAVAILABLE", "down", [{"name": "third", "kind": "status"}])
    ]


def test_status_on_every_nth_call_and_its_message(control: ControlClient, ak: Armonik) -> None:
    control.add_faults({"method": "*Versions*", "status": 8, "every": 2})
    with pytest.raises(grpc.RpcError) as caught:
        ak.versions()
        ak.versions()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "injected fault" in caught.value.details()
    codes = [ak.code() for _ in range(4)]
    assert codes == [grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED] * 2


def test_probability_one_always_and_zero_never(control: ControlClient, ak: Armonik) -> None:
    control.add_faults({"name": "never", "method": VERSIONS, "status": "INTERNAL", "probability": 0})
    assert {ak.code() for _ in range(5)} == {grpc.StatusCode.OK}
    assert rule_named(control, "never")["matched"] == 5
    control.add_faults({"name": "always", "method": VERSIONS, "status": "ABORTED", "probability": 1.0})
    assert {ak.code() for _ in range(5)} == {grpc.StatusCode.ABORTED}
    assert rule_named(control, "never")["hits"] == 0


def test_random_draws_repeat_with_the_same_seed(control: ControlClient, ak: Armonik) -> None:
    rule = {"method": VERSIONS, "status": "UNAVAILABLE", "probability": 0.5}
    runs = []
    for _ in range(2):
        assert control.set_faults([rule], seed=7)["seed"] == 7
        runs.append([ak.code() for _ in range(16)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}


def test_a_rule_stops_after_its_times(control: ControlClient, ak: Armonik) -> None:
    control.add_faults(
        {"name": "twice", "service": "*.Versions", "family": "armonik", "status": "UNAVAILABLE", "times": 2}
    )
    codes = [ak.code() for _ in range(4)]
    assert codes == [grpc.StatusCode.UNAVAILABLE] * 2 + [grpc.StatusCode.OK] * 2
    assert rule_named(control, "twice")["spent"] is True


def test_a_rule_of_another_family_or_method_does_not_fire(control: ControlClient, ak: Armonik) -> None:
    control.add_faults(
        {"method": VERSIONS, "family": "kfp", "status": "INTERNAL"},
        {"method": "*/GetSession", "status": "INTERNAL"},
    )
    assert ak.code() == grpc.StatusCode.OK
    assert [r["matched"] for r in control.faults()["rules"]] == [0, 0]


def test_a_stream_is_cut_after_n_messages(control: ControlClient, ak: Armonik) -> None:
    session_id, result_id = ak.result_with_data()
    chunks, error = ak.download(session_id, result_id)
    assert error is None and b"".join(chunks) == DATA and len(chunks) == 10
    control.add_faults({"name": "cut", "method": "*/DownloadResultData", "cut_after": 3, "message": "gone"})
    chunks, error = ak.download(session_id, result_id)
    assert chunks == [DATA[i : i + CHUNK] for i in range(0, 3 * CHUNK, CHUNK)]
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE and error.details() == "gone"
    entry = control.journal(method="Results.DownloadResultData")[-1]
    assert (entry["code"], len(entry["responses"])) == ("UNAVAILABLE", 3)
    assert entry["faults"] == [{"name": "cut", "kind": "cut"}]


def test_a_cut_after_zero_sends_no_message(control: ControlClient, ak: Armonik) -> None:
    session_id, result_id = ak.result_with_data()
    control.add_faults({"method": "*/DownloadResultData", "cut_after": 0, "status": "DATA_LOSS"})
    chunks, error = ak.download(session_id, result_id)
    assert chunks == [] and error is not None and error.code() == grpc.StatusCode.DATA_LOSS


def test_deadline_answered_at_once_or_held_past_the_clients(control: ControlClient, ak: Armonik) -> None:
    with control.fault({"method": VERSIONS, "deadline": 0}):
        assert ak.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert control.journal(method="Versions.ListVersions")[-1]["code"] == "DEADLINE_EXCEEDED"
    with control.fault({"name": "hung", "method": VERSIONS, "deadline": 30}):
        with pytest.raises(grpc.RpcError) as caught:
            ak.versions(timeout=0.3)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert caught.value.details() == "Deadline Exceeded"  # the client's own: the server never answered


def test_a_reset_ends_the_call_unavailable_and_the_channel_reconnects(
    control: ControlClient, ak: Armonik
) -> None:
    assert_reset_and_reconnect(control, ak)
    assert rule_named(control, "reset")["hits"] == 1


def test_remove_one_rule_and_clear_all(control: ControlClient, ak: Armonik) -> None:
    control.add_faults(
        {"name": "a", "method": VERSIONS, "status": "INTERNAL"}, {"name": "b", "latency": 0.01}
    )
    assert ak.code() == grpc.StatusCode.INTERNAL
    assert [r["name"] for r in control.remove_fault("a")["rules"]] == ["b"]
    assert ak.code() == grpc.StatusCode.OK
    with pytest.raises(ControlError, match=r"HTTP 404.*no fault rule named 'a'"):
        control.remove_fault("a")
    assert control.clear_faults()["rules"] == []


BAD_RULES = [
    ({"status": "NOPE"}, "status"),
    ({"status": "OK"}, "status"),
    ({"latency": -1}, "latency"),
    ({"latency": 10_000}, "latency"),
    ({"latency": [0.5, 0.1]}, "latency"),
    ({"latency": "1s"}, "latency"),
    ({}, "latency"),
    ({"status": "INTERNAL", "probability": 1.5}, "probability"),
    ({"status": "INTERNAL", "method": "*" * 300}, "method"),
    ({"status": "INTERNAL", "nth": 0}, "nth"),
    ({"status": "INTERNAL", "nth": 2, "every": 2}, "every"),
    ({"status": "INTERNAL", "times": True}, "times"),
    ({"status": "INTERNAL", "reset": True}, "reset"),
    ({"reset": "yes"}, "reset"),
    ({"deadline": 301}, "deadline"),
    ({"cut_after": -1}, "cut_after"),
    ({"latency": 1, "message": "why"}, "message"),
    ({"name": "has space", "latency": 1}, "name"),
    ({"latency": 1, "colour": "red"}, "colour"),
    ("not an object", "rule"),
]


@pytest.mark.parametrize(("rule", "field"), BAD_RULES, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_RULES)])
def test_a_bad_rule_is_refused_naming_the_field(
    server: ThreadedServer, control: ControlClient, rule, field
) -> None:
    control.add_faults({"name": "kept", "latency": 0.01})
    response = requests.post(
        f"{server.http_url}/control/faults", json={"rules": [{"latency": 0.01}, rule]}, timeout=10
    )
    assert response.status_code == 400
    assert response.text.startswith(f"{field}:"), response.text
    assert [r["name"] for r in control.faults()["rules"]] == ["kept"]  # all or nothing


def test_names_are_unique_and_rules_bounded(control: ControlClient) -> None:
    control.add_faults({"name": "x", "latency": 0.01})
    with pytest.raises(ControlError, match="HTTP 400: name: a rule named 'x' already exists"):
        control.add_faults({"name": "x", "latency": 0.01})
    with pytest.raises(ControlError, match=f"HTTP 400: rules: at most {MAX_RULES}"):
        control.set_faults([{"latency": 0.01}] * (MAX_RULES + 1))
    with pytest.raises(ControlError, match="HTTP 400: body is not JSON"):
        control._call("POST", "/faults", data=b"{", headers={"Content-Type": "application/json"})
    assert [r["name"] for r in control.faults()["rules"]] == ["x"]


def test_the_rest_gateway_sees_a_status_fault_as_its_http_code(
    server: ThreadedServer, control: ControlClient
) -> None:
    url = f"{server.http_url}/apis/v1beta1/runs?page_size=1"
    assert requests.get(url, timeout=10).status_code == 200
    control.add_faults(
        {"name": "kfp-down", "family": "kfp", "method": "*/ListRuns*", "status": "UNAVAILABLE"}
    )
    response = requests.get(url, timeout=10)
    assert response.status_code == 503
    assert "injected fault 'kfp-down'" in response.text
    entry = control.journal(limit=1)[-1]
    assert (entry["protocol"], entry["code"], entry["faults"]) == (
        "rest",
        "UNAVAILABLE",
        [{"name": "kfp-down", "kind": "status"}],
    )


def test_serve_loads_a_fault_file_and_refuses_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- method: '*'\n  status: SOMETIMES\n")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "--faults", str(bad)])
    assert f"--faults {bad}: status: 'SOMETIMES' is not a gRPC status" in capsys.readouterr().err

    good = tmp_path / "faults.json"
    good.write_text(
        json.dumps({"seed": 3, "rules": [{"name": "slow-versions", "method": VERSIONS, "latency": 0.4}]})
    )
    with ServerProcess(["--api", "armonik", "--faults", str(good)]) as process:
        control = ControlClient(process.http_url)
        listed = control.faults()
        assert listed["seed"] == 3 and [r["name"] for r in listed["rules"]] == ["slow-versions"]
        with grpc.insecure_channel(process.grpc_address) as channel:
            assert Armonik(channel).timed_versions() >= 0.3
        assert control.faults()["rules"][0]["hits"] == 1


def test_a_reset_over_rest_drops_the_http_connection(server: ThreadedServer, control: ControlClient) -> None:
    control.add_faults({"name": "reset", "family": "kfp", "reset": True, "times": 1})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.http_url}/apis/v1beta1/runs?page_size=1", timeout=10)
    assert requests.get(f"{server.http_url}/apis/v1beta1/runs?page_size=1", timeout=10).status_code == 200

    # The reset call ended at once (aiohttp would have let it wait out the grace it gives gRPC calls).
    def first_code() -> list[str]:
        return [entry["code"] for entry in control.journal(method="RunService.ListRuns")][:1]

    deadline = time.monotonic() + 3
    while first_code() != ["UNAVAILABLE"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first_code() == ["UNAVAILABLE"]


def test_the_example_rule_file_loads(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(cli.__file__).with_name("faults.example.yaml")
    args = cli.build_parser().parse_args(["serve", "--faults", str(example)])
    assert args.config.fault_seed == 42
    kinds = [Rule.parse(rule, "r").kind for rule in args.config.faults]
    assert kinds == ["latency", "status", "status", "cut", "deadline", "reset"]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "--fault-seed", str(2**70)])
    assert "--fault-seed: seed: must be an integer" in capsys.readouterr().err


def test_a_listing_sent_back_restores_the_rules(server: ThreadedServer, control: ControlClient) -> None:
    control.add_faults(
        {"name": "a", "method": VERSIONS, "latency": [0.1, 0.2], "status": "ABORTED", "every": 3},
        {"name": "b", "family": "kfp", "cut_after": 2, "times": 4, "probability": 0.5},
    )
    listed = control.faults()["rules"]
    counters = ("kind", "matched", "hits", "spent")
    rules = [{k: v for k, v in rule.items() if k not in counters} for rule in listed]
    control.clear_faults()
    response = requests.put(f"{server.http_url}/control/faults", json=rules, timeout=10)  # a plain list
    assert response.status_code == 200 and response.json()["rules"] == listed
    bad_seed = requests.put(f"{server.http_url}/control/faults", json={"rules": [], "seed": "x"}, timeout=10)
    assert bad_seed.status_code == 400 and bad_seed.text.startswith("seed:")
    assert control.faults()["rules"] == listed  # the refused call changed nothing


def test_the_armonik_client_retries_through_injected_unavailable(
    server: ThreadedServer, control: ControlClient
) -> None:
    control.add_faults({"name": "down", "method": "*/CreateSession", "status": "UNAVAILABLE", "times": 2})
    options = TaskOptions(max_duration=datetime.timedelta(seconds=60), priority=1, max_retries=1)
    with grpc.insecure_channel(server.grpc_address, options=RETRYING) as channel:
        assert ArmoniKSessions(channel).create_session(options)
    codes = [e["code"] for e in control.journal(method="Sessions.CreateSession")]
    assert codes == ["UNAVAILABLE", "UNAVAILABLE", "OK"]
