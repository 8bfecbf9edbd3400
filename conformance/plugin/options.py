"""The plugin's options (the table of :mod:`protoconform.conformance.options`) and the
:class:`Target` they describe."""

from __future__ import annotations

import time
from typing import Any

import pytest
from protoconform.conformance import known_suites
from protoconform.conformance.options import options_for, split_values
from protoconform.conformance.target import Target


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("protoconform", "protoconform conformance harness")
    for option in options_for("pytest"):
        kwargs: dict[str, Any] = option.arguments()
        try:
            group.addoption(*option.flags, **kwargs)
        except ValueError:
            # Another plugin may own a name (pytest-html has --html): fall back to --pc-<name>,
            # keeping the destination.
            group.addoption(f"--pc-{option.name.removeprefix('--')}", **kwargs)


def conformance_families() -> list[str]:
    """Families ``--api all`` means: those with rules in specs/."""
    from protoconform.specs import FAMILIES
    from protoconform.specs.rules import load

    return [f for f in FAMILIES if load(f).rules]


def _families(values: tuple[str, ...]) -> tuple[str, ...]:
    # Each value was checked against the families when the options were parsed.
    if not values or "all" in values:
        return tuple(conformance_families())
    return values


def target_from_options(config: pytest.Config) -> Target | None:
    """The server under test and this run's options (None without ``--target``)."""
    option = config.getoption
    if not option("target"):
        return None
    suites = split_values(option("suite"))
    namespace = option("namespace") or f"pc{option('seed')}-{int(time.time()) % 100000:05d}"
    return Target(
        address=option("target"),
        rest=option("rest"),
        families=_families(split_values(option("api"))),
        suites=suites or tuple(known_suites()),
        methods=split_values(option("pc_methods")),
        rules=split_values(option("pc_rules")),
        tls=option("tls") or bool(option("ca") or option("cert")),
        ca=option("ca"),
        cert=option("cert"),
        key=option("key"),
        server_name=option("server_name"),
        token=option("token"),
        control_token=option("control_token"),
        seed=option("seed"),
        max_examples=option("max_examples"),
        read_only=option("read_only"),
        namespace=namespace,
        lenient=option("lenient"),
        control=option("control"),
        timeout=option("call_timeout"),
    )
