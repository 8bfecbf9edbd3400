"""What the Flyte list checks list: one fresh project holding tasks, workflows, launch plans and
executions of a few names and versions, a few projects of their own, made once per run.

Values vary where filters and sorts can tell them apart (descriptions, versions, launch plan and
execution states, project names), and repeat, so that sorts meet ties.  Everything is made in
creation order, which is the order of flyteadmin's row ids (the ``id`` column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protoconform.conformance.models.base import Env
from protoconform.conformance.models.flyte import requests as rq
from protoconform.conformance.models.listing import Population

CACHE_KEY = "flyte.population"
WORDS = ("alpha", "beta", "gamma")  # lower-case words: byte order and collations agree on them
TASK_NAMES = 4
SETUP_RULE = "flyte.lists.filter-applied"  # a population that cannot be made leaves the lists unchecked


@dataclass
class World:
    project: str
    token: str
    order: dict[str, list[str]] = field(default_factory=dict)  # list -> keys in creation order
    projects: list[dict[str, Any]] = field(default_factory=list)  # registered projects, as sent
    cleanup: list[Any] = field(default_factory=list)


def world(env: Env) -> World:
    """The population, made on first use."""
    found = env.cache.get(CACHE_KEY)
    if found is None:
        found = env.cache[CACHE_KEY] = make(env)
        # the properties suite undoes what the populations in the cache made, at the end of its run
        env.cache[f"{CACHE_KEY}.cleanup"] = Population([], None, found.cleanup)
    return found


def make(env: Env) -> World:
    token = rq.fresh(env, "lists")
    made = World(project=token, token=token)
    projects = [rq.project_request(token)]
    for index in range(5):
        projects.append(
            rq.project_request(f"{token}-p{index}", f"{token}-{WORDS[index % 3]}", WORDS[index % 2])
        )
    for body in projects:
        rq.call_ok(env, "AdminService.RegisterProject", body, SETUP_RULE, "registering a project")
        made.projects.append(body["project"])
        made.cleanup.append(lambda project=body["project"]: rq.archive_project(env, project))
    made.order["projects"] = [p["id"] for p in made.projects]
    for project in made.projects[2::2]:
        rq.call_ok(
            env, "AdminService.UpdateProject", {**project, "state": "ARCHIVED"}, SETUP_RULE, "archiving"
        )

    project = made.project
    tasks = [(f"{token}-t{i}", "v1") for i in range(TASK_NAMES)] + [(f"{token}-t{i}", "v2") for i in (0, 2)]
    for index, (name, version) in enumerate(tasks):
        body = rq.task_request(project, name, version, short=WORDS[index % 3])
        rq.call_ok(env, "AdminService.CreateTask", body, SETUP_RULE, "registering a task")
    made.order["tasks"] = [f"{n}@{v}" for n, v in tasks]
    task = tasks[0]
    workflows = [(f"{token}-w{i}", v) for i in range(2) for v in ("v1", "v2")]
    for index, (name, version) in enumerate(workflows):
        body = rq.workflow_request(project, name, version, task[0], task[1], short=WORDS[(index + 1) % 3])
        rq.call_ok(env, "AdminService.CreateWorkflow", body, SETUP_RULE, "registering a workflow")
    made.order["workflows"] = [f"{n}@{v}" for n, v in workflows]
    for name, version in workflows:
        body = rq.launch_plan_request(project, name, version)
        rq.call_ok(env, "AdminService.CreateLaunchPlan", body, SETUP_RULE, "registering a launch plan")
    made.order["launch_plans"] = [f"{n}@{v}" for n, v in workflows]
    for name, version in (workflows[1], workflows[2]):
        plan = rq.identifier("LAUNCH_PLAN", project, name, version)
        rq.call_ok(
            env, "AdminService.UpdateLaunchPlan", {"id": plan, "state": "ACTIVE"}, SETUP_RULE, "activating"
        )
    executions = []
    for index in range(6):
        name = f"{token}-e{index}"
        plan = workflows[index % len(workflows)]
        rq.call_ok(
            env,
            "AdminService.CreateExecution",
            rq.execution_request(project, name, *plan),
            SETUP_RULE,
            "launching",
        )
        executions.append(name)
    made.order["executions"] = executions
    for name in executions[1::3]:  # archived
        update = {
            "id": {"project": project, "domain": rq.DOMAIN, "name": name},
            "state": "EXECUTION_ARCHIVED",
        }
        rq.call_ok(env, "AdminService.UpdateExecution", update, SETUP_RULE, "archiving an execution")
    for name in executions:
        ident = {"project": project, "domain": rq.DOMAIN, "name": name}
        made.cleanup.append(
            lambda ident=ident: env.rpc("AdminService.TerminateExecution", {"id": ident, "cause": "over"})
        )
    names = sorted({n for n, _ in tasks})
    made.order["entities"] = names
    for index, name in enumerate(names):
        metadata = {
            "description": WORDS[index % 2],
            "state": "NAMED_ENTITY_ARCHIVED" if index == 1 else "NAMED_ENTITY_ACTIVE",
        }
        ident = {"project": project, "domain": rq.DOMAIN, "name": name}
        body = {"resource_type": "TASK", "id": ident, "metadata": metadata}
        rq.call_ok(env, "AdminService.UpdateNamedEntity", body, SETUP_RULE, "describing a task name")
    made.cleanup.reverse()  # executions first, projects last
    return made
