"""``protoconform check``: run the conformance suites against a target.

It checks that the target answers, and its ``--rest`` and ``--control`` URLs
when given (one clear line and exit status 2 when one does not), then runs
pytest on the suite modules with the plugin, passing the options through; the
plugin leaves out the families the target does not serve.  Exit status: 0
when no case failed outside the baseline, 1 when some did, 2 for a target or
usage problem, 4 when no case was selected.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from protoconform.conformance import known_suites
from protoconform.conformance.options import CONTROL_TOKEN_ENV, TOKEN_ENV, forwarded, options_for

PLUGIN = "protoconform.conformance.plugin"
# The only installed pytest plugins a check loads: the suites' own needs.  Others a user has installed
# (random order, coverage, xdist...) would change the run, and autoloading them makes pytest rewrite
# the asserts of every module of their distributions (hundreds, on each run when bytecode is not
# written).
AUTOLOAD_OFF = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
THIRD_PARTY_PLUGINS = ("_hypothesis_pytestplugin", "schemathesis.pytest.plugin")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``protoconform check`` (from the table in :mod:`.options`), then ``-- PYTEST_ARGS``."""
    groups: dict[str, Any] = {"": parser}
    for option in options_for("cli"):
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        groups[option.group].add_argument(*option.flags, required=option.required, **option.arguments())
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
        *(arg for plugin in THIRD_PARTY_PLUGINS for arg in ("-p", plugin)),
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
        f"--hypothesis-seed={args.seed}",
        *forwarded(args),
    ]
    argv.append("-v" if args.verbose else "-q")
    if args.list:
        argv.append("--collect-only")
    return argv + list(args.pytest_args or [])


def run(args: argparse.Namespace) -> int:
    # a base install serves; the harness is the [check] extra (found, not imported: pytest
    # must import them itself to rewrite their asserts)
    missing = [
        name for name in ("pytest", "hypothesis", "schemathesis") if importlib.util.find_spec(name) is None
    ]
    if missing:
        print(
            f"protoconform check: needs the harness ({missing[0]} is missing): "
            "pip install 'protoconform[check]'",
            file=sys.stderr,
        )
        return 2
    import pytest
    from protoconform.conformance.target import Target, TargetError, probe

    if args.token:
        os.environ[TOKEN_ENV] = args.token  # passed to the plugin without showing in argv
    if args.control_token:
        os.environ[CONTROL_TOKEN_ENV] = args.control_token
    target = Target(
        address=args.target,
        rest=args.rest,
        control=args.control,
        tls=args.tls or bool(args.ca or args.cert),
        ca=args.ca,
        cert=args.cert,
        key=args.key,
        server_name=args.server_name,
        token=args.token,  # its default is the environment variable
        control_token=args.control_token,
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
    os.environ[AUTOLOAD_OFF] = "1"
    status = int(pytest.main(pytest_args(args)))
    if status == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("protoconform check: no case matches the selection", file=sys.stderr)
        return 4
    if status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return status
    if status == pytest.ExitCode.INTERRUPTED:
        return 130
    return 2
