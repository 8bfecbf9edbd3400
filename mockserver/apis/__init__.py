"""API families.  Each family is a package that registers its handlers on import.

Which module that is comes from the family table (:mod:`protoconform.specs.families`):
``protoconform.mockserver.apis.<family>`` for the built-in ones.  A family package provides:

- ``create_state(options: dict, clock: Clock, registry: Registry, store: FamilyStore) -> object``:
  the family's state, handed to its handlers as ``ctx.state``; it writes every change
  through ``store`` (:mod:`protoconform.mockserver.store`: staged, committed by the
  server before a call is answered) and, when the store holds data, starts from it;
- optionally ``add_arguments(group)`` and ``options_from_args(args) -> dict``
  for ``serve`` options of its own (prefixed with the family name; a bad value
  raises ``ValueError`` naming the option, reported as one usage error);
- optionally ``async start(state)`` / ``async stop(state)`` for background work
  (e.g. connecting to an attached worker), ``end_streams(state)`` to end its
  never-ending streams at shutdown, ``install_routes(app, server)`` for HTTP
  routes of its own, and a ``defects`` submodule listing its defect modes.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from protoconform.specs.families import family
from protoconform.specs.registry import FAMILIES


def family_module(name: str) -> ModuleType:
    return importlib.import_module(family(name).handlers_module)


def load_families(names: tuple[str, ...] | list[str] = FAMILIES) -> dict[str, ModuleType]:
    """Import family packages (which registers their handlers)."""
    return {name: family_module(name) for name in names}
