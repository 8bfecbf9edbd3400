"""Models of each API family's server, for the properties, stateful, streams and rest suites.

A family model is a module here named after the family.  Everything it
provides is optional; a suite simply has no case for what is missing:

- ``machines() -> list[type[LifecycleMachine]]``: hypothesis rule-based
  machines over the family's specs state machines
  (:mod:`~protoconform.conformance.models.machine`); the *stateful* suite runs
  each one's random sequences and walks its transition table;
- ``lists(env) -> list[ListDialect]``: how to page, sort and filter each list
  method with a ``lists:`` contract in specs, and how to make data for it
  (:mod:`~protoconform.conformance.models.listing`); the *properties* suite
  checks pagination, contents, sort orders and filters;
- ``roundtrips() -> list[RoundTrip]``: create, then read back
  (:mod:`~protoconform.conformance.models.roundtrip`); *properties* and *rest*;
- ``streams() -> list[StreamCheck]``: checks of streaming calls
  (:mod:`~protoconform.conformance.models.streams`); the *streams* suite.

The generic parts (state machines, codes, not-found rules, field paths, list
contracts) are read from ``specs/<family>/*.yaml``; a model says only what it
has to remember and how its entities are made and read.  Adding a family means
adding its rules in ``specs/<family>/`` and a module here.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


def family_model(family: str) -> ModuleType | None:
    """The model module of ``family``, or None when the family has none yet."""
    name = f"{__name__}.{family}"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)
