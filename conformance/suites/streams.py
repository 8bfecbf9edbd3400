"""Suite *streams*: streaming calls deliver what the model expects, and end when they should.

The checks come from each family model's ``streams()`` (for ArmoniK: upload and
download chunking against ``data_chunk_max_size``, the event stream's snapshot
and live events, a subscription that lasts until the client cancels it or its
deadline passes, WatchResults answering at once).  Properties among them draw
``--max-examples`` inputs from ``--seed``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from protoconform.conformance.caller import Caller
from protoconform.conformance.models import family_model
from protoconform.conformance.models.base import Env, run_property
from protoconform.conformance.models.streams import StreamCheck
from protoconform.conformance.plugin.recording import checked_too
from protoconform.conformance.suites._shared import parametrize_cases, run_settings
from protoconform.conformance.target import Target
from protoconform.specs import FAMILIES
from protoconform.specs.registry import default_registry
from protoconform.specs.rules import load

SUITE = "streams"


@dataclass(frozen=True)
class Case:
    family: str
    check: StreamCheck

    @property
    def method(self) -> Any:
        service, _, name = self.check.method.rpartition(".")
        services = default_registry().families[self.family]
        full = next(s for s in services if s.rpartition(".")[2] == service)
        return default_registry().method(f"{full}.{name}")

    @property
    def id(self) -> str:
        return f"{self.family}:{self.check.name}[{self.check.method}]"


def cases() -> list[Case]:
    found = []
    for family in FAMILIES:
        found += [Case(family, check) for check in family_model(family).streams()]
    return found


def _mark(case: Case) -> dict[str, Any]:
    return {
        "service": case.method.service,
        "method": case.method.name,
        "rule": case.check.rule,
        "mutating": case.check.mutating,
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_cases(metafunc, SUITE, cases, _mark)


@pytest.fixture
def env(case: Case, channel: Any, registry: Any, target: Target, control: Any) -> Iterator[Env]:
    environment = Env(
        rpc=Caller(channel, registry, target),
        rules=load(case.family),
        namespace=f"{target.namespace}-{case.check.name}",
        lenient=target.lenient,
        control=control,
    )
    yield environment
    for action in environment.cleanup:
        with contextlib.suppress(Exception):
            action()


def runner(target: Target) -> Callable[..., None]:
    """``run(fn, **strategies)``: ``fn`` as a hypothesis property with the run's examples and seed."""

    def run(fn: Callable[..., None], **strategies: Any) -> None:
        run_property(run_settings(target)(given(**strategies)(fn)))

    return run


def test_stream(case: Case, env: Env, target: Target, request: pytest.FixtureRequest) -> None:
    try:
        case.check.run(env, runner(target))
    finally:
        checked_too(request.node, *env.take_checked())
