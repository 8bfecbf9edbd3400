"""``armonik.api.grpc.v1.health_checks.HealthChecksService``: the control plane's dependencies.

The real control plane reports its database, object storage and queue; here
all three live in memory and are healthy while the server runs.
"""

from __future__ import annotations

from armonik.protogen.common.health_checks_common_pb2 import CheckHealthResponse, HealthStatusEnum
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.rpc import CallContext, handler

SVC = "armonik.api.grpc.v1.health_checks.HealthChecksService"


@handler(SVC, "CheckHealth")
def check_health(request, ctx: CallContext) -> CheckHealthResponse:
    state: ArmonikState = ctx.state
    services = [
        (
            "database",
            f"in-memory tables: {len(state.sessions)} sessions, {len(state.tasks)} tasks, "
            f"{len(state.results)} results",
        ),
        ("object", f"in-memory object storage: {state.objects.total_bytes()} bytes"),
        ("queue", f"simulated queue: {state.engine.queued} queued, {state.engine.busy} running"),
    ]
    return CheckHealthResponse(
        services=[
            CheckHealthResponse.ServiceHealth(
                name=name, message=message, healthy=HealthStatusEnum.HEALTH_STATUS_ENUM_HEALTHY
            )
            for name, message in services
        ]
    )
