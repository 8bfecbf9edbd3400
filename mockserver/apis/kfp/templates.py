"""Pipeline manifests: tell v1 (Argo Workflow) from v2 (pipeline IR), apply run
parameters, and extract the task graph the lifecycle simulates.

A manifest that cannot be used raises :class:`~protoconform.mockserver.apis.kfp.errors.Violation`
naming the rule of ``specs/kfp`` it breaks.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import yaml
from protoconform.mockserver import safejson
from protoconform.mockserver.apis.kfp.errors import Violation

RULE_FORMAT = "kfp.runs.create.template-format"
ARGO_API_VERSION = "argoproj.io/v1alpha1"
MAX_NESTING = 8  # DAGs inside DAGs deeper than this are treated as single steps
MAX_NODES = 500  # a graph is cut here (recursive templates would expand without end)


@dataclass
class Template:
    version: str  # "v1" (Argo Workflow) or "v2" (pipeline IR)
    body: dict[str, Any]


def load_document(text: str, what: str) -> Any:
    """A stored manifest may be JSON or YAML (uploaded pipelines are often YAML); None if neither.

    Nesting and (YAML aliases expanded) size are limited, so the walks over the
    document below stay shallow and short: a manifest over the limits is refused
    as malformed, the message naming ``what``.
    """
    try:
        return safejson.loads(text, what)
    except ValueError:
        pass  # not JSON, or too deep for JSON: YAML (a superset) reads it, with the same limits
    try:
        return safejson.load_yaml(text, what)
    except safejson.DocumentRejected as exc:
        raise Violation(RULE_FORMAT, str(exc)) from None
    except yaml.YAMLError:
        return None


# Where a manifest has typed fields, the types its JSON must have (the server decodes
# it into the Argo Workflow struct or the IR message, so a wrong type is a format error).
# [x] is a list of x; "{x}" an object whose values are x; "x" a named shape below.
_SHAPES: dict[str, Any] = {
    "workflow": {
        "metadata": {"name": str, "generateName": str, "annotations": "{str}", "labels": "{str}"},
        "spec": {
            "entrypoint": str,
            "serviceAccountName": str,
            "arguments": {"parameters": ["parameter"]},
            "templates": ["template"],
        },
    },
    "parameter": {"name": str, "value": str},
    "template": {
        "name": str,
        "dag": {"tasks": ["task"]},
        "steps": [["task"]],
        "outputs": {"artifacts": ["artifact"]},
    },
    "task": {"name": str, "template": str, "dependencies": [str], "depends": str},
    "artifact": {"name": str, "path": str},
    "ir": {"pipelineInfo": {"name": str}, "root": "ir-component", "components": "{ir-component}"},
    "ir-component": {"dag": {"tasks": "{ir-task}"}},
    "ir-task": {"taskInfo": {"name": str}, "componentRef": {"name": str}, "dependentTasks": [str]},
}


def shape_problem(document: Any, shape_name: str) -> str | None:
    """Why ``document`` does not fit the named shape (``workflow`` or ``ir``), or None."""

    def check(value: Any, shape: Any, where: str) -> str | None:
        if value is None:
            return None  # JSON null leaves a field at its zero value
        if shape is str:
            return None if isinstance(value, str) else f"{where} must be a string"
        if isinstance(shape, str) and shape.startswith("{"):
            if not isinstance(value, dict):
                return f"{where} must be an object"
            inner = str if shape == "{str}" else shape[1:-1]
            for key, item in value.items():
                if problem := check(item, inner, f"{where}.{key}"):
                    return problem
            return None
        if isinstance(shape, str):
            return check(value, _SHAPES[shape], where)
        if isinstance(shape, list):
            if not isinstance(value, list):
                return f"{where} must be a list"
            for index, item in enumerate(value):
                if problem := check(item, shape[0], f"{where}[{index}]"):
                    return problem
            return None
        if not isinstance(value, dict):
            return f"{where} must be an object"
        for key, sub in shape.items():
            if key in value and (problem := check(value[key], sub, f"{where}.{key}")):
                return problem
        return None

    return check(document, shape_name, shape_name)


def classify(text: str, what: str) -> Template:
    """The template a manifest holds; ``what`` names the manifest in errors."""
    document = load_document(text, what)
    if isinstance(document, dict):
        api_version, kind = document.get("apiVersion"), document.get("kind")
        if isinstance(api_version, str) and api_version.startswith("argoproj.io/") and kind == "Workflow":
            if problem := shape_problem(document, "workflow"):
                raise Violation(RULE_FORMAT, f"unknown template format: {problem}")
            if api_version != ARGO_API_VERSION:
                raise Violation(
                    "kfp.runs.create.argo-version",
                    f"Unsupported argo version. Expected: {ARGO_API_VERSION}. Received: {api_version}",
                )
            return Template("v1", document)
        info = document.get("pipelineInfo")
        if isinstance(info, dict) and info.get("name") and isinstance(document.get("root"), dict):
            if problem := shape_problem(document, "ir"):
                raise Violation(RULE_FORMAT, f"unknown template format: {problem}")
            return Template("v2", document)
    raise Violation(RULE_FORMAT, "unknown template format")


def declared_parameters(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    arguments = (workflow.get("spec") or {}).get("arguments") or {}
    parameters = arguments.get("parameters") or []
    return [p for p in parameters if isinstance(p, dict)]


def apply_parameters(workflow: dict[str, Any], parameters: list[tuple[str, str]]) -> None:
    """Override declared parameter values; an undeclared name is refused."""
    declared = {p.get("name"): p for p in declared_parameters(workflow)}
    for name, value in parameters:
        if name not in declared:
            raise Violation("kfp.runs.create.undeclared-parameter", f"Unrecognized input parameter: {name}")
        declared[name]["value"] = value


def parameter_value(workflow: dict[str, Any], name: str) -> str:
    for parameter in declared_parameters(workflow):
        if parameter.get("name") == name:
            value = parameter.get("value")
            return "" if value is None else str(value)
    return ""


def replace_macros(workflow: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The server substitutes the run id for ``{{workflow.uid}}`` before submitting.

    The workflow passed ``load_document``'s limits, so the round trip stays shallow; values
    YAML has and JSON lacks (timestamps, binary) become strings, as in the submitted JSON.
    """
    return json.loads(json.dumps(workflow, default=str).replace("{{workflow.uid}}", run_id))


# -- task graph ------------------------------------------------------------------


@dataclass
class GraphNode:
    key: str  # dotted path below the root ("" for the root itself)
    display_name: str
    template: str
    type: str  # "DAG", "Steps" or "Pod"
    parent: str | None
    deps: list[str] = field(default_factory=list)  # keys of siblings this node waits for
    children: list[str] = field(default_factory=list)
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # declared outputs: (name, path)

    @property
    def leaf(self) -> bool:
        return self.type == "Pod"


@dataclass
class Graph:
    nodes: dict[str, GraphNode]  # insertion order = declaration order

    def leaves(self) -> list[GraphNode]:
        return [n for n in self.nodes.values() if n.leaf]

    def ancestors(self, key: str) -> list[GraphNode]:
        chain = []
        node = self.nodes[key]
        while node.parent is not None:
            node = self.nodes[node.parent]
            chain.append(node)
        return chain

    def to_json(self) -> list[dict[str, Any]]:
        return [vars(n) | {"artifacts": [list(a) for a in n.artifacts]} for n in self.nodes.values()]

    @classmethod
    def from_json(cls, items: list[dict[str, Any]]) -> Graph:
        nodes = {}
        for item in items:
            node = GraphNode(**{**item, "artifacts": [tuple(a) for a in item["artifacts"]]})
            nodes[node.key] = node
        return cls(nodes)


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def workflow_graph(workflow: dict[str, Any]) -> Graph:
    """Nodes of an Argo workflow: the entrypoint, its DAG tasks or steps, nested DAGs expanded."""
    spec = workflow.get("spec") or {}
    templates = {t.get("name"): t for t in spec.get("templates") or [] if isinstance(t, dict)}
    nodes: dict[str, GraphNode] = {}

    def artifacts_of(template: dict[str, Any]) -> list[tuple[str, str]]:
        outputs = template.get("outputs") or {}
        return [
            (str(a.get("name")), str(a.get("path") or ""))
            for a in outputs.get("artifacts") or []
            if isinstance(a, dict) and a.get("name")
        ]

    def add(
        key: str, display: str, template_name: str, parent: str | None, deps: list[str], depth: int
    ) -> None:
        if len(nodes) >= MAX_NODES or key in nodes:  # cut, or a duplicate name (Argo's lint refuses it)
            return
        template = templates.get(template_name) or {}
        if depth < MAX_NESTING and isinstance(template.get("dag"), dict):
            kind = "DAG"
        elif depth < MAX_NESTING and isinstance(template.get("steps"), list):
            kind = "Steps"
        else:
            kind = "Pod"
        node = GraphNode(key, display, template_name, kind, parent, deps, artifacts=artifacts_of(template))
        nodes[key] = node
        if parent is not None:
            nodes[parent].children.append(key)
        if kind == "DAG":
            for task in template["dag"].get("tasks") or []:
                if not isinstance(task, dict) or not task.get("name"):
                    continue
                task_deps = [_join(key, d) for d in _dependencies(task)]
                add(
                    _join(key, task["name"]),
                    task["name"],
                    task.get("template", ""),
                    key,
                    task_deps,
                    depth + 1,
                )
            # A dependency on an unknown task would wait forever; drop it as Argo's lint would refuse it.
            for child in list(node.children):
                nodes[child].deps = [d for d in nodes[child].deps if d in nodes]
        elif kind == "Steps":
            previous: list[str] = []
            for group in template["steps"]:
                steps = group if isinstance(group, list) else [group]
                current = []
                for step in steps:
                    if not isinstance(step, dict) or not step.get("name"):
                        continue
                    child_key = _join(key, step["name"])
                    add(child_key, step["name"], step.get("template", ""), key, list(previous), depth + 1)
                    if child_key in nodes:
                        current.append(child_key)
                previous = current or previous

    entrypoint = spec.get("entrypoint") or ""
    add("", entrypoint, entrypoint, None, [], 0)
    return Graph(nodes)


def _dependencies(task: dict[str, Any]) -> list[str]:
    """Task names a DAG task waits for: ``dependencies`` or the task names in a ``depends`` expression."""
    names = [str(d) for d in task.get("dependencies") or []]
    depends = task.get("depends")
    if isinstance(depends, str):
        # "a && (b.Succeeded || c.Failed)": the phase suffix is ignored, every named task is awaited.
        names += [m for m in _DEPENDS_NAME.findall(depends) if m not in names]
    return names


_DEPENDS_NAME = re.compile(r"(?<![.\w-])([A-Za-z0-9][-\w]*)")


def ir_graph(spec: dict[str, Any]) -> Graph:
    """Nodes of a v2 pipeline IR: the root DAG and its tasks, component DAGs expanded."""
    components = spec.get("components") or {}
    nodes: dict[str, GraphNode] = {}

    def add(
        key: str, display: str, dag: dict[str, Any] | None, parent: str | None, deps: list[str], depth: int
    ) -> None:
        if len(nodes) >= MAX_NODES or key in nodes:
            return
        kind = "DAG" if isinstance(dag, dict) and depth < MAX_NESTING else "Pod"
        nodes[key] = GraphNode(key, display, display, kind, parent, deps)
        if parent is not None:
            nodes[parent].children.append(key)
        if kind == "DAG":
            assert dag is not None
            for name, task in (dag.get("tasks") or {}).items():
                task = task if isinstance(task, dict) else {}
                component = components.get((task.get("componentRef") or {}).get("name", "")) or {}
                task_deps = [_join(key, d) for d in task.get("dependentTasks") or []]
                add(_join(key, name), name, component.get("dag"), key, task_deps, depth + 1)
            for child in nodes[key].children:
                nodes[child].deps = [d for d in nodes[child].deps if d in nodes]

    add(
        "",
        str((spec.get("pipelineInfo") or {}).get("name", "")),
        (spec.get("root") or {}).get("dag"),
        None,
        [],
        0,
    )
    return Graph(nodes)


def node_id(workflow_name: str, key: str) -> str:
    """Argo names the root node after the workflow and the others ``<workflow>-<hash of node name>``."""
    if not key:
        return workflow_name
    return f"{workflow_name}-{zlib.crc32(node_name(workflow_name, key).encode())}"


def node_name(workflow_name: str, key: str) -> str:
    return _join(workflow_name, key) if key else workflow_name
