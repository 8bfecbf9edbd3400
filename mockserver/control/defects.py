"""The catalogue of defect modes, discovered at run time.

Each part of the mock that can misbehave on purpose lists its modes in a
``defects.py`` module next to its code, as ``DEFECTS: dict[str, str]`` (name ->
one-line description) or ``dict[str, dict]`` with at least ``description``.
The catalogue is the union of every such module under ``protoconform.mockserver``
(API families and other subpackages such as the REST gateway), so a new defect
mode needs no change here.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

ROOT = "protoconform.mockserver"


def _packages() -> list[str]:
    root = importlib.import_module(ROOT)
    names = []
    for info in pkgutil.iter_modules(root.__path__):
        if not info.ispkg:
            continue
        names.append(f"{ROOT}.{info.name}")
        if info.name == "apis":
            apis = importlib.import_module(f"{ROOT}.apis")
            names += [f"{ROOT}.apis.{sub.name}" for sub in pkgutil.iter_modules(apis.__path__) if sub.ispkg]
    return names


def _description(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("description", ""))
    return str(value)


@cache
def catalogue() -> dict[str, str]:
    """Every defect mode the mock knows: name -> description, sorted by name."""
    found: dict[str, str] = {}
    for package in _packages():
        module_name = f"{package}.defects"
        if importlib.util.find_spec(module_name) is None:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception:  # one broken module must not hide the others
            log.exception("cannot import %s", module_name)
            continue
        for name, value in (getattr(module, "DEFECTS", None) or {}).items():
            found[name] = _description(value)
    return dict(sorted(found.items()))
