"""Flyte requests the models send, built from the family's valid examples (specs/flyte examples.yaml).

An example names what it registers with ``${name:LABEL}`` (``project``, ``task``, ``workflow``,
``execution``); a model fills the labels with names of its own and changes what it varies (a
version, a description), so the registrations stay the documented valid ones.
"""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from protoconform.conformance.caller import Reply
from protoconform.conformance.examples import book
from protoconform.conformance.examples.parsing import PLACEHOLDER
from protoconform.conformance.models.base import Env, expect_codes

FAMILY = "flyte"
DOMAIN = "development"  # the examples' domain, one of every project's configured domains


def fresh(env: Env, what: str) -> str:
    """A name no earlier run used (registrations are immutable): lower-case letters, digits and '-',
    starting with a letter, so it is a valid project id and execution name too."""
    namespace = re.sub(r"[^a-z0-9-]", "", env.namespace.lower()).strip("-") or "pc"
    if not namespace[0].isalpha():
        namespace = f"p{namespace}"
    return f"{namespace}-{what}-{secrets.token_hex(3)}"


def template(method: str) -> Any:
    """The request of ``method``'s example, placeholders unresolved."""
    example = book(FAMILY).example(f"flyteidl.service.{method}")
    if example is None:
        raise KeyError(f"specs/flyte has no example of {method}")
    return copy.deepcopy(example.request)


def fill(value: Any, names: dict[str, str]) -> Any:
    """``value`` with each ``${name:LABEL}`` replaced by ``names[LABEL]``."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: names[m["ref"]] if m["fn"] == "name" else m[0], value)
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


def request(method: str, names: dict[str, str], version: str = "") -> dict[str, Any]:
    """``method``'s example request for ``names``; ``version`` replaces the version of every id."""
    found = fill(template(method), names)
    if version:
        _set_versions(found, version)
    return found


def _set_versions(value: Any, version: str) -> None:
    if isinstance(value, dict):
        if "version" in value and "resource_type" in value:
            value["version"] = version
        for item in value.values():
            _set_versions(item, version)
    elif isinstance(value, list):
        for item in value:
            _set_versions(item, version)


def identifier(kind: str, project: str, name: str, version: str) -> dict[str, str]:
    return {"resource_type": kind, "project": project, "domain": DOMAIN, "name": name, "version": version}


def call_ok(env: Env, method: str, body: Any, rule: str, what: str) -> Reply:
    """A call that must succeed for a check to go on (a refusal breaks ``rule``)."""
    reply = env.rpc(method, body)
    expect_codes(reply, {"OK"}, rule, what)
    return reply


def project_request(project: str, name: str = "", description: str = "") -> dict[str, Any]:
    body = request("AdminService.RegisterProject", {"project": project})
    body["project"]["name"] = name or project
    if description:
        body["project"]["description"] = description
    return body


def archive_project(env: Env, project: dict[str, Any]) -> Reply:
    """UpdateProject to ARCHIVED, the rest as registered."""
    body = {**project, "state": "ARCHIVED"}
    return env.rpc("AdminService.UpdateProject", body)


def task_request(project: str, name: str, version: str, short: str = "", kind: str = "") -> dict[str, Any]:
    body = request("AdminService.CreateTask", {"project": project, "task": name}, version)
    spec = body["spec"]
    if short:
        spec.setdefault("description", {})["short_description"] = short
    if kind:
        spec["template"]["type"] = kind
    return body


def workflow_request(
    project: str, name: str, version: str, task: str, task_version: str, short: str = ""
) -> dict[str, Any]:
    body = request(
        "AdminService.CreateWorkflow", {"project": project, "workflow": name, "task": task}, version
    )
    for node in body["spec"]["template"]["nodes"]:
        node["task_node"]["reference_id"]["version"] = task_version
    if short:
        body["spec"]["description"] = {"short_description": short}
    return body


def node_id() -> str:
    """The id of the example workflow's (one) node."""
    return str(template("AdminService.CreateWorkflow")["spec"]["template"]["nodes"][0]["id"])


def launch_plan_request(project: str, name: str, version: str) -> dict[str, Any]:
    """The example launch plan of workflow ``name`` at ``version`` (named after its workflow)."""
    return request("AdminService.CreateLaunchPlan", {"project": project, "workflow": name}, version)


def execution_request(project: str, name: str, plan: str, plan_version: str) -> dict[str, Any]:
    return request(
        "AdminService.CreateExecution",
        {"project": project, "execution": name, "workflow": plan},
        plan_version,
    )
