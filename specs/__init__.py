"""What the APIs promise, as data: the documented inventory and the rules.

``inventory/<family>.json`` is generated from the seed documents by
:mod:`protoconform.specs.extract` and read here as package data, so it works the
same from a source tree and from an installed wheel.
"""

from __future__ import annotations

import json
from functools import cache

from protoconform.specs.families import TABLE, family

FAMILIES: tuple[str, ...] = tuple(TABLE)  # every family of the table (specs/families.py)


@cache
def _read_inventory(name: str) -> str:
    return family(name).inventory_file().read_text(encoding="utf-8")


def load_inventory(family: str) -> dict:
    """The documented inventory of one family (a fresh copy the caller may change)."""
    return json.loads(_read_inventory(family))


def served_services(family_name: str) -> list[str]:
    """Full names of the services the mock serves for a family: the documented ones, then the
    family's ``extra_services`` (defined by its wire truth, absent from the documents)."""
    documented = [service["name"] for service in load_inventory(family_name)["services"]]
    return documented + [name for name in family(family_name).extra_services if name not in documented]


def documented_methods(family: str | None = None) -> list[tuple[str, str]]:
    """``(full service name, method name)`` of every documented RPC, in inventory order."""
    families = FAMILIES if family is None else (family,)
    return [
        (service["name"], method["name"])
        for name in families
        for service in load_inventory(name)["services"]
        for method in service["methods"]
    ]
