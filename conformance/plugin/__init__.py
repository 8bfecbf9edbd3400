"""The pytest plugin under ``protoconform check``; usable from any pytest run::

    pytest -p protoconform.conformance.plugin --target HOST:PORT --pyargs protoconform.conformance.suites

Options (group "protoconform") say where the target is, how to reach it and
what to run; fixtures give cases the target, a channel, the descriptor
registry, the rules, an ``rpc`` helper and the mock's control API.  Every case
carries ``@pytest.mark.conformance(family=, service=, method=, suite=, rule=)``,
which drives selection (``--api``, ``--suite``, ``--method``, ``--rule``,
``--read-only``), the baseline, the reports and the one-line failure form
``rule <id> on <Service.Method>: expected <X>, got <Y>``.

A case that may call methods other than its own lists them in the marker's
``calls=`` so ``--read-only`` can tell whether it changes state (methods are
classified by ``specs/<family>/effects.yaml``).

The parts: :mod:`.options` (the options, and the :class:`Target` they make),
:mod:`.session` (setting up and probing the run), :mod:`.scope` (the
families the target serves), :mod:`.cases` (a case's
marker), :mod:`.selection` (collecting and selecting cases), :mod:`.fixtures`
and :mod:`.recording` (outcomes, reports, the summary).  pytest registers this
module: the hooks and fixtures below are what it finds here.
"""

from __future__ import annotations

from protoconform.conformance.plugin.fixtures import (
    channel,
    cleanup,
    control,
    examples,
    namespace,
    places,
    registry,
    rng,
    rpc,
    rules,
    scenario,
    served,
    target,
)
from protoconform.conformance.plugin.options import pytest_addoption
from protoconform.conformance.plugin.recording import (
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
from protoconform.conformance.plugin.selection import pytest_collect_file, pytest_collection_modifyitems
from protoconform.conformance.plugin.session import pytest_configure, pytest_sessionstart

__all__ = [
    "channel",
    "cleanup",
    "control",
    "examples",
    "namespace",
    "places",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "pytest_terminal_summary",
    "registry",
    "rng",
    "rpc",
    "rules",
    "scenario",
    "served",
    "target",
]
