"""Models of each API family's server, for the properties, stateful, streams and rest suites.

A family model is the :class:`~protoconform.conformance.models.contract.FamilyModel`
named ``MODEL`` in the package here named after the family; the contract (its
parts ``machines``, ``lists``, ``roundtrips``, ``streams``, all optional) is
described and checked in :mod:`~protoconform.conformance.models.contract`.  The
generic machinery the parts build on:

- :mod:`~protoconform.conformance.models.base`: the run's environment, state
  machines seen from outside, the hypothesis drivers;
- :mod:`~protoconform.conformance.models.machine`: the rule-based machine over
  one entity's state machine, and the walk over its whole transition table;
- :mod:`~protoconform.conformance.models.listing`: list dialects and the list
  invariants;
- :mod:`~protoconform.conformance.models.roundtrip`: create, then read back;
- :mod:`~protoconform.conformance.models.streams`: reading server streams.

The generic parts (state machines, codes, not-found rules, field paths, list
contracts) are read from ``specs/<family>/*.yaml``; a model says only what it
has to remember and how its entities are made and read.  Adding a family means
adding its rules in ``specs/<family>/`` and, when it has more to check than
its rules say, a package here (or the module its ``specs.families`` entry names).
"""

from __future__ import annotations

import importlib

from protoconform.conformance.models.contract import FamilyModel, ModelContractError, checked
from protoconform.specs.families import family as family_entry

__all__ = ["FamilyModel", "ModelContractError", "family_model"]


def family_model(family: str) -> FamilyModel:
    """The checked model of ``family`` (from the module its family table entry names, by default
    the package here named after it); the empty model when the family has none yet."""
    name = family_entry(family).models_module
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the model exists but imports something missing
            raise
        return FamilyModel(family)
    if not hasattr(module, "MODEL"):
        raise ModelContractError(f"family {family!r}: {name} defines no MODEL (a FamilyModel)")
    return checked(module.MODEL, family)
