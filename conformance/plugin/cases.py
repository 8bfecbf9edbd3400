"""What a case is: its ``@pytest.mark.conformance(...)`` marker, normalised."""

from __future__ import annotations

from typing import Any

import pytest

MARKER = "conformance"
CASE = pytest.StashKey[dict[str, Any]]()


def case_info(item: pytest.Item) -> dict[str, Any] | None:
    """The conformance marker of an item, normalised (full service name, method name)."""
    if CASE in item.stash:
        return item.stash[CASE]
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        return None
    kwargs = dict(mark.kwargs)
    service = str(kwargs.get("service", ""))
    method = str(kwargs.get("method", ""))
    if "." in method:
        prefix, _, method = method.rpartition(".")
        service = service or prefix
    family = str(kwargs.get("family", ""))
    if service and "." not in service:
        from protoconform.specs.registry import default_registry

        matches = [s for s in default_registry().families.get(family, []) if s.rpartition(".")[2] == service]
        service = matches[0] if matches else service
    calls = kwargs.get("calls")
    info = {
        "family": family,
        "service": service,
        "method": method,
        "suite": str(kwargs.get("suite", "")),
        "rule": str(kwargs.get("rule", "") or ""),
        "calls": tuple(calls) if calls is not None else ((f"{service}.{method}",) if method else ()),
        "mutating": kwargs.get("mutating"),
    }
    item.stash[CASE] = info
    return info
