"""The Hypothesis settings of the harness: one profile, registered and loaded once per run.

Every generated case of the suites runs against a live target, so the same choices hold
for all of them: the run's example budget (``--max-examples``), no deadline (the target
sets the pace), no example database (same ``--seed``, same run), no health check (slow
and filtered data is expected), no blob to print, one bug reported, and no explain phase
(it would replay calls against the target).  :func:`load` registers the profile with the
run's budget and makes it the default, so a ``@given`` test in a suite gets it as is;
:func:`harness_settings` gives the same settings to build on (e.g. fewer examples).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, settings

PROFILE = "protoconform"

_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "print_blob": False,
    "report_multiple_bugs": False,
    "suppress_health_check": list(HealthCheck),
    "phases": (Phase.explicit, Phase.generate, Phase.shrink),
}


def harness_settings(max_examples: int, **changes: Any) -> settings:
    """The harness' settings with ``max_examples`` examples, and ``changes`` on top."""
    return settings(**{**_COMMON, "max_examples": max_examples, **changes})


def load(max_examples: int) -> None:
    """Register the harness profile with the run's example budget and make it the default."""
    settings.register_profile(PROFILE, harness_settings(max_examples))
    settings.load_profile(PROFILE)
