"""The model of a Kubeflow Pipelines v1beta1 RunService.

One module per job:

- :mod:`.machine`: the run machine (lifecycle, storage state, metrics) for the *stateful* suite;
- :mod:`.listing`: the ListRuns dialect (page tokens, ``sort_by``, ``api.Filter`` predicates);
- :mod:`.scoped`: the same, scoped by experiment with no other filter (the way a UI lists runs);
- :mod:`.pages`: ListRuns page sizes (the default, the cap) on runs made for them;
- :mod:`.roundtrip`: a run read back as created;
- :mod:`.requests`: run requests they share.
"""

from __future__ import annotations

from protoconform.conformance.models.base import Env
from protoconform.conformance.models.contract import FamilyModel
from protoconform.conformance.models.kfp.listing import RunList
from protoconform.conformance.models.kfp.machine import RunMachine
from protoconform.conformance.models.kfp.roundtrip import round_trips
from protoconform.conformance.models.kfp.scoped import ExperimentRunList
from protoconform.conformance.models.listing import ListDialect

FAMILY = "kfp"


def list_dialects(env: Env) -> list[ListDialect]:
    return [RunList(env), ExperimentRunList(env)]


MODEL = FamilyModel(family=FAMILY, machines=lambda: [RunMachine], lists=list_dialects, roundtrips=round_trips)

# The parts, also as functions of the package.
machines, lists, roundtrips = MODEL.machines, MODEL.lists, MODEL.roundtrips

__all__ = ["FAMILY", "MODEL", "ExperimentRunList", "RunList", "RunMachine", "lists", "machines", "roundtrips"]
