"""What the APIs promise, as data: the documented inventory and the rules.

``inventory/<family>.json`` is generated from the seed documents by
:mod:`protoconform.specs.extract` and read here as package data, so it works the
same from a source tree and from an installed wheel.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

FAMILIES: tuple[str, ...] = ("flyte", "kfp", "armonik")


@cache
def _read_inventory(family: str) -> str:
    if family not in FAMILIES:
        raise KeyError(f"unknown API family {family!r}; known: {', '.join(FAMILIES)}")
    entry = resources.files(__name__).joinpath("inventory", f"{family}.json")
    return entry.read_text(encoding="utf-8")


def load_inventory(family: str) -> dict:
    """The documented inventory of one family (a fresh copy the caller may change)."""
    return json.loads(_read_inventory(family))


def documented_methods(family: str | None = None) -> list[tuple[str, str]]:
    """``(full service name, method name)`` of every documented RPC, in inventory order."""
    families = FAMILIES if family is None else (family,)
    return [
        (service["name"], method["name"])
        for name in families
        for service in load_inventory(name)["services"]
        for method in service["methods"]
    ]
