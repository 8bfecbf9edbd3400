"""``protoconform check``: run the conformance suites against a target.

It checks that the target answers (one clear line and exit status 2 when it
does not), then runs pytest on the suite modules with the plugin, passing
the options through.  Exit status: 0 when no case failed outside the baseline,
1 when some did, 2 for a target or usage problem, 4 when no case was selected.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from protoconform.conformance import DEFAULT_MAX_EXAMPLES, known_suites

PLUGIN = "protoconform.conformance.plugin"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", required=True, metavar="HOST:PORT", help="gRPC address of the server under test"
    )
    parser.add_argument("--rest", default="", metavar="URL", help="base URL of the target's REST gateway")
    parser.add_argument(
        "--api",
        action="append",
        metavar="FAMILY",
        help="API family to check: armonik, kfp, flyte or all (default: all families with rules); repeatable",
    )
    parser.add_argument(
        "--suite",
        action="append",
        metavar="NAME",
        help=f"suites to run, repeatable or comma-separated: {', '.join(known_suites())} (default: all)",
    )
    parser.add_argument(
        "--method", action="append", metavar="SERVICE.METHOD", help="only cases of these methods"
    )
    parser.add_argument("--rule", action="append", metavar="RULE_ID", help="only cases of these rules")
    security = parser.add_argument_group("transport and credentials")
    security.add_argument("--tls", action="store_true", help="connect with TLS")
    security.add_argument("--ca", default="", metavar="PEM", help="CA certificate that signed the server's")
    security.add_argument("--cert", default="", metavar="PEM", help="client certificate (mTLS)")
    security.add_argument("--key", default="", metavar="PEM", help="client private key (mTLS)")
    security.add_argument(
        "--server-name", default="", metavar="NAME", help="TLS name to verify, if not the host"
    )
    security.add_argument(
        "--token", default="", help="bearer token for every call (or set PROTOCONFORM_TOKEN; safer than argv)"
    )
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seed of generated data (default: %(default)s)")
    run.add_argument(
        "--max-examples",
        type=int,
        default=DEFAULT_MAX_EXAMPLES,
        help="generated examples per property (default: %(default)s)",
    )
    run.add_argument("--read-only", action="store_true", help="only cases that change nothing on the target")
    run.add_argument("--namespace", default="", metavar="PREFIX", help="prefix of everything the run creates")
    run.add_argument(
        "--lenient",
        action="store_true",
        help="also accept the real servers' documented deviations (real_code)",
    )
    run.add_argument(
        "--baseline", default="", metavar="FILE", help="known deviations that do not fail the run"
    )
    run.add_argument("--control", default="", metavar="URL", help="control API of a protoconform mock server")
    run.add_argument("--call-timeout", type=float, default=10.0, help="deadline of one call in seconds")
    run.add_argument(
        "--connect-timeout", type=float, default=5.0, help="how long the target may take to answer at all (s)"
    )
    run.add_argument("--list", action="store_true", help="list the selected cases and exit")
    run.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    reports = parser.add_argument_group("reports")
    reports.add_argument("--junit", default="", metavar="PATH", help="JUnit XML report")
    reports.add_argument("--json", default="", metavar="PATH", help="JSON report")
    reports.add_argument("--html", default="", metavar="PATH", help="self-contained HTML report")
    parser.add_argument(
        "pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="extra pytest arguments after --"
    )


def suite_files() -> list[str]:
    from protoconform.conformance import suites

    folder = Path(suites.__file__).resolve().parent
    return [str(folder / f"{name}.py") for name in known_suites()]


def pytest_args(args: argparse.Namespace) -> list[str]:
    """The pytest command line equivalent to ``args``."""
    from protoconform.conformance import suites

    folder = str(Path(suites.__file__).resolve().parent)
    argv = [
        *suite_files(),
        "-p",
        PLUGIN,
        # The suites are package modules: import them as such, leave sys.path and the
        # user's ini files alone.
        "--import-mode=importlib",
        "--rootdir",
        folder,
        "-c",
        os.devnull,
        "-p",
        "no:cacheprovider",
        "-o",
        "junit_family=xunit1",
        "-o",
        "junit_suite_name=protoconform",
        "--skip-probe",
        "--tb=short",
        "-rN",
        "--target",
        args.target,
        "--seed",
        str(args.seed),
        "--max-examples",
        str(args.max_examples),
        "--call-timeout",
        str(args.call_timeout),
        f"--hypothesis-seed={args.seed}",
    ]
    argv.append("-v" if args.verbose else "-q")
    for flag in ("tls", "read_only", "lenient"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    for option in ("rest", "ca", "cert", "key", "server_name", "namespace", "baseline", "control", "junit"):
        value = getattr(args, option)
        if value:
            argv += ["--" + option.replace("_", "-"), value]
    if args.json:
        argv += ["--json", args.json]
    if args.html:
        argv += ["--html", args.html]
    for option, values in (
        ("api", args.api),
        ("suite", args.suite),
        ("method", args.method),
        ("rule", args.rule),
    ):
        for value in values or []:
            argv += [f"--{option}", value]
    if args.list:
        argv.append("--collect-only")
    return argv + list(args.pytest_args or [])


def run(args: argparse.Namespace) -> int:
    import pytest
    from protoconform.conformance.target import Target, TargetError, probe

    if args.token:
        os.environ["PROTOCONFORM_TOKEN"] = args.token  # passed to the plugin without showing in argv
    target = Target(
        address=args.target,
        tls=args.tls or bool(args.ca or args.cert),
        ca=args.ca,
        cert=args.cert,
        key=args.key,
        server_name=args.server_name,
        token=args.token or os.environ.get("PROTOCONFORM_TOKEN", ""),
    )
    if (args.cert or args.key) and not (args.cert and args.key):
        print("protoconform check: error: --cert and --key go together", file=sys.stderr)
        return 2
    try:
        if not args.list:
            probe(target, timeout=args.connect_timeout)
    except TargetError as exc:
        print(f"protoconform check: error: {exc}", file=sys.stderr)
        return 2
    status = int(pytest.main(pytest_args(args)))
    if status == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("protoconform check: no case matches the selection", file=sys.stderr)
        return 4
    if status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return status
    if status == pytest.ExitCode.INTERRUPTED:
        return 130
    return 2
