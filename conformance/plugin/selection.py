"""Which cases run: the suite modules to collect, and the selection by ``--api``, ``--suite``,
``--method``, ``--rule`` and ``--read-only`` (cases left out by ``--read-only`` are recorded as
skipped, so the reports show them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from protoconform.conformance import examples as examples_module
from protoconform.conformance import known_suites
from protoconform.conformance.caller import resolve_method
from protoconform.conformance.plugin.cases import case_info
from protoconform.conformance.plugin.recording import STATE, record
from protoconform.conformance.verdict import short_method


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Suite modules are not named test_*.py: collect them when their folder is collected
    (``--pyargs protoconform.conformance.suites``); files named on the command line pytest
    collects by itself."""
    from protoconform.conformance import suites

    folder = Path(suites.__file__).resolve().parent
    if (
        file_path.suffix == ".py"
        and file_path.resolve().parent == folder
        and file_path.stem in known_suites()
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _is_mutating(info: dict[str, Any]) -> tuple[bool, str]:
    if info["mutating"] is not None:
        return bool(info["mutating"]), info["method"]
    from protoconform.specs.registry import default_registry

    registry = default_registry()
    for name in info["calls"]:
        try:
            method = resolve_method(registry, name)
        except KeyError:
            return True, short_method(name)  # unknown: assume the worst
        full = f"{method.service}.{method.name}"
        try:
            if examples_module.book(method.family).mutating(full):
                return True, short_method(full)
        except examples_module.ExampleError:
            return True, short_method(full)
    return False, ""


def _wanted_method(info: dict[str, Any], wanted: tuple[str, ...]) -> bool:
    full = f"{info['service']}.{info['method']}"
    return any(w in (full, short_method(full), info["method"]) for w in wanted)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    target = state.target
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        info = case_info(item)
        if info is None:
            keep.append(item)
            continue
        if target is None:
            item.add_marker(pytest.mark.skip(reason="no --target given"))
            keep.append(item)
            continue
        if (
            info["family"] not in target.families
            or info["suite"] not in target.suites
            or (target.methods and not _wanted_method(info, target.methods))
            or (target.rules and info["rule"] not in target.rules)
        ):
            dropped.append(item)
            continue
        if target.read_only:
            mutating, which = _is_mutating(info)
            if mutating:
                dropped.append(item)
                record(state, item, info, "skipped", reason=f"read-only run: the case would call {which}")
                continue
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
