"""``armonik.api.grpc.v1.partitions.Partitions``: the partitions configured at start."""

from __future__ import annotations

from armonik.protogen.common.partitions_common_pb2 import GetPartitionResponse, ListPartitionsResponse
from protoconform.mockserver.apis.armonik import convert
from protoconform.mockserver.apis.armonik.listing import run_list
from protoconform.mockserver.apis.armonik.state import ArmonikState
from protoconform.mockserver.rpc import CallContext, handler

SVC = "armonik.api.grpc.v1.partitions.Partitions"


@handler(SVC, "GetPartition")
def get(request, ctx: CallContext) -> GetPartitionResponse:
    state: ArmonikState = ctx.state
    return GetPartitionResponse(partition=convert.partition_raw(state.require_partition(request.id)))


@handler(SVC, "ListPartitions")
def list_partitions(request, ctx: CallContext) -> ListPartitionsResponse:
    state: ArmonikState = ctx.state
    page, total = run_list(ctx, request, "partition", state.partitions.all(), lambda p: p.id)
    return ListPartitionsResponse(
        partitions=[convert.partition_raw(p) for p in page],
        page=request.page,
        page_size=request.page_size,
        total=total,
    )
