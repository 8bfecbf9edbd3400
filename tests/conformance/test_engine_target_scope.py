"""A run respects its target: families it does not serve, and URLs that do not answer.

Against a mock serving KFP only, a default ``check`` leaves out every other family with
a one-line note; a family named with ``--api`` is checked anyway, with a warning.  An
unreachable ``--rest`` or ``--control`` URL gets one line and exit status 2 before any
case runs.  A target without reflection is checked on every selected family.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from engine_support import CheckRun, Engine, run_check
from grpc_health.v1 import health, health_pb2_grpc
from protoconform.conformance.control import ControlClient
from protoconform.conformance.plugin.options import conformance_families
from protoconform.conformance.plugin.scope import NOT_SERVED
from protoconform.mockserver.launcher import ServerProcess


@pytest.fixture(scope="module")
def kfp_only() -> Iterator[Engine]:
    with ServerProcess(["--api", "kfp"]) as process:
        control = ControlClient(process.http_url)
        yield Engine(process, control)
        control.close()


@pytest.fixture
def closed_url() -> str:
    """An http:// URL on a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _output(run: CheckRun) -> str:
    return run.stdout[-4000:] + run.stderr[-2000:]


def _summary(run: CheckRun) -> list[str]:
    """The lines of the protoconform section at the end of the output."""
    lines = run.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if " protoconform " in line and line.startswith("=")]
    assert starts, _output(run)
    return lines[starts[-1] + 1 :]


def test_default_check_skips_the_families_not_served(kfp_only: Engine, tmp_path: Path) -> None:
    # no --api (the default), and one suite: which families a run covers does not depend on the suites
    run = run_check(["--suite", "surface"], tmp_path, engine=kfp_only)
    assert run.status == 0, _output(run)
    not_served = set(conformance_families()) - {"kfp"}
    assert not_served, "the point needs a family besides kfp"
    summary = _summary(run)
    notes = [line for line in summary if NOT_SERVED in line]
    assert sorted(notes) == sorted(f"{family}: {NOT_SERVED}; skipped" for family in not_served), summary

    report = run.report
    assert report is not None
    assert report["families"] == ["kfp"]
    assert {case["family"] for case in report["cases"]} == {"kfp"}
    assert report["totals"]["passed"] > 0 and report["totals"]["failed"] == 0
    scope = report["target"]["scope"]
    assert scope["reflection"] is True and scope["served"] == ["kfp"]
    assert {entry["family"] for entry in scope["not_served"]} == not_served
    assert not any(entry["checked"] for entry in scope["not_served"])


@pytest.mark.parametrize("option", ["--rest", "--control"])
def test_unreachable_url_stops_before_any_case(
    option: str, kfp_only: Engine, closed_url: str, tmp_path: Path
) -> None:
    args = ["--target", kfp_only.grpc, option, closed_url, "--api", "kfp", "--suite", "surface"]
    run = run_check(args, tmp_path)
    assert run.status == 2, _output(run)
    assert "Traceback" not in run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"protoconform check: error: {option} {closed_url}: "), lines[0]
    assert "connection refused" in lines[0]
    assert run.report is None and run.stdout == ""  # pytest never started


def test_control_url_that_is_not_the_control_api(kfp_only: Engine, tmp_path: Path) -> None:
    """An HTTP server that answers, but not with the control API (a 404 here)."""
    url = f"{kfp_only.http}/nothing-here"
    run = run_check(["--target", kfp_only.grpc, "--control", url, "--suite", "surface"], tmp_path)
    assert run.status == 2, _output(run)
    assert run.stderr.strip().startswith(f"protoconform check: error: --control {url}: "), run.stderr
    assert "HTTP 404" in run.stderr and run.report is None


def test_named_family_not_served_is_checked_with_a_warning(kfp_only: Engine, tmp_path: Path) -> None:
    run = run_check(["--api", "armonik", "--suite", "surface"], tmp_path, engine=kfp_only)
    assert run.status == 1, _output(run)
    assert f"warning: armonik: {NOT_SERVED}; checked because --api names it" in _summary(run)
    report = run.report
    assert report is not None and report["families"] == ["armonik"]
    assert report["totals"]["failed"] > 0
    assert report["target"]["scope"]["not_served"] == [{"family": "armonik", "checked": True}]


@pytest.fixture(scope="module")
def without_reflection() -> Iterator[str]:
    """A plaintext gRPC server with the health service only."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_target_without_reflection_checks_every_family(without_reflection: str, tmp_path: Path) -> None:
    run = run_check(["--target", without_reflection, "--suite", "surface"], tmp_path)
    assert run.status == 1, _output(run)
    notes = [line for line in _summary(run) if line.startswith("families: not decided from reflection")]
    assert len(notes) == 1, _summary(run)
    assert "checking every selected family" in notes[0]
    report = run.report
    assert report is not None and set(report["families"]) == set(conformance_families())
    assert report["target"]["scope"]["reflection"] is False


def test_listing_needs_no_target(closed_url: str, tmp_path: Path) -> None:
    """--list shows every family's cases whatever the target serves, even when nothing listens."""
    address = closed_url.removeprefix("http://")
    run = run_check(["--target", address, "--api", "all", "--suite", "surface", "--list"], tmp_path)
    assert run.status == 0, _output(run)
    for family in conformance_families():
        assert f"[{family}:" in run.stdout, run.stdout[-2000:]
