"""``armonik.api.grpc.v1.versions.Versions``: the versions this control plane is built from."""

from __future__ import annotations

import importlib.metadata

from armonik.protogen.common.versions_common_pb2 import ListVersionsResponse
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.rpc import CallContext, handler

SVC = "armonik.api.grpc.v1.versions.Versions"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@handler(SVC, "ListVersions")
def list_versions(request, ctx: CallContext) -> ListVersionsResponse:
    state: ArmonikState = ctx.state
    core = state.options.core_version or _version("protoconform")
    return ListVersionsResponse(core=core, api=_version("armonik"))
