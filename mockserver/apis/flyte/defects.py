"""Deliberate deviations from specs/flyte, off by default (``--defect NAME``).

Each is a realistic bug a Flyte admin could have, with the failure a default
conformance run must report for it; the harness proves its power by catching
every one.  Names start with ``flyte-``: ``flyte.`` starts rule ids.
"""

from __future__ import annotations

from protoconform.mockserver.control.defects import Defect

SIGNAL_SET_MISSING_ACCEPTED = "flyte-signal-set-missing-accepted"
SIGNAL_TYPE_CONFLICT_IGNORED = "flyte-signal-type-conflict-ignored"
CACHE_EVICT_KEEPS_ENTRY = "flyte-cache-evict-keeps-entry"

DEFECTS: dict[str, Defect] = {
    SIGNAL_SET_MISSING_ACCEPTED: Defect(
        "SetSignal of a signal nobody created answers OK and creates it with the value's type",
        rule="flyte.signals.set.not-found",
        methods=("SignalService.SetSignal",),
    ),
    SIGNAL_TYPE_CONFLICT_IGNORED: Defect(
        "GetOrCreateSignal with another type for an existing signal id answers the stored signal",
        rule="flyte.signals.get-or-create.type-conflict",
        methods=("SignalService.GetOrCreateSignal",),
    ),
    CACHE_EVICT_KEEPS_ENTRY: Defect(
        "EvictTaskExecutionCache marks the node evicted but leaves the catalog entry: the next run hits it",
        rule="flyte.cache.evict.effect",  # seen on the node's cache status after the eviction
        methods=("CacheService.EvictTaskExecutionCache", "AdminService.GetNodeExecution"),
    ),
}
