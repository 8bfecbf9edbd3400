"""``armonik.api.grpc.v1.auth.Authentication``: the current user, with authentication off.

Without authentication the real control plane answers the user "Anonymous"
holding every permission, each written ``<Service>:<Method>``; the methods come
from the served descriptors (the worker-side Agent and Worker carry none).
"""

from __future__ import annotations

from armonik.protogen.common.auth_common_pb2 import GetCurrentUserResponse, User
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.rpc import CallContext, handler

SVC = "armonik.api.grpc.v1.auth.Authentication"
NO_PERMISSIONS = ("Agent", "Worker")
EXTRA_PERMISSIONS = ("General:Impersonate",)


def permissions(state: ArmonikState) -> list[str]:
    names: list[str] = []
    if state.registry is None:
        return list(EXTRA_PERMISSIONS)
    for service_name in state.registry.families.get("armonik", []):
        service = state.registry.service(service_name)
        short = service.name.removesuffix("Service")
        if short in NO_PERMISSIONS:
            continue
        names.extend(f"{short}:{method.name}" for method in service.methods)
    return [*names, *EXTRA_PERMISSIONS]


@handler(SVC, "GetCurrentUser")
def get_current_user(request, ctx: CallContext) -> GetCurrentUserResponse:
    return GetCurrentUserResponse(user=User(username="Anonymous", permissions=permissions(ctx.state)))
