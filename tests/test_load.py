"""``protoconform load``: bounded headless locust runs of each scenario against the mock.

Locust gevent-patches the interpreter it is imported in, so every run is a child process
(``protoconform load`` itself starts ``python -m locust`` in another): nothing here imports it.
Each run writes locust's CSV and HTML reports, which the tests read back; thresholds decide the
exit status. One mock serves the module; each user makes and removes its own namespaced state.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from protoconform.mockserver.launcher import ServerProcess

TOKEN = "load-test-token"

# Each scenario's run shows the calls of its whole workflow (request names in the stats CSV).
WORKFLOWS = {
    "armonik": [
        "/armonik.api.grpc.v1.sessions.Sessions/CreateSession",
        "/armonik.api.grpc.v1.results.Results/CreateResults",
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


@pytest.mark.parametrize("scenario", list(WORKFLOWS))
def test_a_scenario_runs_its_workflow_within_thresholds(
    scenario: str, mock: ServerProcess, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    result = load(
        "--scenario", scenario,
        "--target", mock.grpc_address,
        "--rest", mock.http_url,
        "--users", "2",
        "--duration", "4",
        "--report-dir", str(reports),
        "--max-error-ratio", "0",
        "--max-p99-ms", "5000",
        "--min-rps", "1",
        cwd=tmp_path,
    )  # fmt: skip
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
