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
from protoconform.mockserver.apis.armonik.options import (
    COMPAT_MODES,
    ArmonikOptions,
    OptionError,
    PartitionSpec,
    parse,
)
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.clock import Clock
from protoconform.mockserver.store import FamilyStore
from protoconform.specs.argtypes import address, creatable_folder, positive
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

from protoconform.mockserver.apis.armonik.attach import control_endpoints  # noqa: E402
from protoconform.mockserver.apis.armonik.compat import install_routes  # noqa: E402  (no-op unless compat)

__all__ = [
    "ArmonikOptions",
    "ArmonikState",
    "add_arguments",
    "control_endpoints",
    "create_state",
    "install_routes",
    "options_from_args",
]


def create_state(
    options: dict[str, Any], clock: Clock, registry: Registry, store: FamilyStore | None = None
) -> ArmonikState:
    state = ArmonikState(parse(options), clock, registry, store)
    for hook in lifecycle.STATE_HOOKS:
        hook(state)
    if state.store.durable:
        state.engine.resume()  # the executors are installed: in-flight tasks go on
    return state


async def start(state: ArmonikState) -> None:
    for hook in lifecycle.STARTUP_HOOKS:
        await hook(state)


async def stop(state: ArmonikState) -> None:
    for hook in lifecycle.SHUTDOWN_HOOKS:
        await hook(state)


def _partition(text: str) -> str:
    """``ID[:KEY=VALUE,...]``, checked now and kept as text (parsed again by :func:`parse`)."""
    try:
        PartitionSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(group: argparse._ArgumentGroup) -> None:
    defaults = ArmonikOptions()

    def add(*flags: str, **kwargs: Any) -> None:
        action = group.add_argument(*flags, **kwargs)
        _FLAGS[action.dest] = flags[0]

    add(
        "--armonik-partition",
        dest="armonik_partitions",
        type=_partition,
        action="append",
        metavar="ID[:KEY=VALUE,...]",
        help="a partition to serve (repeatable); integer keys priority, pod_max, pod_reserved (>= 0), "
        "preemption (0..100), and parents (a|b), pod.<name>, worker (HOST:PORT or unix:///PATH of the "
        "Worker that processes its tasks); the first is the default partition (default: one named 'default')",
    )
    add(
        "--armonik-default-partition",
        metavar="ID",
        help="partition used when a session or task names none; one of the partitions "
        "(default: the first partition)",
    )
    add(
        "--armonik-chunk-size",
        dest="armonik_data_chunk_max_size",
        type=positive(int),
        metavar="BYTES",
        help="data_chunk_max_size announced by GetServiceConfiguration "
        f"(default: {defaults.data_chunk_max_size})",
    )
    add(
        "--armonik-max-priority",
        type=positive(int),
        metavar="N",
        help=f"highest task priority SubmitTasks accepts (default: {defaults.max_priority})",
    )
    add(
        "--armonik-max-parallel",
        type=positive(int),
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
        add(
            f"--armonik-{name}",
            type=positive(float, zero=True),
            metavar="SECONDS",
            help=f"{what}, in virtual seconds, >= 0 (default: {getattr(defaults, attribute)})",
        )
    add(
        "--armonik-worker",
        dest="armonik_worker_address",
        type=address(unix=True),
        metavar="ADDRESS",
        help="address of a Worker service (host:port or unix:///path) to process tasks instead of "
        "the built-in behaviour; it reaches the Agent service on this server's gRPC port",
    )
    add(
        "--armonik-worker-agent",
        dest="armonik_agent_address",
        type=address(),
        metavar="HOST:PORT",
        help="address of the Agent service the built-in Worker notifies of the results it writes "
        "(default: none; results are only written to the data folder)",
    )
    add(
        "--armonik-data-root",
        "--armonik-data-folder",  # its earlier name
        dest="armonik_data_root",
        type=creatable_folder,
        metavar="DIR",
        help="the only folder the built-in Worker and the Agent read and write: Worker.Process's "
        "data_folder must be inside it, and an attached worker gets a folder per task in it "
        "(default: a private temporary folder, removed when the server stops)",
    )
    add(
        "--armonik-event-buffer",
        type=positive(int),
        metavar="N",
        help="events that may wait for one GetEvents stream; a client further behind gets "
        f"RESOURCE_EXHAUSTED (default: {defaults.event_buffer})",
    )
    add(
        "--armonik-compat",
        choices=COMPAT_MODES,
        help="answer like another implementation instead of the stateful semantics",
    )
    add(
        "--armonik-core-version",
        metavar="VERSION",
        help="core version reported by Versions.ListVersions (default: this server's version)",
    )


# dest -> ArmonikOptions field (agent_address is kept in ArmonikOptions.extra, for the built-in Worker)
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
    "armonik_agent_address": "agent_address",
    "armonik_compat": "compat",
    "armonik_core_version": "core_version",
    "armonik_event_buffer": "event_buffer",
}
_FLAGS: dict[str, str] = {}  # dest -> its flag, filled by add_arguments, for errors found after parsing


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The family options given on the command line (unset ones keep their defaults).

    Each value was checked by argparse; what depends on several options (the default
    partition among the partitions, an id given twice) is a ValueError naming the option.
    """
    options = {}
    for attribute, key in _ARGUMENTS.items():
        value = getattr(args, attribute, None)
        if value is not None:
            options[key] = value
    try:
        parse(options)
    except OptionError as exc:
        dest = next((d for d, k in _ARGUMENTS.items() if k == exc.key), exc.key)
        raise ValueError(f"argument {_FLAGS.get(dest, dest)}: {exc.message}") from None
    return options


def end_streams(state: ArmonikState) -> None:
    """End every open event and watch stream at once (UNAVAILABLE), before the grace period starts.

    Those streams never end by themselves; bounded waits (WaitForCompletion...) still finish.
    """
    state.events.close_all()
