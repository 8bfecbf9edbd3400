"""What the Flyte machines build on: a fresh project with one task, one workflow and one launch plan
of it, registered once per environment (a case), from the family's valid examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protoconform.conformance.models.base import Env
from protoconform.conformance.models.flyte import requests as rq

CACHE_KEY = "flyte.setup"
SETUP_RULE = "flyte.register.immutable"  # a registration of the examples refused: nothing else can be checked


@dataclass(frozen=True)
class Base:
    project: str
    task: dict[str, Any]  # identifiers
    workflow: dict[str, Any]
    plan: dict[str, Any]

    def named(self, name: str) -> dict[str, str]:
        return {"project": self.project, "domain": rq.DOMAIN, "name": name}


def base(env: Env) -> Base:
    found = env.cache.get(CACHE_KEY)
    if found is not None:
        return found
    project = rq.fresh(env, "m")
    task, workflow = f"{project}-t", f"{project}-w"
    rq.call_ok(env, "AdminService.RegisterProject", rq.project_request(project), SETUP_RULE, "registering")
    env.cleanup.append(lambda: rq.archive_project(env, rq.project_request(project)["project"]))
    rq.call_ok(
        env, "AdminService.CreateTask", rq.task_request(project, task, "v1"), SETUP_RULE, "registering"
    )
    body = rq.workflow_request(project, workflow, "v1", task, "v1")
    rq.call_ok(env, "AdminService.CreateWorkflow", body, SETUP_RULE, "registering")
    body = rq.launch_plan_request(project, workflow, "v1")
    rq.call_ok(env, "AdminService.CreateLaunchPlan", body, SETUP_RULE, "registering")
    found = env.cache[CACHE_KEY] = Base(
        project,
        rq.identifier("TASK", project, task, "v1"),
        rq.identifier("WORKFLOW", project, workflow, "v1"),
        rq.identifier("LAUNCH_PLAN", project, workflow, "v1"),
    )
    return found
