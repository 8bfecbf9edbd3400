"""The locustfile ``protoconform load`` runs: every scenario's users, and the run's own controls.

``locust -f`` this file with the user class names of one scenario (:mod:`.scenarios`). Besides the
users it adds, on the master or the single local runner:

- a stop after ``PROTOCONFORM_LOAD_REQUESTS`` requests (all workers counted, from the reports
  they send every few seconds), so a run ends by itself on a request budget as well as on
  ``--run-time``;
- a progress line on stderr about once a second (requests, req/s, failures, p95, users);
- the stats and failures CSV rewritten from the final figures as the process exits: locust's
  writer refreshes them once a second, so its last write can miss the calls of users still
  finishing their iteration (``--stop-timeout``), the ones a threshold is judged with.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import os
import sys
import time
from typing import Any

import gevent
import grpc
from grpc_health.v1 import health_pb2
from locust import events, stats, task
from locust.runners import WorkerRunner
from protoconform.conformance.models.armonik.requests import session_request
from protoconform.load.grpc_user import GrpcCallError, GrpcUser, build, method_of
from protoconform.load.scenarios.armonik import ArmoniKSessionUser
from protoconform.load.scenarios.flyte import FlyteUser
from protoconform.load.scenarios.kfp import KfpGrpcUser, KfpRestUser

__all__ = ["ArmoniKSessionUser", "FlyteUser", "HealthUser", "KfpGrpcUser", "KfpRestUser", "SessionGetUser"]

HEALTH = "/grpc.health.v1.Health/Check"


class HealthUser(GrpcUser):
    """Health/Check as fast as one user can: the load generator's own ceiling."""

    def on_start(self) -> None:
        self.check = self.client.channel.unary_unary(
            HEALTH,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
            _registered_method=True,
        )

    @task
    def health(self) -> None:
        started = time.perf_counter()
        try:
            reply = self.check(
                health_pb2.HealthCheckRequest(),
                timeout=self.client.connection.timeout,
                metadata=self.client.metadata,
            )
        except grpc.RpcError as exc:
            self.client.report(HEALTH, started, 0, GrpcCallError(exc.code(), exc.details() or ""))
            return
        self.client.report(HEALTH, started, reply.ByteSize(), None)


class SessionGetUser(GrpcUser):
    """ArmoniK GetSession of the user's own session in a loop: a stateful read through the whole
    call path (dispatcher, validation, journal), the figure benchmarks compare with bare grpcio."""

    session = ""

    def on_start(self) -> None:
        self.session = self.client.unary("Sessions.CreateSession", session_request()).session_id
        # built once: the loop measures the call, not protojson parsing
        self.request = build(method_of("Sessions.GetSession"), {"session_id": self.session})

    @task
    def get_session(self) -> None:
        with contextlib.suppress(GrpcCallError):  # reported; the loop goes on
            self.client.unary("Sessions.GetSession", self.request)

    def on_stop(self) -> None:
        if self.session:  # none when CreateSession failed (reported)
            with contextlib.suppress(GrpcCallError):
                self.client.unary("Sessions.DeleteSession", {"session_id": self.session})
        super().on_stop()


def _watch(environment: Any, budget: int, progress: bool) -> None:
    """Progress once a second; stop when the request budget is spent."""
    runner = environment.runner
    last = time.monotonic()
    while True:
        gevent.sleep(0.1 if budget else 1.0)
        total = environment.stats.total
        if budget and total.num_requests >= budget:  # failed calls are counted in num_requests too
            runner.quit()
            return
        if progress and time.monotonic() - last >= 1.0:
            last = time.monotonic()
            p95 = total.get_current_response_time_percentile(0.95) or 0
            print(
                f"load: {total.num_requests} requests, {total.current_rps:.1f} req/s, "
                f"{total.num_failures} failures, p95 {p95:.0f} ms, {runner.user_count} users",
                file=sys.stderr,
                flush=True,
            )


@events.test_start.add_listener
def _start_watch(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    budget = int(os.environ.get("PROTOCONFORM_LOAD_REQUESTS", "0") or 0)
    progress = os.environ.get("PROTOCONFORM_LOAD_PROGRESS", "1") == "1"
    if progress or budget:
        gevent.spawn(_watch, environment, budget, progress)


_RUN: dict[str, Any] = {}  # the environment of this process's run, kept at init for the quit hook


@events.init.add_listener
def _keep_environment(environment: Any, **_: Any) -> None:
    _RUN["environment"] = environment


@events.quit.add_listener
def _final_csv(**_: Any) -> None:
    # ``quit`` fires before locust closes its own CSV files (flushing the last periodic write);
    # an exit hook runs after that, so the final figures are what stays on disk.
    environment = _RUN.get("environment")
    prefix = getattr(environment.parsed_options, "csv_prefix", None) if environment else None
    if prefix and not isinstance(environment.runner, WorkerRunner):
        atexit.register(_write_final_csv, environment, prefix)


def _write_final_csv(environment: Any, prefix: str) -> None:
    writer = stats.StatsCSV(environment, stats.PERCENTILES_TO_REPORT)
    with open(f"{prefix}_stats.csv", "w", newline="") as handle:
        writer.requests_csv(csv.writer(handle))
    with open(f"{prefix}_failures.csv", "w", newline="") as handle:
        writer.failures_csv(csv.writer(handle))
