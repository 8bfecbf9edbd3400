"""The part of flytepropeller's workflow compiler flyteadmin runs at registration.

It collects what a workflow needs (tasks, launch plans, sub-workflows), refuses
a workflow whose nodes reference what is not there, and builds the
``CompiledWorkflowClosure`` Get returns: the template with its ``start-node`` and
``end-node``, the connections between nodes, the compiled tasks.  Errors read as
the compiler's: ``Collected Errors: N`` then one ``Error i: Code: ..., Node Id:
..., Description: ...`` line each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from protoconform.mockserver.apis.flyte.wire import Wire, copy, text

START_NODE = "start-node"
END_NODE = "end-node"


@dataclass(frozen=True)
class CompileError:
    code: str
    node: str
    description: str


class CompileFailed(Exception):
    def __init__(self, errors: list[CompileError]) -> None:
        super().__init__(render(errors))
        self.errors = errors


def render(errors: list[CompileError]) -> str:
    lines = [f"Collected Errors: {len(errors)}\n"]
    for index, error in enumerate(errors):
        lines.append(
            f"\tError {index}: Code: {error.code}, Node Id: {error.node}, Description: {error.description}\n"
        )
    return "".join(lines)


def walk_nodes(nodes: Any) -> Iterator[Any]:
    """Every node, including those nested in branch and array nodes."""
    for node in nodes:
        yield node
        target = node.WhichOneof("target")
        if target == "branch_node":
            branch = node.branch_node.if_else
            yield from walk_nodes([branch.case.then_node])
            yield from walk_nodes([case.then_node for case in branch.other])
            if branch.HasField("else_node"):
                yield from walk_nodes([branch.else_node])
        elif target == "array_node":
            yield from walk_nodes([node.array_node.node])


def task_references(templates: list[Any]) -> list[Any]:
    """Task identifiers the templates' nodes reference, first occurrence first."""
    found: dict[str, Any] = {}
    for template in templates:
        for node in walk_nodes(
            [*template.nodes, *([template.failure_node] if template.HasField("failure_node") else [])]
        ):
            if node.WhichOneof("target") == "task_node" and node.task_node.HasField("reference_id"):
                found.setdefault(text(node.task_node.reference_id), node.task_node.reference_id)
    return list(found.values())


def launch_plan_references(templates: list[Any]) -> list[Any]:
    found: dict[str, Any] = {}
    for template in templates:
        for node in walk_nodes(template.nodes):
            if node.WhichOneof("target") == "workflow_node" and node.workflow_node.HasField("launchplan_ref"):
                found.setdefault(text(node.workflow_node.launchplan_ref), node.workflow_node.launchplan_ref)
    return list(found.values())


def _dependencies(node: Any) -> list[str]:
    found = list(node.upstream_node_ids)
    stack = [binding.binding for binding in node.inputs]
    while stack:
        data = stack.pop()
        kind = data.WhichOneof("value")
        # an empty node id is the workflow's inputs, as flytekit writes them
        source = data.promise.node_id or START_NODE if kind == "promise" else ""
        if kind == "promise" and source not in found:
            found.append(source)
        elif kind == "collection":
            stack.extend(data.collection.bindings)
        elif kind == "map":
            stack.extend(data.map.bindings.values())
    return found


def _check_template(template: Any, errors: list[CompileError], sub_workflow_ids: set[str]) -> None:
    ids = [node.id for node in template.nodes]
    seen: set[str] = set()
    for node_id in ids:
        if node_id in seen:
            errors.append(
                CompileError(
                    "DuplicateNodeID", node_id, f"Trying to insert two nodes with the same id [{node_id}]."
                )
            )
        if node_id in (START_NODE, END_NODE):
            errors.append(CompileError("ValueCollision", node_id, f"Reserved node id [{node_id}]."))
        seen.add(node_id)
    known = seen | {START_NODE}
    for node in template.nodes:
        for dependency in _dependencies(node):
            if dependency not in known:
                errors.append(
                    CompileError(
                        "NodeReferenceNotFound", node.id, f"Referenced node [{dependency}] not found."
                    )
                )
        target = node.WhichOneof("target")
        if target is None:
            errors.append(CompileError("ValueRequired", node.id, "Value required [Target]."))
        elif target == "gate_node":
            errors.extend(_gate_errors(node))
        elif (
            target == "workflow_node"
            and node.workflow_node.HasField("sub_workflow_ref")
            and text(node.workflow_node.sub_workflow_ref) not in sub_workflow_ids
        ):
            reference = text(node.workflow_node.sub_workflow_ref)
            errors.append(
                CompileError(
                    "WorkflowReferenceNotFound", node.id, f"Referenced Workflow [{reference}] not found."
                )
            )
    for output in template.outputs:
        for dependency in _dependencies(_as_node(output)):
            if dependency not in known:
                errors.append(
                    CompileError(
                        "NodeReferenceNotFound", END_NODE, f"Referenced node [{dependency}] not found."
                    )
                )


def _gate_errors(node: Any) -> list[CompileError]:
    """What the compiler's ValidateUnderlyingInterface refuses in a gate node."""
    gate = node.gate_node
    condition = gate.WhichOneof("condition")
    if condition is None:
        return [
            CompileError("NoConditionFound", node.id, f"Can't find any condition in gate node [{node.id}].")
        ]
    if condition == "signal" and not gate.signal.HasField("type"):
        return [CompileError("ValueRequired", node.id, "Value required [GateNode.Signal.Type].")]
    if condition == "signal" and not gate.signal.output_variable_name:
        return [
            CompileError("ValueRequired", node.id, "Value required [GateNode.Signal.OutputVariableName].")
        ]
    return []


class _as_node:
    """A workflow output binding seen as the inputs of the end node."""

    def __init__(self, binding: Any) -> None:
        self.inputs = [binding]
        self.upstream_node_ids: list[str] = []


def _compiled(wire: Wire, template: Any) -> Any:
    """A compiled workflow: the template with its start and end nodes, and its connections."""
    compiled = wire.new("core.CompiledWorkflow")
    out = compiled.template
    out.CopyFrom(template)
    del out.nodes[:]
    out.nodes.add(id=START_NODE)
    out.nodes.extend(template.nodes)
    end = out.nodes.add(id=END_NODE)
    end.inputs.extend(template.outputs)
    upstream: dict[str, list[str]] = {}
    for node in template.nodes:
        upstream[node.id] = _dependencies(node) or [START_NODE]
    end_deps = [d for output in template.outputs for d in _dependencies(_as_node(output))]
    feeding = {d for deps in upstream.values() for d in deps}
    leaves = [node.id for node in template.nodes if node.id not in feeding]
    upstream[END_NODE] = list(dict.fromkeys(end_deps + leaves)) or [START_NODE]
    downstream: dict[str, list[str]] = {}
    for node_id, deps in upstream.items():
        for dep in deps:
            downstream.setdefault(dep, []).append(node_id)
    for node_id, deps in upstream.items():
        compiled.connections.upstream[node_id].ids.extend(deps)
    for node_id, nodes in downstream.items():
        compiled.connections.downstream[node_id].ids.extend(nodes)
    return compiled


def compile_workflow(
    wire: Wire,
    primary: Any,
    sub_workflows: list[Any],
    find_task: Callable[[Any], Any | None],
) -> Any:
    """The ``CompiledWorkflowClosure`` of a workflow, or :class:`CompileFailed`."""
    errors: list[CompileError] = []
    sub_ids = {text(sub.id) for sub in sub_workflows}
    for template in [primary, *sub_workflows]:
        _check_template(template, errors, sub_ids)
    tasks = []
    for reference in task_references([primary, *sub_workflows]):
        task = find_task(reference)
        if task is None:
            node = next(
                (
                    n.id
                    for t in [primary, *sub_workflows]
                    for n in walk_nodes(t.nodes)
                    if n.WhichOneof("target") == "task_node"
                    and text(n.task_node.reference_id) == text(reference)
                ),
                "",
            )
            errors.append(
                CompileError("TaskReferenceNotFound", node, f"Referenced Task [{text(reference)}] not found.")
            )
        else:
            tasks.append(task)
    if errors:
        raise CompileFailed(errors)
    closure = wire.new("core.CompiledWorkflowClosure")
    closure.primary.CopyFrom(_compiled(wire, primary))
    for sub in sub_workflows:
        closure.sub_workflows.append(_compiled(wire, sub))
    for task in tasks:
        closure.tasks.append(copy(task))
    return closure
