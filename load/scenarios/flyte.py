"""Flyte: a workflow author's registration and executions, over FlyteAdmin's gRPC API.

RegisterProject (the user's own) -> CreateTask -> CreateWorkflow -> CreateLaunchPlan ->
UpdateLaunchPlan ACTIVE -> ``executions`` CreateExecution -> GetExecution until each is finished
(the mock's simulated propeller runs them on its clock and reports their events) -> the events'
record: ListNodeExecutions and ListTaskExecutions of each execution -> filtered lists (executions
of the launch plan, the task's versions, the project's active launch plans) -> TerminateExecution
of whatever still runs -> the project ARCHIVED. Requests come from the harness's Flyte builders
(:mod:`protoconform.conformance.models.flyte.requests`, from specs/flyte examples.yaml).

A client does not send CreateWorkflowEvent here: the propeller that runs an execution does, and
the mock's refuses a second producer (``producer_id`` must match the execution's cluster).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any

import gevent
from locust import task
from protoconform.conformance.models.flyte import requests as flyte
from protoconform.load import params
from protoconform.load.grpc_user import GrpcUser, workflow

VERSION = "v1"
PHASE_ENUM = "flyteidl.core.WorkflowExecution.Phase"
FINISHED = frozenset({"SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"})
WAIT_S = 30.0  # an execution that takes longer is a failure of the flow, not a hang of the user
POLL_S = 0.2


class FlyteUser(GrpcUser):
    weight = int(params.number("flyte_weight", 1))

    def on_start(self) -> None:
        self.executions = params.count("executions", 2, high=1000)
        self.project = ""
        self.running: list[dict[str, Any]] = []

    def _admin(self, method: str, body: dict[str, Any]) -> Any:
        return self.client.unary(f"AdminService.{method}", body)

    @task
    def register_and_execute(self) -> None:
        try:
            with workflow(self.environment.events.request, "flyte registration and executions"):
                self._flow()
        finally:
            self._clean_up()

    def _flow(self) -> None:
        # short lower-case names: a project id and an execution name must stay small
        project = params.namespace("f").replace("lt-f-", "lt").replace("-", "")[:40]
        self._admin("RegisterProject", flyte.project_request(project))
        self.project = project
        self._admin("CreateTask", flyte.task_request(project, "t", VERSION))
        self._admin("CreateWorkflow", flyte.workflow_request(project, "wf", VERSION, "t", VERSION))
        self._admin("CreateLaunchPlan", flyte.launch_plan_request(project, "wf", VERSION))
        plan = flyte.identifier("LAUNCH_PLAN", project, "wf", VERSION)
        self._admin("UpdateLaunchPlan", {"id": plan, "state": "ACTIVE"})
        for i in range(self.executions):
            request = flyte.execution_request(project, f"e{i}{secrets.token_hex(3)}", "wf", VERSION)
            created = self._admin("CreateExecution", request)
            self.running.append(
                {"project": created.id.project, "domain": created.id.domain, "name": created.id.name}
            )
        for execution in list(self.running):
            self._wait(execution)
            self.running.remove(execution)
            nodes = self._admin("ListNodeExecutions", {"workflow_execution_id": execution, "limit": 10})
            for node in nodes.node_executions:
                node_id = {"node_id": node.id.node_id, "execution_id": execution}
                self._admin("ListTaskExecutions", {"node_execution_id": node_id, "limit": 10})
        scope = {"project": project, "domain": flyte.DOMAIN}
        self._admin("ListExecutions", {"id": scope, "limit": 10, "filters": "eq(launch_plan.name,wf)"})
        versions = {"id": {**scope, "name": "t"}, "limit": 10, "filters": f"eq(version,{VERSION})"}
        self._admin("ListTasks", versions)
        self._admin("ListActiveLaunchPlans", {**scope, "limit": 10})

    def _wait(self, execution: dict[str, Any]) -> None:
        deadline = time.monotonic() + WAIT_S
        while True:
            phase = self._admin("GetExecution", {"id": execution}).closure.phase
            if self.client.enum_name(PHASE_ENUM, phase) in FINISHED:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"execution {execution['name']} not finished after {WAIT_S:g}s")
            gevent.sleep(POLL_S)

    def _clean_up(self) -> None:
        """Stop what still runs, archive the project (projects cannot be deleted); best effort,
        each call reported."""
        running, self.running = self.running, []
        for execution in running:
            with contextlib.suppress(Exception):  # finished in between: reported, nothing to stop
                self._admin("TerminateExecution", {"id": execution, "cause": "load run over"})
        if self.project:
            project, self.project = self.project, ""
            with contextlib.suppress(Exception):
                self._admin("UpdateProject", {"id": project, "name": project, "state": "ARCHIVED"})

    def on_stop(self) -> None:
        self._clean_up()
        super().on_stop()
