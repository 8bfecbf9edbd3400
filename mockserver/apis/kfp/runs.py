"""``api.RunService``: the ten RPCs, with the KFP 1.8.5 server's semantics.

Every status comes from a rule in ``specs/kfp``: request-shape rules through
:func:`check_request`, the others through :func:`rule_error` with the rule id.
Handlers are protocol-neutral: the REST gateway calls the same functions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

import grpc
from google.protobuf import message
from protoconform.mockserver import safejson
from protoconform.mockserver.apis.kfp import artifacts, defects, listing, runindex, templates
from protoconform.mockserver.apis.kfp.errors import Violation
from protoconform.mockserver.apis.kfp.lifecycle import requested_failure
from protoconform.mockserver.apis.kfp.state import Experiment, RunRecord, State
from protoconform.mockserver.rpc import ApiError, CallContext, handler
from protoconform.mockserver.validation import rule_error

SERVICE = "api.RunService"
RULE_WORKFLOW_MANIFEST = "kfp.runs.create.workflow-manifest-json"
RULE_PIPELINE_MANIFEST = "kfp.runs.create.pipeline-manifest-ir"
# The manifest fields of CreateRun, as errors name them.
WORKFLOW_MANIFEST = "run.pipeline_spec.workflow_manifest"
PIPELINE_MANIFEST = "run.pipeline_spec.pipeline_manifest"

# api.ResourceType / api.Relationship numbers, resolved once from the descriptors.
_TYPES: dict[str, int] = {}
_RELATIONSHIPS: dict[str, int] = {}


def _enums(state: State) -> None:
    if not _TYPES:
        _TYPES.update({v.name: v.number for v in state.registry.enum("api.ResourceType").values})
        _RELATIONSHIPS.update({v.name: v.number for v in state.registry.enum("api.Relationship").values})


def _type_name(state: State, number: int) -> str:
    value = state.registry.enum("api.ResourceType").values_by_number.get(number)
    return value.name if value is not None else str(number)


def _relationship_name(state: State, number: int) -> str:
    value = state.registry.enum("api.Relationship").values_by_number.get(number)
    return value.name if value is not None else str(number)


def rpc_method(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a RunService handler whose helper violations become rule errors.

    The dispatcher has applied the request-shape rules before; every error gets
    the ``api.Error`` detail in :meth:`State.decorate_error`.
    """

    def wrap(fn: Callable[[Any, CallContext], Any]) -> Callable[..., Any]:
        @wraps(fn)
        def run(request: message.Message, ctx: CallContext) -> message.Message:
            state: State = ctx.state
            _enums(state)
            try:
                return fn(request, ctx)
            except Violation as violation:
                error = rule_error(state.rules, violation.rule_id, violation.detail)
                raise state.decorate_error(error, external=violation.detail) from None

        return handler(SERVICE, name)(run)

    return wrap


def _run_or_not_found(state: State, run_id: str, rule_id: str) -> RunRecord:
    record = state.store.get_run(run_id)
    if record is None:
        raise Violation(rule_id, f"Run {run_id} not found.")
    return record


def present(run: message.Message, ctx: CallContext) -> message.Message:
    """The copy of a stored run a response carries (defect modes bend it here)."""
    shown = type(run)()
    shown.CopyFrom(run)
    if ctx.defect(defects.RUN_MISSING_CREATED_AT):
        shown.ClearField("created_at")
    if ctx.defect(defects.STORAGE_STATE_OUT_OF_DOMAIN):
        shown.storage_state = run.storage_state + 2
    return shown


def _detail(state: State, record: RunRecord, ctx: CallContext) -> message.Message:
    api = state.api
    runtime = api.PipelineRuntime(workflow_manifest=state.lifecycle.runtime_manifest(record))
    return api.RunDetail(run=present(record.run, ctx), pipeline_runtime=runtime)


# -- CreateRun -----------------------------------------------------------------------------


def _parameters_json(parameters: Any) -> str:
    return json.dumps([{"name": p.name, "value": p.value} for p in parameters], separators=(",", ":"))


@rpc_method("CreateRun")
def create_run(request: message.Message, ctx: CallContext) -> message.Message:
    state: State = ctx.state
    rules = state.rules
    run_in = request.run
    spec = run_in.pipeline_spec
    workflow_text, ir_text = spec.workflow_manifest, spec.pipeline_manifest

    # 1. Exactly one pipeline source, each well formed.
    version_id = ""
    for ref in run_in.resource_references:
        if ref.key.type == _TYPES["PIPELINE_VERSION"] and ref.relationship == _RELATIONSHIPS["CREATOR"]:
            version_id = ref.key.id  # the last one wins
    if workflow_text and ir_text:
        raise Violation(
            "kfp.runs.create.single-manifest",
            "Please don't specify both workflow manifest and pipeline manifest.",
        )
    if (workflow_text or ir_text) and (spec.pipeline_id or version_id):
        raise Violation(
            "kfp.runs.create.manifest-and-pipeline",
            "Please don't specify a pipeline version or pipeline ID when you specify a workflow manifest or "
            "pipeline manifest.",
        )
    if workflow_text and not _decodes_as_workflow(workflow_text):
        raise Violation(RULE_WORKFLOW_MANIFEST, f"Invalid argo workflow format. Workflow: {workflow_text}")
    if ir_text and not _decodes_as_ir(ir_text):
        raise Violation(RULE_PIPELINE_MANIFEST, "Invalid IR spec format.")
    if not (workflow_text or ir_text or spec.pipeline_id or version_id):
        raise Violation(
            "kfp.runs.create.pipeline-source-required",
            "Please specify a pipeline by providing a (workflow manifest or pipeline manifest) or "
            "(pipeline id or/and pipeline version).",
        )
    pipeline = version = None
    if spec.pipeline_id:
        pipeline = state.store.get_pipeline(spec.pipeline_id)
        if pipeline is None:
            raise Violation("kfp.runs.create.pipeline-not-found", f"Pipeline {spec.pipeline_id} not found.")
    if version_id:
        version = state.store.get_version(version_id)
        if version is None:
            raise Violation(
                "kfp.runs.create.pipeline-version-not-found", f"PipelineVersion {version_id} not found."
            )
        if pipeline is not None and version.pipeline_id != pipeline.id:
            raise Violation(
                "kfp.runs.create.pipeline-version-parent", "pipeline ID should be parent of pipeline version."
            )
    if spec.parameters and spec.HasField("runtime_config"):
        raise Violation(
            "kfp.runs.create.parameters-and-runtime-config",
            "Please don't specify both parameters and runtime config.",
        )
    max_bytes = rules.rule("kfp.runs.create.parameters-size").params["max_bytes"]
    if len(_parameters_json(spec.parameters).encode()) > max_bytes:
        raise Violation(
            "kfp.runs.create.parameters-size",
            f"The input parameter length exceed maximum size of {max_bytes}.",
        )

    # 2. The manifest actually used, and the template it holds.
    references = [_copy(ref) for ref in run_in.resource_references]
    if workflow_text or ir_text:
        manifest = workflow_text or ir_text
        source = WORKFLOW_MANIFEST if workflow_text else PIPELINE_MANIFEST
    else:
        if version is None:
            assert pipeline is not None
            version = state.store.get_version(pipeline.default_version_id)
            if version is None:
                raise Violation(
                    "kfp.runs.create.pipeline-version-not-found", f"Pipeline {pipeline.id} has no version."
                )
            references.append(_reference(state, "PIPELINE_VERSION", version.id, "CREATOR"))
        manifest = version.manifest
        source = f"manifest of pipeline version {version.id}"
    template = templates.classify(manifest, source)
    run_id = str(uuid.uuid4())
    if template.version == "v1":
        body = templates.replace_macros(template.body, run_id)
        templates.apply_parameters(body, [(p.name, p.value) for p in spec.parameters])
        template = templates.Template("v1", body)

    # 3. The owning experiment: the one referenced, else "Default".
    owners = [
        ref
        for ref in references
        if ref.key.type == _TYPES["EXPERIMENT"] and ref.relationship == _RELATIONSHIPS["OWNER"]
    ]
    experiment: Experiment | None
    if not owners:
        experiment = state.default_experiment()
        references.append(_reference(state, "EXPERIMENT", experiment.id, "OWNER"))
    else:
        experiment = state.store.get_experiment(owners[-1].key.id)
        if experiment is None:
            raise Violation(
                "kfp.runs.create.experiment-not-found", f"Experiment {owners[-1].key.id} not found."
            )

    # 4. References: supported kinds only; names come from the referenced objects.
    namespace = ""
    for ref in references:
        type_name = _type_name(state, ref.key.type)
        if type_name not in ("EXPERIMENT", "JOB", "PIPELINE_VERSION", "NAMESPACE"):
            raise Violation("kfp.runs.create.reference-type", f"Unsupported resource type: {type_name}")
        relationship = _relationship_name(state, ref.relationship)
        if relationship not in ("OWNER", "CREATOR"):
            raise Violation(
                "kfp.runs.create.reference-relationship", f"Unsupported resource relationship: {relationship}"
            )
        ref.name = _reference_name(state, type_name, ref.key.id)
        if type_name == "NAMESPACE":
            namespace = ref.key.id

    # 5. The stored run.
    api = state.api
    run = api.Run(id=run_id, name=run_in.name, description=run_in.description)
    run.storage_state = 0  # STORAGESTATE_AVAILABLE
    run.pipeline_spec.pipeline_id = spec.pipeline_id
    if pipeline is not None:
        run.pipeline_spec.pipeline_name = pipeline.name
    if template.version == "v1":
        run.pipeline_spec.workflow_manifest = manifest
    else:
        run.pipeline_spec.pipeline_manifest = manifest
    run.pipeline_spec.parameters.extend(spec.parameters)
    if spec.HasField("runtime_config"):
        run.pipeline_spec.runtime_config.CopyFrom(spec.runtime_config)
    run.resource_references.extend(references)
    run.service_account = _service_account(state, run_in.service_account, template)
    run.created_at.seconds = state.now_seconds()
    run.scheduled_at.SetInParent()  # epoch: runs created through the API are not scheduled
    run.finished_at.SetInParent()  # epoch until the run finishes
    run.status = ""

    runtime_parameters = {k: _value_text(v) for k, v in spec.runtime_config.parameters.items()}
    record = RunRecord(
        run=run,
        experiment_id=experiment.id,
        namespace=namespace,
        failure=requested_failure(template, runtime_parameters),
    )
    state.lifecycle.prepare(record, template)
    state.store.insert_run(record)
    state.lifecycle.start(record)
    return _detail(state, record, ctx)


def _json_object(text: str, rule_id: str, what: str) -> Any:
    """The JSON of a request manifest, or None; nesting beyond the limit breaks ``rule_id`` too."""
    try:
        return safejson.loads(text, what)
    except safejson.DocumentRejected as exc:
        raise Violation(rule_id, str(exc)) from None
    except ValueError:
        return None


def _decodes_as_ir(text: str) -> bool:
    """pipeline_manifest is decoded as JSON into the pipeline IR message: an object with typed fields."""
    document = _json_object(text, RULE_PIPELINE_MANIFEST, PIPELINE_MANIFEST)
    return isinstance(document, dict) and templates.shape_problem(document, "ir") is None


def _decodes_as_workflow(text: str) -> bool:
    """The server decodes workflow_manifest as JSON into an Argo Workflow: an object with typed fields."""
    document = _json_object(text, RULE_WORKFLOW_MANIFEST, WORKFLOW_MANIFEST)
    return isinstance(document, dict) and templates.shape_problem(document, "workflow") is None


def _copy(ref: message.Message) -> message.Message:
    copied = type(ref)()
    copied.CopyFrom(ref)
    return copied


def _reference(state: State, type_name: str, ref_id: str, relationship: str) -> message.Message:
    ref = state.api.ResourceReference(relationship=_RELATIONSHIPS[relationship])
    ref.key.type = _TYPES[type_name]
    ref.key.id = ref_id
    return ref


def _reference_name(state: State, type_name: str, ref_id: str) -> str:
    if type_name == "NAMESPACE":
        return ref_id
    if type_name == "EXPERIMENT":
        found: Any = state.store.get_experiment(ref_id)
    elif type_name == "PIPELINE_VERSION":
        found = state.store.get_version(ref_id)
    else:
        found = state.store.get_job(ref_id)
    if found is None:
        label = {"EXPERIMENT": "Experiment", "PIPELINE_VERSION": "PipelineVersion", "JOB": "Job"}[type_name]
        raise Violation("kfp.runs.create.reference-not-found", f"{label} {ref_id} not found.")
    return found.name


def _service_account(state: State, requested: str, template: templates.Template) -> str:
    default = state.rules.rule("kfp.runs.create.service-account-default").params["default"]
    if requested:
        return requested
    if template.version == "v1":
        from_workflow = str((template.body.get("spec") or {}).get("serviceAccountName") or "")
        if from_workflow and from_workflow != default:
            return from_workflow
    return default


def _value_text(value: message.Message) -> str:
    which = value.WhichOneof("value")
    return "" if which is None else str(getattr(value, which))


# -- GetRun ------------------------------------------------------------------------------


@rpc_method("GetRun")
def get_run(request: message.Message, ctx: CallContext) -> message.Message:
    state: State = ctx.state
    record = state.store.get_run(request.run_id)
    if record is None:
        if ctx.defect(defects.GET_RUN_WRONG_STATUS):
            raise ApiError(
                grpc.StatusCode.INTERNAL, f"run_id: Internal error: failed to get run {request.run_id}"
            )
        raise Violation("kfp.runs.get.not-found", f"Run {request.run_id} not found.")
    return _detail(state, record, ctx)


# -- ListRuns --------------------------------------------------------------------------------


def _reference_filter(state: State, request: message.Message) -> Callable[[RunRecord], bool]:
    if not request.HasField("resource_reference_key"):
        return lambda record: True
    key = request.resource_reference_key
    type_name = _type_name(state, key.type)
    if type_name == "EXPERIMENT":
        return lambda record: record.experiment_id == key.id
    if type_name == "NAMESPACE":
        return lambda record: record.namespace == key.id
    if type_name in ("JOB", "PIPELINE_VERSION"):
        return lambda record: any(
            r.key.type == key.type and r.key.id == key.id for r in record.run.resource_references
        )
    raise Violation("kfp.runs.list.reference-type", f"Unsupported resource type: {type_name}")


@rpc_method("ListRuns")
def list_runs(request: message.Message, ctx: CallContext) -> message.Message:
    state: State = ctx.state
    rules = state.rules
    terms = state.list_contract
    page_size = request.page_size or rules.rule("kfp.runs.list.page-size-default").params["default"]
    page_size = min(page_size, rules.rule("kfp.runs.list.page-size-cap").params["max"])

    token = None
    if request.page_token:
        token = listing.decode_token(request.page_token, terms)
        if request.sort_by and listing.parse_sort(request.sort_by, terms) != token.sort:
            raise Violation(listing.RULE_TOKEN_MISMATCH, _MISMATCH)
        if request.filter:
            asked = listing.canonical_filter(listing.parse_filter(request.filter, state.api.Filter, terms))
            if asked != token.filter:
                raise Violation(listing.RULE_TOKEN_MISMATCH, _MISMATCH)
        sort, canonical = token.sort, token.filter
        parsed = listing.token_filter(token, state.api.Filter, terms)
    else:
        sort = listing.parse_sort(request.sort_by, terms)
        parsed = listing.parse_filter(request.filter, state.api.Filter, terms)
        canonical = listing.canonical_filter(parsed)
    order = terms.default_sort if ctx.defect(defects.SORT_IGNORED) else sort
    start = token.key if token is not None else None
    restart = ctx.defect(defects.SCOPED_PAGE_TOKEN_IGNORED)
    indexed = _indexed_page(state, request, parsed, order, start, page_size + 1, restart)
    if indexed is not None:
        rows, total = indexed
    else:
        rows, total = _scanned_page(state, request, parsed, order, start, page_size + 1)

    response = state.api.ListRunsResponse(total_size=total)
    response.runs.extend(present(r.run, ctx) for r in rows[:page_size])
    if len(rows) > page_size:
        # The token names the first run of the next page (keyset pagination).
        first_next = rows[page_size - 1] if ctx.defect(defects.LIST_REPEATS_ITEM) else rows[page_size]
        next_token = listing.PageToken(sort, canonical, listing.sort_key(first_next.run, order))
        response.next_page_token = next_token.encode(terms.model)
    return response


def _scanned_page(
    state: State,
    request: message.Message,
    parsed: message.Message | None,
    order: listing.Sort,
    start: list[Any] | None,
    limit: int,
) -> tuple[list[RunRecord], int]:
    """Every run looked at: any scope, sort and filter (the reference for the indexed path)."""
    in_scope = _reference_filter(state, request)
    terms = state.list_contract
    rows = [r for r in state.store.runs() if in_scope(r) and listing.matches(r.run, parsed, terms)]
    rows.sort(key=lambda r: listing.sort_key(r.run, order), reverse=order.desc)
    total = len(rows)
    if start is not None:
        rows = [r for r in rows if listing.after_or_at(listing.sort_key(r.run, order), start, order.desc)]
    return rows[:limit], total


_INDEXED_TYPES = {"created_at": int, "name": str}  # what a token's key holds for an indexed sort


def _indexed_page(
    state: State,
    request: message.Message,
    parsed: message.Message | None,
    order: listing.Sort,
    start: list[Any] | None,
    limit: int,
    restart: bool = False,
) -> tuple[list[RunRecord], int] | None:
    """The page from the run index (see :mod:`.runindex`), or None when the request needs a scan.

    Indexed: sort by created_at or name, every run or one experiment or namespace,
    and no filter or predicates on storage_state and status only (each run's partition).
    ``restart``: the defect mode that pages a scoped listing from its start whatever the token."""
    if order.field not in runindex.INDEXED_SORTS:
        return None
    scope = runindex.ALL
    if request.HasField("resource_reference_key"):
        key = request.resource_reference_key
        type_name = _type_name(state, key.type)
        if type_name not in ("EXPERIMENT", "NAMESPACE"):
            return None
        scope = (type_name, key.id)
    predicates = list(parsed.predicates) if parsed is not None else []
    if any(p.key not in runindex.PARTITION_KEYS for p in predicates):
        return None
    checks = [(runindex.PARTITION_KEYS.index(p.key), p) for p in predicates]
    index = state.store.run_index()
    lists = index.select(scope, lambda part: all(listing.holds(part[i], p) for i, p in checks), order.field)
    total = index.count(lists)
    begin: tuple[Any, str] | None = None
    if start is not None and not (restart and scope != runindex.ALL):
        present_, value, run_id = start
        if not present_:  # a key of a run without the value sorts first: every run is after it
            if order.desc:
                return [], total
        elif type(value) is _INDEXED_TYPES[order.field] and value == value:  # not NaN
            begin = (value, run_id)
        else:  # a forged token: the scan decides, as it always has
            return None
    ids = index.page(lists, order.desc, begin, limit)
    return [record for run_id in ids if (record := state.store.get_run(run_id)) is not None], total


_MISMATCH = (
    "page token does not match the supplied sort by and/or filtering criteria. Either specify the same "
    "criteria or leave the latter empty if page token is specified."
)


# -- Archive, Unarchive, Delete ------------------------------------------------------------


def _set_storage_state(request: message.Message, ctx: CallContext, state_name: str) -> message.Message:
    state: State = ctx.state
    record = _run_or_not_found(state, request.id, "kfp.runs.archive.not-found")
    enum = record.run.DESCRIPTOR.fields_by_name["storage_state"].enum_type
    record.run.storage_state = enum.values_by_name[state_name].number
    state.store.update_run(record)
    return state.registry.message_class("google.protobuf.Empty")()


@rpc_method("ArchiveRun")
def archive_run(request: message.Message, ctx: CallContext) -> message.Message:
    return _set_storage_state(request, ctx, "STORAGESTATE_ARCHIVED")


@rpc_method("UnarchiveRun")
def unarchive_run(request: message.Message, ctx: CallContext) -> message.Message:
    return _set_storage_state(request, ctx, "STORAGESTATE_AVAILABLE")


@rpc_method("DeleteRun")
def delete_run(request: message.Message, ctx: CallContext) -> message.Message:
    state: State = ctx.state
    record = _run_or_not_found(state, request.id, "kfp.runs.delete.not-found")
    state.lifecycle.forget(record.id, deleted=True)
    state.store.delete_run(record.id)
    state.store.delete_objects(artifacts.run_prefix(record.id))
    return state.registry.message_class("google.protobuf.Empty")()


# -- ReportRunMetrics ------------------------------------------------------------------------


@rpc_method("ReportRunMetrics")
def report_run_metrics(request: message.Message, ctx: CallContext) -> message.Message:
    state: State = ctx.state
    rules = state.rules
    record = _run_or_not_found(state, request.run_id, "kfp.runs.metrics.run-not-found")
    name_rule = rules.rule("kfp.runs.metrics.name-pattern")
    node_rule = rules.rule("kfp.runs.metrics.node-id-length")
    duplicate_rule = rules.rule("kfp.runs.metrics.duplicate")
    ok_rule = rules.rule("kfp.runs.metrics.results")
    response = state.api.ReportRunMetricsResponse()
    result_class = state.registry.message_class("api.ReportRunMetricsResponse.ReportRunMetricResult")
    statuses = result_class.DESCRIPTOR.enum_types_by_name["Status"]
    for metric in request.metrics:
        result = result_class(metric_name=metric.name, metric_node_id=metric.node_id)
        status, text = ok_rule.params["result_status"], ""
        if not name_rule.matches(metric.name):
            status = name_rule.params["result_status"]
            text = f"metric.name '{metric.name}' doesn't match with the pattern '{name_rule.params['regex']}'"
        elif len(metric.node_id) < node_rule.params["min"]:
            status, text = node_rule.params["result_status"], "metric.node_id must not be empty"
        elif len(metric.node_id) > node_rule.params["max"]:
            status = node_rule.params["result_status"]
            limit = node_rule.params["max"]
            text = f"metric.node_id '{metric.node_id}' cannot be longer than {limit} characters"
        else:
            existing = next(
                (m for m in record.run.metrics if m.node_id == metric.node_id and m.name == metric.name), None
            )
            if existing is None:
                existing = record.run.metrics.add()
                existing.CopyFrom(metric)
                if existing.WhichOneof("value") is None:
                    existing.number_value = 0.0  # stored as a number: reads back as a set 0
            elif ctx.defect(defects.DUPLICATE_METRIC_ACCEPTED):
                existing.CopyFrom(metric)
            else:
                status = duplicate_rule.params["result_status"]
                text = f"same metric has been reported before: {metric.node_id}/{metric.name}"
        result.status = statuses.values_by_name[status].number
        result.message = text
        response.results.append(result)
    state.store.update_run(record)
    return response


# -- ReadArtifact --------------------------------------------------------------------------------


@rpc_method("ReadArtifact")
def read_artifact(request: message.Message, ctx: CallContext) -> message.Message:
    state: State = ctx.state
    record = _run_or_not_found(state, request.run_id, "kfp.runs.artifact.run-not-found")
    if record.workflow is None:
        raise Violation(
            "kfp.runs.artifact.v2-unsupported", "read artifact from run with v2 IR spec is not supported"
        )
    path = f"runs/{request.run_id}/nodes/{request.node_id}/artifacts/{request.artifact_name}"
    missing = Violation("kfp.runs.artifact.not-found", f"artifact {path} not found.")
    node = (record.workflow.get("status", {}).get("nodes") or {}).get(request.node_id)
    if node is None:
        raise missing
    for artifact in (node.get("outputs") or {}).get("artifacts") or []:
        key = (artifact.get("s3") or {}).get("key")
        if artifact.get("name") == request.artifact_name and key:
            data = state.store.get_object(key)
            if data is None:
                raise missing
            return state.api.ReadArtifactResponse(data=data)
    raise missing


# -- TerminateRun, RetryRun ------------------------------------------------------------------------


@rpc_method("TerminateRun")
def terminate_run(request: message.Message, ctx: CallContext) -> message.Message:
    state: State = ctx.state
    record = _run_or_not_found(state, request.run_id, "kfp.runs.terminate.not-found")
    machine = state.rules.state_machines["run"]
    if machine.target("TerminateRun", record.run.status) is None and not ctx.defect(
        defects.TERMINATE_FINISHED_ACCEPTED
    ):
        raise Violation(
            "kfp.runs.terminate.precondition", f"Failed to terminate run {record.id}. Row not found."
        )
    state.lifecycle.terminate(record)
    return state.registry.message_class("google.protobuf.Empty")()


@rpc_method("RetryRun")
def retry_run(request: message.Message, ctx: CallContext) -> message.Message:
    state: State = ctx.state
    record = _run_or_not_found(state, request.run_id, "kfp.runs.retry.not-found")
    if record.template_version != "v1":
        raise Violation("kfp.runs.retry.v1-only", "Workflow must be with v1 mode to retry")
    machine = state.rules.state_machines["run"]
    if machine.target("RetryRun", record.run.status) is None:
        raise Violation("kfp.runs.retry.precondition", "Workflow must be Failed/Error to retry")
    state.lifecycle.retry(record)
    return state.registry.message_class("google.protobuf.Empty")()
