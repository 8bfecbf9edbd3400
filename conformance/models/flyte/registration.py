"""Registration immutability: tasks, workflows and launch plans registered in versions, then
registered again under the same id, with the same entity or a different one.  The same entity again
is ALREADY_EXISTS (``flyte.register.identical``), a different one INVALID_ARGUMENT
(``flyte.register.different``), and either way Get answers what the first registration stored
(``flyte.register.immutable``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from protoconform.conformance.models.base import Env, expect_codes, expect_rule, fail
from protoconform.conformance.models.flyte import requests as rq
from protoconform.conformance.models.flyte.registered import RegisteredMachine
from protoconform.conformance.models.flyte.setup import Base

IDENTICAL_RULE = "flyte.register.identical"
DIFFERENT_RULE = "flyte.register.different"
IMMUTABLE_RULE = "flyte.register.immutable"
WORDS = ("alpha", "beta", "gamma")  # what a variant changes in the registered entity


def _node_name(workflow: Any) -> str | None:
    """The name of the example's node in the compiled workflow (None when it is not there)."""
    nodes = workflow.closure.compiled_workflow.primary.template.nodes
    wanted = rq.node_id()
    return next((n.metadata.name for n in nodes if n.id == wanted), None)


@dataclass(frozen=True)
class Kind:
    """One kind of registered entity: how a variant of it is registered and how it reads back."""

    resource_type: str
    create: str
    get: str
    build: Callable[[Base, str, str, str], dict[str, Any]]  # base, name, version, word -> request
    stored: Callable[[Any], Any]  # Get's response -> the word the variant changed


def _task(base: Base, name: str, version: str, word: str) -> dict[str, Any]:
    body = rq.task_request(base.project, name, version)
    body["spec"]["template"]["container"]["args"] = ["echo", word]
    return body


def _workflow(base: Base, name: str, version: str, word: str) -> dict[str, Any]:
    body = rq.workflow_request(base.project, name, version, base.task["name"], base.task["version"])
    body["spec"]["template"]["nodes"][0]["metadata"]["name"] = word
    return body


def _launch_plan(base: Base, name: str, version: str, word: str) -> dict[str, Any]:
    body = rq.launch_plan_request(base.project, base.workflow["name"], base.workflow["version"])
    body["id"] = rq.identifier("LAUNCH_PLAN", base.project, name, version)
    body["spec"]["labels"] = {"values": {"variant": word}}
    return body


KINDS = (
    Kind(
        "TASK",
        "AdminService.CreateTask",
        "AdminService.GetTask",
        _task,
        lambda r: r.closure.compiled_task.template.container.args[-1],
    ),
    Kind(
        "WORKFLOW",
        "AdminService.CreateWorkflow",
        "AdminService.GetWorkflow",
        _workflow,
        _node_name,
    ),
    Kind(
        "LAUNCH_PLAN",
        "AdminService.CreateLaunchPlan",
        "AdminService.GetLaunchPlan",
        _launch_plan,
        lambda r: r.spec.labels.values.get("variant", ""),
    ),
)


class RegistrationMachine(RegisteredMachine):
    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.names = {kind.resource_type: rq.fresh(env, kind.resource_type.lower()[:4]) for kind in KINDS}
        self.stored: dict[tuple[str, str], str] = {}  # (resource type, version) -> word registered first
        self.kinds = {kind.resource_type: kind for kind in KINDS}
        self.reads: dict[tuple[str, str], bytes] = {}  # what Get answered first, serialized

    def request(self, kind: Kind, version: str, word: str) -> dict[str, Any]:
        return kind.build(self.base, self.names[kind.resource_type], version, word)

    def read_back(self, kind: Kind, version: str) -> None:
        ident = rq.identifier(kind.resource_type, self.base.project, self.names[kind.resource_type], version)
        reply = self.env.rpc(kind.get, {"id": ident})
        expect_codes(reply, {"OK"}, IMMUTABLE_RULE, "reading a registered version")
        wanted = self.stored[(kind.resource_type, version)]
        got = kind.stored(reply.response)
        if got != wanted:
            raise fail(
                IMMUTABLE_RULE, reply, f"{kind.resource_type} {version} as registered first ({wanted})", got
            )
        # and nothing else of it changed since it was first read
        whole = reply.response.SerializeToString(deterministic=True)
        first = self.reads.setdefault((kind.resource_type, version), whole)
        if whole != first:
            raise fail(
                IMMUTABLE_RULE, reply, f"{kind.resource_type} {version} as first read", "another entity"
            )
        self.env.covered(IMMUTABLE_RULE)

    @rule(data=st.data())
    def register(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(KINDS), label="kind")
        word = data.draw(st.sampled_from(WORDS), label="word")
        version = f"v{1 + sum(1 for t, _ in self.stored if t == kind.resource_type)}"
        reply = self.env.rpc(kind.create, self.request(kind, version, word))
        expect_codes(reply, {"OK"}, IMMUTABLE_RULE, "registering a new version")
        self.stored[(kind.resource_type, version)] = word
        self.read_back(kind, version)

    @precondition(lambda self: bool(self.stored))
    @rule(data=st.data())
    def register_again(self, data: st.DataObject) -> None:
        kind_name, version = data.draw(st.sampled_from(sorted(self.stored)), label="registered")
        kind = self.kinds[kind_name]
        word = data.draw(st.sampled_from(WORDS), label="word")
        reply = self.env.rpc(kind.create, self.request(kind, version, word))
        same = word == self.stored[(kind_name, version)]
        rule_id = IDENTICAL_RULE if same else DIFFERENT_RULE
        expect_rule(self.env, reply, self.env.rule(rule_id), "the same entity" if same else "another entity")
        self.read_back(kind, version)
