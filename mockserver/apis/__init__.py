"""API families.  Each family is a subpackage that registers its handlers on import.

A family package provides:

- ``create_state(options: dict, clock: Clock, registry: Registry) -> object``:
  the family's in-memory state, handed to its handlers as ``ctx.state``;
- optionally ``add_arguments(group)`` and ``options_from_args(args) -> dict``
  for ``serve`` options of its own (prefixed with the family name);
- optionally ``async start(state)`` / ``async stop(state)`` for background work
  (e.g. connecting to an attached worker).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from protoconform.specs.registry import FAMILIES


def family_module(name: str) -> ModuleType:
    if name not in FAMILIES:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")


def load_families(names: tuple[str, ...] | list[str] = FAMILIES) -> dict[str, ModuleType]:
    """Import family packages (which registers their handlers)."""
    return {name: family_module(name) for name in names}
