"""The catalogue of defect modes, discovered at run time.

Each part of the mock that can misbehave on purpose lists its modes in a
``defects.py`` module next to its code, as ``DEFECTS: dict[str, Defect]``: what
the bug does, and how the conformance harness must report it (the rule, the
methods it may show on, the suite that checks that rule).  The catalogue is the
union of those modules in the mock's own subpackages (e.g. the REST gateway)
and in every family's handler package (from the family table), so a new defect
mode needs no change here.  A module that fails to import, or an entry that is
not a :class:`Defect`, is an error: a defect must never drop silently out of
the proof that the harness catches it.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import Any

from protoconform.specs.families import TABLE

ROOT = "protoconform.mockserver"


def _packages() -> list[str]:
    """The mock's own subpackages (e.g. the REST gateway) and every family's handler package."""
    root = importlib.import_module(ROOT)
    names = [f"{ROOT}.{info.name}" for info in pkgutil.iter_modules(root.__path__) if info.ispkg]
    return names + [entry.handlers_module for entry in TABLE.values()]


@dataclass(frozen=True)
class Defect:
    """One deliberate bug, and the failure a default conformance run must report for it."""

    description: str
    rule: str  # the rule whose check catches it
    methods: tuple[str, ...] = ()  # "Service.Method"s the failure may be reported on (any of them)
    suite: str = "rules"  # the suite that checks that rule


@cache
def defects() -> dict[str, Defect]:
    """Every defect mode the mock knows, sorted by name."""
    found: dict[str, Defect] = {}
    for package in _packages():
        module_name = f"{package}.defects"
        if module_name == __name__ or importlib.util.find_spec(module_name) is None:
            continue  # this catalogue is no part that misbehaves
        for name, value in importlib.import_module(module_name).DEFECTS.items():
            if not isinstance(value, Defect):
                raise TypeError(f"{module_name}.DEFECTS[{name!r}] is not a Defect")
            if name in found:
                raise ValueError(f"defect mode {name!r} is defined twice")
            found[name] = value
    return dict(sorted(found.items()))


def catalogue() -> dict[str, str]:
    """name -> description of every defect mode."""
    return {name: defect.description for name, defect in defects().items()}


def details() -> dict[str, dict[str, Any]]:
    """name -> every field of the defect (description, rule, methods, suite), as JSON."""
    return {name: dataclasses.asdict(defect) for name, defect in defects().items()}
