"""SIGTERM lets in-flight calls finish before the server exits with 0."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from akutil import Stubs, create_data, create_metadata, create_session, submit, task_options
from armonik.protogen.client import submitter_service_pb2_grpc
from armonik.protogen.common import submitter_common_pb2
from armonik.protogen.common.task_status_pb2 import TASK_STATUS_COMPLETED
from protoconform.mockserver.launcher import ServerProcess


def test_sigterm_waits_for_a_call_in_flight() -> None:
    process = ServerProcess(["--api", "armonik"]).start()
    try:
        with grpc.insecure_channel(process.grpc_address) as channel:
            stubs = Stubs(channel)
            session = create_session(stubs)
            payload = create_data(stubs, session, payload=b"x")["payload"]
            output = create_metadata(stubs, session, "out")["out"]
            # The task takes 2 s; WaitForCompletion is in flight while the server is told to stop.
            submit(stubs, session, payload, [output], options=task_options(options={"mock.duration": "2"}))
            wait = submitter_service_pb2_grpc.SubmitterStub(channel).WaitForCompletion
            request = submitter_common_pb2.WaitRequest(
                filter=submitter_common_pb2.TaskFilter(
                    session=submitter_common_pb2.TaskFilter.IdsRequest(ids=[session])
                )
            )
            with ThreadPoolExecutor(1) as pool:
                in_flight = pool.submit(wait, request, timeout=30)
                time.sleep(0.5)
                assert not in_flight.done()
                process.process.send_signal(signal.SIGTERM)
                counts = in_flight.result(30)
        assert {c.status: c.count for c in counts.values} == {TASK_STATUS_COMPLETED: 1}
        assert process.process.wait(15) == 0
    finally:
        process.stop()
