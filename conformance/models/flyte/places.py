"""Where Flyte examples may run (``inside:`` in ``specs/flyte/*.yaml``): read by the plugin's ``places``.

- ``anonymous``: a call whose caller has no identity.  The run sends no token of its
  own there, so a run with ``--token`` cannot be anonymous: its cases are skipped
  (a server that checks tokens answers the token's identity, or refuses a call
  without one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from protoconform.conformance.target import Target


class AnonymousPlace:
    binds = ""

    def __init__(self, target: Target) -> None:
        self.target = target

    def unavailable(self) -> str:
        if self.target.token:
            return "the run authenticates with --token: its caller is not anonymous"
        return ""

    @contextlib.contextmanager
    def hold(self, scenario: Any, settings: dict[str, Any], bindings: dict[str, Any]) -> Iterator[None]:
        yield None


class Places:
    def __init__(self, target: Target) -> None:
        self.places: dict[str, Any] = {"anonymous": AnonymousPlace(target)}

    def close(self) -> None:
        pass


def open_places(config: pytest.Config, target: Target, control: Any) -> Places:
    return Places(target)
