"""The fixtures of conformance cases (and of any test run with the plugin)."""

from __future__ import annotations

import contextlib
import importlib
import random
from collections.abc import Callable, Iterator
from types import ModuleType
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


def _family_part(family: str, part: str) -> ModuleType | None:
    """``<the family's models package>.<part>``, when the family has one."""
    from protoconform.specs.families import family as family_entry

    name = f"{family_entry(family).models_module}.{part}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (name, family_entry(family).models_module):
            raise
        return None


def _channel_routes(config: pytest.Config, target: Target) -> dict[str, str]:
    """Services reached elsewhere than at the target (a family's ``places.channel_routes``)."""
    routes: dict[str, str] = {}
    for family in target.families:
        module = _family_part(family, "places")
        if module is not None and hasattr(module, "channel_routes"):
            routes.update(module.channel_routes(config))
    return routes


class RoutedChannel(grpc.Channel):
    """The target's channel, except for the services routed to other addresses (plaintext)."""

    def __init__(self, default: grpc.Channel, routes: dict[str, str]) -> None:
        self.default = default
        self.others = {f"/{service}/": grpc.insecure_channel(address) for service, address in routes.items()}

    def _for(self, method: str) -> grpc.Channel:
        return next((ch for prefix, ch in self.others.items() if method.startswith(prefix)), self.default)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._for(method).unary_unary(method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._for(method).unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._for(method).stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._for(method).stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self.default.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self.default.unsubscribe(callback)

    def close(self) -> None:
        for other in self.others.values():
            other.close()
        self.default.close()


@pytest.fixture(scope="session")
def channel(request: pytest.FixtureRequest, target: Target) -> Iterator[grpc.Channel]:
    """A channel to the target with the run's transport, credentials and token (services a family
    reaches elsewhere, such as ArmoniK's Agent with --armonik-agent, go there)."""
    ch = target.channel()
    routes = _channel_routes(request.config, target)
    if routes:
        ch = RoutedChannel(ch, routes)
    yield ch
    ch.close()


@pytest.fixture(scope="session")
def served(request: pytest.FixtureRequest, target: Target) -> set[str] | None:
    """The services the run can call: those the target lists over reflection, and those routed
    elsewhere; None when the target's reflection said nothing."""
    scope = _state(request).scope
    listed = getattr(scope, "listed", None) if scope is not None else None
    if not listed:
        return None
    return set(listed) | set(_channel_routes(request.config, target))


@pytest.fixture(scope="session")
def places(request: pytest.FixtureRequest, target: Target, control: Any) -> Iterator[dict[str, Any]]:
    """Where examples may run (``inside:`` in a family's examples): each family's
    ``places.open_places(config, target, control)``, started on first use, closed at the end."""
    opened = []
    found: dict[str, Any] = {}
    for family in target.families:
        module = _family_part(family, "places")
        if module is not None and hasattr(module, "open_places"):
            made = module.open_places(request.config, target, control)
            opened.append(made)
            found.update(made.places)
    yield found
    for made in opened:
        with contextlib.suppress(Exception):
            made.close()


@pytest.fixture(scope="session")
def control(target: Target) -> Iterator[Any]:
    """The mock's control API client, or None when the target is not a protoconform mock."""
    if not target.control:
        yield None
        return
    client = target.control_client()
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
    rpc: Caller,
    namespace: str,
    rng: random.Random,
    cleanup: list[Callable[[], None]],
    control: Any,
    places: dict[str, Any],
    served: set[str] | None,
) -> examples_module.Scenario:
    """Runs the examples of specs/<family>/examples.yaml (steps, valid request, cleanup)."""
    return examples_module.Scenario(rpc, namespace, rng, cleanup, control, places=places, served=served)
