"""The options of ``protoconform check``, declared once.

:data:`OPTIONS` is the one table: name, type, default and help of every option.
The command line (:mod:`.cli`, argparse) and the pytest plugin
(:mod:`.plugin.options`, ``pytest_addoption``) both add their options from it,
and the command line forwards the values to pytest from it too.

Choices that depend on data (the API families of ``protoconform.specs``, the
suite modules) are read when a parser is built or a value is checked, never
frozen at import time.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from protoconform.conformance import DEFAULT_MAX_EXAMPLES, known_suites
from protoconform.specs.argtypes import address, positive, readable_file, url, writable_file

Where = Literal["both", "cli", "pytest"]

TOKEN_ENV = "PROTOCONFORM_TOKEN"
CONTROL_TOKEN_ENV = "PROTOCONFORM_CONTROL_TOKEN"


def split_values(values: Iterable[str] | None) -> tuple[str, ...]:
    """Repeated and comma-separated values, in order, without blanks or repeats."""
    return tuple(dict.fromkeys(v.strip() for value in values or [] for v in value.split(",") if v.strip()))


def api_choices() -> list[str]:
    from protoconform.specs import FAMILIES

    return [*FAMILIES, "all"]


def percentage(text: str) -> float:
    """A number from 0 to 100."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 100")
    return value


def _token_default() -> str:
    return os.environ.get(TOKEN_ENV, "")


def _control_token_default() -> str:
    return os.environ.get(CONTROL_TOKEN_ENV, "")


@dataclass(frozen=True)
class CheckOption:
    """One option of ``protoconform check``.

    ``kind`` is ``bool`` for an on/off flag, else the value's type (an argparse
    type function that checks it, naming the option on a bad value).  ``help`` may
    hold ``{choices}``, filled from ``choices()`` when the parser is built.
    """

    flags: tuple[str, ...]
    help: str
    kind: Callable[[str], Any] = str
    default: Any = None
    metavar: str | None = None
    repeat: bool = False  # may be given several times (a list of values)
    choices: Callable[[], Iterable[str]] | None = None  # checked per comma-separated item
    dest: str = ""  # when it differs from the long flag (another plugin owns the plain name)
    group: str = ""  # heading in ``protoconform check --help``
    where: Where = "both"
    required: bool = False  # on the command line (the plugin skips cases without it)
    forward: bool = True  # the command line passes it to pytest in argv

    @property
    def name(self) -> str:
        """The long flag."""
        return self.flags[-1]

    @property
    def key(self) -> str:
        """Attribute name of the parsed value, the same for argparse and pytest."""
        return self.dest or self.name.removeprefix("--").replace("-", "_")

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``add_argument`` / ``addoption``."""
        kwargs: dict[str, Any] = {"dest": self.key, "help": self.help}
        if self.kind is bool:
            kwargs["action"] = "store_true"
            return kwargs
        kwargs["action"] = "append" if self.repeat else "store"
        kwargs["default"] = self.default() if callable(self.default) else self.default
        if self.metavar:
            kwargs["metavar"] = self.metavar
        if self.choices is not None:
            kwargs["help"] = self.help.format(choices=", ".join(self.choices()))
            kwargs["type"] = _one_of(self.choices)
        elif self.kind is not str:
            kwargs["type"] = self.kind
        return kwargs

    def argv(self, value: Any) -> list[str]:
        """The same value again as pytest arguments (nothing for an unset value)."""
        if self.kind is bool:
            return [self.name] if value else []
        if self.repeat:
            return [part for item in value or [] for part in (self.name, str(item))]
        if value is None or value == "":
            return []
        return [self.name, str(value)]


def _one_of(choices: Callable[[], Iterable[str]]) -> Callable[[str], str]:
    """An argparse type: a comma-separated list of ``choices()`` (read at parse time), kept as given."""

    def check(text: str) -> str:
        allowed = list(choices())
        unknown = [v for v in split_values([text]) if v not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)}; choose from {', '.join(allowed)}"
            )
        return text

    return check


def _or_unset(check: Callable[[str], str]) -> Callable[[str], str]:
    """``check``, except for "" (the default of an option not given: argparse passes it through too)."""

    def parse(text: str) -> str:
        return check(text) if text else text

    return parse


SECURITY = "transport and credentials"
RUN = "run"
ARMONIK = "ArmoniK worker (Agent cases run inside a task handed to the harness)"
REPORTS = "reports"

OPTIONS: tuple[CheckOption, ...] = (
    CheckOption(
        ("--target",),
        "gRPC address of the server under test",
        kind=address(),
        metavar="HOST:PORT",
        required=True,
    ),
    CheckOption(
        ("--rest",),
        "base URL of the target's REST gateway (http:// or https://), for the rest suite",
        kind=_or_unset(url),
        default="",
        metavar="URL",
    ),
    CheckOption(
        ("--api",),
        "API family to check: {choices} (default: all families with rules); repeatable or comma-separated",
        metavar="FAMILY",
        repeat=True,
        choices=api_choices,
    ),
    CheckOption(
        ("--suite",),
        "suites to run: {choices} (default: all); repeatable or comma-separated",
        metavar="NAME",
        repeat=True,
        choices=known_suites,
    ),
    CheckOption(
        ("--method",), "only cases of these methods", metavar="SERVICE.METHOD", repeat=True, dest="pc_methods"
    ),
    CheckOption(
        ("--rule",),
        "only cases of these rules",
        metavar="RULE_ID",
        repeat=True,
        dest="pc_rules",
    ),
    CheckOption(("--tls",), "connect with TLS", kind=bool, group=SECURITY),
    CheckOption(
        ("--ca",),
        "CA certificate that signed the server's",
        kind=_or_unset(readable_file),
        default="",
        metavar="PEM",
        group=SECURITY,
    ),
    CheckOption(
        ("--cert",),
        "client certificate (mTLS)",
        kind=_or_unset(readable_file),
        default="",
        metavar="PEM",
        group=SECURITY,
    ),
    CheckOption(
        ("--key",),
        "client private key (mTLS)",
        kind=_or_unset(readable_file),
        default="",
        metavar="PEM",
        group=SECURITY,
    ),
    CheckOption(
        ("--server-name",), "TLS name to verify, if not the host", default="", metavar="NAME", group=SECURITY
    ),
    CheckOption(
        ("--token",),
        f"bearer token for every call (or set {TOKEN_ENV}; safer than argv)",
        default=_token_default,
        group=SECURITY,
        forward=False,  # reaches pytest through the environment, never in argv
    ),
    CheckOption(
        ("--seed",),
        "seed of generated data; same seed, same run (default: %(default)s)",
        kind=int,
        default=0,
        group=RUN,
    ),
    CheckOption(
        ("--max-examples",),
        "generated examples per property, > 0 (default: %(default)s)",
        kind=positive(int),
        default=DEFAULT_MAX_EXAMPLES,
        group=RUN,
    ),
    CheckOption(("--read-only",), "only cases that change nothing on the target", kind=bool, group=RUN),
    CheckOption(
        ("--namespace",), "prefix of everything the run creates", default="", metavar="PREFIX", group=RUN
    ),
    CheckOption(
        ("--min-coverage",),
        "fail the run when a family's rule coverage (rules a case checked / checkable rules in "
        "specs) is below this percentage, 0-100",
        kind=percentage,
        metavar="PERCENT",
        group=RUN,
    ),
    CheckOption(
        ("--lenient",),
        "also accept the real servers' documented deviations (real_code)",
        kind=bool,
        group=RUN,
    ),
    CheckOption(
        ("--baseline",),
        "known deviations that do not fail the run",
        kind=_or_unset(readable_file),
        default="",
        metavar="FILE",
        group=RUN,
    ),
    CheckOption(
        ("--control",),
        "control API of a protoconform mock (virtual clock, defects, journal): http:// or https:// URL",
        kind=_or_unset(url),
        default="",
        metavar="URL",
        group=RUN,
    ),
    CheckOption(
        ("--control-token",),
        f"bearer token of the control API (the mock's --control-token; or set {CONTROL_TOKEN_ENV})",
        default=_control_token_default,
        group=RUN,
        forward=False,  # like --token: through the environment, never in argv
    ),
    CheckOption(
        ("--call-timeout",),
        "deadline of one call in seconds, > 0 (default: %(default)s)",
        kind=positive(float),
        default=10.0,
        group=RUN,
    ),
    CheckOption(
        ("--connect-timeout",),
        "how long the target may take to answer at all (s), > 0",
        kind=positive(float),
        default=5.0,
        group=RUN,
        where="cli",  # the command line probes the target before pytest starts
    ),
    CheckOption(("--list",), "list the selected cases and exit", kind=bool, group=RUN, where="cli"),
    CheckOption(("-v", "--verbose"), "one line per case", kind=bool, group=RUN, where="cli"),
    CheckOption(
        ("--skip-probe",),
        argparse.SUPPRESS,  # the command line has probed the target already
        kind=bool,
        where="pytest",
    ),
    CheckOption(
        ("--armonik-worker-listen",),
        "where the harness serves the ArmoniK Worker API (HOST:PORT or unix:///PATH), for the worker of "
        "--armonik-worker-partition (default with --control: a loopback port routed to a partition of "
        "its own through the mock's control API)",
        kind=_or_unset(address(unix=True)),
        default="",
        metavar="ADDRESS",
        group=ARMONIK,
    ),
    CheckOption(
        ("--armonik-worker-partition",),
        "the partition whose worker is pointed at --armonik-worker-listen",
        default="",
        metavar="NAME",
        group=ARMONIK,
    ),
    CheckOption(
        ("--armonik-agent",),
        "where the Agent of that worker answers, HOST:PORT or unix:///PATH (default: the target)",
        kind=_or_unset(address(unix=True)),
        default="",
        metavar="ADDRESS",
        group=ARMONIK,
    ),
    # report paths are tried before the run, not after it has taken minutes
    CheckOption(
        ("--junit",),
        "JUnit XML report",
        kind=_or_unset(writable_file),
        default="",
        metavar="PATH",
        group=REPORTS,
    ),
    CheckOption(
        ("--json",),
        "JSON report",
        kind=_or_unset(writable_file),
        default="",
        metavar="PATH",
        group=REPORTS,
        dest="pc_json",
    ),
    CheckOption(
        ("--html",),
        "self-contained HTML report",
        kind=_or_unset(writable_file),
        default="",
        metavar="PATH",
        group=REPORTS,
        dest="pc_html",
    ),
)


def options_for(where: Where) -> Iterator[CheckOption]:
    """The options of the command line (``cli``) or of the plugin (``pytest``)."""
    return (o for o in OPTIONS if o.where in ("both", where))


def forwarded(values: argparse.Namespace) -> list[str]:
    """The pytest arguments that pass the command line's values on to the plugin."""
    argv: list[str] = []
    for option in OPTIONS:
        if option.where == "both" and option.forward:
            argv += option.argv(getattr(values, option.key))
    return argv
