"""Deliberate ArmoniK deviations, each off by default (``serve --defect NAME``).

Each one bends exactly one behaviour the specs describe, the way a real bug
would, and names the failure a default conformance run must report for it.
Handlers test them with ``ctx.defect(NAME)`` using the constants below.
"""

from __future__ import annotations

from protoconform.mockserver.control.defects import Defect

GET_SESSION_WRONG_STATUS = "armonik.get-session-wrong-status-for-missing"
ILLEGAL_TRANSITION_ACCEPTED = "armonik.illegal-transition-accepted"
LIST_SKIPS_ITEM = "armonik.list-skips-item"
FILTER_IGNORED = "armonik.filter-ignored"
DOWNLOAD_DROPS_LAST_CHUNK = "armonik.download-drops-last-chunk"
EVENTS_END_EARLY = "armonik.events-end-early"
RESULT_MISSING_CREATED_AT = "armonik.result-missing-created-at"
TASK_STATUS_OUT_OF_DOMAIN = "armonik.task-status-out-of-domain"

_LISTS = (
    "Sessions.ListSessions",
    "Tasks.ListTasks",
    "Tasks.ListTasksDetailed",
    "Results.ListResults",
    "Partitions.ListPartitions",
    "Applications.ListApplications",
)

DEFECTS: dict[str, Defect] = {
    GET_SESSION_WRONG_STATUS: Defect(
        "GetSession of an unknown id answers INTERNAL instead of NOT_FOUND.",
        rule="armonik.sessions.not-found",
        methods=("Sessions.GetSession",),
    ),
    ILLEGAL_TRANSITION_ACCEPTED: Defect(
        "PauseSession of a CANCELLED session succeeds and pauses it.",
        rule="armonik.sessions.illegal-transition",
        methods=("Sessions.PauseSession",),
    ),
    LIST_SKIPS_ITEM: Defect(
        "List RPCs skip the first item of every page after the first.",
        rule="armonik.lists.pagination",
        methods=_LISTS,
        suite="properties",
    ),
    FILTER_IGNORED: Defect(
        "ListTasks and ListTasksDetailed ignore their filters and list every task.",
        rule="armonik.filters.semantics",
        methods=("Tasks.ListTasks", "Tasks.ListTasksDetailed"),
        suite="properties",
    ),
    DOWNLOAD_DROPS_LAST_CHUNK: Defect(
        "DownloadResultData leaves out the last chunk of data that spans several chunks.",
        rule="armonik.results.download.chunking",
        methods=("Results.DownloadResultData",),
        suite="streams",
    ),
    EVENTS_END_EARLY: Defect(
        "GetEvents ends the stream right after the snapshot of existing entities.",
        rule="armonik.events.never-ends",
        methods=("Events.GetEvents",),
        suite="streams",
    ),
    RESULT_MISSING_CREATED_AT: Defect(
        "Result replies (get, list, create, upload) omit created_at.",
        rule="armonik.results.output",
        methods=(
            "Results.GetResult",
            "Results.ListResults",
            "Results.CreateResultsMetaData",
            "Results.CreateResults",
        ),
    ),
    TASK_STATUS_OUT_OF_DOMAIN: Defect(
        "GetTask reports a status number outside the TaskStatus enum.",
        rule="armonik.tasks.status-domain",
        methods=("Tasks.GetTask",),
    ),
}
