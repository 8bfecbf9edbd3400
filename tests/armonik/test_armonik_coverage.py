"""The checks of ArmoniK's behaviour rules (sessions, results, tasks, events, the legacy Submitter,
partitions, applications, versions, health, authentication) against an in-process mock: on the
clean mock they pass and check every rule they are written for (the full default run, every
rule covered: ``tests/conformance/test_engine_check.py``); on a mock that breaks one of
those rules, a run narrowed to the rule at hand (``--rule``) fails naming it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from protoconform.mockserver.apis.armonik import applications, auth, results, tasks
from protoconform.mockserver.config import ServerConfig
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.rules import load

WORKER_SIDE = ("armonik.agent.", "armonik.attach.", "armonik.worker.")
FAILURE_PATHS = ("armonik.tasks.retry", "armonik.tasks.timeout", "armonik.tasks.error-no-retry")


def client_side_behaviours() -> list[str]:
    """The behaviour rules a client of the control plane checks (the worker side has its own)."""
    return sorted(
        rule.id
        for rule in load("armonik").rules.values()
        if rule.kind == "behaviour" and not rule.id.startswith(WORKER_SIDE) and rule.id not in FAILURE_PATHS
    )


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    """An ArmoniK mock whose clock runs (as a real control plane's does)."""
    with ThreadedServer(ServerConfig(families=("armonik",), grace_seconds=0.2)) as srv:
        yield srv


def check(server: ThreadedServer, tmp_path: Path, rules: list[str]) -> tuple[int, dict[str, Any], str]:
    """``protoconform check`` narrowed to ``rules``: exit status, JSON report, output."""
    report = tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "protoconform.mockserver",
        "check",
        "--target",
        server.grpc_address,
        "--control",
        server.http_url,
        "--api",
        "armonik",
        *[arg for rule in rules for arg in ("--rule", rule)],
        "--json",
        str(report),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    return done.returncode, json.loads(report.read_text()), done.stdout + done.stderr


def failed_rules(report: dict[str, Any]) -> set[str]:
    return {case["rule"] for case in report["cases"] if case["outcome"] == "failed"}


def no_grouping(state: Any) -> list[Any]:
    """Every task's application, duplicates included."""
    found = []
    for task in state.tasks.all():
        options = task.options
        app = (options.application_name, options.application_namespace, options.application_version)
        found.append(applications.Application(*app, options.application_service))
    return found


def named_payloads(state: Any, session_id: str, name: str, data: bytes, *args: Any) -> Any:
    """Results with data, those without a name (the legacy payloads) named all the same."""
    return STORED(state, session_id, name or "payload", data, *args)


STORED = results.new_result_with_data
BREAKAGES: dict[str, tuple[Any, str, Callable[..., Any]]] = {
    "armonik.applications.grouping": (applications, "applications", no_grouping),
    "armonik.tasks.count-by-status": (tasks, "compile_filters", lambda *args, **kwargs: lambda item: True),
    "armonik.auth.anonymous": (auth, "permissions", lambda state: ["General:Impersonate"]),
    "armonik.submitter.legacy-payload": (results, "new_result_with_data", named_payloads),
}


@pytest.mark.slow  # a check run per breakage: the end-to-end tier
@pytest.mark.parametrize("rule", sorted(BREAKAGES))
def test_a_broken_rule_fails_the_run(
    rule: str, server: ThreadedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder, name, broken = BREAKAGES[rule]
    monkeypatch.setattr(holder, name, broken)
    status, report, output = check(server, tmp_path, [rule])
    assert status == 1, output[-3000:]
    assert rule in failed_rules(report), output[-3000:]
