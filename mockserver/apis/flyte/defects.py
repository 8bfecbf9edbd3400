"""Deliberate deviations from specs/flyte, off by default (``--defect NAME``).

Each is a realistic bug a Flyte server could have, with the failure a default
conformance run must report for it; the harness proves its power by catching
every one.
"""

from __future__ import annotations

from protoconform.mockserver.apis.flyte.agents import DELETE_TWICE_REFUSED, JOB_NEVER_FINISHES
from protoconform.mockserver.apis.flyte.auth import METADATA_WITHOUT_TOKEN_ENDPOINT
from protoconform.mockserver.control.defects import Defect

DEFECTS: dict[str, Defect] = {
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
