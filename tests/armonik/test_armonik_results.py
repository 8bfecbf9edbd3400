"""Results: creation, upload unblocking tasks, download chunks, delete, import, owners."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from akutil import (
    Stubs,
    advance,
    create_data,
    create_metadata,
    create_session,
    download,
    result_status,
    rpc_error,
    state,
    submit,
    task_status,
)
from armonik.protogen.common import objects_pb2
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common.result_status_pb2 import ResultStatus as RS
from armonik.protogen.common.task_status_pb2 import TaskStatus as TS
from protoconform.mockserver.launcher import ThreadedServer


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    return {"data_chunk_max_size": 4}


def _upload(stubs: Stubs, session_id: str, result_id: str, *chunks: bytes) -> rc.ResultRaw:
    ident = rc.UploadResultDataRequest.ResultIdentifier(session_id=session_id, result_id=result_id)
    messages = [rc.UploadResultDataRequest(id=ident)] + [
        rc.UploadResultDataRequest(data_chunk=c) for c in chunks
    ]
    return stubs.results.UploadResultData(iter(messages)).result


def test_creation(stubs: Stubs) -> None:
    sid = create_session(stubs)
    request = rc.CreateResultsRequest(
        session_id=sid,
        results=[rc.CreateResultsRequest.ResultCreate(name="d", data=b"12345", manual_deletion=True)],
    )
    (with_data,) = stubs.results.CreateResults(request).results
    assert with_data.status == RS.RESULT_STATUS_COMPLETED and with_data.size == 5
    assert with_data.owner_task_id == sid and with_data.opaque_id and with_data.manual_deletion
    assert with_data.completed_at.seconds > 0 and with_data.created_at.seconds > 0
    meta = stubs.results.CreateResultsMetaData(
        rc.CreateResultsMetaDataRequest(
            session_id=sid, results=[rc.CreateResultsMetaDataRequest.ResultCreate(name="m")]
        )
    ).results[0]
    assert (
        meta.status == RS.RESULT_STATUS_CREATED
        and meta.owner_task_id == ""
        and not meta.HasField("completed_at")
    )
    assert stubs.results.GetServiceConfiguration(objects_pb2.Empty()).data_chunk_max_size == 4


def test_upload_completes_overwrites_and_unblocks(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    ids = create_metadata(stubs, sid, "payload", "out")
    tid = submit(stubs, sid, ids["payload"], [ids["out"]], deps=[ids["payload"]])
    assert task_status(stubs, tid) == TS.TASK_STATUS_PENDING
    raw = _upload(stubs, sid, ids["payload"], b"ab", b"cd", b"e")
    assert raw.status == RS.RESULT_STATUS_COMPLETED and raw.size == 5
    assert task_status(stubs, tid) == TS.TASK_STATUS_SUBMITTED
    assert [c.data_chunk for c in stubs.results.DownloadResultData(_dl(sid, ids["payload"]))] == [
        b"abcd",
        b"e",
    ]
    assert _upload(stubs, sid, ids["payload"], b"xy").size == 2  # a completed result is overwritten
    assert download(stubs, sid, ids["payload"]) == b"xy"


def _dl(session_id: str, result_id: str) -> rc.DownloadResultDataRequest:
    return rc.DownloadResultDataRequest(session_id=session_id, result_id=result_id)


def test_empty_data_is_one_empty_chunk_and_no_data_is_not_found(stubs: Stubs) -> None:
    sid = create_session(stubs)
    empty = create_data(stubs, sid, e=b"")["e"]
    assert [c.data_chunk for c in stubs.results.DownloadResultData(_dl(sid, empty))] == [b""]
    created = create_metadata(stubs, sid, "c")["c"]
    error = rpc_error(stubs.results.DownloadResultData, _dl(sid, created))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "RESULT_STATUS_CREATED" in error.details()


def test_delete_data_respects_manual_deletion_and_ignores_unknown(stubs: Stubs) -> None:
    sid = create_session(stubs)
    plain = create_data(stubs, sid, a=b"1")["a"]
    request = rc.CreateResultsRequest(
        session_id=sid,
        results=[rc.CreateResultsRequest.ResultCreate(name="k", data=b"2", manual_deletion=True)],
    )
    kept = stubs.results.CreateResults(request).results[0].result_id
    reply = stubs.results.DeleteResultsData(
        rc.DeleteResultsDataRequest(session_id=sid, result_id=[plain, kept, "nope"])
    )
    assert list(reply.result_id) == [plain, kept, "nope"]
    deleted = stubs.results.GetResult(rc.GetResultRequest(result_id=plain)).result
    assert deleted.status == RS.RESULT_STATUS_DELETED and deleted.opaque_id == b""
    assert result_status(stubs, kept) == RS.RESULT_STATUS_COMPLETED
    # purge keeps manual_deletion results too
    stubs.sessions.CloseSession(sc.CloseSessionRequest(session_id=sid))
    stubs.sessions.PurgeSession(sc.PurgeSessionRequest(session_id=sid))
    assert download(stubs, sid, kept) == b"2"


def test_import(server: ThreadedServer, stubs: Stubs) -> None:
    sid = create_session(stubs)
    other = create_session(stubs)
    source = stubs.results.GetResult(
        rc.GetResultRequest(result_id=create_data(stubs, sid, s=b"stored")["s"])
    ).result
    targets = create_metadata(stubs, sid, "t", "waiting")
    foreign = create_metadata(stubs, other, "f")["f"]
    tid = submit(stubs, sid, source.result_id, [targets["waiting"]], deps=[targets["t"]])

    def request(result_id: str, opaque: bytes = source.opaque_id) -> rc.ImportResultsDataRequest:
        item = rc.ImportResultsDataRequest.ResultOpaqueId(result_id=result_id, opaque_id=opaque)
        return rc.ImportResultsDataRequest(session_id=sid, results=[item])

    assert not stubs.results.ImportResultsData(rc.ImportResultsDataRequest(session_id="any")).results
    cases = [
        (request(source.result_id), grpc.StatusCode.FAILED_PRECONDITION, "results[0].result_id"),
        (request(targets["t"], b"missing"), grpc.StatusCode.NOT_FOUND, "results[0].opaque_id"),
        (request("nope"), grpc.StatusCode.NOT_FOUND, "results[0].result_id"),
        (request(foreign), grpc.StatusCode.INVALID_ARGUMENT, "results[0].result_id"),
    ]
    for bad, code, field in cases:
        error = rpc_error(stubs.results.ImportResultsData, bad)
        assert (error.code(), error.details().split(":")[0]) == (code, field)
    assert result_status(stubs, targets["t"]) == RS.RESULT_STATUS_CREATED
    (imported,) = stubs.results.ImportResultsData(request(targets["t"])).results
    assert imported.status == RS.RESULT_STATUS_COMPLETED and imported.size == 6
    assert download(stubs, sid, targets["t"]) == b"stored"
    assert task_status(stubs, tid) == TS.TASK_STATUS_SUBMITTED
    advance(server, 3.0)
    assert download(stubs, sid, targets["waiting"]) == b"storedstored"


def test_owner_and_result_ids(stubs: Stubs) -> None:
    sid = create_session(stubs)
    payload = create_data(stubs, sid, p=b"x")["p"]
    outs = create_metadata(stubs, sid, "a", "b")
    tid = submit(stubs, sid, payload, [outs["a"], outs["b"]])
    owners = stubs.results.GetOwnerTaskId(
        rc.GetOwnerTaskIdRequest(session_id=sid, result_id=[outs["a"], "nope", outs["b"]])
    )
    assert [(m.result_id, m.task_id) for m in owners.result_task] == [(outs["a"], tid), (outs["b"], tid)]
    ids = stubs.tasks.GetResultIds(tc.GetResultIdsRequest(task_id=[tid, "nope"]))
    assert [(m.task_id, list(m.result_ids)) for m in ids.task_results] == [(tid, [outs["a"], outs["b"]])]


def test_results_need_an_existing_session(server: ThreadedServer, stubs: Stubs) -> None:
    before = len(state(server).results)
    error = rpc_error(
        stubs.results.CreateResultsMetaData,
        rc.CreateResultsMetaDataRequest(
            session_id="nope", results=[rc.CreateResultsMetaDataRequest.ResultCreate()]
        ),
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith("session_id:")
    assert len(state(server).results) == before
