"""Compatibility mode ``--armonik-compat reference-mock``.

ArmoniK.Api ships a stateless C# mock that its client test suites run against:
every RPC returns one fixed answer, and an HTTP side counts calls
(``/calls.json``) and zeroes the counters (``/reset``).  This module answers
the same way so those suites can run against this server instead of a .NET
build.  It is a *handler variant*: the family state sets ``handler_variant`` to
:data:`VARIANT` and the dispatcher picks these handlers; the stateful handlers
are untouched.  The Worker service is not part of that mock, so in this mode it
keeps its stateful (built-in) handler and is not counted.

Counting follows the reference: a counter per method, incremented on entry (so a
call that then fails counts too), one count per streaming call, keys named after
the mock's service classes (``HealthChecks``, not ``HealthChecksService``) in
the order the reference reports them.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import AsyncIterator, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.protobuf import descriptor_pool, json_format, message, message_factory
from protoconform.mockserver import safejson
from protoconform.mockserver.httpbody import read_body
from protoconform.mockserver.rpc import CallContext, handler

if TYPE_CHECKING:
    from protoconform.mockserver.dispatch import CallRecord
    from protoconform.mockserver.server import MockServer

VARIANT = "reference-mock"
PKG = "armonik.api.grpc.v1"

# Counter key -> (served service, its methods in the order /calls.json lists them).
# The order matters: clients compare the list of never-called methods literally.
COUNTED_SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Agent": (
        f"{PKG}.agent.Agent",
        (
            "CreateTask",
            "CreateResultsMetaData",
            "SubmitTasks",
            "CreateResults",
            "GetCommonData",
            "GetDirectData",
            "GetResourceData",
            "NotifyResultData",
        ),
    ),
    "Applications": (f"{PKG}.applications.Applications", ("ListApplications",)),
    "Authentication": (f"{PKG}.auth.Authentication", ("GetCurrentUser",)),
    "Events": (f"{PKG}.events.Events", ("GetEvents",)),
    "HealthChecks": (f"{PKG}.health_checks.HealthChecksService", ("CheckHealth",)),
    "Partitions": (f"{PKG}.partitions.Partitions", ("GetPartition", "ListPartitions")),
    "Results": (
        f"{PKG}.results.Results",
        (
            "GetOwnerTaskId",
            "ListResults",
            "CreateResultsMetaData",
            "CreateResults",
            "DeleteResultsData",
            "DownloadResultData",
            "GetServiceConfiguration",
            "UploadResultData",
            "GetResult",
            "WatchResults",
            "ImportResultsData",
        ),
    ),
    "Sessions": (
        f"{PKG}.sessions.Sessions",
        (
            "CancelSession",
            "CreateSession",
            "GetSession",
            "ListSessions",
            "DeleteSession",
            "PauseSession",
            "ResumeSession",
            "CloseSession",
            "PurgeSession",
            "StopSubmission",
        ),
    ),
    "Submitter": (
        f"{PKG}.submitter.Submitter",
        (
            "GetServiceConfiguration",
            "CancelSession",
            "CancelTasks",
            "CreateSession",
            "CreateSmallTasks",
            "CreateLargeTasks",
            "CountTasks",
            "TryGetResultStream",
            "WaitForCompletion",
            "TryGetTaskOutput",
            "WaitForAvailability",
            "GetTaskStatus",
            "GetResultStatus",
            "ListTasks",
            "ListSessions",
            "WatchResults",
        ),
    ),
    "Tasks": (
        f"{PKG}.tasks.Tasks",
        (
            "GetTask",
            "ListTasks",
            "GetResultIds",
            "CancelTasks",
            "CountTasksByStatus",
            "ListTasksDetailed",
            "SubmitTasks",
        ),
    ),
    "Versions": (f"{PKG}.versions.Versions", ("ListVersions",)),
}

# The fixed values the reference answers with.
CHUNK_SIZE = 80 * 1024
MOCK_SESSION = {"session_id": "session-id", "status": "SESSION_STATUS_CANCELLED"}
MOCK_RESULT = {
    "session_id": "session-id",
    "result_id": "result-id",
    "name": "result-name",
    "status": "RESULT_STATUS_COMPLETED",
    "owner_task_id": "owner-task-id",
    "size": "0",
    "opaque_id": "b3BhcXVlLWlk",  # base64 of b"opaque-id" (JSON form of a bytes field)
}
MOCK_TASK = {
    "id": "task-id",
    "session_id": "session-id",
    "status": "TASK_STATUS_COMPLETED",
    "options": {
        "priority": 1,
        "application_name": "application-name",
        "application_namespace": "application-namespace",
        "application_service": "application-service",
        "application_version": "application-version",
        "engine_type": "engine-type",
        "max_duration": "1s",
        "max_retries": 1,
        "partition_id": "partition-id",
    },
}
MOCK_PARTITION = {
    "id": "partition-id",
    "priority": 1,
    "pod_max": 1,
    "pod_reserved": 1,
    "preemption_percentage": 0,
}


@cache
def _class(full_name: str) -> type[message.Message]:
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(full_name))


def build(full_name: str, values: dict[str, Any] | None = None) -> message.Message:
    """A message of type ``full_name`` (short names resolve under ``armonik.api.grpc.v1``)."""
    if not full_name.startswith(PKG):
        full_name = f"{PKG}.{full_name}"
    msg = _class(full_name)()
    if values:
        json_format.ParseDict(values, msg)
    return msg


def api_version() -> str:
    """The API version as a four-part assembly version (``3.29.4`` -> ``3.29.4.0``)."""
    try:
        text = importlib.metadata.version("armonik")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0.0"
    parts = [p for p in re.findall(r"\d+", text.split("+")[0])[:4]]
    return ".".join(parts + ["0"] * (4 - len(parts)))


async def _drain(requests: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in requests]


def _register(service: str, method: str) -> Any:
    # the reference mock checks nothing: its answers are fixed whatever the request
    return handler(f"{PKG}.{service}", method, variant=VARIANT, validate=False)


# -- Sessions -----------------------------------------------------------------
def _session_answer(response: str) -> Any:
    def answer(request: Any, ctx: CallContext) -> message.Message:
        return build(f"sessions.{response}", {"session": MOCK_SESSION})

    return answer


for _method, _response in (
    ("GetSession", "GetSessionResponse"),
    ("CancelSession", "CancelSessionResponse"),
    ("DeleteSession", "DeleteSessionResponse"),
    ("PauseSession", "PauseSessionResponse"),
    ("ResumeSession", "ResumeSessionResponse"),
    ("CloseSession", "CloseSessionResponse"),
    ("PurgeSession", "PurgeSessionResponse"),
    ("StopSubmission", "StopSubmissionResponse"),
):
    _register("sessions.Sessions", _method)(_session_answer(_response))


@_register("sessions.Sessions", "CreateSession")
def create_session(request: Any, ctx: CallContext) -> message.Message:
    return build("sessions.CreateSessionReply", {"session_id": "session-id"})


@_register("sessions.Sessions", "ListSessions")
def list_sessions(request: Any, ctx: CallContext) -> message.Message:
    return build("sessions.ListSessionsResponse", {"page": 0, "page_size": request.page_size, "total": 0})


# -- Results ------------------------------------------------------------------
@_register("results.Results", "GetResult")
def get_result(request: Any, ctx: CallContext) -> message.Message:
    return build("results.GetResultResponse", {"result": MOCK_RESULT})


@_register("results.Results", "GetOwnerTaskId")
def get_owner_task_id(request: Any, ctx: CallContext) -> message.Message:
    return build("results.GetOwnerTaskIdResponse", {"session_id": "session-id"})


@_register("results.Results", "ListResults")
def list_results(request: Any, ctx: CallContext) -> message.Message:
    return build("results.ListResultsResponse", {"page": 0, "total": 0, "page_size": request.page_size})


@_register("results.Results", "CreateResultsMetaData")
def create_results_metadata(request: Any, ctx: CallContext) -> message.Message:
    return build("results.CreateResultsMetaDataResponse")


@_register("results.Results", "CreateResults")
def create_results(request: Any, ctx: CallContext) -> message.Message:
    return build("results.CreateResultsResponse")


@_register("results.Results", "DeleteResultsData")
def delete_results_data(request: Any, ctx: CallContext) -> message.Message:
    return build("results.DeleteResultsDataResponse", {"session_id": "session-id"})


@_register("results.Results", "DownloadResultData")
def download_result_data(request: Any, ctx: CallContext) -> Iterator[message.Message]:
    yield from ()  # the stream closes without a message


@_register("results.Results", "GetServiceConfiguration")
def results_service_configuration(request: Any, ctx: CallContext) -> message.Message:
    return build("results.ResultsServiceConfigurationResponse", {"data_chunk_max_size": CHUNK_SIZE})


@_register("results.Results", "UploadResultData")
async def upload_result_data(request: AsyncIterator[Any], ctx: CallContext) -> message.Message:
    await _drain(request)
    return build("results.UploadResultDataResponse", {"result": MOCK_RESULT})


@_register("results.Results", "ImportResultsData")
def import_results_data(request: Any, ctx: CallContext) -> message.Message:
    return build("results.ImportResultsDataResponse", {"results": [MOCK_RESULT]})


@_register("results.Results", "WatchResults")
async def watch_results(request: AsyncIterator[Any], ctx: CallContext) -> AsyncIterator[message.Message]:
    async for _ in request:  # one unspecified status per request message
        yield build("results.WatchResultResponse", {"status": "RESULT_STATUS_UNSPECIFIED"})


# -- Tasks --------------------------------------------------------------------
@_register("tasks.Tasks", "GetTask")
def get_task(request: Any, ctx: CallContext) -> message.Message:
    return build("tasks.GetTaskResponse", {"task": MOCK_TASK})


@_register("tasks.Tasks", "ListTasks")
def list_tasks(request: Any, ctx: CallContext) -> message.Message:
    # total 1 with no item: the reference's own inconsistency, kept on purpose
    return build("tasks.ListTasksResponse", {"page": 1, "total": 1, "page_size": request.page_size})


@_register("tasks.Tasks", "ListTasksDetailed")
def list_tasks_detailed(request: Any, ctx: CallContext) -> message.Message:
    return build(
        "tasks.ListTasksDetailedResponse",
        {"page": 0, "total": 1, "page_size": request.page_size, "tasks": [MOCK_TASK]},
    )


@_register("tasks.Tasks", "GetResultIds")
def get_result_ids(request: Any, ctx: CallContext) -> message.Message:
    return build("tasks.GetResultIdsResponse")


@_register("tasks.Tasks", "CancelTasks")
def cancel_tasks(request: Any, ctx: CallContext) -> message.Message:
    return build("tasks.CancelTasksResponse")


@_register("tasks.Tasks", "CountTasksByStatus")
def count_tasks_by_status(request: Any, ctx: CallContext) -> message.Message:
    counts = [
        {"status": "TASK_STATUS_COMPLETED", "count": 2},
        {"status": "TASK_STATUS_SUBMITTED", "count": 5},
    ]
    return build("tasks.CountTasksByStatusResponse", {"status": counts})


@_register("tasks.Tasks", "SubmitTasks")
def submit_tasks(request: Any, ctx: CallContext) -> message.Message:
    return build("tasks.SubmitTasksResponse")


# -- Events, partitions, applications, versions, health, auth ------------------
@_register("events.Events", "GetEvents")
def get_events(request: Any, ctx: CallContext) -> Iterator[message.Message]:
    # One event whatever was asked for, then the stream ends.
    yield build(
        "events.EventSubscriptionResponse",
        {
            "session_id": "session-id",
            "new_result": {
                "result_id": "result-id",
                "owner_id": "owner-id",
                "status": "RESULT_STATUS_CREATED",
            },
        },
    )


@_register("partitions.Partitions", "GetPartition")
def get_partition(request: Any, ctx: CallContext) -> message.Message:
    return build("partitions.GetPartitionResponse", {"partition": MOCK_PARTITION})


@_register("partitions.Partitions", "ListPartitions")
def list_partitions(request: Any, ctx: CallContext) -> message.Message:
    return build("partitions.ListPartitionsResponse", {"page_size": request.page_size, "page": 0, "total": 0})


@_register("applications.Applications", "ListApplications")
def list_applications(request: Any, ctx: CallContext) -> message.Message:
    return build(
        "applications.ListApplicationsResponse",
        {"page": request.page, "page_size": request.page_size, "total": 0},
    )


@_register("versions.Versions", "ListVersions")
def list_versions(request: Any, ctx: CallContext) -> message.Message:
    return build("versions.ListVersionsResponse", {"core": "Unknown", "api": api_version()})


@_register("health_checks.HealthChecksService", "CheckHealth")
def check_health(request: Any, ctx: CallContext) -> message.Message:
    service = {"name": "mock", "message": "Mock is healthy", "healthy": "HEALTH_STATUS_ENUM_HEALTHY"}
    return build("health_checks.CheckHealthResponse", {"services": [service]})


@_register("auth.Authentication", "GetCurrentUser")
def get_current_user(request: Any, ctx: CallContext) -> message.Message:
    return build("auth.GetCurrentUserResponse", {"user": {"username": "username"}})


# -- Agent: any token is accepted and echoed -----------------------------------
@_register("agent.Agent", "CreateTask")
def agent_create_task(request: Any, ctx: CallContext) -> message.Message:
    return build(
        "agent.CreateTaskReply", {"communication_token": "communication-token", "creation_status_list": {}}
    )


def _agent_echo(response: str) -> Any:
    def answer(request: Any, ctx: CallContext) -> message.Message:
        return build(f"agent.{response}", {"communication_token": request.communication_token})

    return answer


for _method, _response in (
    ("CreateResultsMetaData", "CreateResultsMetaDataResponse"),
    ("SubmitTasks", "SubmitTasksResponse"),
    ("CreateResults", "CreateResultsResponse"),
):
    _register("agent.Agent", _method)(_agent_echo(_response))


def _agent_data(request: Any, ctx: CallContext) -> message.Message:
    return build("agent.DataResponse", {"result_id": request.result_id})


for _method in ("GetCommonData", "GetDirectData", "GetResourceData"):
    _register("agent.Agent", _method)(_agent_data)


@_register("agent.Agent", "NotifyResultData")
def agent_notify_result_data(request: Any, ctx: CallContext) -> message.Message:
    return build("agent.NotifyResultDataResponse", {"result_ids": [i.result_id for i in request.ids]})


# -- Submitter (legacy) ---------------------------------------------------------
@_register("submitter.Submitter", "GetServiceConfiguration")
def submitter_configuration(request: Any, ctx: CallContext) -> message.Message:
    return build("Configuration", {"data_chunk_max_size": CHUNK_SIZE})


@_register("submitter.Submitter", "CreateSession")
def submitter_create_session(request: Any, ctx: CallContext) -> message.Message:
    return build("submitter.CreateSessionReply", {"session_id": "session-id"})


def _submitter_fixed(response: str, values: dict[str, Any] | None = None) -> Any:
    def answer(request: Any, ctx: CallContext) -> message.Message:
        return build(response, values)

    return answer


for _method, _response, _values in (
    ("CancelSession", "Empty", None),
    ("CancelTasks", "Empty", None),
    ("CreateSmallTasks", "submitter.CreateTaskReply", {"error": ""}),
    ("CountTasks", "Count", None),
    ("WaitForCompletion", "Count", None),
    ("TryGetTaskOutput", "Output", {"ok": {}}),
    ("WaitForAvailability", "submitter.AvailabilityReply", {"ok": {}}),
    ("GetTaskStatus", "submitter.GetTaskStatusReply", None),
    ("GetResultStatus", "submitter.GetResultStatusReply", None),
    ("ListTasks", "TaskIdList", None),
    ("ListSessions", "submitter.SessionIdList", None),
):
    _register("submitter.Submitter", _method)(_submitter_fixed(_response, _values))


@_register("submitter.Submitter", "CreateLargeTasks")
async def submitter_create_large_tasks(request: AsyncIterator[Any], ctx: CallContext) -> message.Message:
    await _drain(request)
    return build("submitter.CreateTaskReply", {"error": ""})


@_register("submitter.Submitter", "TryGetResultStream")
def submitter_try_get_result_stream(request: Any, ctx: CallContext) -> Iterator[message.Message]:
    yield build("submitter.ResultReply", {"result": {"data_complete": True}})


@_register("submitter.Submitter", "WatchResults")
async def submitter_watch_results(
    request: AsyncIterator[Any], ctx: CallContext
) -> AsyncIterator[message.Message]:
    async for _ in request:
        yield build("submitter.WatchResultStream", {"status": "RESULT_STATUS_UNSPECIFIED"})


# -- Call counting and the HTTP side -------------------------------------------
class CallCounts:
    """Per-method call counters, keyed and ordered as ``/calls.json`` reports them."""

    def __init__(self) -> None:
        self._by_path: dict[str, tuple[str, str]] = {
            f"/{service}/{method}": (key, method)
            for key, (service, methods) in COUNTED_SERVICES.items()
            for method in methods
        }
        self.counts: dict[str, dict[str, int]] = {}
        self.reset()

    def reset(self) -> None:
        self.counts = {key: dict.fromkeys(methods, 0) for key, (_, methods) in COUNTED_SERVICES.items()}

    def count(self, path: str) -> None:
        target = self._by_path.get(path)
        if target is not None:
            key, method = target
            self.counts[key][method] += 1

    def snapshot(self, exclude: dict[str, list[str]] | None = None) -> dict[str, dict[str, int]]:
        exclude = exclude or {}
        return {
            key: {m: n for m, n in methods.items() if m not in set(exclude.get(key) or ())}
            for key, methods in self.counts.items()
        }


class CountingObserver:
    """Counts every ArmoniK call on entry, before the handler runs (failed calls count too)."""

    def __init__(self, counts: CallCounts) -> None:
        self.counts = counts

    async def before(self, record: CallRecord) -> None:
        self.counts.count(record.method.path)

    def after(self, record: CallRecord) -> None:
        pass


def enabled(server: MockServer) -> bool:
    state = server.states.get("armonik")
    return getattr(state, "handler_variant", None) == VARIANT


def install_routes(app: web.Application, server: MockServer) -> None:
    """Add ``/calls.json`` and ``/reset`` (compat mode only; a no-op otherwise)."""
    if not enabled(server):
        return
    counts = CallCounts()
    server.dispatcher.observers.append(CountingObserver(counts))

    async def calls(request: web.Request) -> web.Response:
        exclude: dict[str, list[str]] | None = None
        text = (await read_body(request)).strip()
        if text:
            try:
                exclude = safejson.loads(text, "body")
            except safejson.DocumentRejected as exc:
                raise web.HTTPBadRequest(text=str(exc)) from None
            except ValueError as exc:
                raise web.HTTPBadRequest(
                    text=f"body: not a JSON object of excluded methods ({exc})"
                ) from None
            if not isinstance(exclude, dict) or not all(
                names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names))
                for names in exclude.values()
            ):
                raise web.HTTPBadRequest(text="body: not a JSON object of excluded methods")
        body = json.dumps(counts.snapshot(exclude), separators=(",", ":"))
        return web.Response(body=body.encode("ascii"), content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        counts.reset()
        return web.Response(status=200)

    app.router.add_get("/calls.json", calls)
    app.router.add_post("/calls.json", calls)
    app.router.add_post("/reset", reset)
