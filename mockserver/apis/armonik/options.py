"""ArmoniK family options: what ``serve --armonik-*`` configures (and tests set directly).

``ServerConfig.family_options["armonik"]`` is a plain dict; :func:`parse` turns
it into :class:`ArmonikOptions`, so tests can write
``family_options={"armonik": {"partitions": ["default", "gpu:priority=2"]}}``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

from protoconform.mockserver.pubsub import DEFAULT_LIMIT
from protoconform.specs.argtypes import address

COMPAT_MODES = ("reference-mock",)
ALIASES = {"data_folder": "data_root", "event_queue_limit": "event_buffer"}  # earlier option names


@dataclass(frozen=True)
class PartitionSpec:
    """One configured partition; text form ``ID[:key=value,...]``.

    Keys: ``priority``, ``pod_max``, ``pod_reserved``, ``preemption``, ``parents``
    (``|``-separated partition ids), ``pod.<name>`` (pod configuration entries) and ``worker``
    (``HOST:PORT`` or ``unix:///PATH`` of the Worker service that processes the partition's tasks,
    instead of the built-in behaviour; see :mod:`.attach`).
    """

    id: str
    priority: int = 1
    pod_max: int = 100
    pod_reserved: int = 1
    preemption_percentage: int = 0
    parent_partition_ids: tuple[str, ...] = ()
    pod_configuration: tuple[tuple[str, str], ...] = ()
    worker: str = ""  # address of the partition's worker; "" = the engine's default executor

    @classmethod
    def parse(cls, text: str) -> PartitionSpec:
        """Raises ValueError, starting with the text, on a malformed partition."""
        ident, _, rest = text.partition(":")
        ident = ident.strip()
        if not ident:
            raise ValueError(f"{text!r}: the id is empty")
        values: dict[str, Any] = {}
        pod: list[tuple[str, str]] = []
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"{text!r}: {item!r} is not key=value")
            key = key.strip()
            if key in _NUMBERS:
                field_name, low, high = _NUMBERS[key]
                values[field_name] = _integer(text, key, value, low, high)
            elif key == "parents":
                values["parent_partition_ids"] = tuple(p for p in value.split("|") if p)
            elif key.startswith("pod.") and key[4:]:
                pod.append((key[4:], value))
            elif key == "worker":
                values["worker"] = _worker_address(text, value.strip())
            else:
                raise ValueError(f"{text!r}: unknown key {key!r}")
        return cls(ident, pod_configuration=tuple(pod), **values)


# partition key -> (PartitionSpec field, lowest, highest allowed value)
_NUMBERS: dict[str, tuple[str, int, int | None]] = {
    "priority": ("priority", 0, None),
    "pod_max": ("pod_max", 0, None),
    "pod_reserved": ("pod_reserved", 0, None),
    "preemption": ("preemption_percentage", 0, 100),
}


def _integer(text: str, key: str, value: str, low: int, high: int | None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{text!r}: {key} must be an integer") from None
    if number < low or (high is not None and number > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{text!r}: {key} must be {bounds}")
    return number


def _worker_address(text: str, value: str) -> str:
    try:
        return address(unix=True)(value)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"{text!r}: worker: {exc}") from None


class OptionError(ValueError):
    """A family option that is wrong given the others; ``key`` is its :class:`ArmonikOptions` field."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class ArmonikOptions:
    partitions: tuple[PartitionSpec, ...] = (PartitionSpec("default"),)
    default_partition: str = "default"  # used when a session or task names none
    data_chunk_max_size: int = 2 * 1024 * 1024  # Results.GetServiceConfiguration
    max_priority: int = 99  # SubmitTasks refuses a higher task priority
    # simulated engine, in virtual seconds (the shared clock)
    dispatch_delay: float = 0.001  # SUBMITTED -> DISPATCHED
    start_delay: float = 0.001  # DISPATCHED -> PROCESSING
    processing_time: float = 0.002  # built-in worker: PROCESSING -> end
    cancel_delay: float = 0.001  # CANCELLING -> CANCELLED
    max_parallel: int = 256  # tasks in DISPATCHED/PROCESSING at once
    worker_address: str = ""  # a user's Worker service; empty = the built-in behaviour
    data_root: str = ""  # the only folder Worker/Agent files live in ("" = a private temporary one)
    compat: str = ""  # "" (stateful) or "reference-mock"
    core_version: str = ""  # Versions.ListVersions core; "" = this server's version
    event_buffer: int = DEFAULT_LIMIT  # events waiting for one event stream before it ends (slow consumer)
    extra: dict[str, Any] = field(default_factory=dict)  # options of other parts (agent, worker)

    @property
    def handler_variant(self) -> str:
        from protoconform.mockserver.rpc import DEFAULT_VARIANT

        return self.compat or DEFAULT_VARIANT


def parse(raw: dict[str, Any] | None) -> ArmonikOptions:
    """Options from the plain dict in ``ServerConfig.family_options['armonik']``."""
    raw = dict(raw or {})
    known = {f.name for f in fields(ArmonikOptions)}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = dict(raw.pop("extra", {}) or {})
    for key, value in raw.items():
        key = ALIASES.get(key, key)
        if key not in known:
            extra[key] = value
            continue
        if value is None:
            continue
        if key == "partitions":
            specs = tuple(v if isinstance(v, PartitionSpec) else PartitionSpec.parse(str(v)) for v in value)
            if specs:
                values[key] = specs
        else:
            values[key] = value
    if values.get("compat") and values["compat"] not in COMPAT_MODES:
        raise OptionError("compat", f"unknown mode {values['compat']!r}; known: {', '.join(COMPAT_MODES)}")
    options = ArmonikOptions(**values, extra=extra)
    ids = [p.id for p in options.partitions]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise OptionError("partitions", f"partition {', '.join(map(repr, twice))} given twice")
    if "default_partition" in values and options.default_partition not in ids:
        raise OptionError(
            "default_partition", f"{options.default_partition!r} is not a served partition ({', '.join(ids)})"
        )
    if "default_partition" not in values and options.default_partition not in ids:
        # the first configured partition is the default unless one is named
        options = ArmonikOptions(**{**values, "default_partition": ids[0]}, extra=extra)
    return options
