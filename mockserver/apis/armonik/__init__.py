"""ArmoniK (``armonik.api.grpc.v1.*``): a stateful control plane with a simulated task engine.

Sessions, results, tasks, events, partitions, applications, versions, health,
authentication, the legacy Submitter, the Agent (for an attached worker) and a
built-in Worker, all answered from one :class:`state.ArmonikState`.  Tasks move
through their lifecycle on the shared virtual clock (:mod:`.engine`).  With
``--armonik-compat reference-mock`` the handlers of :mod:`.compat` answer
instead, like the reference mock of ArmoniK.Api.

Family options (``serve --armonik-...``, or ``ServerConfig.family_options["armonik"]``)
are listed in :class:`.options.ArmonikOptions`.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from protoconform.mockserver.apis.armonik import lifecycle
from protoconform.mockserver.apis.armonik.options import COMPAT_MODES, ArmonikOptions, parse
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.clock import Clock
from protoconform.specs.registry import Registry

# One module per service or concept; importing registers the handlers.
SERVICE_MODULES = (
    "sessions",
    "results",
    "tasks",
    "events",
    "partitions",
    "applications",
    "versions",
    "health",
    "auth",
    "agent",
    "worker",
    "submitter",
    "compat",
)
for _name in SERVICE_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

from protoconform.mockserver.apis.armonik.compat import install_routes  # noqa: E402  (no-op unless compat)

__all__ = [
    "ArmonikOptions",
    "ArmonikState",
    "add_arguments",
    "create_state",
    "install_routes",
    "options_from_args",
]


def create_state(options: dict[str, Any], clock: Clock, registry: Registry) -> ArmonikState:
    state = ArmonikState(parse(options), clock, registry)
    for hook in lifecycle.STATE_HOOKS:
        hook(state)
    return state


async def start(state: ArmonikState) -> None:
    for hook in lifecycle.STARTUP_HOOKS:
        await hook(state)


async def stop(state: ArmonikState) -> None:
    for hook in lifecycle.SHUTDOWN_HOOKS:
        await hook(state)


def add_arguments(group: argparse._ArgumentGroup) -> None:
    defaults = ArmonikOptions()
    group.add_argument(
        "--armonik-partition",
        dest="armonik_partitions",
        action="append",
        metavar="ID[:KEY=VALUE,...]",
        help="a partition to serve (repeatable); keys priority, pod_max, pod_reserved, preemption, "
        "parents (a|b), pod.<name>; the first is the default partition (default: one named 'default')",
    )
    group.add_argument(
        "--armonik-default-partition",
        metavar="ID",
        help="partition used when a session or task names none (default: the first partition)",
    )
    group.add_argument(
        "--armonik-chunk-size",
        dest="armonik_data_chunk_max_size",
        type=int,
        metavar="BYTES",
        help="data_chunk_max_size announced by GetServiceConfiguration "
        f"(default: {defaults.data_chunk_max_size})",
    )
    group.add_argument(
        "--armonik-max-priority",
        type=int,
        metavar="N",
        help=f"highest task priority SubmitTasks accepts (default: {defaults.max_priority})",
    )
    group.add_argument(
        "--armonik-max-parallel",
        type=int,
        metavar="N",
        help=f"tasks the simulated engine processes at once (default: {defaults.max_parallel})",
    )
    for name, what in (
        ("dispatch-delay", "SUBMITTED -> DISPATCHED"),
        ("start-delay", "DISPATCHED -> PROCESSING"),
        ("processing-time", "processing time of the built-in worker"),
        ("cancel-delay", "CANCELLING -> CANCELLED"),
    ):
        attribute = name.replace("-", "_")
        group.add_argument(
            f"--armonik-{name}",
            type=float,
            metavar="SECONDS",
            help=f"{what}, in virtual seconds (default: {getattr(defaults, attribute)})",
        )
    group.add_argument(
        "--armonik-worker",
        dest="armonik_worker_address",
        metavar="ADDRESS",
        help="address of a Worker service (host:port or unix:///path) to process tasks instead of "
        "the built-in behaviour; it reaches the Agent service on this server's gRPC port",
    )
    group.add_argument(
        "--armonik-worker-agent",
        dest="armonik_agent_address",
        metavar="HOST:PORT",
        help="address of the Agent service the built-in Worker notifies of the results it writes "
        "(default: none; results are only written to the data folder)",
    )
    group.add_argument(
        "--armonik-data-root",
        "--armonik-data-folder",  # its earlier name
        dest="armonik_data_root",
        metavar="DIR",
        help="the only folder the built-in Worker and the Agent read and write: Worker.Process's "
        "data_folder must be inside it, and an attached worker gets a folder per task in it "
        "(default: a private temporary folder, removed when the server stops)",
    )
    group.add_argument(
        "--armonik-compat",
        choices=COMPAT_MODES,
        help="answer like another implementation instead of the stateful semantics",
    )
    group.add_argument(
        "--armonik-core-version",
        metavar="VERSION",
        help="core version reported by Versions.ListVersions (default: this server's version)",
    )


_ARGUMENTS = {
    "armonik_partitions": "partitions",
    "armonik_default_partition": "default_partition",
    "armonik_data_chunk_max_size": "data_chunk_max_size",
    "armonik_max_priority": "max_priority",
    "armonik_max_parallel": "max_parallel",
    "armonik_dispatch_delay": "dispatch_delay",
    "armonik_start_delay": "start_delay",
    "armonik_processing_time": "processing_time",
    "armonik_cancel_delay": "cancel_delay",
    "armonik_worker_address": "worker_address",
    "armonik_data_root": "data_root",
    "armonik_agent_address": "agent_address",  # kept in ArmonikOptions.extra (built-in Worker)
    "armonik_compat": "compat",
    "armonik_core_version": "core_version",
}


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The family options given on the command line (unset ones keep their defaults)."""
    options = {}
    for attribute, key in _ARGUMENTS.items():
        value = getattr(args, attribute, None)
        if value is not None:
            options[key] = value
    try:
        parse(options)  # refuse a malformed partition or mode before anything starts
    except ValueError as exc:
        raise SystemExit(f"protoconform serve: {exc}") from None
    return options


def end_streams(state: ArmonikState) -> None:
    """End every open event and watch stream at once (UNAVAILABLE), before the grace period starts.

    Those streams never end by themselves; bounded waits (WaitForCompletion...) still finish.
    """
    state.events.close_all()
