"""The model of Flyte's AdminService (flyteadmin 1.16).

One module per job:

- :mod:`.activation`: launch plan versions activated and deactivated (the *stateful* suite);
- :mod:`.execution`: executions terminated, archived and read while events move them;
- :mod:`.registration`: tasks, workflows and launch plans registered again, the same or changed;
- :mod:`.listing`: list dialects of ListTasks, ListWorkflows, ListLaunchPlans, ListExecutions,
  ListProjects and ListNamedEntities (offset tokens, ``sort_by``, flyteadmin's filter grammar);
- :mod:`.population`: the items the lists are checked on, made once per run in a fresh project;
- :mod:`.columns`: the columns of flyteadmin's models as listed items show them;
- :mod:`.grammar`: the filter grammar, written and evaluated;
- :mod:`.registered`, :mod:`.setup`: what the machines share (their base, a project to work in);
- :mod:`.requests`: requests built from the family's valid examples.
"""

from __future__ import annotations

from protoconform.conformance.models.contract import FamilyModel
from protoconform.conformance.models.flyte.activation import ActivationMachine
from protoconform.conformance.models.flyte.execution import ExecutionMachine
from protoconform.conformance.models.flyte.listing import FlyteList, list_dialects
from protoconform.conformance.models.flyte.registration import RegistrationMachine

FAMILY = "flyte"

MODEL = FamilyModel(
    family=FAMILY,
    machines=lambda: [ActivationMachine, RegistrationMachine, ExecutionMachine],
    lists=list_dialects,
)

# The parts, also as functions of the package.
machines, lists = MODEL.machines, MODEL.lists

__all__ = [
    "FAMILY",
    "MODEL",
    "ActivationMachine",
    "ExecutionMachine",
    "FlyteList",
    "RegistrationMachine",
    "lists",
    "machines",
]
