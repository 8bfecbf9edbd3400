"""ArmoniK on the durable store: kill -9 loses no acknowledged write and no call half-done, the engine
goes on after a restart (lost runs retried as ArmoniK does), result data survives, reset empties it."""

from __future__ import annotations

import json
import logging
import random
import signal
import socket
import threading
import time
import urllib.request
from collections import Counter
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from akutil import Stubs, create_data, create_metadata, download, task_options
from armonik.protogen.common import filters_common_pb2 as fc
from armonik.protogen.common import results_common_pb2 as rc
from armonik.protogen.common import results_fields_pb2 as rf
from armonik.protogen.common import results_filters_pb2 as rfl
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import sessions_fields_pb2 as sf
from armonik.protogen.common import sessions_filters_pb2 as sfl
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from armonik.protogen.common import tasks_filters_pb2 as tfl
from armonik.protogen.common.result_status_pb2 import ResultStatus
from armonik.protogen.common.session_status_pb2 import SessionStatus
from armonik.protogen.common.sort_direction_pb2 import SORT_DIRECTION_ASC
from armonik.protogen.common.task_status_pb2 import TaskStatus
from protoconform.mockserver.launcher import ServerProcess

STEPS = ["--armonik-dispatch-delay", "1", "--armonik-start-delay", "1", "--armonik-processing-time", "1"]


def _args(db: Path) -> list[str]:
    return [
        "--api",
        "armonik",
        "--clock-speed",
        "0",
        "--store",
        f"sqlite:{db}",
        *STEPS,
        "--armonik-cancel-delay",
        "1",
    ]


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def _advance(server: ServerProcess, seconds: float) -> None:
    _post(f"{server.http_url}/control/clock/advance", {"seconds": seconds})


def _results_of(stubs: Stubs, session_id: str) -> list[Any]:
    condition = rfl.FilterField(
        field=rf.ResultField(result_raw_field=rf.ResultRawField(field=rf.RESULT_RAW_ENUM_FIELD_SESSION_ID)),
        filter_string=fc.FilterString(value=session_id, operator=fc.FILTER_STRING_OPERATOR_EQUAL),
    )
    request = rc.ListResultsRequest(
        page=0,
        page_size=1000,
        filters=rfl.Filters(**{"or": [rfl.FiltersAnd(**{"and": [condition]})]}),
        sort=rc.ListResultsRequest.Sort(
            field=rf.ResultField(
                result_raw_field=rf.ResultRawField(field=rf.RESULT_RAW_ENUM_FIELD_CREATED_AT)
            ),
            direction=SORT_DIRECTION_ASC,
        ),
    )
    return list(stubs.results.ListResults(request).results)


def _tasks(stubs: Stubs) -> list[Any]:
    request = tc.ListTasksRequest(
        page=0,
        page_size=10000,
        filters=tfl.Filters(),
        sort=tc.ListTasksRequest.Sort(
            field=tf.TaskField(
                task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_TASK_ID)
            ),
            direction=SORT_DIRECTION_ASC,
        ),
    )
    return list(stubs.tasks.ListTasksDetailed(request).tasks)


def _session_count(stubs: Stubs) -> int:
    request = sc.ListSessionsRequest(
        page=0,
        page_size=0,
        filters=sfl.Filters(),
        sort=sc.ListSessionsRequest.Sort(
            field=sf.SessionField(
                session_raw_field=sf.SessionRawField(field=sf.SESSION_RAW_ENUM_FIELD_STATUS)
            ),
            direction=SORT_DIRECTION_ASC,
        ),
    )
    return stubs.sessions.ListSessions(request).total


class Writer(threading.Thread):
    """Writes of every kind as fast as the server answers; keeps what was acknowledged."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.sessions: dict[str, int] = {}  # id -> expected status
        self.data: dict[str, tuple[str, bytes]] = {}  # result id -> (session, content)
        self.metadata: dict[str, str] = {}  # result id -> session
        self.tasks: dict[
            str, tuple[str, str, list[str], str]
        ] = {}  # id -> (session, payload, outputs, batch)
        self.acknowledged = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stubs = Stubs(channel)
            n = 0
            try:
                while not self.stopped.is_set():
                    n += 1
                    self.round(stubs, n)
            except grpc.RpcError:
                return  # the server was killed

    def round(self, stubs: Stubs, n: int) -> None:
        reply = stubs.sessions.CreateSession(
            sc.CreateSessionRequest(default_task_option=task_options(), partition_ids=[])
        )
        sid = reply.session_id
        self.sessions[sid] = SessionStatus.SESSION_STATUS_RUNNING
        contents = {f"b{n}-{i}": f"data {n} {i}".encode() * (1 + i * 50) for i in range(3)}
        for name, rid in create_data(stubs, sid, **contents).items():  # three results in one call
            self.data[rid] = (sid, contents[name])
        outputs = list(create_metadata(stubs, sid, f"o{n}-0", f"o{n}-1").values())
        for rid in outputs:
            self.metadata[rid] = sid
        payload = next(rid for rid, (s, _) in self.data.items() if s == sid)
        batch = f"batch-{n}"
        creations = [
            tc.SubmitTasksRequest.TaskCreation(payload_id=payload, expected_output_keys=[out])
            for out in outputs
        ]
        submitted = stubs.tasks.SubmitTasks(
            tc.SubmitTasksRequest(
                session_id=sid, task_options=task_options(options={"batch": batch}), task_creations=creations
            )
        )
        for info in submitted.task_infos:
            self.tasks[info.task_id] = (sid, payload, list(info.expected_output_ids), batch)
        if n % 3 == 0:
            stubs.sessions.CancelSession(sc.CancelSessionRequest(session_id=sid))
            self.sessions[sid] = SessionStatus.SESSION_STATUS_CANCELLED
        self.acknowledged += 1


def test_every_acknowledged_write_survives_kill_9_and_no_call_is_half_done(tmp_path: Path) -> None:
    db = tmp_path / "ark.db"
    with ServerProcess(_args(db)) as first:
        writer = Writer(first.grpc_address)
        writer.start()
        deadline = time.monotonic() + 30
        while writer.acknowledged < 8 and time.monotonic() < deadline and writer.is_alive():
            time.sleep(0.05)
        assert writer.acknowledged >= 8
        first.stop(signal.SIGKILL)  # while the writer is in the middle of its calls
        writer.join(10)
    with ServerProcess(_args(db)) as second, grpc.insecure_channel(second.grpc_address) as channel:
        stubs = Stubs(channel)
        for sid, status in list(writer.sessions.items()):
            found = stubs.sessions.GetSession(sc.GetSessionRequest(session_id=sid)).session
            assert found.status == status, sid
            assert found.options.max_retries == 1 and found.partition_ids == ["default"]
        for rid, (sid, content) in list(writer.data.items()):
            assert download(stubs, sid, rid) == content
        for rid, sid in list(writer.metadata.items()):
            got = stubs.results.GetResult(rc.GetResultRequest(result_id=rid)).result
            assert got.session_id == sid
        tasks = {t.id: t for t in _tasks(stubs)}
        for tid, (sid, payload, outputs, batch) in list(writer.tasks.items()):
            task = tasks[tid]
            assert (task.session_id, task.payload_id, list(task.expected_output_ids)) == (
                sid,
                payload,
                outputs,
            )
            assert task.options.options["batch"] == batch
        # One call, one commit: a batch of tasks or results is whole or absent.
        assert set(Counter(t.options.options["batch"] for t in tasks.values()).values()) == {2}
        batches: Counter[str] = Counter()
        for sid in {s for s, _ in writer.data.values()} | set(writer.sessions):
            for result in _results_of(stubs, sid):
                if result.name.startswith("b"):
                    batches[result.name.split("-")[0]] += 1
        assert set(batches.values()) == {3}
        # New ids do not collide with stored ones.
        sid = stubs.sessions.CreateSession(
            sc.CreateSessionRequest(default_task_option=task_options(), partition_ids=[])
        ).session_id
        new = create_data(stubs, sid, again=b"x")["again"]
        assert sid not in writer.sessions and new not in writer.data and new not in writer.metadata
        assert _session_count(stubs) >= len(writer.sessions) + 1


def test_the_engine_goes_on_after_kill_9_and_lost_runs_are_retried(tmp_path: Path) -> None:
    db = tmp_path / "ark.db"
    with ServerProcess(_args(db)) as first, grpc.insecure_channel(first.grpc_address) as channel:
        stubs = Stubs(channel)
        sid = stubs.sessions.CreateSession(
            sc.CreateSessionRequest(default_task_option=task_options(), partition_ids=[])
        ).session_id
        payload = create_data(stubs, sid, payload=b"in")["payload"]
        outs = create_metadata(stubs, sid, "a", "b", "c")

        def one(output: str, deps: list[str], retries: int, **opts: str) -> str:
            creation = tc.SubmitTasksRequest.TaskCreation(
                payload_id=payload,
                expected_output_keys=[outs[output]],
                data_dependencies=deps,
                task_options=task_options(max_retries=retries, options=opts),
            )
            reply = stubs.tasks.SubmitTasks(tc.SubmitTasksRequest(session_id=sid, task_creations=[creation]))
            return reply.task_infos[0].task_id

        a = one("a", [], 1)  # PROCESSING when killed: retried as a###1
        b = one("b", [outs["a"]], 1)  # PENDING on a's output
        c = one("c", [], 1, **{"mock.duration": "100"})
        _advance(first, 2.0)  # dispatched at 1, processing from 2 (done at 3)
        statuses = {t.id: t.status for t in _tasks(stubs)}
        assert statuses[a] == statuses[c] == TaskStatus.TASK_STATUS_PROCESSING
        assert statuses[b] == TaskStatus.TASK_STATUS_PENDING
        stubs.tasks.CancelTasks(tc.CancelTasksRequest(task_ids=[c]))  # CANCELLING when killed
        first.stop(signal.SIGKILL)
    with ServerProcess(_args(db)) as second, grpc.insecure_channel(second.grpc_address) as channel:
        stubs = Stubs(channel)
        _advance(second, 10.0)
        tasks = {t.id: t for t in _tasks(stubs)}
        assert tasks[a].status == TaskStatus.TASK_STATUS_RETRIED and "lost" in tasks[a].status_message
        retry = tasks[f"{a}###1"]
        assert retry.status == TaskStatus.TASK_STATUS_COMPLETED and list(retry.retry_of_ids) == [a]
        assert tasks[c].status == TaskStatus.TASK_STATUS_CANCELLED
        assert tasks[b].status == TaskStatus.TASK_STATUS_COMPLETED
        assert download(stubs, sid, outs["a"]) == b"in"
        assert download(stubs, sid, outs["b"]) == b"inin"  # payload + a's output
        got = stubs.results.GetResult(rc.GetResultRequest(result_id=outs["c"])).result
        assert got.status == ResultStatus.RESULT_STATUS_ABORTED  # c's output, as cancelled


def test_reset_empties_the_store(tmp_path: Path) -> None:
    db = tmp_path / "ark.db"
    with ServerProcess(_args(db)) as first, grpc.insecure_channel(first.grpc_address) as channel:
        stubs = Stubs(channel)
        stubs.sessions.CreateSession(
            sc.CreateSessionRequest(default_task_option=task_options(), partition_ids=[])
        )
        assert _session_count(stubs) == 1
        _post(f"{first.http_url}/control/reset", {})
        first.stop(signal.SIGKILL)
    with ServerProcess(_args(db)) as second, grpc.insecure_channel(second.grpc_address) as channel:
        assert _session_count(Stubs(channel)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_attached_workers_lost_run_is_retried_after_kill_9(tmp_path: Path) -> None:
    """The worker outlives the server: the run it was given is lost, the retry is processed."""
    from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKTasks
    from armonik.common import Output, TaskDefinition
    from armonik.protogen.worker.worker_service_pb2_grpc import add_WorkerServicer_to_server
    from armonik.worker import ArmoniKWorker, ClefLogger, TaskHandler

    release, made = threading.Event(), threading.Event()
    seen: list[str] = []

    def processor(handler: TaskHandler) -> Output:
        seen.append(handler.task_id)
        if len(seen) == 1:  # makes a result and a subtask, then is killed in the middle of the run
            side = handler.create_results_metadata(["side"])["side"].result_id
            sub_in = handler.create_results({"sub-in": b"x"})["sub-in"].result_id
            handler.submit_tasks([TaskDefinition(sub_in, [side])])
            made.set()
            release.wait(30)
            return Output()
        handler.send_results({out: handler.payload.upper() for out in handler.expected_results})
        return Output()

    port = _free_port()
    sock = f"unix://{tmp_path}/worker.sock"
    args = [
        *_args(tmp_path / "ark.db"),
        "--port",
        str(port),
        "--clock-speed",
        "1",
        "--armonik-dispatch-delay",
        "0.05",
        "--armonik-start-delay",
        "0.05",
        "--armonik-worker",
        sock,
        "--armonik-data-root",
        str(tmp_path / "data"),
    ]
    agent_channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    worker = ArmoniKWorker(agent_channel, processor, logger=ClefLogger("worker", level=logging.CRITICAL))
    worker_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_WorkerServicer_to_server(worker, worker_server)
    worker_server.add_insecure_port(sock)
    worker_server.start()
    try:
        with ServerProcess(args) as first, grpc.insecure_channel(first.grpc_address) as channel:
            stubs = Stubs(channel)
            sid = stubs.sessions.CreateSession(
                sc.CreateSessionRequest(default_task_option=task_options(), partition_ids=[])
            ).session_id
            payload = create_data(stubs, sid, payload=b"hold")["payload"]
            output = create_metadata(stubs, sid, "out")["out"]
            [task] = ArmoniKTasks(channel).submit_tasks(sid, [TaskDefinition(payload, [output])])
            assert made.wait(30) and seen == [task.id]
            first.stop(signal.SIGKILL)
        with ServerProcess(args) as second, grpc.insecure_channel(second.grpc_address) as channel:
            ArmoniKEvents(channel).wait_for_result_availability(output, sid)
            assert ArmoniKResults(channel).download_result_data(output, sid) == b"HOLD"
            tasks = {t.id: t for t in _tasks(Stubs(channel))}
            assert tasks[task.id].status == TaskStatus.TASK_STATUS_RETRIED
            assert tasks[f"{task.id}###1"].status == TaskStatus.TASK_STATUS_COMPLETED
            assert seen == [task.id, f"{task.id}###1"]
            # What the lost run made does not land: its subtask is cancelled, its results aborted.
            [child] = [t for t in tasks.values() if t.created_by == task.id]
            assert child.status in (TaskStatus.TASK_STATUS_CANCELLING, TaskStatus.TASK_STATUS_CANCELLED)
            made_results = {r.name: r.status for r in _results_of(Stubs(channel), sid)}
            assert made_results["side"] == made_results["sub-in"] == ResultStatus.RESULT_STATUS_ABORTED
    finally:
        release.set()
        worker_server.stop(0)
        agent_channel.close()


def _count_by_status(stubs: Stubs, session_id: str) -> dict[int, int]:
    condition = tfl.FilterField(
        field=tf.TaskField(
            task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_SESSION_ID)
        ),
        filter_string=fc.FilterString(value=session_id, operator=fc.FILTER_STRING_OPERATOR_EQUAL),
    )
    filters = tfl.Filters(**{"or": [tfl.FiltersAnd(**{"and": [condition]})]})
    reply = stubs.tasks.CountTasksByStatus(tc.CountTasksByStatusRequest(filters=filters))
    return {c.status: c.count for c in reply.status}


@pytest.mark.slow  # bounded load of several seconds, then a restart
def test_twenty_clients_update_and_list_the_same_sessions_and_every_update_lasts(tmp_path: Path) -> None:
    db = tmp_path / "ark.db"
    lock = threading.Lock()
    tasks: dict[str, str] = {}  # task id -> session
    cancelled: set[str] = set()
    errors: list[str] = []
    with ServerProcess(_args(db)) as first, grpc.insecure_channel(first.grpc_address) as channel:
        stubs = Stubs(channel)
        sessions = [
            stubs.sessions.CreateSession(
                sc.CreateSessionRequest(default_task_option=task_options(), partition_ids=[])
            ).session_id
            for _ in range(4)
        ]
        payloads = {sid: create_data(stubs, sid, p=b"x")["p"] for sid in sessions}
        stop = time.monotonic() + 2.0  # bounded: 20 clients for two seconds

        def client(n: int) -> None:
            rng = random.Random(n)
            with grpc.insecure_channel(first.grpc_address) as own:
                mine = Stubs(own)
                while time.monotonic() < stop:
                    sid = rng.choice(sessions)
                    out = create_metadata(mine, sid, f"c{n}")[f"c{n}"]
                    creation = tc.SubmitTasksRequest.TaskCreation(
                        payload_id=payloads[sid], expected_output_keys=[out]
                    )
                    reply = mine.tasks.SubmitTasks(
                        tc.SubmitTasksRequest(session_id=sid, task_creations=[creation])
                    )
                    with lock:
                        tasks[reply.task_infos[0].task_id] = sid
                        victim = rng.choice(list(tasks))
                    mine.tasks.CancelTasks(tc.CancelTasksRequest(task_ids=[victim]))
                    with lock:
                        cancelled.add(victim)
                    page = _session_tasks(mine, sid, rng.randrange(3))
                    ids = [t.id for t in page.tasks]
                    if len(ids) != len(set(ids)) or len(ids) > 50:
                        errors.append(f"torn page: {ids}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors and len(tasks) >= 20
        first.stop(signal.SIGKILL)
    with ServerProcess(_args(db)) as second, grpc.insecure_channel(second.grpc_address) as channel:
        stubs = Stubs(channel)
        for sid in sessions:
            mine = [t for t, s in tasks.items() if s == sid]
            expected = Counter(
                TaskStatus.TASK_STATUS_CANCELLING if t in cancelled else TaskStatus.TASK_STATUS_SUBMITTED
                for t in mine
            )
            assert _count_by_status(stubs, sid) == dict(expected)
            listed = []
            for page in range(len(mine) // 50 + 1):
                reply = _session_tasks(stubs, sid, page)
                assert reply.total == len(mine)
                listed.extend(t.id for t in reply.tasks)
            assert sorted(listed) == sorted(mine)


def _session_tasks(stubs: Stubs, session_id: str, page: int) -> Any:
    condition = tfl.FilterField(
        field=tf.TaskField(
            task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_SESSION_ID)
        ),
        filter_string=fc.FilterString(value=session_id, operator=fc.FILTER_STRING_OPERATOR_EQUAL),
    )
    return stubs.tasks.ListTasks(
        tc.ListTasksRequest(
            page=page,
            page_size=50,
            filters=tfl.Filters(**{"or": [tfl.FiltersAnd(**{"and": [condition]})]}),
            sort=tc.ListTasksRequest.Sort(
                field=tf.TaskField(
                    task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_CREATED_AT)
                ),
                direction=SORT_DIRECTION_ASC,
            ),
        )
    )


def test_resume_fails_a_lost_run_without_retries_left_and_queues_acquired_tasks_again() -> None:
    from protoconform.mockserver.apis.armonik.options import parse
    from protoconform.mockserver.apis.armonik.state import ArmonikState, Result, Session, Task
    from protoconform.mockserver.clock import Clock

    state = ArmonikState(parse({}), Clock(0), None)
    now = state.now()
    state.add_session(Session("s", ["default"], task_options(), now))
    state.add_result(Result("out", "s", "out", now, owner_task_id="last"))
    last = Task("last", "s", task_options(max_retries=1), "p", now, expected_output_ids=["out"])
    last.retry_of_ids = ["first"]  # its one retry is used up
    last.status = TaskStatus.TASK_STATUS_PROCESSING
    acquired = Task("acq", "s", task_options(), "p", now, status=TaskStatus.TASK_STATUS_DISPATCHED)
    for task in (last, acquired):
        state.add_task(task)
    state.engine.resume()
    assert last.status == TaskStatus.TASK_STATUS_ERROR and "lost" in last.output_error
    assert state.results.get("out").status == ResultStatus.RESULT_STATUS_ABORTED
    assert acquired.status == TaskStatus.TASK_STATUS_SUBMITTED and state.engine.queued == 1
