"""Helpers of the fault tests: ArmoniK calls through the official package's stubs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import pytest
from armonik.protogen.client import (
    results_service_pb2_grpc,
    sessions_service_pb2_grpc,
    versions_service_pb2_grpc,
)
from armonik.protogen.common import (
    objects_pb2,
    results_common_pb2,
    sessions_common_pb2,
    versions_common_pb2,
)
from google.protobuf.duration_pb2 import Duration
from protoconform.conformance.control import ControlClient

VERSIONS = "/armonik.api.grpc.v1.versions.Versions/ListVersions"
DOWNLOAD = "/armonik.api.grpc.v1.results.Results/DownloadResultData"
CHUNK = 4  # bytes per DownloadResultData message: the servers of these tests are started with it
DATA = b"0123456789" * 4  # ten chunks
# The armonik package has no retry of its own: gRPC's, from the channel's service config.
RETRY_POLICY = {
    "methodConfig": [
        {
            "name": [{}],  # every method
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}
RETRYING = [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(RETRY_POLICY))]


@dataclass
class Armonik:
    channel: grpc.Channel

    def __post_init__(self) -> None:
        self.sessions = sessions_service_pb2_grpc.SessionsStub(self.channel)
        self.results = results_service_pb2_grpc.ResultsStub(self.channel)
        self.versions_stub = versions_service_pb2_grpc.VersionsStub(self.channel)

    def versions(self, **kwargs: object) -> versions_common_pb2.ListVersionsResponse:
        return self.versions_stub.ListVersions(versions_common_pb2.ListVersionsRequest(), **kwargs)

    def timed_versions(self) -> float:
        started = time.monotonic()
        self.versions(timeout=30)
        return time.monotonic() - started

    def code(self, **kwargs: object) -> grpc.StatusCode:
        try:
            self.versions(timeout=30, **kwargs)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def reconnects(self) -> bool:
        """Whether the channel gets through again after its connection was reset.

        A call made while the client still tears the dead connection down may
        fail on it too ("Stream removed"), as after any real reset: a few tries.
        """
        return any(self.code(wait_for_ready=True) == grpc.StatusCode.OK for _ in range(5))

    def session(self) -> str:
        request = sessions_common_pb2.CreateSessionRequest(
            default_task_option=objects_pb2.TaskOptions(
                max_duration=Duration(seconds=60), max_retries=1, priority=1
            )
        )
        return self.sessions.CreateSession(request, timeout=30).session_id

    def result_with_data(self, data: bytes = DATA) -> tuple[str, str]:
        session_id = self.session()
        request = results_common_pb2.CreateResultsRequest(
            session_id=session_id,
            results=[results_common_pb2.CreateResultsRequest.ResultCreate(name="r", data=data)],
        )
        result_id = self.results.CreateResults(request, timeout=30).results[0].result_id
        return session_id, result_id

    def download(self, session_id: str, result_id: str) -> tuple[list[bytes], grpc.RpcError | None]:
        """The chunks received, and the error that ended the stream (None when it ended OK)."""
        request = results_common_pb2.DownloadResultDataRequest(session_id=session_id, result_id=result_id)
        chunks: list[bytes] = []
        try:
            for message in self.results.DownloadResultData(request, timeout=30):
                chunks.append(message.data_chunk)
        except grpc.RpcError as exc:
            return chunks, exc
        return chunks, None


class ProxyProcess:
    """``protoconform proxy`` in a child process, as a user runs it; the ready line gives its addresses."""

    def __init__(self, target: str, *args: str) -> None:
        self.args = ["proxy", "--target", target, "--listen", "127.0.0.1:0", "--control-port", "0", *args]
        self.process: subprocess.Popen[str] | None = None
        self.grpc_address = ""
        self.http_url = ""
        self.fields: dict[str, str] = {}  # the ready line's fields after target= (tls=on...)

    def __enter__(self) -> ProxyProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "protoconform.mockserver", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        seen = []
        for line in self.process.stdout:  # the ready line comes first, or the process ends
            seen.append(line)
            match = PROXY_READY.match(line.strip())
            if match:
                self.fields = dict(item.split("=", 1) for item in match["rest"].split())
                scheme = "https" if "tls" in self.fields else "http"
                self.grpc_address, self.http_url = match["grpc"], f"{scheme}://{match['http']}"
                threading.Thread(target=self.process.stdout.read, daemon=True).start()
                return self
        raise RuntimeError("proxy exited before ready:\n" + "".join(seen))

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# Fields after the target (tls=on|mutual, target-tls=on|mutual, control=token) appear only when set.
PROXY_READY = re.compile(
    r"^protoconform proxy ready grpc=(?P<grpc>\S+) http=(?P<http>\S+) target=\S+(?P<rest>(?: \S+=\S+)*)$"
)


@contextmanager
def clean_control(http_url: str) -> Iterator[ControlClient]:
    """A server's control API with no fault rule and fresh state, before and after."""
    client = ControlClient(http_url)
    client.clear_faults()
    client.reset()
    yield client
    client.clear_faults()
    client.close()


def assert_reset_and_reconnect(control: ControlClient, ak: Armonik) -> None:
    """A ``reset`` rule named "reset" on ListVersions: the call ends UNAVAILABLE with the
    transport's words, and the channel's next call gets through."""
    control.add_faults({"name": "reset", "method": VERSIONS, "reset": True, "times": 1})
    with pytest.raises(grpc.RpcError) as caught:
        ak.versions(timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    details = caught.value.details()
    assert "Socket closed" in details or "reset by peer" in details, details
    assert ak.reconnects()
