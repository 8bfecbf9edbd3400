"""Flyte (flyteidl.service.*): AdminService with flyteadmin 1.16's semantics and a simulated propeller.

Modules: :mod:`.state` (records behind a repository), :mod:`.service` (how
handlers are registered, request-shape rules in flyteadmin's order),
:mod:`.identifiers` (identifier, project and domain validation), :mod:`.projects`,
:mod:`.registration` (tasks, workflows, launch plans; :mod:`.compiler` and
:mod:`.diffs` beside it), :mod:`.entities` (named and description entities,
version), :mod:`.attributes` (matchable attributes), :mod:`.executions`,
:mod:`.events` (workflow, node and task events), :mod:`.nodes` (node and task
executions), :mod:`.listing`, :mod:`.columns` and :mod:`.indexes` (filters, sort keys, tokens),
:mod:`.literals` (types, defaults, bindings, what test tasks compute),
:mod:`.propeller` (the simulation, gate nodes and the task cache included),
:mod:`.errors`, :mod:`.wire`, :mod:`.defects` (deliberate deviations for the
conformance self-test).  The rules live in ``specs/flyte/*.yaml``.

Beside AdminService: DataProxyService (:mod:`.dataproxy`) hands out upload and
download locations whose signed URLs this mock serves on its HTTP port
(:mod:`.dataproxy_http`, installed by :func:`install_routes`), and resolves
``flyte://`` URLs; :mod:`.signals` (SignalService: signals of gate nodes, kept
in the ``signals`` table) and :mod:`.cache` (CacheService: evicting what the
simulated catalog cached).  The other Flyte services (agents, auth) answer
UNIMPLEMENTED.
"""

from __future__ import annotations

import argparse
from typing import Any

from protoconform.mockserver.apis.flyte import (  # noqa: F401 - importing registers the handlers
    attributes,
    cache,
    dataproxy,
    entities,
    events,
    executions,
    nodes,
    projects,
    registration,
    signals,
)
from protoconform.mockserver.apis.flyte.dataproxy_http import install_routes
from protoconform.mockserver.apis.flyte.state import Settings, State
from protoconform.mockserver.clock import Clock
from protoconform.specs.argtypes import positive
from protoconform.specs.registry import Registry

__all__ = ["Settings", "State", "add_arguments", "create_state", "install_routes", "options_from_args"]


def _switch(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected on or off")
    return value == "on"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--flyte-propeller",
        type=_switch,
        default=Settings.propeller,
        metavar="on|off",
        help="simulate flytepropeller on the virtual clock; off: executions move only by "
        "Create*Event calls, for testing a real propeller (default: on)",
    )
    group.add_argument(
        "--flyte-node-seconds",
        type=positive(float),
        default=Settings.node_seconds,
        metavar="SECONDS",
        help="virtual seconds a simulated task attempt runs, > 0 (default: %(default)s)",
    )


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "propeller": getattr(args, "flyte_propeller", Settings.propeller),
        "node_seconds": getattr(args, "flyte_node_seconds", Settings.node_seconds),
    }


def create_state(options: dict[str, Any], clock: Clock, registry: Registry) -> State:
    fields = {k: options[k] for k in Settings.__dataclass_fields__ if k in options}
    return State(clock, registry, Settings(**fields))
