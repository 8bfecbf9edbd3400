"""The fixtures of conformance cases (and of any test run with the plugin)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from protoconform.conformance import examples as examples_module
from protoconform.conformance.caller import Caller
from protoconform.conformance.plugin.recording import STATE, RunState
from protoconform.conformance.target import Target


def _state(request: pytest.FixtureRequest) -> RunState:
    state = request.config.stash.get(STATE, None)
    if state is None or state.target is None:
        pytest.skip("no --target given")
    return state


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """The server under test and the options of this run."""
    state = _state(request)
    assert state.target is not None
    return state.target


@pytest.fixture(scope="session")
def registry() -> Any:
    """Descriptors of every family (protoconform.specs.registry.default_registry())."""
    from protoconform.specs.registry import default_registry

    return default_registry()


@pytest.fixture(scope="session")
def rules() -> Callable[[str], Any]:
    """``rules(family)`` -> the family's FamilyRules from specs/."""
    from protoconform.specs.rules import load

    return load


@pytest.fixture(scope="session")
def examples() -> Callable[[str], examples_module.FamilyExamples]:
    """``examples(family)`` -> valid requests and effects from specs/<family>/examples.yaml."""
    return examples_module.book


@pytest.fixture(scope="session")
def channel(target: Target) -> Iterator[grpc.Channel]:
    """A channel to the target with the run's transport, credentials and token."""
    ch = target.channel()
    yield ch
    ch.close()


@pytest.fixture(scope="session")
def control(target: Target) -> Iterator[Any]:
    """The mock's control API client, or None when the target is not a protoconform mock."""
    if not target.control:
        yield None
        return
    from protoconform.conformance.control import ControlClient

    client = ControlClient(target.control)
    yield client
    client.close()


@pytest.fixture
def rpc(channel: grpc.Channel, registry: Any, target: Target) -> Caller:
    """Call any method by name; every reply is recorded for the reproducer."""
    return Caller(channel, registry, target)


@pytest.fixture(scope="session")
def namespace(target: Target) -> str:
    """Prefix of every name this run creates on the target."""
    return target.namespace


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], None]]]:
    """Undo actions (best effort), run in reverse order after the case."""
    actions: list[Callable[[], None]] = []
    yield actions
    for action in reversed(actions):
        with contextlib.suppress(Exception):
            action()


@pytest.fixture
def rng(request: pytest.FixtureRequest, target: Target) -> random.Random:
    """Random numbers that depend only on --seed and the case."""
    return random.Random(f"{target.seed}:{request.node.nodeid}")


@pytest.fixture
def scenario(
    rpc: Caller, namespace: str, rng: random.Random, cleanup: list[Callable[[], None]], control: Any
) -> examples_module.Scenario:
    """Runs the examples of specs/<family>/examples.yaml (steps, valid request, cleanup)."""
    return examples_module.Scenario(rpc, namespace, rng, cleanup, control)
