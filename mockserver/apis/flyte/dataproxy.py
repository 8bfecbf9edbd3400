"""DataProxyService with flyteadmin 1.16's rules: upload and download locations, deck links, GetData.

Locations are objects of the family's metadata store (``native_url``); their
signed URLs point at this mock's HTTP port (:mod:`.dataproxy_http`), where an
upload is checked and stored.  GetData resolves ``flyte://v1/...`` URLs from the
node and task executions the admin holds.  Limits and defaults:
``specs/flyte/dataproxy.yaml``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import timedelta
from typing import Any

import grpc
from protoconform.mockserver.apis.flyte import nodes
from protoconform.mockserver.apis.flyte.dataproxy_http import Signer, settings, signer_for
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import State, node_key_of
from protoconform.mockserver.apis.flyte.wire import stamp, text
from protoconform.mockserver.rpc import ApiError, CallContext

DATAPROXY = "flyteidl.service.DataProxyService"

PROJECT = "flyte.dataproxy.upload.project"
DOMAIN = "flyte.dataproxy.upload.domain"
MD5_OR_ROOT = "flyte.dataproxy.upload.md5-or-root"
EXISTS = "flyte.dataproxy.upload.exists"
EXPIRES_VALID = "flyte.dataproxy.upload.expires-valid"
EXPIRES_MAX = "flyte.dataproxy.upload.expires-max"
DOWNLOAD_EXPIRES = "flyte.dataproxy.download-location.expires"
LINK_INVALID = "flyte.dataproxy.download-link.validate"
LINK_NODE = "flyte.dataproxy.download-link.node"
LINK_NO_DECK = "flyte.dataproxy.download-link.no-deck"
LINK_OBJECT = "flyte.dataproxy.download-link.object"
DATA_PREFIX = "flyte.dataproxy.get-data.prefix"
DATA_PARSE = "flyte.dataproxy.get-data.parse"
DATA_NAME = "flyte.dataproxy.get-data.name"
DATA_ATTEMPT = "flyte.dataproxy.get-data.attempt"
URL_SIZE = "flyte.dataproxy.url-size"

MAX_SECONDS = 315_576_000_000  # google.protobuf.Duration's range
_SEGMENT = "[a-zA-Z0-9_-]+"
_FLYTE_URL = re.compile(
    rf"flyte://v1/(?P<project>{_SEGMENT})/(?P<domain>{_SEGMENT})/(?P<execution>{_SEGMENT})/(?P<node>{_SEGMENT})"
    rf"(?:/(?P<attempt>[0-9]+))?/(?:(?P<kind>[iod])|(?P<named>[io])/(?P<name>{_SEGMENT}))"
)


# -- shared ------------------------------------------------------------------------------


def _go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration`` prints it (``1h0m0s``)."""
    sign, rest = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    head = f"{int(hours)}h{int(minutes)}m" if hours else f"{int(minutes)}m" if minutes else ""
    return f"{sign}{head}{secs:g}s"


def _expiry_problem(request: Any, state: State) -> tuple[str, dict[str, Any]] | None:
    """(rule, values) when expires_in is set and invalid or over the maximum, else None."""
    if not request.HasField("expires_in"):
        return None
    given = request.expires_in
    shown = text(given)
    valid = abs(given.seconds) <= MAX_SECONDS and abs(given.nanos) < 10**9
    if not valid or (given.seconds > 0 and given.nanos < 0) or (given.seconds < 0 and given.nanos > 0):
        return EXPIRES_VALID, {"value": shown}
    limit = float(settings(state)["max_expiry_seconds"])
    if given.seconds + given.nanos / 1e9 > limit:
        return EXPIRES_MAX, {"value": shown, "max": _go_duration(limit)}
    return None


def _expires_in(request: Any, state: State) -> timedelta:
    if request.HasField("expires_in"):
        # flyteadmin accepts a negative expiry (a URL expired at once); past times need go no further back
        return max(request.expires_in.ToTimedelta(), timedelta(0))
    return timedelta(seconds=float(settings(state)["max_expiry_seconds"]))


def _signer(ctx: CallContext) -> Signer:
    found = signer_for(ctx.clock)
    if found is None:  # a server without its HTTP side: no URL could be served
        raise ApiError(
            grpc.StatusCode.UNAVAILABLE, "signed URLs need the server's HTTP port, which is not serving"
        )
    return found


def _check_url_size(state: State, uri: str) -> None:
    limit = int(settings(state)["max_url_bytes"])
    if len(uri.encode()) > limit:
        raise Violation(URL_SIZE, max=limit)


# -- uploads and downloads -------------------------------------------------------------------


def _location(state: State, request: Any, root: str, filename: str) -> str:
    parts = (settings(state)["storage_prefix"], request.org, request.project, request.domain, root, filename)
    return state.storage(*[p for p in parts if p])


@admin("CreateUploadLocation", service=DATAPROXY)
def create_upload_location(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    md5 = bytes(request.content_md5)
    if not request.project or not request.domain:  # one check in flyteadmin, one message for both
        raise Violation(PROJECT if not request.project else DOMAIN)
    if not request.filename_root and not md5:
        raise Violation(MD5_OR_ROOT)
    if request.filename and request.filename_root:  # a location known in advance: it may hold an object
        known = _location(state, request, request.filename_root, request.filename)
        stored = state.store.get_object(known)
        if stored is not None and (not md5 or hashlib.md5(stored).digest() != md5):
            raise Violation(EXISTS, location=known)
    problem = _expiry_problem(request, state)
    if problem is not None:
        raise Violation(problem[0], **problem[1])
    config = settings(state)
    filename = request.filename or "".join(
        secrets.choice(config["filename_alphabet"]) for _ in range(int(config["filename_length"]))
    )
    root = request.filename_root or base64.b32encode(md5).decode()
    native = _location(state, request, root, filename)
    _check_url_size(state, native)
    expires_at = state.now() + _expires_in(request, state)
    response = state.wire.new("service.CreateUploadLocationResponse", native_url=native)
    response.signed_url = _signer(ctx).sign("PUT", native, expires_at, md5)
    response.expires_at.CopyFrom(stamp(expires_at))
    if md5:
        response.headers["Content-MD5"] = base64.b64encode(md5).decode()
    return response


@admin("CreateDownloadLocation", service=DATAPROXY)
def create_download_location(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    problem = _expiry_problem(request, state)
    if problem is not None:
        inner = state.rules.rule(problem[0]).params["message"].format(**problem[1])
        raise Violation(DOWNLOAD_EXPIRES, error=inner)
    _check_url_size(state, request.native_url)
    expires_at = state.now() + _expires_in(request, state)
    response = state.wire.new("service.CreateDownloadLocationResponse")
    response.signed_url = _signer(ctx).sign("GET", request.native_url, expires_at)
    response.expires_at.CopyFrom(stamp(expires_at))
    return response


def _deck_urls(state: State, ctx: CallContext, request: Any, node_id: Any) -> Any:
    """pre_signed_urls of a node execution's deck."""
    record = state.table("node_executions").get(node_key_of(node_id))
    if record is None:
        missing = f"missing entity of type node execution with identifier {text(node_id)}"
        raise Violation(LINK_NODE, id=text(node_id), error=missing)
    deck = record.node.closure.deck_uri
    if not deck:
        raise Violation(LINK_NO_DECK, request=text(request))
    if state.store.get_object(deck) is None:
        raise Violation(LINK_OBJECT)
    expires_at = state.now() + _expires_in(request, state)
    urls = state.wire.new("service.PreSignedURLs")
    urls.signed_url.append(_signer(ctx).sign("GET", deck, expires_at))
    urls.expires_at.CopyFrom(stamp(expires_at))
    return urls


@admin("CreateDownloadLink", service=DATAPROXY)
def create_download_link(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    deck = state.wire.number("service.ArtifactType", "ARTIFACT_TYPE_DECK")
    if request.artifact_type != deck:
        name = state.wire.name_of("service.ArtifactType", request.artifact_type)
        raise Violation(LINK_INVALID, error=f"invalid artifact type [{name}]")
    if not request.HasField("node_execution_id"):
        raise Violation(LINK_INVALID, field="node_execution_id", error="source is required. Provided nil")
    problem = _expiry_problem(request, state)
    if problem is not None:
        inner = state.rules.rule(problem[0]).params["message"].format(**problem[1])
        raise Violation(LINK_INVALID, field="expires_in", error=inner)
    urls = _deck_urls(state, ctx, request, request.node_execution_id)
    response = state.wire.new("service.CreateDownloadLinkResponse", pre_signed_urls=urls)
    response.signed_url.extend(urls.signed_url)
    response.expires_at.CopyFrom(urls.expires_at)
    return response


# -- GetData ---------------------------------------------------------------------------------


@admin("GetData", service=DATAPROXY)
def get_data(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    url = request.flyte_url
    if not url:
        raise Violation(DATA_PREFIX, error="source is required. Provided empty string.")
    if not url.startswith("flyte://"):
        raise Violation(DATA_PREFIX, error="request does not start with the correct prefix")
    parsed = _FLYTE_URL.fullmatch(url)
    if parsed is None:
        raise Violation(DATA_PARSE, error=f"failed to parse [{url[:1024]}]")
    kind = parsed["kind"] or parsed["named"]
    attempt = parsed["attempt"]
    if attempt is not None and len(attempt) > 19:  # past int64: Go's Atoi fails, a parse error
        raise Violation(DATA_PARSE, error=f"failed to parse [{url[:1024]}]")
    if attempt is not None and kind == "d":
        raise Violation(
            DATA_PARSE, error="deck type cannot be specified with a retry attempt, just use the node instead"
        )
    node_id = state.wire.new(
        "core.NodeExecutionIdentifier",
        node_id=parsed["node"],
        execution_id=state.wire.new(
            "core.WorkflowExecutionIdentifier",
            project=parsed["project"],
            domain=parsed["domain"],
            name=parsed["execution"],
        ),
    )
    nodes.find_node(state, node_id, field="flyte_url")
    response = state.wire.new("service.GetDataResponse")
    if kind == "d":
        link = state.wire.new("service.CreateDownloadLinkRequest", node_execution_id=node_id)
        response.pre_signed_urls.CopyFrom(_deck_urls(state, ctx, link, node_id))
        return response
    if attempt is None:
        data = nodes.get_node_execution_data(
            state.wire.new("admin.NodeExecutionGetDataRequest", id=node_id), ctx
        )
    else:
        wanted = int(attempt)
        found = [
            r
            for r in state.table("task_executions").scan(node_key_of(node_id))
            if r.key.retry_attempt == wanted
        ]
        if not found:
            raise Violation(
                DATA_ATTEMPT, id=text(node_id), error=f"no task execution of retry attempt {wanted}"
            )
        task_id = found[-1].task_execution.id
        request_data = state.wire.new("admin.TaskExecutionGetDataRequest", id=task_id)
        data = nodes.get_task_execution_data(request_data, ctx)
    literals = data.full_inputs if kind == "i" else data.full_outputs
    name = parsed["name"]
    if name is None:
        response.literal_map.CopyFrom(literals)
    elif name in literals.literals:
        response.literal.CopyFrom(literals.literals[name])
    else:
        raise Violation(DATA_NAME, name=name, id=text(node_id))
    return response
