"""``protoconform load``: bounded headless locust runs of each scenario against the mock.

Locust gevent-patches the interpreter it is imported in, so every run is a child process
(``protoconform load`` itself starts ``python -m locust`` in another): nothing here imports it.
Each run writes locust's CSV and HTML reports, which the tests read back; thresholds decide the
exit status. One mock serves the module; each user makes and removes its own namespaced state.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from protoconform.mockserver.launcher import ServerProcess
from test_security import Pki, pki  # noqa: F401  (the certificates of the security tests)

TOKEN = "load-test-token"

# Each scenario's run shows the calls of its whole workflow (request names in the stats CSV).
WORKFLOWS = {
    "armonik": [
        "/armonik.api.grpc.v1.sessions.Sessions/CreateSession",
        "/armonik.api.grpc.v1.results.Results/CreateResults",
        "/armonik.api.grpc.v1.results.Results/UploadResultData",
        "/armonik.api.grpc.v1.tasks.Tasks/SubmitTasks",
        "/armonik.api.grpc.v1.events.Events/GetEvents",
        "/armonik.api.grpc.v1.results.Results/DownloadResultData",
        "/armonik.api.grpc.v1.sessions.Sessions/DeleteSession",
    ],
    "kfp-grpc": [
        "/api.RunService/CreateRun",
        "/api.RunService/ListRuns",
        "/api.RunService/ReportRunMetrics",
        "/api.RunService/ReadArtifact",
        "/api.RunService/ArchiveRun",
        "/api.RunService/DeleteRun",
    ],
    "kfp-rest": [
        "/apis/v1beta1/runs",
        "/apis/v1beta1/runs?filter",
        "/apis/v1beta1/runs/{run_id}:reportMetrics",
        "/apis/v1beta1/runs/{run_id}/nodes/{node_id}/artifacts/{name}:read",
        "/apis/v1beta1/runs/{id}:archive",
        "/apis/v1beta1/runs/{id}",
    ],
    "flyte": [
        "/flyteidl.service.AdminService/RegisterProject",
        "/flyteidl.service.AdminService/UpdateLaunchPlan",
        "/flyteidl.service.AdminService/CreateExecution",
        "/flyteidl.service.AdminService/ListNodeExecutions",
        "/flyteidl.service.AdminService/ListExecutions",
        "/flyteidl.service.AdminService/UpdateProject",
    ],
}


@pytest.fixture(scope="module")
def mock() -> Iterator[ServerProcess]:
    # a fast clock: runs, tasks and executions finish within a user's iteration
    with ServerProcess(["--clock-speed", "200"]) as server:
        yield server


@pytest.fixture(scope="module")
def guarded() -> Iterator[ServerProcess]:
    with ServerProcess(["--api", "kfp", "--clock-speed", "200", "--auth-token", TOKEN]) as server:
        yield server


def load(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protoconform.mockserver", "load", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stats(report_dir: Path) -> dict[str, dict[str, str]]:
    with (report_dir / "load_stats.csv").open(newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def failures(report_dir: Path) -> list[dict[str, str]]:
    with (report_dir / "load_failures.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """``protoconform load --scenario health ARGS`` in the background, its output into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "protoconform.mockserver", "load", "--scenario", "health", *args],
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Every call shape through the gRPC user's client, in a child process (importing it imports
# locust, which gevent-patches the interpreter); the request events it fires are printed.
SHAPES_PROBE = """
import json, sys
from gevent import monkey
from protoconform.conformance.models.armonik.requests import session_request, upload_requests
from protoconform.load.grpc_user import Connection, GrpcCallError, GrpcClient

events = []

class Event:
    def fire(self, **kw):
        kw["exception"] = None if kw["exception"] is None else repr(kw["exception"])
        events.append(kw)

client = GrpcClient(Connection(target=sys.argv[1]), Event())
session = client.unary("Sessions.CreateSession", session_request()).session_id
created = client.unary("Results.CreateResultsMetaData", {"session_id": session, "results": [{"name": "r"}]})
result = created.results[0].result_id
data = bytes(range(256)) * 40
client.call("Results.UploadResultData", requests=upload_requests(session, result, data, [1000, 5000]))
chunks = client.call("Results.DownloadResultData", {"session_id": session, "result_id": result})
done = ["RESULT_STATUS_COMPLETED"]
watch = {"result_ids": [result], "fetch_statuses": done, "watch_statuses": done}
watched = client.call("Results.WatchResults", requests=[watch], max_responses=1, timeout=10)
try:
    client.unary("Sessions.GetSession", {"session_id": "no-such-session"})
    raised = ""
except GrpcCallError as exc:
    raised = str(exc)
print(json.dumps({
    "events": events, "patched": monkey.is_module_patched("socket"), "raised": raised,
    "downloaded": b"".join(c.data_chunk for c in chunks) == data, "watched": len(watched),
}))
"""


def test_the_command_line_does_not_import_locust(tmp_path: Path) -> None:
    """``protoconform serve`` (any command) builds the parser of ``load`` without importing locust."""
    code = (
        "import sys; from protoconform.mockserver import cli; cli.build_parser(); "
        "print(sorted(m for m in ('locust', 'gevent', 'protoconform.load.grpc_user') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
    listed = load("--scenario", "list", cwd=tmp_path)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines() if not line.startswith(" ")] == [
        "armonik", "kfp-grpc", "kfp-rest", "flyte", "health", "session-get", "mixed",
    ]  # fmt: skip


BAD = [
    (["--scenario", "nope"], "--scenario", "unknown scenario 'nope'"),
    (["--scenario", "health", "--mock", "--max-error-ratio", "2"], "--max-error-ratio", "ratio in [0, 1]"),
    (["--scenario", "armonik", "--mock", "--param", "task=3"], "--param", "no parameter 'task'; it has: "),
    (["--scenario", "armonik", "--mock", "--param", "tasks=many"], "--param", "expected a whole number"),
    (["--scenario", "health"], "--target", "needs the gRPC address"),
    (["--scenario", "kfp-rest", "--target", "h:1"], "--rest", "needs the REST URL"),
    (["--scenario", "health", "--master", "--worker"], "--worker", "not allowed with --master"),
]


@pytest.mark.parametrize(("args", "option", "words"), BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_a_bad_option_is_one_line_naming_it(args: list[str], option: str, words: str, tmp_path: Path) -> None:
    result = load(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"protoconform load: error: argument {option}"), last
    assert words in last, last
    assert not (tmp_path / "reports").exists()


def test_every_call_shape_fires_one_request_event(mock: ServerProcess, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(SHAPES_PROBE)
    env = {**os.environ, "PROTOCONFORM_LOAD_PARAM_LABEL": "gen1"}
    done = subprocess.run(
        [sys.executable, str(probe), mock.grpc_address], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["patched"] and seen["downloaded"] and seen["watched"] == 1
    assert seen["raised"] == "NOT_FOUND: session_id: session 'no-such-session' was not found"
    events = seen["events"]
    armonik = "/armonik.api.grpc.v1"
    assert [e["name"] for e in events] == [
        f"{armonik}.sessions.Sessions/CreateSession [gen1]",
        f"{armonik}.results.Results/CreateResultsMetaData [gen1]",
        f"{armonik}.results.Results/UploadResultData [gen1]",  # client stream
        f"{armonik}.results.Results/DownloadResultData [gen1]",  # server stream
        f"{armonik}.results.Results/WatchResults [gen1]",  # bidirectional
        f"{armonik}.sessions.Sessions/GetSession [gen1]",
    ]
    assert all(e["request_type"] == "grpc" and e["response_time"] >= 0 for e in events)
    assert [e["exception"] for e in events] == [None] * 5 + [seen["raised"]]
    assert events[3]["response_length"] >= 40 * 256  # every chunk's bytes
    assert events[5]["response_length"] == 0 and all(e["response_length"] > 0 for e in events[:5])


@pytest.fixture(scope="module")
def scenario_runs(
    mock: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Each scenario's bounded run against the same mock, all at once (each is mostly locust's
    start-up and its 2 s); each test judges its own run and reports."""
    base = tmp_path_factory.mktemp("scenarios")

    def run(scenario: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
        reports = base / scenario / "reports"
        reports.parent.mkdir()
        return reports, load(
            "--scenario", scenario,
            "--target", mock.grpc_address,
            "--rest", mock.http_url,
            "--users", "2",
            "--duration", "2",
            "--report-dir", str(reports),
            "--max-error-ratio", "0",
            "--max-p99-ms", "5000",
            "--min-rps", "1",
            cwd=reports.parent,
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=len(WORKFLOWS)) as pool:
        return dict(zip(WORKFLOWS, pool.map(run, WORKFLOWS), strict=True))


@pytest.mark.parametrize("scenario", list(WORKFLOWS))
def test_a_scenario_runs_its_workflow_within_thresholds(
    scenario: str, scenario_runs: dict[str, tuple[Path, subprocess.CompletedProcess[str]]]
) -> None:
    reports, result = scenario_runs[scenario]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = stats(reports)
    total = rows.pop("Aggregated")
    assert int(total["Request Count"]) > 0 and total["Failure Count"] == "0", total
    missing = [name for name in WORKFLOWS[scenario] if int(rows.get(name, {}).get("Request Count", 0)) == 0]
    assert not missing, f"calls of the workflow never made: {missing}; made: {sorted(rows)}"
    assert sum(int(row["Request Count"]) for row in rows.values()) == int(total["Request Count"])
    assert failures(reports) == []
    html = (reports / "load.html").read_text()
    assert "locust" in html.lower() and WORKFLOWS[scenario][0] in html
    assert f"load: {scenario}: {total['Request Count']} requests, 0 failed" in result.stdout
    assert "load: " in result.stderr and " req/s, " in result.stderr  # the progress line


def test_an_impossible_threshold_fails_the_run_and_names_itself(mock: ServerProcess, tmp_path: Path) -> None:
    result = load(
        "--scenario", "health",
        "--target", mock.grpc_address,
        "--requests", "100",
        "--report-dir", str(tmp_path / "r"),
        "--max-p99-ms", "60000",
        "--min-rps", "100000000",
        "--max-error-ratio", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    failed = [line for line in result.stderr.splitlines() if "threshold failed" in line]
    assert len(failed) == 1, result.stderr  # only the impossible one; the others held
    assert failed[0].startswith("protoconform load: threshold failed: --min-rps 1e+08: measured ")
    assert failed[0].endswith(" req/s")


def test_a_request_budget_ends_the_run(mock: ServerProcess, tmp_path: Path) -> None:
    reports = tmp_path / "r"
    result = load(
        "--scenario", "health", "--target", mock.grpc_address, "--users", "3",
        "--requests", "300", "--report-dir", str(reports),
        cwd=tmp_path,
        timeout=90,  # the run's own cap for --requests alone is 600 s: ending here means the budget did it
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(stats(reports)["Aggregated"]["Request Count"]) >= 300


def test_a_bearer_token_reaches_the_server_and_refusals_are_reported(
    guarded: ServerProcess, tmp_path: Path
) -> None:
    common = ["--scenario", "kfp-grpc", "--target", guarded.grpc_address, "--requests", "20"]
    allowed = load(*common, "--token", TOKEN, "--report-dir", "ok", "--max-error-ratio", "0", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-3000:]

    refused = load(*common, "--report-dir", "refused", "--max-error-ratio", "0", cwd=tmp_path)
    assert refused.returncode == 1
    assert "threshold failed: --max-error-ratio 0: measured 1.0000" in refused.stderr
    errors = failures(tmp_path / "refused")
    assert errors and errors[0]["Method"] == "grpc" and errors[0]["Name"] == "/api.RunService/CreateRun"
    assert errors[0]["Error"].startswith("UNAUTHENTICATED: missing bearer token"), errors[0]


@pytest.mark.slow  # three locust processes
def test_a_master_aggregates_two_workers(mock: ServerProcess, tmp_path: Path) -> None:
    """One master, two workers on loopback, each worker's calls labelled: the master's report has both."""
    port = str(free_port())
    reports = tmp_path / "master"
    master_args = ["--master", "--expect-workers", "2", "--master-port", port, "--users", "4"]
    master = spawn(
        *master_args, "--duration", "5", "--report-dir", str(reports), "--max-error-ratio", "0",
        log=tmp_path / "master.log",
    )  # fmt: skip
    joins = ["--worker", "--master-host", "127.0.0.1", "--master-port", port, "--target", mock.grpc_address]
    workers = [spawn(*joins, "--param", f"label=w{i}", log=tmp_path / f"worker{i}.log") for i in (1, 2)]
    try:
        status = [process.wait(timeout=120) for process in (master, *workers)]
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    logs = {path.name: path.read_text()[-2000:] for path in tmp_path.glob("*.log")}
    assert status == [0, 0, 0], logs
    rows = stats(reports)
    total = int(rows.pop("Aggregated")["Request Count"])
    per_worker = {name: int(row["Request Count"]) for name, row in rows.items()}
    check = "/grpc.health.v1.Health/Check"
    assert set(per_worker) == {f"{check} [w1]", f"{check} [w2]"}, per_worker
    assert all(count > 0 for count in per_worker.values()), per_worker
    assert total == sum(per_worker.values())


def test_mutual_tls_and_a_token_over_grpc_and_rest(pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    """Every workflow at once (gRPC users and the REST user) against a mock asking for both."""
    tls = [
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        "--tls-client-ca",
        str(pki.ca),
    ]
    with ServerProcess(["--clock-speed", "200", *tls, "--auth-token", TOKEN]) as server:
        assert server.http_url.startswith("https://")
        secured = ["--tls", "--ca", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
        result = load(
            "--scenario", "mixed", "--target", server.grpc_address, "--rest", server.http_url,
            *secured, "--token", TOKEN, "--users", "4", "--requests", "150",
            "--report-dir", "r", "--max-error-ratio", "0",
            cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = stats(tmp_path / "r")
    assert int(rows["Aggregated"]["Request Count"]) >= 150
    methods = {row["Type"] for name, row in rows.items() if name != "Aggregated"}
    assert {"grpc", "POST", "GET"} <= methods, methods


def test_each_threshold_missed_is_named_with_its_measure() -> None:
    """The verdict itself (no locust involved: the command reads the CSV locust wrote)."""
    from protoconform.load.cli import Measured, judge

    def verdict(measured: Measured, **limits: float) -> list[str]:
        names = ("max_p95_ms", "max_p99_ms", "max_error_ratio", "min_rps")
        return judge(measured, argparse.Namespace(**{name: limits.get(name) for name in names}))

    measured = Measured(requests=200, failures=5, rps=40.0, p95=50.0, p99=210.0)
    assert verdict(measured) == []
    assert verdict(measured, max_p95_ms=50, max_p99_ms=210, max_error_ratio=0.025, min_rps=40) == []
    assert verdict(measured, max_p95_ms=49, max_p99_ms=200, max_error_ratio=0.02, min_rps=41) == [
        "--max-p95-ms 49: measured p95 50 ms",
        "--max-p99-ms 200: measured p99 210 ms",
        "--max-error-ratio 0.02: measured 0.0250 (5 of 200 requests failed)",
        "--min-rps 41: measured 40.00 req/s",
    ]
    idle = Measured(requests=0, failures=0, rps=0.0, p95=float("nan"), p99=float("nan"))
    assert verdict(idle, max_error_ratio=1)[0].startswith("no requests were made")
