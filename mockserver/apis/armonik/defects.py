"""Deliberate ArmoniK deviations, each off by default (``serve --defect NAME``).

Each one bends exactly one behaviour the specs describe, the way a real bug
would, so the conformance suite can prove it notices.
"""

from __future__ import annotations

DEFECTS: dict[str, str] = {
    "armonik.get-session-wrong-status-for-missing": (
        "GetSession of an unknown id answers INTERNAL instead of NOT_FOUND."
    ),
    "armonik.illegal-transition-accepted": "PauseSession of a CANCELLED session succeeds and pauses it.",
    "armonik.list-skips-item": "List RPCs skip the first item of every page after the first.",
    "armonik.filter-ignored": "ListTasks and ListTasksDetailed ignore their filters and list every task.",
    "armonik.download-drops-last-chunk": (
        "DownloadResultData leaves out the last chunk of data that spans several chunks."
    ),
    "armonik.events-end-early": "GetEvents ends the stream right after the snapshot of existing entities.",
    "armonik.result-missing-created-at": "Result replies (get, list, create, upload) omit created_at.",
    "armonik.task-status-out-of-domain": "GetTask reports a status number outside the TaskStatus enum.",
}
