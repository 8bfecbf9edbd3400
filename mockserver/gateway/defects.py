"""Deliberate deviations of the REST gateway, for proving the conformance suite can catch them.

Off by default; switched on through ``server.dispatcher.defects`` (``serve --defect NAME``
or the control API).
"""

from __future__ import annotations

from protoconform.mockserver.control.defects import Defect

ERROR_AS_200 = "rest.error-as-200"
CAMEL_CASE_KEYS = "rest.camel-case-keys"

DEFECTS: dict[str, Defect] = {
    ERROR_AS_200: Defect(
        "a REST route answers HTTP 200 with the error body instead of the status its gRPC code maps to",
        rule="kfp.runs.get.not-found",  # over REST: the mapped HTTP status (404), not 200
        methods=("RunService.GetRun",),
        suite="rest",
    ),
    CAMEL_CASE_KEYS: Defect(
        "REST replies use lowerCamelCase keys where the family's gateway writes proto field names",
        rule="kfp.rest.json-convention",  # KFP's grpc-gateway v1 marshaler keeps the proto names
        methods=(
            "RunService.CreateRun",
            "RunService.GetRun",
            "RunService.ListRuns",
            "RunService.ReadArtifact",
        ),
        suite="rest",
    ),
}
