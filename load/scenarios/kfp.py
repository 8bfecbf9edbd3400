"""Kubeflow Pipelines v1beta1: a pipeline author's runs, over gRPC and over REST.

Create ``runs`` runs of the family's example workflow (named under the user's namespace) ->
page through ListRuns filtered to that namespace (``page_size``) -> wait for each run to finish
(GetRun) -> ReportRunMetrics -> ReadArtifact of its main step's logs -> ArchiveRun -> DeleteRun.
:class:`KfpGrpcUser` calls RunService over gRPC; :class:`KfpRestUser` is locust's ``HttpUser`` on
the grpc-gateway routes (``/apis/v1beta1/runs...``). The requests come from the harness's KFP
builders (:mod:`protoconform.conformance.models.kfp.requests`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.parse
from functools import cache
from typing import Any

import gevent
from locust import HttpUser, task
from protoconform.conformance.models.kfp.requests import create_request
from protoconform.load import params
from protoconform.load.grpc_user import GrpcUser, ReportedError, as_dict, workflow
from protoconform.specs import rules
from protoconform.specs.rules import FamilyRules

FINISHED = frozenset({"Succeeded", "Failed", "Error", "Skipped"})
ARTIFACT = "main-logs"  # what the example workflow's one step writes
WAIT_S = 30.0  # a run that takes longer is a failure of the flow, not a hang of the user
POLL_S = 0.2


@cache
def kfp_rules() -> FamilyRules:
    return rules.load("kfp")


def name_filter(prefix: str) -> str:
    """ListRuns ``filter``: runs whose name holds ``prefix`` (URL-encoded api.Filter JSON)."""
    text = json.dumps({"predicates": [{"key": "name", "op": "IS_SUBSTRING", "string_value": prefix}]})
    return urllib.parse.quote(text, safe="")


def metrics(run_id: str, node_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "metrics": [{"name": "accuracy", "node_id": node_id, "number_value": 0.9, "format": "RAW"}],
    }


class RunFlow:
    """The workflow, over a transport given as seven calls (dicts in, protojson dicts out)."""

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def list(self, query: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def get(self, run_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def report(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def artifact(self, run_id: str, node_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def archive(self, run_id: str) -> None:
        raise NotImplementedError

    def delete(self, run_id: str) -> None:
        raise NotImplementedError

    def setup_flow(self) -> None:
        self.runs = params.count("runs", 3, high=1000)
        self.page_size = params.count("page_size", 2, high=1000)
        self.created: list[str] = []

    def run_flow(self, kind: str) -> None:
        prefix = params.namespace(kind)
        for i in range(self.runs):
            detail = self.create(create_request(kfp_rules(), f"{prefix}-{i}"))
            self.created.append(detail["run"]["id"])
        seen: list[str] = []
        query: dict[str, Any] = {"page_size": self.page_size, "filter": name_filter(prefix)}
        while True:
            page = self.list(query)
            seen += [run["id"] for run in page.get("runs", [])]
            if not page.get("next_page_token") or len(seen) > self.runs:
                break
            query = {**query, "page_token": page["next_page_token"]}
        if sorted(seen) != sorted(self.created):
            raise RuntimeError(f"ListRuns paged {len(seen)} runs of the {self.runs} created")
        for run_id in list(self.created):
            node = self._finished(run_id)
            self.report(metrics(run_id, f"{node}-main"))
            self.artifact(run_id, node)
            self.archive(run_id)
            self.delete(run_id)
            self.created.remove(run_id)

    def _finished(self, run_id: str) -> str:
        """Poll GetRun until the run is finished; the root node id (the workflow's name)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            detail = self.get(run_id)
            if detail["run"].get("status") in FINISHED:
                manifest = json.loads(detail["pipeline_runtime"]["workflow_manifest"])
                return str(manifest["metadata"]["name"])
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} not finished after {WAIT_S:g}s")
            gevent.sleep(POLL_S)

    def cleanup(self) -> None:
        """Delete the runs a flow cut short left behind (each call reported)."""
        created, self.created = self.created, []
        for run_id in created:
            with contextlib.suppress(Exception):
                self.delete(run_id)

    def flow(self, kind: str) -> None:
        try:
            with workflow(self.environment.events.request, f"{kind} runs"):  # type: ignore[attr-defined]
                self.run_flow(kind)
        finally:
            self.cleanup()


class KfpGrpcUser(RunFlow, GrpcUser):
    weight = int(params.number("kfp_grpc_weight", 1))

    def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        return as_dict(self.client.unary(f"RunService.{method}", body))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("CreateRun", body)

    def list(self, query: dict[str, Any]) -> dict[str, Any]:
        return self._call("ListRuns", query)

    def get(self, run_id: str) -> dict[str, Any]:
        return self._call("GetRun", {"run_id": run_id})

    def report(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("ReportRunMetrics", body)

    def artifact(self, run_id: str, node_id: str) -> dict[str, Any]:
        return self._call("ReadArtifact", {"run_id": run_id, "node_id": node_id, "artifact_name": ARTIFACT})

    def archive(self, run_id: str) -> None:
        self._call("ArchiveRun", {"id": run_id})

    def delete(self, run_id: str) -> None:
        self._call("DeleteRun", {"id": run_id})

    def on_start(self) -> None:
        self.setup_flow()

    @task
    def runs_flow(self) -> None:
        self.flow("kfp-grpc")

    def on_stop(self) -> None:
        self.cleanup()
        super().on_stop()


ROUTE = "/apis/v1beta1/runs"


class KfpRestUser(RunFlow, HttpUser):
    """The same workflow on the REST routes; ``--rest URL`` is the host."""

    weight = int(params.number("kfp_rest_weight", 1))
    host = os.environ.get("PROTOCONFORM_LOAD_REST", "")

    def on_start(self) -> None:
        self.setup_flow()
        token = os.environ.get("PROTOCONFORM_LOAD_TOKEN", "")
        if token:
            self.client.headers["authorization"] = f"Bearer {token}"
        ca = os.environ.get("PROTOCONFORM_LOAD_CA", "")
        if ca:
            self.client.verify = ca
        cert, key = os.environ.get("PROTOCONFORM_LOAD_CERT", ""), os.environ.get("PROTOCONFORM_LOAD_KEY", "")
        if cert:
            self.client.cert = (cert, key) if key else cert

    def _send(self, verb: str, path: str, name: str, **kwargs: Any) -> dict[str, Any]:
        with self.client.request(verb, path, name=name, catch_response=True, **kwargs) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                raise ReportedError(f"{verb} {name}: HTTP {response.status_code}")
            return response.json() if response.content else {}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", ROUTE, ROUTE, json=body["run"])

    def list(self, query: dict[str, Any]) -> dict[str, Any]:
        # the filter is already URL-encoded JSON, as KFP clients send it
        text = "&".join(f"{k}={v if k == 'filter' else urllib.parse.quote(str(v))}" for k, v in query.items())
        return self._send("GET", f"{ROUTE}?{text}", f"{ROUTE}?filter")

    def get(self, run_id: str) -> dict[str, Any]:
        return self._send("GET", f"{ROUTE}/{run_id}", f"{ROUTE}/{{run_id}}")

    def report(self, body: dict[str, Any]) -> dict[str, Any]:
        path = f"{ROUTE}/{body['run_id']}:reportMetrics"
        return self._send("POST", path, f"{ROUTE}/{{run_id}}:reportMetrics", json=body)

    def artifact(self, run_id: str, node_id: str) -> dict[str, Any]:
        path = f"{ROUTE}/{run_id}/nodes/{node_id}/artifacts/{ARTIFACT}:read"
        return self._send("GET", path, f"{ROUTE}/{{run_id}}/nodes/{{node_id}}/artifacts/{{name}}:read")

    def archive(self, run_id: str) -> None:
        self._send("POST", f"{ROUTE}/{run_id}:archive", f"{ROUTE}/{{id}}:archive")

    def delete(self, run_id: str) -> None:
        self._send("DELETE", f"{ROUTE}/{run_id}", f"{ROUTE}/{{id}}")

    @task
    def runs_flow(self) -> None:
        self.flow("kfp-rest")

    def on_stop(self) -> None:
        self.cleanup()
