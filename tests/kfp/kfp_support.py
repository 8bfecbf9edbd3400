"""Helpers for the KFP tests: a RunService client over a real gRPC channel, and workflow manifests."""

from __future__ import annotations

import json
from typing import Any

from service_client import ServiceClient

SERVICE = "api.RunService"


def workflow(tasks: dict[str, list[str]] | None = None, **extra: Any) -> dict[str, Any]:
    """An Argo workflow whose entrypoint DAG has ``tasks`` (name -> dependencies)."""
    tasks = {"step": []} if tasks is None else tasks
    body: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "pipeline-"},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "who", "value": "world"}]},
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {"name": name, "template": "work", **({"dependencies": deps} if deps else {})}
                            for name, deps in tasks.items()
                        ]
                    },
                },
                {
                    "name": "work",
                    "container": {"image": "alpine", "command": ["echo", "{{workflow.uid}}"]},
                    "outputs": {"artifacts": [{"name": "mlpipeline-ui-metadata", "path": "/tmp/ui.json"}]},
                },
            ],
        },
    }
    for key, value in extra.items():
        if key == "annotations":
            body["metadata"]["annotations"] = value
        else:
            body["spec"][key] = value
    return body


class RunService(ServiceClient):
    """RunService, with helpers that create and list runs."""

    SERVICE = SERVICE
    FAMILY = "kfp"

    def create(self, name: str = "run", manifest: dict[str, Any] | None = None, **run: Any) -> Any:
        body = {"name": name, "pipeline_spec": {"workflow_manifest": json.dumps(manifest or workflow())}}
        for key, value in run.items():
            if key == "parameters":
                body["pipeline_spec"]["parameters"] = value
            else:
                body[key] = value
        return self.CreateRun(run=body).run

    def list_all(self, **request: Any) -> list[Any]:
        """Every run, following page tokens."""
        runs, token = [], ""
        while True:
            page = self.ListRuns(page_token=token, **request)
            runs.extend(page.runs)
            token = page.next_page_token
            if not token:
                return runs
