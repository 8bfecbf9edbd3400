"""Helpers for the Flyte tests: an AdminService client over a real gRPC channel, and entities to register."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format, message
from protoconform.specs.registry import default_registry
from service_client import ServiceClient

SERVICE = "flyteidl.service.AdminService"
DOMAIN = "development"


class Admin(ServiceClient):
    """AdminService, with helpers that register entities."""

    SERVICE = SERVICE
    FAMILY = "flyte"

    # -- registration -------------------------------------------------------------------------
    def project(self, project_id: str = "p1", **fields: Any) -> None:
        self.RegisterProject(project={"id": project_id, "name": project_id.upper(), **fields})

    def task(
        self, name: str = "mod.add", version: str = "v1", project: str = "p1", **spec: Any
    ) -> dict[str, Any]:
        ident = identifier("TASK", name, version, project)
        self.CreateTask(id=ident, spec={"template": task_template(ident, **spec)})
        return ident

    def workflow(
        self,
        name: str = "mod.wf",
        version: str = "v1",
        project: str = "p1",
        tasks: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A workflow running ``tasks`` (add(a, b) by default) one after the other on its inputs."""
        ident = identifier("WORKFLOW", name, version, project)
        self.CreateWorkflow(
            id=ident,
            spec={
                "template": workflow_template(ident, tasks or [identifier("TASK", "mod.add", "v1", project)])
            },
        )
        return ident

    def launch_plan(
        self, name: str = "mod.wf", version: str = "v1", project: str = "p1", **spec: Any
    ) -> dict[str, Any]:
        ident = identifier("LAUNCH_PLAN", name, version, project)
        workflow_id = spec.pop("workflow_id", identifier("WORKFLOW", name, version, project))
        self.CreateLaunchPlan(id=ident, spec={"workflow_id": workflow_id, **spec})
        return ident

    def registered(self, project: str = "p1") -> dict[str, Any]:
        """A project with add(a, b), a workflow running it and that workflow's launch plan."""
        self.project(project)
        self.task(project=project)
        self.workflow(project=project)
        return self.launch_plan(project=project)

    def execute(self, launch_plan: dict[str, Any], name: str = "", **inputs: Any) -> dict[str, str]:
        request: dict[str, Any] = {
            "project": launch_plan["project"],
            "domain": launch_plan["domain"],
            "spec": {"launch_plan": launch_plan},
            "inputs": literal_map(**inputs),
        }
        if name:
            request["name"] = name
        created = self.CreateExecution(request)
        return json_format.MessageToDict(created.id, preserving_proto_field_name=True)

    def list_all(self, method: str, **request: Any) -> list[Any]:
        """Every item of a listing, following tokens; returns the pages' items in order."""
        items, token = [], ""
        while True:
            page = getattr(self, method)(token=token, **request)
            field = next(f for f in page.DESCRIPTOR.fields if f.is_repeated)
            items.extend(getattr(page, field.name))
            token = page.token
            if not token:
                return items


def identifier(
    kind: str, name: str, version: str = "v1", project: str = "p1", domain: str = DOMAIN
) -> dict[str, Any]:
    return {"resource_type": kind, "project": project, "domain": domain, "name": name, "version": version}


def simple(kind: str) -> dict[str, Any]:
    return {"type": {"simple": kind}}


def task_template(
    ident: dict[str, Any],
    inputs: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    inputs = {"a": "INTEGER", "b": "INTEGER"} if inputs is None else inputs
    outputs = {"o0": "INTEGER"} if outputs is None else outputs
    return {
        "id": ident,
        "type": "python-task",
        "metadata": {"runtime": {"type": "FLYTE_SDK", "version": "1.16.0"}, **extra.pop("metadata", {})},
        "interface": {
            "inputs": {"variables": {k: simple(v) for k, v in inputs.items()}},
            "outputs": {"variables": {k: simple(v) for k, v in outputs.items()}},
        },
        "container": {"image": "python:3.11", "args": ["pyflyte-execute"]},
        **extra,
    }


def promise(node_id: str, var: str) -> dict[str, Any]:
    return {"promise": {"node_id": node_id, "var": var}}


def workflow_template(ident: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Node n<i> runs tasks[i] with a from the previous node's o0 (the workflow's a for n0) and b."""
    nodes = []
    for index, task in enumerate(tasks):
        source = promise("start-node", "a") if index == 0 else promise(f"n{index - 1}", "o0")
        nodes.append(
            {
                "id": f"n{index}",
                "metadata": {"name": task["name"]},
                "task_node": {"reference_id": task},
                "inputs": [
                    {"var": "a", "binding": source},
                    {"var": "b", "binding": promise("start-node", "b")},
                ],
            }
        )
    return {
        "id": ident,
        "interface": {
            "inputs": {"variables": {"a": simple("INTEGER"), "b": simple("INTEGER")}},
            "outputs": {"variables": {"o0": simple("INTEGER")}},
        },
        "nodes": nodes,
        "outputs": [{"var": "o0", "binding": promise(f"n{len(tasks) - 1}", "o0")}],
    }


def literal(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"scalar": {"primitive": {"boolean": value}}}
    if isinstance(value, int):
        return {"scalar": {"primitive": {"integer": str(value)}}}
    if isinstance(value, float):
        return {"scalar": {"primitive": {"float_value": value}}}
    return {"scalar": {"primitive": {"string_value": value}}}


def literal_map(**values: Any) -> dict[str, Any]:
    return {"literals": {k: literal(v) for k, v in values.items()}}


def plain(literals: Any) -> dict[str, Any]:
    """A LiteralMap of primitives as a dict of Python values."""
    out = {}
    for name, lit in literals.literals.items():
        primitive = lit.scalar.primitive
        out[name] = getattr(primitive, primitive.WhichOneof("value"))
    return out


def status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    return error.code(), error.details()


def details(error: grpc.RpcError) -> list[message.Message]:
    """The detail messages of a failed call's rich status, unpacked by their type."""
    from grpc_status import rpc_status

    found = rpc_status.from_call(error)
    if found is None:
        return []
    registry = default_registry()
    unpacked = []
    for detail in found.details:
        cls = registry.message_class(detail.type_url.rpartition("/")[2])
        value = cls()
        detail.Unpack(value)
        unpacked.append(value)
    return unpacked


# -- a registered world, and a plausible request for every AdminService method ----------------------

ADMIN_SERVICE = SERVICE
SCOPE = {"project": "p1", "domain": DOMAIN}
EXECUTION = {**SCOPE, "name": "e1"}
NODE = {"execution_id": EXECUTION, "node_id": "n0"}
TASK = identifier("TASK", "mod.add")
TASK_EXECUTION = {"task_id": TASK, "node_execution_id": NODE, "retry_attempt": 0}
ATTRIBUTES = {"task_resource_attributes": {"defaults": {"cpu": "1"}}}


def build_world(admin: Admin) -> Admin:
    """A project with a task, workflow and active launch plan; e1 has run to the end, e2 has not."""
    plan = admin.registered()
    admin.UpdateLaunchPlan(id=plan, state="ACTIVE")
    ident = identifier("TASK", "mod.doc")
    admin.CreateTask(
        id=ident,
        spec={"template": _template(admin, ident), "description": {"short_description": "documented"}},
    )
    admin.execute(plan, name="e1", a=1, b=2)
    admin.advance(30)
    dynamic = {"id": {"resource_type": "WORKFLOW", **SCOPE, "name": "dyn", "version": "v1"}}
    admin.CreateNodeEvent(
        event={
            "id": {"execution_id": EXECUTION, "node_id": "dyn"},
            "phase": "RUNNING",
            "occurred_at": "2026-01-01T00:00:00Z",
            "task_node_metadata": {
                "dynamic_workflow": {**dynamic, "compiled_workflow": {"primary": {"template": dynamic}}}
            },
        }
    )
    admin.execute(plan, name="e2", a=1, b=2)
    admin.execute(plan, name="ev", a=1, b=2)
    for update in ("UpdateProjectDomainAttributes", "UpdateProjectAttributes", "UpdateWorkflowAttributes"):
        getattr(admin, update)(PLAUSIBLE[update]())
    return admin


def _template(admin: Admin, ident: dict[str, Any]) -> dict[str, Any]:
    template = json_format.MessageToDict(
        admin.GetTask(id=TASK).closure.compiled_task.template, preserving_proto_field_name=True
    )
    return {**template, "id": ident}


PLAUSIBLE: dict[str, Callable[[], dict[str, Any]]] = {
    "CreateTask": lambda: {
        "id": identifier("TASK", "mod.new"),
        "spec": {
            "template": {
                "id": identifier("TASK", "mod.new"),
                "type": "python-task",
                "metadata": {},
                "interface": {},
                "container": {"image": "python:3.11"},
            }
        },
    },
    "GetTask": lambda: {"id": TASK},
    "ListTaskIds": lambda: {**SCOPE, "limit": 10},
    "ListTasks": lambda: {"id": {**SCOPE, "name": "mod.add"}, "limit": 10},
    "CreateWorkflow": lambda: {
        "id": identifier("WORKFLOW", "mod.wf2"),
        "spec": {"template": {"id": identifier("WORKFLOW", "mod.wf2")}},
    },
    "GetWorkflow": lambda: {"id": identifier("WORKFLOW", "mod.wf")},
    "ListWorkflowIds": lambda: {**SCOPE, "limit": 10},
    "ListWorkflows": lambda: {"id": {**SCOPE, "name": "mod.wf"}, "limit": 10},
    "CreateLaunchPlan": lambda: {
        "id": identifier("LAUNCH_PLAN", "mod.lp2"),
        "spec": {"workflow_id": identifier("WORKFLOW", "mod.wf")},
    },
    "GetLaunchPlan": lambda: {"id": identifier("LAUNCH_PLAN", "mod.wf")},
    "GetActiveLaunchPlan": lambda: {"id": {**SCOPE, "name": "mod.wf"}},
    "ListActiveLaunchPlans": lambda: {**SCOPE, "limit": 10},
    "ListLaunchPlanIds": lambda: {**SCOPE, "limit": 10},
    "ListLaunchPlans": lambda: {"id": {**SCOPE, "name": "mod.wf"}, "limit": 10},
    "UpdateLaunchPlan": lambda: {"id": identifier("LAUNCH_PLAN", "mod.wf"), "state": "ACTIVE"},
    "CreateExecution": lambda: {
        **SCOPE,
        "name": "e3",
        "spec": {"launch_plan": identifier("LAUNCH_PLAN", "mod.wf")},
        "inputs": literal_map(a=1, b=1),
    },
    "RelaunchExecution": lambda: {"id": EXECUTION, "name": "e4"},
    "RecoverExecution": lambda: {"id": EXECUTION, "name": "e5"},
    "GetExecution": lambda: {"id": EXECUTION},
    "UpdateExecution": lambda: {"id": EXECUTION, "state": "EXECUTION_ACTIVE"},
    "GetExecutionData": lambda: {"id": EXECUTION},
    "ListExecutions": lambda: {"id": SCOPE, "limit": 10, "sort_by": {"key": "execution_created_at"}},
    "TerminateExecution": lambda: {"id": {**SCOPE, "name": "e2"}, "cause": "test"},
    "GetNodeExecution": lambda: {"id": NODE},
    "GetDynamicNodeWorkflow": lambda: {"id": {"execution_id": EXECUTION, "node_id": "dyn"}},
    "ListNodeExecutions": lambda: {"workflow_execution_id": EXECUTION, "limit": 10},
    "ListNodeExecutionsForTask": lambda: {"task_execution_id": TASK_EXECUTION, "limit": 10},
    "GetNodeExecutionData": lambda: {"id": NODE},
    "RegisterProject": lambda: {"project": {"id": "p2", "name": "P2"}},
    "UpdateProject": lambda: {"id": "p1", "name": "P1", "description": "updated"},
    "GetProject": lambda: {"id": "p1"},
    "ListProjects": lambda: {"limit": 10},
    "GetDomains": lambda: {},
    "CreateWorkflowEvent": lambda: {
        "event": {
            "execution_id": {**SCOPE, "name": "ev"},
            "phase": "QUEUED",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    },
    "CreateNodeEvent": lambda: {
        "event": {
            "id": {"execution_id": {**SCOPE, "name": "ev"}, "node_id": "x"},
            "phase": "QUEUED",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    },
    "CreateTaskEvent": lambda: {
        "event": {
            "task_id": TASK,
            "parent_node_execution_id": {"execution_id": {**SCOPE, "name": "ev"}, "node_id": "x"},
            "phase": "QUEUED",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    },
    "GetTaskExecution": lambda: {"id": TASK_EXECUTION},
    "ListTaskExecutions": lambda: {"node_execution_id": NODE, "limit": 10},
    "GetTaskExecutionData": lambda: {"id": TASK_EXECUTION},
    "UpdateProjectDomainAttributes": lambda: {"attributes": {**SCOPE, "matching_attributes": ATTRIBUTES}},
    "GetProjectDomainAttributes": lambda: {**SCOPE, "resource_type": "TASK_RESOURCE"},
    "DeleteProjectDomainAttributes": lambda: {**SCOPE, "resource_type": "TASK_RESOURCE"},
    "UpdateProjectAttributes": lambda: {"attributes": {"project": "p1", "matching_attributes": ATTRIBUTES}},
    "GetProjectAttributes": lambda: {"project": "p1", "resource_type": "TASK_RESOURCE"},
    "DeleteProjectAttributes": lambda: {"project": "p1", "resource_type": "TASK_RESOURCE"},
    "UpdateWorkflowAttributes": lambda: {
        "attributes": {**SCOPE, "workflow": "mod.wf", "matching_attributes": ATTRIBUTES}
    },
    "GetWorkflowAttributes": lambda: {**SCOPE, "workflow": "mod.wf", "resource_type": "TASK_RESOURCE"},
    "DeleteWorkflowAttributes": lambda: {**SCOPE, "workflow": "mod.wf", "resource_type": "TASK_RESOURCE"},
    "ListMatchableAttributes": lambda: {"resource_type": "TASK_RESOURCE"},
    "ListNamedEntities": lambda: {"resource_type": "WORKFLOW", **SCOPE, "limit": 10},
    "GetNamedEntity": lambda: {"resource_type": "WORKFLOW", "id": {**SCOPE, "name": "mod.wf"}},
    "UpdateNamedEntity": lambda: {
        "resource_type": "WORKFLOW",
        "id": {**SCOPE, "name": "mod.wf"},
        "metadata": {"description": "d"},
    },
    "GetVersion": lambda: {},
    "GetDescriptionEntity": lambda: {"id": identifier("TASK", "mod.doc")},
    "ListDescriptionEntities": lambda: {
        "resource_type": "TASK",
        "id": {**SCOPE, "name": "mod.doc"},
        "limit": 10,
    },
    "GetExecutionMetrics": lambda: {"id": EXECUTION, "depth": 3},
}


def admin_methods() -> list[str]:
    return [m.name for m in default_registry().service(SERVICE).methods]
