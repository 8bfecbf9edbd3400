"""The one place that reaches into Hypothesis beyond its documented API.

Two needs have no public spelling in Hypothesis 6:

- a rule-based machine run as a *seeded* test.  ``run_state_machine_as_test``
  runs at once and takes no seed, so the test function it wraps is taken from
  ``hypothesis.stateful.get_state_machine_test`` (undocumented) and given
  ``hypothesis.seed``;
- a bound on the time spent shrinking a failure: the engine's
  ``MAX_SHRINKING_SECONDS`` (in ``hypothesis.internal``) is lowered while a
  check runs.

When a Hypothesis upgrade moves either, only this module changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import hypothesis
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test


def seeded_machine_test(
    new_machine: Callable[[], RuleBasedStateMachine], seed: int, machine_settings: settings
) -> Callable[[], None]:
    """A test running machines made by ``new_machine`` (a fresh one per example), drawn from ``seed``."""
    test = get_state_machine_test(new_machine, settings=machine_settings)  # type: ignore[arg-type]
    return hypothesis.seed(seed)(test)


@contextlib.contextmanager
def shrink_budget(seconds: float) -> Iterator[None]:
    """Bound the time hypothesis spends shrinking a failure: every replay calls the target, and
    the deviation is reported whether or not the sequence is minimal yet."""
    from hypothesis.internal.conjecture import engine

    saved = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if saved is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = min(saved, seconds)  # type: ignore[assignment]
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = saved
