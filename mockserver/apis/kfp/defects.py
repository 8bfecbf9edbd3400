"""Deliberate deviations from specs/kfp, off by default (``--defect NAME``).

Each is a realistic bug a KFP server could have; the conformance suite proves
its power by catching every one.  ``DEFECT_RULES`` names the rule whose check
is expected to catch each defect.
"""

from __future__ import annotations

GET_RUN_WRONG_STATUS = "kfp.get-run-wrong-status-for-missing"
LIST_REPEATS_ITEM = "kfp.list-repeats-item"
DUPLICATE_METRIC_ACCEPTED = "kfp.duplicate-metric-accepted"
TERMINATE_FINISHED_ACCEPTED = "kfp.terminate-finished-run-accepted"
RUN_MISSING_CREATED_AT = "kfp.run-missing-created-at"
SORT_IGNORED = "kfp.sort-ignored"
STORAGE_STATE_OUT_OF_DOMAIN = "kfp.storage-state-out-of-domain"

DEFECTS: dict[str, str] = {
    GET_RUN_WRONG_STATUS: "GetRun of an unknown run id answers INTERNAL instead of NOT_FOUND",
    LIST_REPEATS_ITEM: "ListRuns: each next page starts again with the last run of the previous page",
    DUPLICATE_METRIC_ACCEPTED: "ReportRunMetrics answers OK for a repeated (node_id, name) and overwrites it",
    TERMINATE_FINISHED_ACCEPTED: "TerminateRun of a finished run succeeds and sends it back to Terminating",
    RUN_MISSING_CREATED_AT: "runs are returned without created_at",
    SORT_IGNORED: "ListRuns accepts sort_by but always orders by created_at ascending",
    STORAGE_STATE_OUT_OF_DOMAIN: "storage_state is sent shifted by two (2, 3), outside api.Run.StorageState",
}

DEFECT_RULES: dict[str, str] = {
    GET_RUN_WRONG_STATUS: "kfp.runs.get.not-found",
    LIST_REPEATS_ITEM: "kfp.runs.list.pagination",
    DUPLICATE_METRIC_ACCEPTED: "kfp.runs.metrics.duplicate",
    TERMINATE_FINISHED_ACCEPTED: "kfp.runs.terminate.precondition",
    RUN_MISSING_CREATED_AT: "kfp.runs.output.run-fields",
    SORT_IGNORED: "kfp.runs.list.sort-applied",
    STORAGE_STATE_OUT_OF_DOMAIN: "kfp.runs.output.storage-state-domain",
}
