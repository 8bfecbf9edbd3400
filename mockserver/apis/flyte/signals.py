"""SignalService: GetOrCreateSignal, ListSignals, SetSignal, as flyteadmin 1.16 answers them.

A signal is keyed by (execution, signal_id) and remembers its type as bytes:
GetOrCreateSignal with the same type answers the stored signal (its value once
set), with another type it is the database's duplicate-key refusal.  The
execution is never looked up.  SetSignal needs the signal to exist and a value
of its type; setting again overwrites.  A value that is set wakes the gate node
of the simulated propeller waiting on it (:mod:`.propeller`).  The sizes of ids,
types and values are capped (``signals`` in ``specs/flyte/signals.yaml``): every
signal stays in memory.
"""

from __future__ import annotations

from typing import Any

from protoconform.mockserver.apis.flyte import columns, defects, listing, literals
from protoconform.mockserver.apis.flyte.errors import Violation
from protoconform.mockserver.apis.flyte.service import admin
from protoconform.mockserver.apis.flyte.state import SignalKey, SignalRecord, State, exec_key_of
from protoconform.mockserver.apis.flyte.wire import copy, deterministic, text
from protoconform.mockserver.rpc import CallContext

SERVICE = "flyteidl.service.SignalService"
MISSING = "flyte.signals.id"
TYPE_MISSING = "flyte.signals.get-or-create.type"
TYPE_CONFLICT = "flyte.signals.get-or-create.type-conflict"
LIST_EXECUTION = "flyte.signals.list.execution-id"
LIST_LIMIT = "flyte.signals.list.limit"
VALUE_MISSING = "flyte.signals.set.value"
NOT_FOUND = "flyte.signals.set.not-found"
NOT_CASTABLE = "flyte.signals.set.castable"
SIZE = "flyte.signals.size"
OPERATION = "ListSignals"  # the manager method flyteadmin's token error names


def _missing(field: str, what: str) -> Violation:
    return Violation(MISSING, field=field, what=what)


def signal_identifier(holder: Any) -> Any:
    """``ValidateSignalIdentifier``: id, execution_id, signal_id, then the execution's parts."""
    if not holder.HasField("id"):
        raise _missing("id", "id")
    ident = holder.id
    if not ident.HasField("execution_id"):
        raise _missing("id.execution_id", "execution_id")
    if not ident.signal_id:
        raise _missing("id.signal_id", "signal_id")
    for part in ("project", "domain", "name"):
        if not getattr(ident.execution_id, part):
            raise _missing(f"id.execution_id.{part}", part)
    return ident


def _bounded(state: State, field: str, part: Any) -> None:
    limit = int(state.rules.extra["signals"]["max_bytes"])
    size = part.ByteSize()
    if size > limit:
        raise Violation(SIZE, field=field, size=size, limit=limit)


def key_text(key: SignalKey) -> str:
    """The signal key as Go's ``%v`` prints flyteadmin's SignalKey struct."""
    execution = key.execution
    return f"{{{{{execution.project} {execution.domain} {execution.name}}} {key.signal_id}}}"


def get_or_create(state: State, ident: Any, literal_type: Any, force: bool = False) -> SignalRecord:
    """The signal of ``ident``, created with ``literal_type`` if absent; another type is a conflict
    (``force``: answer the stored signal anyway)."""
    key = SignalKey(exec_key_of(ident.execution_id), ident.signal_id)
    table = state.table("signals")
    wanted = deterministic(literal_type)
    record: SignalRecord | None = table.get(key)
    if record is not None:
        if record.type_bytes != wanted and not force:
            raise Violation(TYPE_CONFLICT)
        return record
    now = state.now()
    signal = state.wire.new("admin.Signal")
    signal.id.CopyFrom(ident)
    signal.type.CopyFrom(literal_type)
    record = SignalRecord(
        row=state.store.next_row(), created_at=now, updated_at=now, key=key, signal=signal, type_bytes=wanted
    )
    table.insert(key, key.execution, record)
    return record


@admin("GetOrCreateSignal", service=SERVICE)
def get_or_create_signal(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = signal_identifier(request)
    _bounded(state, "id", ident)
    if not request.HasField("type"):
        raise Violation(TYPE_MISSING)
    _bounded(state, "type", request.type)
    record = get_or_create(state, ident, request.type, force=ctx.defect(defects.SIGNAL_TYPE_CONFLICT_IGNORED))
    return copy(record.signal)


@admin("ListSignals", service=SERVICE)
def list_signals(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    execution = request.workflow_execution_id
    # flyteadmin answers "missing execution_id" whatever part of the identifier is wrong
    if not request.HasField("workflow_execution_id") or not all(
        getattr(execution, part) for part in ("project", "domain", "name")
    ):
        raise Violation(LIST_EXECUTION)
    if request.limit == 0:
        raise Violation(LIST_LIMIT)
    filters = listing.parse_filters(state, request.filters, "s") if request.filters else []
    sort = listing.parse_sort(state, request.sort_by, "s", request.HasField("sort_by"))
    offset = listing.parse_token(request.token, OPERATION)
    records = listing.select(
        state, "signals", exec_key_of(execution), columns.model(state, "s"), filters, sort
    )
    chosen, token = listing.page(records, offset, request.limit)
    response = state.wire.new("admin.SignalList", token=token)
    response.signals.extend(r.signal for r in chosen)  # extend copies each message
    return response


@admin("SetSignal", service=SERVICE)
def set_signal(request: Any, ctx: CallContext) -> Any:
    state: State = ctx.state
    ident = signal_identifier(request)
    _bounded(state, "id", ident)
    if not request.HasField("value"):
        raise Violation(VALUE_MISSING)
    _bounded(state, "value", request.value)
    key = SignalKey(exec_key_of(ident.execution_id), ident.signal_id)
    table = state.table("signals")
    record: SignalRecord | None = table.get(key)
    if record is None:
        if not ctx.defect(defects.SIGNAL_SET_MISSING_ACCEPTED):
            raise Violation(NOT_FOUND, key=key_text(key))
        record = get_or_create(state, ident, literals.infer_type(state.wire, request.value))
    if not request.value.WhichOneof("value") or not literals.fits(
        state.wire, request.value, record.signal.type
    ):
        # flyteadmin prints the stored type as Go prints a byte slice
        stored = "[" + " ".join(str(b) for b in record.type_bytes) + "]"
        raise Violation(NOT_CASTABLE, value=text(request.value), type=stored)
    record.signal.value.CopyFrom(request.value)
    record.updated_at = state.now()
    table.update(key, record)
    state.propeller.signalled(key)
    return state.wire.new("admin.SignalSetResponse")
