"""Launch plan activation: versions of a few launch plan names created, activated and deactivated in
any order; after every step each version is in the state the ``launch_plan`` state machine gives,
at most one version per name is ACTIVE (the last activated, unless deactivated since: rule
``flyte.launch-plans.update.activation``), and GetActiveLaunchPlan and ListActiveLaunchPlans agree.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from protoconform.conformance.models.base import Env, expect_codes, expect_rule, fail
from protoconform.conformance.models.flyte import requests as rq
from protoconform.conformance.models.flyte.registered import RegisteredMachine

CREATE_RULE = "flyte.launch-plans.create.expected-inputs"  # created INACTIVE
ACTIVATION_RULE = "flyte.launch-plans.update.activation"
NO_ACTIVE_RULE = "flyte.launch-plans.active.not-found"
NOT_FOUND_RULE = "flyte.entities.not-found"
NAMES = 2  # launch plan names per sequence: activating one name leaves the other alone


class ActivationMachine(RegisteredMachine):
    def __init__(self, env: Env) -> None:
        super().__init__(env)
        machine = self.lifecycle.machine
        # each action leads to one state from anywhere: the state UpdateLaunchPlan asks for
        self.asks = {action: next(iter(set(edges.values()))) for action, edges in machine.transitions.items()}
        rule_params = env.rule(ACTIVATION_RULE).params
        self.active = self.asks[rule_params["action"]]  # the state of which a name has at most one version
        self.names = [rq.fresh(env, "lp") for _ in range(NAMES)]
        self.versions: dict[str, list[str]] = {name: [] for name in self.names}
        self.states: dict[tuple[str, str], str] = {}
        self.updated: set[tuple[str, str]] = set()  # versions UpdateLaunchPlan named

    def ident(self, name: str, version: str) -> dict[str, Any]:
        return rq.identifier("LAUNCH_PLAN", self.base.project, name, version)

    def pick(self, data: st.DataObject) -> tuple[str, str]:
        made = sorted(self.states)
        return data.draw(st.sampled_from(made), label="launch plan")

    # -- rules ---------------------------------------------------------------------------------
    @rule(data=st.data())
    def register(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self.names), label="name")
        version = f"v{len(self.versions[name]) + 1}"
        body = rq.launch_plan_request(self.base.project, self.base.workflow["name"], "v1")
        body["id"] = self.ident(name, version)
        reply = self.env.rpc("AdminService.CreateLaunchPlan", body)
        expect_codes(reply, {"OK"}, CREATE_RULE, "registering a new version")
        self.versions[name].append(version)
        self.states[(name, version)] = self.lifecycle.initial
        self.check(name)

    @precondition(lambda self: bool(self.states))
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        name, version = self.pick(data)
        action = data.draw(st.sampled_from(sorted(self.asks)), label="action")
        wanted = self.asks[action]
        reply = self.env.rpc(
            "AdminService.UpdateLaunchPlan", {"id": self.ident(name, version), "state": wanted}
        )
        expect_codes(reply, {"OK"}, ACTIVATION_RULE, f"{action} of an existing version")
        self.updated.add((name, version))
        machine = self.lifecycle.machine
        if wanted == self.active:  # the version that was active under the name no longer is
            inactive = next(state for state in self.asks.values() if state != self.active)
            for other in self.versions[name]:
                if other != version and self.states[(name, other)] == self.active:
                    self.states[(name, other)] = inactive
        self.states[(name, version)] = machine.target(action, self.states[(name, version)]) or wanted
        self.check(name)

    @rule(data=st.data())
    def update_unknown(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self.names), label="name")
        version = f"v{len(self.versions[name]) + 1}"  # not registered (yet)
        wanted = data.draw(st.sampled_from(sorted(set(self.asks.values()))), label="state")
        reply = self.env.rpc(
            "AdminService.UpdateLaunchPlan", {"id": self.ident(name, version), "state": wanted}
        )
        expect_rule(self.env, reply, self.env.rule(NOT_FOUND_RULE), "a version never registered")
        self.check(name)

    # -- what must hold after every step ----------------------------------------------------------
    def check(self, name: str) -> None:
        for version in self.versions[name]:
            reply = self.env.rpc("AdminService.GetLaunchPlan", {"id": self.ident(name, version)})
            expect_codes(reply, {"OK"}, NOT_FOUND_RULE, "reading a registered version")
            state = self.state_name(reply.response.closure.state)
            wanted = self.states[(name, version)]
            rule_id = ACTIVATION_RULE if self.updated & set(self.versions_of(name)) else CREATE_RULE
            if state != wanted:
                raise fail(rule_id, reply, f"closure.state {wanted} for {name} {version}", state)
            self.env.covered(rule_id)
        active = [v for v in self.versions[name] if self.states[(name, v)] == self.active]
        reply = self.env.rpc("AdminService.GetActiveLaunchPlan", {"id": self.base.named(name)})
        if active:
            expect_codes(reply, {"OK"}, ACTIVATION_RULE, f"{name} has an active version")
            got = reply.response.id.version
            if got != active[0]:
                raise fail(ACTIVATION_RULE, reply, f"the active version {active[0]}", got)
        else:
            expect_rule(self.env, reply, self.env.rule(NO_ACTIVE_RULE), f"{name} has no active version")
        listed = self.env.rpc(
            "AdminService.ListActiveLaunchPlans",
            {"project": self.base.project, "domain": rq.DOMAIN, "limit": 1000},
        )
        expect_codes(listed, {"OK"}, ACTIVATION_RULE, "listing the active launch plans")
        shown = sorted(p.id.version for p in listed.response.launch_plans if p.id.name == name)
        if shown != active:
            raise fail(ACTIVATION_RULE, listed, f"active versions of {name}: {active}", shown)

    def versions_of(self, name: str) -> list[tuple[str, str]]:
        return [(name, v) for v in self.versions[name]]
