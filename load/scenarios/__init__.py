"""The load scenarios: name -> the locust user classes that run it (in :mod:`protoconform.load.locustfile`).

Each user follows one real workflow of an API family, makes its state under a namespace of its
own and removes it again. Listed here without importing locust (``protoconform load --scenario list``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    users: tuple[str, ...]  # user class names in the locustfile
    needs_rest: bool
    about: str
    params: tuple[str, ...] = ()  # NAME=default (whole numbers), shown by --scenario list
    needs_grpc: bool = True


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "armonik",
            ("ArmoniKSessionUser",),
            False,
            "session -> payloads, outputs -> task batches -> events -> download -> close, purge, delete",
            ("tasks=8", "batch=4", "payload_bytes=256", "uploads=2", "chunks=4", "armonik_weight=1"),
        ),
        Scenario(
            "kfp-grpc",
            ("KfpGrpcUser",),
            False,
            "KFP over gRPC: create runs -> paged lists -> metrics -> read artifacts -> archive -> delete",
            ("runs=3", "page_size=2", "kfp_grpc_weight=1"),
        ),
        Scenario(
            "kfp-rest",
            ("KfpRestUser",),
            True,
            "KFP over REST (grpc-gateway routes): the same workflow as kfp-grpc",
            ("runs=3", "page_size=2", "kfp_rest_weight=1"),
            needs_grpc=False,
        ),
        Scenario(
            "flyte",
            ("FlyteUser",),
            False,
            "Flyte: register task, workflow, plan -> activate -> executions -> events -> filtered lists",
            ("executions=2", "flyte_weight=1"),
        ),
        Scenario(
            "health",
            ("HealthUser",),
            False,
            "grpc.health.v1.Health/Check in a loop: the load generator's own ceiling",
        ),
        Scenario(
            "session-get",
            ("SessionGetUser",),
            False,
            "ArmoniK GetSession of one session per user in a loop: a stateful Get through the call path",
        ),
    )
}
SCENARIOS["mixed"] = Scenario(
    "mixed",
    tuple(u for name in ("armonik", "kfp-grpc", "kfp-rest", "flyte") for u in SCENARIOS[name].users),
    True,
    "all four workflows at once, weighted by the *_weight parameters",
    tuple(
        dict.fromkeys(p for n in ("armonik", "kfp-grpc", "kfp-rest", "flyte") for p in SCENARIOS[n].params)
    ),
)
