"""Deliberate deviations from specs/flyte, each off by default (``serve --defect NAME``).

Each one bends exactly one behaviour the specs describe, the way a real admin
server could get it wrong, and names the failure a default conformance run must
report for it.  Handlers test them with ``ctx.defect(NAME)`` using the constants
below.
"""

from __future__ import annotations

from protoconform.mockserver.control.defects import Defect

IDENTICAL_REGISTRATION_REFUSED = "flyte.identical-registration-refused"
ACTIVATION_KEEPS_PREVIOUS = "flyte.activation-keeps-previous-active"
EVENT_AFTER_TERMINAL_ACCEPTED = "flyte.workflow-event-after-terminal-accepted"
FILTERS_IGNORED = "flyte.filters-ignored"
TOKEN_NEVER_ADVANCES = "flyte.token-never-advances"
ARCHIVED_STILL_LISTED = "flyte.archived-executions-listed"
GET_TASK_WRONG_STATUS = "flyte.get-task-wrong-status-for-missing"
TERMINATE_TERMINAL_ACCEPTED = "flyte.terminate-terminal-execution-accepted"
EXPIRED_UPLOAD_ACCEPTED = "flyte.dataproxy-expired-upload-accepted"
CONTENT_MD5_UNCHECKED = "flyte.dataproxy-content-md5-unchecked"
SIGNAL_SET_MISSING_ACCEPTED = "flyte.signal-set-missing-accepted"
SIGNAL_TYPE_CONFLICT_IGNORED = "flyte.signal-type-conflict-ignored"
CACHE_EVICT_KEEPS_ENTRY = "flyte.cache-evict-keeps-entry"
DELETE_TWICE_REFUSED = "flyte.agents-delete-twice-refused"
JOB_NEVER_FINISHES = "flyte.agents-job-never-finishes"
METADATA_WITHOUT_TOKEN_ENDPOINT = "flyte.auth-metadata-without-token-endpoint"

_ENTITY_LISTS = ("AdminService.ListTasks", "AdminService.ListWorkflows", "AdminService.ListLaunchPlans")

DEFECTS: dict[str, Defect] = {
    IDENTICAL_REGISTRATION_REFUSED: Defect(
        "CreateTask of an id already registered with the identical task answers INVALID_ARGUMENT "
        "(different structure, empty diff) instead of ALREADY_EXISTS, so idempotent re-registration fails.",
        rule="flyte.register.identical",
        methods=("AdminService.CreateTask",),
    ),
    ACTIVATION_KEEPS_PREVIOUS: Defect(
        "UpdateLaunchPlan ACTIVE leaves the version that was active under the same name ACTIVE: "
        "two active versions of one launch plan.",
        rule="flyte.launch-plans.update.activation",
        # the reads after the update show it
        methods=(
            "AdminService.UpdateLaunchPlan",
            "AdminService.GetLaunchPlan",
            "AdminService.GetActiveLaunchPlan",
            "AdminService.ListActiveLaunchPlans",
        ),
    ),
    EVENT_AFTER_TERMINAL_ACCEPTED: Defect(
        "CreateWorkflowEvent for an execution in a terminal phase is accepted and moves it to the "
        "event's phase.",
        rule="flyte.events.workflow.terminal",
        methods=("AdminService.CreateWorkflowEvent",),
    ),
    FILTERS_IGNORED: Defect(
        "ListTasks, ListWorkflows, ListLaunchPlans and ListExecutions check their filters but do not "
        "apply them.",
        rule="flyte.lists.filter-applied",
        methods=(*_ENTITY_LISTS, "AdminService.ListExecutions"),
    ),
    TOKEN_NEVER_ADVANCES: Defect(
        "ListTasks, ListWorkflows, ListLaunchPlans and ListExecutions read the page token but always "
        "answer the first page (and the same next token).",
        rule="flyte.lists.pagination",
        methods=(*_ENTITY_LISTS, "AdminService.ListExecutions"),
    ),
    ARCHIVED_STILL_LISTED: Defect(
        "ListExecutions without a state filter still lists executions archived by UpdateExecution.",
        rule="flyte.executions.update.effect",
        methods=("AdminService.UpdateExecution", "AdminService.ListExecutions"),
    ),
    GET_TASK_WRONG_STATUS: Defect(
        "GetTask of a task id that names nothing answers INTERNAL instead of NOT_FOUND.",
        rule="flyte.entities.not-found",
        methods=("AdminService.GetTask",),
    ),
    TERMINATE_TERMINAL_ACCEPTED: Defect(
        "TerminateExecution of an execution in a terminal phase succeeds and sends it back to ABORTING.",
        rule="flyte.executions.terminate.terminal",
        methods=("AdminService.TerminateExecution",),
    ),
    EXPIRED_UPLOAD_ACCEPTED: Defect(
        "a PUT to a signed upload URL is accepted after the URL's expires_at",
        rule="flyte.dataproxy.upload.expiry",
        methods=("DataProxyService.CreateUploadLocation",),
    ),
    CONTENT_MD5_UNCHECKED: Defect(
        "a PUT to a signed upload URL is stored whatever its Content-MD5 header and its body's md5",
        rule="flyte.dataproxy.upload.md5-checked",
        methods=("DataProxyService.CreateUploadLocation",),
    ),
    SIGNAL_SET_MISSING_ACCEPTED: Defect(
        "SetSignal of a signal nobody created answers OK and creates it with the value's type",
        rule="flyte.signals.set.not-found",
        methods=("SignalService.SetSignal",),
    ),
    SIGNAL_TYPE_CONFLICT_IGNORED: Defect(
        "GetOrCreateSignal with another type for an existing signal id answers the stored signal",
        rule="flyte.signals.get-or-create.type-conflict",
        methods=("SignalService.GetOrCreateSignal",),
    ),
    CACHE_EVICT_KEEPS_ENTRY: Defect(
        "EvictTaskExecutionCache marks the node evicted but leaves the catalog entry: the next run hits it",
        rule="flyte.cache.evict.effect",  # seen on the node's cache status after the eviction
        methods=("CacheService.EvictTaskExecutionCache", "AdminService.GetNodeExecution"),
    ),
    DELETE_TWICE_REFUSED: Defect(
        "AsyncAgentService.DeleteTask of a job already deleted answers NOT_FOUND instead of succeeding again",
        rule="flyte.agents.delete.idempotent",
        methods=("AsyncAgentService.DeleteTask",),
    ),
    JOB_NEVER_FINISHES: Defect(
        "AsyncAgentService.GetTask answers RUNNING once the job has finished: it never ends",
        rule="flyte.agents.async.lifecycle",
        methods=("AsyncAgentService.CreateTask", "AsyncAgentService.GetTask"),
    ),
    METADATA_WITHOUT_TOKEN_ENDPOINT: Defect(
        "AuthMetadataService.GetOAuth2Metadata answers without token_endpoint",
        rule="flyte.auth.oauth2-metadata",
        methods=("AuthMetadataService.GetOAuth2Metadata",),
    ),
}
