"""ArmoniK: a client's session from start to end.

CreateSession -> payloads: CreateResults with data, and ``uploads`` of them streamed in ``chunks``
(CreateResultsMetaData, then UploadResultData) -> CreateResultsMetaData (outputs) ->
SubmitTasks in batches -> Events.GetEvents until every output is COMPLETED (the mock's built-in
worker runs the tasks on its clock) -> DownloadResultData of every output -> CloseSession,
PurgeSession, DeleteSession. Parameters: ``tasks`` per session, ``batch`` tasks per SubmitTasks,
``payload_bytes``, ``uploads``, ``chunks``, ``armonik_weight``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from locust import task
from protoconform.conformance.models.armonik.requests import (
    COMPLETED,
    RESULT_ENUM,
    b64,
    session_request,
    upload_requests,
)
from protoconform.load import params
from protoconform.load.grpc_user import GrpcCallError, GrpcUser, registry, workflow

EVENTS = ["EVENTS_ENUM_NEW_RESULT", "EVENTS_ENUM_RESULT_STATUS_UPDATE"]


def _completed() -> int:
    return registry().enum(RESULT_ENUM).values_by_name[COMPLETED].number


class ArmoniKSessionUser(GrpcUser):
    weight = int(params.number("armonik_weight", 1))

    def on_start(self) -> None:
        self.tasks_per_session = params.count("tasks", 8)
        self.batch = params.count("batch", 4)
        self.uploads = params.count("uploads", 2, low=0)
        self.chunks = params.count("chunks", 4, high=1000)
        self.payload = os.urandom(params.count("payload_bytes", 256, low=0, high=4 * 1024 * 1024))
        self.session = ""

    @task
    def session_flow(self) -> None:
        try:
            with workflow(self.environment.events.request, "armonik session"):
                self._flow()
        finally:
            self._end_session()

    def _flow(self) -> None:
        call = self.client.unary
        prefix = params.namespace("armonik")
        request = {**session_request(), "partition_ids": ["default"]}
        self.session = session = call("Sessions.CreateSession", request).session_id
        n = self.tasks_per_session
        # small payloads go inline with CreateResults; ``uploads`` of them are streamed in chunks
        # (UploadResultData), as clients send large ones
        streamed = min(self.uploads, n)
        inline = [{"name": f"{prefix}-in-{i}", "data": b64(self.payload)} for i in range(streamed, n)]
        payloads = []
        if inline:
            payloads = list(call("Results.CreateResults", {"session_id": session, "results": inline}).results)
        if streamed:
            named = [{"name": f"{prefix}-in-{i}"} for i in range(streamed)]
            meta = call("Results.CreateResultsMetaData", {"session_id": session, "results": named}).results
            step = max(1, len(self.payload) // self.chunks)
            cuts = list(range(step, len(self.payload), step))
            for result in meta:
                stream = upload_requests(session, result.result_id, self.payload, cuts)
                self.client.call("Results.UploadResultData", requests=stream)
            payloads = [*meta, *payloads]
        outputs = call(
            "Results.CreateResultsMetaData",
            {"session_id": session, "results": [{"name": f"{prefix}-out-{i}"} for i in range(n)]},
        ).results
        for start in range(0, n, self.batch):
            creations = [
                {"payload_id": payloads[i].result_id, "expected_output_keys": [outputs[i].result_id]}
                for i in range(start, min(n, start + self.batch))
            ]
            call("Tasks.SubmitTasks", {"session_id": session, "task_creations": creations})
        self._wait_for(session, {o.result_id for o in outputs})
        for output in outputs:
            chunks = self.client.call(
                "Results.DownloadResultData", {"session_id": session, "result_id": output.result_id}
            )
            # the built-in worker writes a task's payload to its output (no dependencies here)
            if b"".join(chunk.data_chunk for chunk in chunks) != self.payload:
                raise RuntimeError(f"output {output.name} is not its task's payload")

    def _wait_for(self, session: str, pending: set[str]) -> None:
        """Read the session's result events (a snapshot, then updates) until ``pending`` are done."""
        completed = _completed()

        def done(event: Any) -> bool:
            kind = event.WhichOneof("update")
            if kind in ("new_result", "result_status_update"):
                body = getattr(event, kind)
                if body.status == completed:
                    pending.discard(body.result_id)
            return not pending

        self.client.call("Events.GetEvents", {"session_id": session, "returned_events": EVENTS}, until=done)
        if pending:
            raise RuntimeError(f"events stream ended with {len(pending)} outputs not completed")

    def _end_session(self) -> None:
        """Close, purge and delete the session; a flow cut short (a failed call, the end of the
        run) still removes what it made. Each call is reported; a refusal ends the cleanup."""
        session, self.session = self.session, ""
        if not session:
            return
        with contextlib.suppress(GrpcCallError):
            for action in ("CloseSession", "PurgeSession", "DeleteSession"):
                self.client.call(f"Sessions.{action}", {"session_id": session})

    def on_stop(self) -> None:
        self._end_session()
        super().on_stop()
