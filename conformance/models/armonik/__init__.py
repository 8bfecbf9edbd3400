"""The model of an ArmoniK control plane: sessions, their results and tasks.

One module per job:

- :mod:`.machine`: the session machine (sessions, results, tasks) for the *stateful* suite,
  with the rules on tasks in :mod:`.task_rules`;
- :mod:`.tasks`: what a task and a result may be (the lifecycle, cancellation, options merge);
- :mod:`.listing`: the list dialect (page numbers, typed filter conditions, sorts);
- :mod:`.populations`: the data the list checks run on;
- :mod:`.roundtrip`: sessions and results read back as created;
- :mod:`.stream_checks`: chunking, events and WatchResults for the *streams* suite, with
  :mod:`.event_checks` (snapshot, unknown session, slow consumer) and :mod:`.task_checks`
  (a task's lifecycle on the event stream, the legacy calls that wait);
- :mod:`.requests`: status names and request builders they share.
"""

from __future__ import annotations

from protoconform.conformance.models.armonik.listing import ArmonikList, FieldRef, list_dialects
from protoconform.conformance.models.armonik.machine import ResultModel, SessionMachine
from protoconform.conformance.models.armonik.roundtrip import round_trips
from protoconform.conformance.models.armonik.stream_checks import stream_checks
from protoconform.conformance.models.contract import FamilyModel

FAMILY = "armonik"

MODEL = FamilyModel(
    family=FAMILY,
    machines=lambda: [SessionMachine],
    lists=list_dialects,
    roundtrips=round_trips,
    streams=stream_checks,
)

# The parts, also as functions of the package.
machines, lists, roundtrips, streams = MODEL.machines, MODEL.lists, MODEL.roundtrips, MODEL.streams

__all__ = [
    "FAMILY",
    "MODEL",
    "ArmonikList",
    "FieldRef",
    "ResultModel",
    "SessionMachine",
    "lists",
    "machines",
    "roundtrips",
    "streams",
]
