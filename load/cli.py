"""``protoconform load``: a headless locust run of one scenario, its reports, and thresholds as a CI gate.

Locust gevent-patches the interpreter it runs in, so this command never imports it: it runs
``python -m locust -f load/locustfile.py`` in a child process with the scenario's user classes,
passes the connection and scenario parameters through ``PROTOCONFORM_LOAD_*`` variables, and
reads the aggregated row of locust's stats CSV afterwards to judge the thresholds (exit 1 with a
line naming each one that failed and the measured value). ``--master``/``--worker`` are locust's
own distributed runners: the master aggregates the workers' stats and writes the reports.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from protoconform.load.params import env_name
from protoconform.load.scenarios import SCENARIOS, Scenario
from protoconform.specs.argtypes import address, host, positive, readable_file, url

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_DURATION_S = 30.0  # neither --duration nor --requests: a run still ends by itself
REQUESTS_CAP_S = 600.0  # --requests alone: the longest a run may take to spend them
MOCK_CLOCK_SPEED = 200.0  # --mock: simulated lifecycles (runs, tasks, executions) finish in a blink
DEFAULT_MASTER_PORT = 5557  # locust's


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _scenario(text: str) -> str:
    if text != "list" and text not in SCENARIOS:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {text!r}; choose from {', '.join(SCENARIOS)}, list"
        )
    return text


def _ratio(text: str) -> float:
    value = positive(float, zero=True)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a ratio in [0, 1]")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", type=_scenario, default="list", help="scenario to run, or list (default: list them)"
    )
    parser.add_argument("--target", type=address(), default=None, help="gRPC address HOST:PORT of the server")
    parser.add_argument("--rest", type=url, default=None, help="base URL of the REST side (kfp-rest, mixed)")
    parser.add_argument(
        "--mock",
        action="store_true",
        help="start a protoconform mock for the run (when no --target is given) and stop it after",
    )
    parser.add_argument(
        "--mock-clock-speed",
        type=positive(float),
        default=MOCK_CLOCK_SPEED,
        help="--clock-speed of that mock (default: %(default)s)",
    )
    run = parser.add_argument_group("how much load, how long")
    run.add_argument("--users", type=positive(int), default=1, help="concurrent users (default: 1)")
    run.add_argument(
        "--spawn-rate", type=positive(float), help="users started per second (default: all at once)"
    )
    run.add_argument("--duration", type=positive(float), help="seconds to run")
    run.add_argument("--requests", type=positive(int), help="stop after this many requests (all workers)")
    run.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a scenario parameter (sizes, weights; --scenario list shows them)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    gate = parser.add_argument_group("reports and thresholds (exit 1 when one fails)")
    gate.add_argument(
        "--report-dir", type=Path, help="where the CSV and HTML reports go (default: reports/load/SCENARIO)"
    )
    gate.add_argument(
        "--max-p95-ms", type=positive(float), help="95th percentile response time, all requests"
    )
    gate.add_argument(
        "--max-p99-ms", type=positive(float), help="99th percentile response time, all requests"
    )
    gate.add_argument("--max-error-ratio", type=_ratio, help="failed requests / requests, 0..1")
    gate.add_argument("--min-rps", type=positive(float, zero=True), help="requests per second over the run")
    security = parser.add_argument_group("security (see README: Security)")
    security.add_argument("--tls", action="store_true", help="connect with TLS")
    security.add_argument(
        "--ca", type=readable_file, default=None, help="PEM of the CA of the server certificate"
    )
    security.add_argument(
        "--cert", type=readable_file, default=None, help="client certificate PEM (mutual TLS)"
    )
    security.add_argument("--key", type=readable_file, default=None, help="client key PEM (mutual TLS)")
    security.add_argument("--token", default="", help="bearer token sent with every gRPC and REST call")
    distributed = parser.add_argument_group("distributed runs (locust's master and workers)")
    distributed.add_argument("--master", action="store_true", help="aggregate workers; run no users itself")
    distributed.add_argument(
        "--expect-workers", type=positive(int), default=1, help="workers the master waits for"
    )
    distributed.add_argument("--worker", action="store_true", help="run users for a master (--master-host)")
    distributed.add_argument(
        "--master-host", type=host, default="127.0.0.1", help="the master a worker joins"
    )
    distributed.add_argument(
        "--master-bind-host",
        type=host,
        default="127.0.0.1",
        help="where the master listens (default: loopback)",
    )
    distributed.add_argument(
        "--master-port", type=positive(int), default=DEFAULT_MASTER_PORT, help="master's port (default: 5557)"
    )


@dataclass(frozen=True)
class Measured:
    requests: int
    failures: int
    rps: float
    p95: float
    p99: float

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def read_stats(path: Path) -> Measured:
    """The ``Aggregated`` row of locust's ``*_stats.csv``."""
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("Name") == "Aggregated"]
    if not rows:
        raise ValueError(f"{path} has no Aggregated row")
    row = rows[0]

    def number(key: str) -> float:
        text = row.get(key, "")
        return float(text) if text not in ("", "N/A") else math.nan

    return Measured(
        requests=int(number("Request Count")),
        failures=int(number("Failure Count")),
        rps=number("Requests/s"),
        p95=number("95%"),
        p99=number("99%"),
    )


def judge(measured: Measured, args: argparse.Namespace) -> list[str]:
    """One line per failed threshold, naming it with the measured value."""
    failed: list[str] = []
    if measured.requests == 0:
        return ["no requests were made: nothing to judge (is the target up? see the failures above)"]
    if args.max_p95_ms is not None and not measured.p95 <= args.max_p95_ms:
        failed.append(f"--max-p95-ms {args.max_p95_ms:g}: measured p95 {measured.p95:g} ms")
    if args.max_p99_ms is not None and not measured.p99 <= args.max_p99_ms:
        failed.append(f"--max-p99-ms {args.max_p99_ms:g}: measured p99 {measured.p99:g} ms")
    if args.max_error_ratio is not None and measured.error_ratio > args.max_error_ratio:
        failed.append(
            f"--max-error-ratio {args.max_error_ratio:g}: measured {measured.error_ratio:.4f} "
            f"({measured.failures} of {measured.requests} requests failed)"
        )
    if args.min_rps is not None and not measured.rps >= args.min_rps:
        failed.append(f"--min-rps {args.min_rps:g}: measured {measured.rps:.2f} req/s")
    return failed


def _check_params(scenario: Scenario, given: list[tuple[str, str]]) -> str:
    """What is wrong with the ``--param`` options for ``scenario`` ("" when nothing): a name it
    does not read (a typo would silently run the defaults), or a size that is not a whole number."""
    known = {item.partition("=")[0] for item in scenario.params}
    for name, value in given:
        if name == "label":
            continue
        if name not in known:
            names = ", ".join(sorted(known | {"label"}))
            return f"scenario {scenario.name} has no parameter {name!r}; it has: {names}"
        if not value.isdigit():
            return f"--param {name}={value!r}: expected a whole number"
    return ""


def list_scenarios() -> int:
    for scenario in SCENARIOS.values():
        print(f"{scenario.name:10} {scenario.about}")
        users = ", ".join(scenario.users)
        needs = " and ".join(
            n for n, yes in (("--target", scenario.needs_grpc), ("--rest", scenario.needs_rest)) if yes
        )
        print(f"{'':10} users: {users}; needs {needs}")
        if scenario.params:
            print(f"{'':10} --param (default): {' '.join(scenario.params)}")
    return 0


def _environment(args: argparse.Namespace, target: str, rest: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PROTOCONFORM_LOAD_")}
    env.update(
        {
            "PROTOCONFORM_LOAD_TARGET": target or "",
            "PROTOCONFORM_LOAD_REST": rest or "",
            "PROTOCONFORM_LOAD_TLS": "1" if args.tls else "",
            "PROTOCONFORM_LOAD_CA": args.ca or "",
            "PROTOCONFORM_LOAD_CERT": args.cert or "",
            "PROTOCONFORM_LOAD_KEY": args.key or "",
            "PROTOCONFORM_LOAD_TOKEN": args.token,
            "PROTOCONFORM_LOAD_REQUESTS": str(args.requests or ""),
            "PROTOCONFORM_LOAD_PROGRESS": "0" if args.quiet else "1",
        }
    )
    for name, value in args.param:
        env[env_name(name)] = value
    return env


@contextlib.contextmanager
def _mock(args: argparse.Namespace) -> Iterator[tuple[str | None, str | None]]:
    """The target and REST URL: the given ones, or those of a mock started for the run."""
    if not args.mock or args.target:
        yield args.target, args.rest
        return
    from protoconform.mockserver.launcher import ServerProcess

    with ServerProcess(["--clock-speed", f"{args.mock_clock_speed:g}"]) as server:
        print(f"load: mock at grpc={server.grpc_address} http={server.http_url}", file=sys.stderr)
        yield server.grpc_address, args.rest or server.http_url


def locust_command(args: argparse.Namespace, report_dir: Path) -> list[str]:
    users = SCENARIOS[args.scenario].users
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    if args.worker:
        return [
            *command,
            "--worker",
            "--master-host",
            args.master_host,
            "--master-port",
            str(args.master_port),
            *users,
        ]
    duration = args.duration or (REQUESTS_CAP_S if args.requests else DEFAULT_DURATION_S)
    command += [
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        f"{args.spawn_rate or args.users:g}",
        "--run-time",
        f"{max(1, math.ceil(duration))}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(report_dir / "load"),
        "--html",
        str(report_dir / "load.html"),
        "--only-summary",
        "--exit-code-on-error",
        "0",
    ]
    if args.master:
        command += [
            "--master",
            "--expect-workers",
            str(args.expect_workers),
            "--expect-workers-max-wait",
            "60",
            "--master-bind-host",
            args.master_bind_host,
            "--master-bind-port",
            str(args.master_port),
        ]
    return [*command, *users]


def check_args(args: argparse.Namespace) -> None:
    """Checks that span several options, while parsing (errors show the usage and name the option)."""
    if args.scenario == "list":
        return
    scenario = SCENARIOS[args.scenario]
    if args.master and args.worker:
        raise ValueError("argument --worker: not allowed with --master")
    runs_users = not args.master and not args.mock
    if scenario.needs_grpc and runs_users and not args.target:
        raise ValueError(f"argument --target: scenario {scenario.name} needs the gRPC address (or --mock)")
    if scenario.needs_rest and runs_users and not args.rest:
        raise ValueError(f"argument --rest: scenario {scenario.name} needs the REST URL (or --mock)")
    problem = _check_params(scenario, args.param)
    if problem:
        raise ValueError(f"argument --param: {problem}")


def run(args: argparse.Namespace) -> int:
    if args.scenario == "list":
        return list_scenarios()
    if importlib.util.find_spec("locust") is None:
        print("protoconform load: needs locust: pip install 'protoconform[load]'", file=sys.stderr)
        return 2
    scenario = SCENARIOS[args.scenario]
    report_dir = args.report_dir or Path("reports") / "load" / scenario.name
    if not args.worker:
        report_dir.mkdir(parents=True, exist_ok=True)
    with _mock(args) as (target, rest):
        command = locust_command(args, report_dir)
        status = subprocess.run(command, env=_environment(args, target, rest), check=False).returncode
    if status != 0:
        print(f"protoconform load: locust exited with status {status}", file=sys.stderr)
        return status
    if args.worker:
        return 0
    stats = report_dir / "load_stats.csv"
    try:
        measured = read_stats(stats)
    except (OSError, ValueError) as exc:
        print(f"protoconform load: no stats to judge: {exc}", file=sys.stderr)
        return 1
    print(
        f"load: {scenario.name}: {measured.requests} requests, {measured.failures} failed, "
        f"{measured.rps:.2f} req/s, p95 {measured.p95:g} ms, p99 {measured.p99:g} ms; "
        f"reports in {report_dir}/ (load_stats.csv, load.html)"
    )
    failed = judge(measured, args)
    for line in failed:
        print(f"protoconform load: threshold failed: {line}", file=sys.stderr)
    return 1 if failed else 0
