"""Background work of the ArmoniK family, started and stopped with the server.

A part that needs it (e.g. attaching a user's worker) appends an async
``hook(state)`` to :data:`STARTUP_HOOKS` / :data:`SHUTDOWN_HOOKS` when its module
is imported; the family's ``start``/``stop`` run them in order.  Plain
``hook(state)`` callables in :data:`STATE_HOOKS` run each time a state is
created, including on a state reset (e.g. to install the engine's executor).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Hook = Callable[[Any], Awaitable[None]]
STARTUP_HOOKS: list[Hook] = []
SHUTDOWN_HOOKS: list[Hook] = []
STATE_HOOKS: list[Callable[[Any], None]] = []
