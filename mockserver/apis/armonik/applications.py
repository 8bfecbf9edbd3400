"""``armonik.api.grpc.v1.applications.Applications``: applications grouped from task options."""

from __future__ import annotations

from armonik.protogen.common.applications_common_pb2 import ListApplicationsResponse
from protoconform.mockserver.apis.armonik import convert
from protoconform.mockserver.apis.armonik.filters import Application
from protoconform.mockserver.apis.armonik.listing import run_list
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.rpc import CallContext, handler

SVC = "armonik.api.grpc.v1.applications.Applications"


def applications(state: ArmonikState) -> list[Application]:
    """The distinct (name, namespace, version, service) tuples of every task's options."""
    seen = dict.fromkeys(
        Application(
            t.options.application_name,
            t.options.application_namespace,
            t.options.application_version,
            t.options.application_service,
        )
        for t in state.tasks.all()
    )
    return list(seen)


@handler(SVC, "ListApplications")
def list_applications(request, ctx: CallContext) -> ListApplicationsResponse:
    state: ArmonikState = ctx.state
    page, total = run_list(
        ctx,
        request,
        "application",
        applications(state),
        lambda a: (a.name, a.namespace, a.version, a.service),
        multi_sort=True,
    )
    return ListApplicationsResponse(
        applications=[convert.application_raw(a.name, a.namespace, a.version, a.service) for a in page],
        page=request.page,
        page_size=request.page_size,
        total=total,
    )
