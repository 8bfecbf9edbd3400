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
simulated catalog cached); :mod:`.agents` serves AgentMetadataService,
AsyncAgentService, SyncAgentService and the deprecated ExternalPluginService as
a flytekit connector server does, for the agents of ``--flyte-agent``
(:mod:`.agents_jobs`: the registry, and jobs on the virtual clock); :mod:`.auth`
serves AuthMetadataService and IdentityService with flyteadmin's
defaults (``--flyte-auth-*``; UserInfo from the token's claims when ``serve`` requires tokens).
"""

from __future__ import annotations

import argparse
from typing import Any

from protoconform.mockserver.apis.flyte import (  # noqa: F401 - importing registers the handlers
    agents,
    attributes,
    auth,
    cache,
    columns,
    dataproxy,
    entities,
    events,
    executions,
    listing,
    nodes,
    projects,
    registration,
    signals,
)
from protoconform.mockserver.apis.flyte.agents_jobs import check_agents, parse_agent
from protoconform.mockserver.apis.flyte.dataproxy_http import install_routes
from protoconform.mockserver.apis.flyte.state import MemoryRepository, Settings, State
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.store import FamilyStore
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

    group.add_argument(
        "--flyte-agent",
        action="append",
        type=_agent,
        default=None,
        metavar="NAME=TASK_TYPE[,TASK_TYPE...][:sync]",
        help="an agent the agent services serve (repeatable; a TASK_TYPE may end in @VERSION); "
        "default: agents.default of specs/flyte/agents.yaml",
    )
    group.add_argument(
        "--flyte-agent-max-jobs",
        type=positive(int),
        default=None,
        metavar="N",
        help="jobs the agents keep at once, > 0; the oldest finished one is forgotten first "
        "(default: agents.max_jobs of specs/flyte/agents.yaml)",
    )
    group.add_argument(
        "--flyte-auth-public-url",
        default="",
        metavar="URL",
        help="issuer of the OAuth2 metadata; its endpoints live under it "
        "(default: auth.public_url of specs/flyte/auth.yaml)",
    )
    group.add_argument(
        "--flyte-auth-client-id",
        default="",
        metavar="ID",
        help="client_id of GetPublicClientConfig (default: auth.client_id of specs/flyte/auth.yaml)",
    )
    group.add_argument(
        "--flyte-auth-redirect-uri",
        default="",
        metavar="URI",
        help="redirect_uri of GetPublicClientConfig (default: auth.redirect_uri of specs/flyte/auth.yaml)",
    )


def _agent(text: str) -> str:
    try:
        parse_agent(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    given = tuple(getattr(args, "flyte_agent", None) or ())
    try:
        check_agents(given)
    except ValueError as exc:  # e.g. one task type served by two agents
        raise ValueError(f"--flyte-agent: {exc}") from None
    options: dict[str, Any] = {
        "propeller": getattr(args, "flyte_propeller", Settings.propeller),
        "node_seconds": getattr(args, "flyte_node_seconds", Settings.node_seconds),
    }
    given_too = {  # only what was given: the rest keeps the specs' defaults
        "agents": given,
        "agent_max_jobs": getattr(args, "flyte_agent_max_jobs", None),
        "auth_public_url": getattr(args, "flyte_auth_public_url", ""),
        "auth_client_id": getattr(args, "flyte_auth_client_id", ""),
        "auth_redirect_uri": getattr(args, "flyte_auth_redirect_uri", ""),
    }
    options.update({k: v for k, v in given_too.items() if v})
    return options


def create_state(
    options: dict[str, Any], clock: Clock, registry: Registry, store: FamilyStore | None = None
) -> State:
    """The family's state; with a durable store, loaded from it, and the simulated propeller goes on."""
    fields = {k: options[k] for k in Settings.__dataclass_fields__ if k in options}
    state = State(clock, registry, Settings(**fields), MemoryRepository(store))
    models = {table: columns.model(state, kept.entity) for table, kept in listing.KEPT.items()}
    listing.keep_indexes(state, models)  # before the propeller goes on: its writes are indexed too
    if state.store.durable:
        state.propeller.resume()
    return state
