"""Helpers of the fault tests: ArmoniK calls through the official package's stubs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
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

VERSIONS = "/armonik.api.grpc.v1.versions.Versions/ListVersions"
DOWNLOAD = "/armonik.api.grpc.v1.results.Results/DownloadResultData"
CHUNK = 4  # bytes per DownloadResultData message: the servers of these tests are started with it
DATA = b"0123456789" * 4  # ten chunks


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
