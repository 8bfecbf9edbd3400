"""Helpers for the KFP tests: a RunService client over a real gRPC channel, and workflow manifests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, message
from protoconform.mockserver.launcher import ThreadedServer
from protoconform.specs.registry import default_registry

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


class RunService:
    """Calls RunService methods by name with a message, a dict (protojson) or keyword fields."""

    def __init__(self, channel: grpc.Channel, server: ThreadedServer) -> None:
        self.registry = default_registry()
        self.channel = channel
        self.server = server

    def message(self, full_name: str, value: Any = None, **fields: Any) -> message.Message:
        cls = self.registry.message_class(full_name)
        if isinstance(value, message.Message):
            return value
        return json_format.ParseDict({**(value or {}), **fields}, cls())

    def __getattr__(self, name: str) -> Callable[..., Any]:
        try:
            method = self.registry.method(f"{SERVICE}.{name}")
        except KeyError:
            raise AttributeError(name) from None
        response_class = self.registry.message_class(method.response_type)
        stub = self.channel.unary_unary(
            method.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )

        def call(value: Any = None, **fields: Any) -> Any:
            return stub(self.message(method.request_type, value, **fields), timeout=10)

        return call

    def error(self, name: str, value: Any = None, **fields: Any) -> grpc.RpcError:
        """Call expecting a failure; returns the error."""
        with pytest.raises(grpc.RpcError) as caught:
            getattr(self, name)(value, **fields)
        return caught.value

    def create(self, name: str = "run", manifest: dict[str, Any] | None = None, **run: Any) -> Any:
        body = {"name": name, "pipeline_spec": {"workflow_manifest": json.dumps(manifest or workflow())}}
        for key, value in run.items():
            if key == "parameters":
                body["pipeline_spec"]["parameters"] = value
            else:
                body[key] = value
        return self.CreateRun(run=body).run

    def advance(self, seconds: float) -> None:
        self.server.run(lambda: self.server.server.clock.advance(seconds))

    def state(self) -> Any:
        return self.server.server.states["kfp"]

    def list_all(self, **request: Any) -> list[Any]:
        """Every run, following page tokens."""
        runs, token = [], ""
        while True:
            page = self.ListRuns(page_token=token, **request)
            runs.extend(page.runs)
            token = page.next_page_token
            if not token:
                return runs
