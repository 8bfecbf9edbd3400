"""What the suite modules share: turning cases into marked pytest params, and hypothesis settings.

Kept out of the package ``__init__`` so that listing the suites (the CLI) imports neither
pytest nor hypothesis; the leading underscore keeps it out of ``known_suites()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, Phase, settings

if TYPE_CHECKING:
    from protoconform.conformance.target import Target


def parametrize_cases(
    metafunc: pytest.Metafunc,
    suite: str,
    cases: Callable[[], Iterable[Any]],
    mark: Callable[[Any], dict[str, Any]],
    case_id: Callable[[Any], str] = lambda case: case.id,
) -> None:
    """Parametrize a suite's ``case`` argument: one param per case, named ``case_id(case)`` and
    marked ``conformance(family=case.family, suite=suite, **mark(case))``.

    ``cases`` is called only for tests that take a ``case``, so building them stays lazy.
    """
    if "case" not in metafunc.fixturenames:
        return
    params = [
        pytest.param(
            case,
            id=case_id(case),
            marks=pytest.mark.conformance(family=case.family, suite=suite, **mark(case)),
        )
        for case in cases()
    ]
    metafunc.parametrize("case", params)


def run_settings(target: Target) -> settings:
    """Hypothesis settings of a generated case: the run's example budget, no deadline, no database."""
    return settings(
        max_examples=target.max_examples,
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )
