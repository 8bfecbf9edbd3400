"""Helpers for the conformance-engine tests: a mock server of their own, and `check` runs.

Each test module that imports :func:`engine_server` gets its own `protoconform
serve` subprocess (ports picked at run time), so switching defect modes there
never disturbs other tests.  :func:`run_check` runs `protoconform check` as a
user would, in a child process, and returns its exit status, output and JSON
report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from protoconform.conformance.control import ControlClient
from protoconform.mockserver.launcher import ServerProcess


@dataclass
class Engine:
    process: ServerProcess
    control: ControlClient

    @property
    def grpc(self) -> str:
        return self.process.grpc_address

    @property
    def http(self) -> str:
        return self.process.http_url


@pytest.fixture(scope="module")
def engine_server() -> Iterator[Engine]:
    with ServerProcess() as process:
        control = ControlClient(process.http_url)
        yield Engine(process, control)
        control.close()


@dataclass
class CheckRun:
    status: int
    stdout: str
    stderr: str
    elapsed: float
    report: dict[str, Any] | None

    def failed_rules(self) -> set[tuple[str, str]]:
        """(rule, Service.Method) of every failed case in the JSON report."""
        if not self.report:
            return set()
        found = set()
        for case in self.report["cases"]:
            if case["outcome"] == "failed":
                service = case["service"].rpartition(".")[2]
                found.add((case["rule"], f"{service}.{case['method']}"))
        return found


def run_check(
    args: list[str],
    tmp_path: Path,
    timeout: float = 300,
    name: str = "report",
    engine: Engine | None = None,
    pytest_args: tuple[str, ...] = (),
) -> CheckRun:
    """`python -m protoconform.mockserver check ...` with a JSON report; never raises on failure.

    With ``engine``, the run targets that mock and uses its control API (which lets
    waits for runs and tasks move the mock's clock instead of waiting in real time).
    ``pytest_args`` go after ``--`` (e.g. ``-x``: stop at the first failing case).
    """
    report_path = tmp_path / f"{name}.json"
    if engine is not None:
        args = ["--target", engine.grpc, "--control", engine.http, "--rest", engine.http, *args]
    command = [sys.executable, "-m", "protoconform.mockserver", "check", *args, "--json", str(report_path)]
    if pytest_args:
        command += ["--", *pytest_args]
    started = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    elapsed = time.monotonic() - started
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return CheckRun(done.returncode, done.stdout, done.stderr, elapsed, report)
