"""Deliberate deviations from specs/kfp, off by default (``--defect NAME``).

Each is a realistic bug a KFP server could have, with the failure a default
conformance run must report for it; the harness proves its power by catching
every one.
"""

from __future__ import annotations

from protoconform.mockserver.control.defects import Defect

GET_RUN_WRONG_STATUS = "kfp.get-run-wrong-status-for-missing"
LIST_REPEATS_ITEM = "kfp.list-repeats-item"
DUPLICATE_METRIC_ACCEPTED = "kfp.duplicate-metric-accepted"
TERMINATE_FINISHED_ACCEPTED = "kfp.terminate-finished-run-accepted"
RUN_MISSING_CREATED_AT = "kfp.run-missing-created-at"
SORT_IGNORED = "kfp.sort-ignored"
STORAGE_STATE_OUT_OF_DOMAIN = "kfp.storage-state-out-of-domain"
SCOPED_PAGE_TOKEN_IGNORED = "kfp.scoped-page-token-ignored"

DEFECTS: dict[str, Defect] = {
    GET_RUN_WRONG_STATUS: Defect(
        "GetRun of an unknown run id answers INTERNAL instead of NOT_FOUND",
        rule="kfp.runs.get.not-found",
        methods=("RunService.GetRun",),
    ),
    LIST_REPEATS_ITEM: Defect(
        "ListRuns: each next page starts again with the last run of the previous page",
        rule="kfp.runs.list.pagination",
        methods=("RunService.ListRuns",),
        suite="properties",
    ),
    DUPLICATE_METRIC_ACCEPTED: Defect(
        "ReportRunMetrics answers OK for a repeated (node_id, name) and overwrites it",
        rule="kfp.runs.metrics.duplicate",  # a counter-example in specs/kfp/examples.yaml
        methods=("RunService.ReportRunMetrics",),
    ),
    TERMINATE_FINISHED_ACCEPTED: Defect(
        "TerminateRun of a finished run succeeds and sends it back to Terminating",
        rule="kfp.runs.terminate.precondition",
        methods=("RunService.TerminateRun",),
    ),
    RUN_MISSING_CREATED_AT: Defect(
        "runs are returned without created_at",
        rule="kfp.runs.output.run-fields",
        methods=("RunService.CreateRun", "RunService.GetRun"),
    ),
    SORT_IGNORED: Defect(
        "ListRuns accepts sort_by but always orders by created_at ascending",
        rule="kfp.runs.list.sort-applied",
        methods=("RunService.ListRuns",),
        suite="properties",
    ),
    SCOPED_PAGE_TOKEN_IGNORED: Defect(
        "ListRuns of one experiment or namespace answered from the run index starts again at the "
        "first page whatever the page token (lists of every run, and scanned ones, page right)",
        rule="kfp.runs.list.pagination",
        methods=("RunService.ListRuns",),
        suite="properties",
    ),
    STORAGE_STATE_OUT_OF_DOMAIN: Defect(
        "storage_state is sent shifted by two (2, 3), outside api.Run.StorageState",
        rule="kfp.runs.output.storage-state-domain",
        methods=("RunService.CreateRun", "RunService.GetRun"),
    ),
}
