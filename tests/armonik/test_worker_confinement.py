"""The built-in Worker touches nothing outside the server's data root.

``protoconform serve --armonik-data-root ROOT`` runs as a child process; the test
sends ``Worker.Process`` requests whose folder or file names try to leave ROOT
(absolute paths, ``..``, symbolic links pointing out, NUL bytes, empty names,
separators).  Each is INVALID_ARGUMENT naming the field, with a message that is
the same whether the outside path exists or not, and nothing outside ROOT is
read, changed or created.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from akutil import manual_server, rpc_error, state, task_options
from armonik.protogen.common.worker_common_pb2 import ProcessRequest
from armonik.protogen.worker.worker_service_pb2_grpc import WorkerStub
from protoconform.mockserver.apis.armonik import dataroot
from protoconform.mockserver.launcher import ServerProcess

FOLDER_MESSAGE = "data_folder: must be a folder inside the server's data root"
NAME_FIELDS = ("payload_id", "data_dependencies[0]", "expected_output_keys[0]")


def name_message(field: str) -> str:
    return f"{field}: must be a plain file name inside data_folder"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/`` (the data root, with ``work/`` and links pointing out) next to ``outside/``."""
    base = tmp_path_factory.mktemp("confinement")
    outside = base / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret").write_bytes(b"secret")
    (outside / "folder" / "payload").write_bytes(b"outside payload")
    work = base / "root" / "work"
    work.mkdir(parents=True)
    (work / "payload").write_bytes(b"payload;")
    (work / "dep").write_bytes(b"dep;")
    (work / "link-file").symlink_to(outside / "secret")
    (work / "link-missing").symlink_to(outside / "missing")
    (work / "link-dir").symlink_to(outside / "folder")
    (work / "link-dir-missing").symlink_to(outside / "missing-folder")
    (base / "root" / "linked-folder").symlink_to(outside / "folder")
    (base / "root" / "linked-missing").symlink_to(outside / "missing-folder")
    return base


@pytest.fixture(scope="module")
def worker(layout: Path) -> Iterator[WorkerStub]:
    args = ["--api", "armonik", "--armonik-data-root", str(layout / "root")]
    with ServerProcess(args) as server, grpc.insecure_channel(server.grpc_address) as channel:
        yield WorkerStub(channel)


def request(folder: str, payload: str = "payload", dep: str = "dep", out: str = "out") -> ProcessRequest:
    return ProcessRequest(
        communication_token="token",
        session_id="session",
        task_id="task",
        task_options=task_options(options={"mock.duration": "0"}),
        payload_id=payload,
        data_dependencies=[dep],
        expected_output_keys=[out],
        data_folder=folder,
    )


def snapshot(base: Path) -> dict[str, tuple[bytes, int]]:
    """Every entry under ``base`` with its content (files) and modification time, links not followed."""
    seen = {}
    for folder, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            content = Path(path).read_bytes() if stat.S_ISREG(info.st_mode) else b""
            seen[os.path.relpath(path, base)] = (content, info.st_mtime_ns)
    return seen


def refused(worker: WorkerStub, message: ProcessRequest) -> str:
    error = rpc_error(worker.Process, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (message, error.details())
    return error.details() or ""


def folder_pairs(base: Path) -> list[tuple[str, str]]:
    """Data folders leaving the root: (one whose target exists, the same shape with a missing target)."""
    root, outside = base / "root", base / "outside"
    return [
        (str(outside / "folder"), str(outside / "missing-folder")),
        (str(outside / "secret"), str(outside / "missing")),  # a file, not a folder
        ("/", "/nonexistent-protoconform"),
        ("../outside/folder", "../outside/missing-folder"),  # relative: taken inside the root first
        (f"{root}/work/../../outside/folder", f"{root}/work/../../outside/missing-folder"),
        (str(root / "linked-folder"), str(root / "linked-missing")),  # a link inside the root pointing out
        ("linked-folder", "linked-missing"),
        (f"{root}/work\0", f"{root}/missing\0"),
    ]


def name_pairs(base: Path) -> list[tuple[str, str]]:
    """File names leaving data_folder: (target exists, target missing); the same for every field."""
    outside = base / "outside"
    return [
        (str(outside / "secret"), str(outside / "missing")),
        ("../../outside/secret", "../../outside/missing"),
        ("../dep", "../missing"),  # even inside the root: one component only
        ("link-file", "link-missing"),  # a link inside data_folder pointing out
        ("link-dir", "link-dir-missing"),
        ("..", "."),
        ("work/dep", "work/missing"),
        ("sub\\dep", "sub\\missing"),
        ("dep\0", "missing\0"),
    ]


def test_folders_leaving_the_root_are_refused(worker: WorkerStub, layout: Path) -> None:
    before = snapshot(layout)
    for present, missing in folder_pairs(layout):
        messages = [refused(worker, request(folder)) for folder in (present, missing)]
        assert messages == [FOLDER_MESSAGE, FOLDER_MESSAGE], (present, missing, messages)
    assert snapshot(layout) == before  # nothing read into an output, written, or created


def test_names_leaving_the_folder_are_refused(worker: WorkerStub, layout: Path) -> None:
    before = snapshot(layout)
    folder = str(layout / "root" / "work")
    for present, missing in name_pairs(layout):
        for field in NAME_FIELDS:
            key = {"payload_id": "payload", "data_dependencies[0]": "dep", "expected_output_keys[0]": "out"}
            messages = [refused(worker, request(folder, **{key[field]: name})) for name in (present, missing)]
            assert messages == [name_message(field)] * 2, (field, present, missing, messages)
    assert snapshot(layout) == before  # in particular outside/secret is neither read out nor truncated


def test_empty_names_are_refused(worker: WorkerStub, layout: Path) -> None:
    folder = str(layout / "root" / "work")
    assert refused(worker, request("")).startswith("data_folder: ")
    assert refused(worker, request(folder, payload="")).startswith("payload_id: ")
    assert refused(worker, request(folder, dep="")) == name_message("data_dependencies[0]")
    assert refused(worker, request(folder, out="")) == name_message("expected_output_keys[0]")


def test_a_refused_output_writes_no_other_output(worker: WorkerStub, layout: Path) -> None:
    message = request(str(layout / "root" / "work"))
    message.expected_output_keys[:] = ["first", "../escape"]
    assert refused(worker, message) == name_message("expected_output_keys[1]")
    assert not (layout / "root" / "work" / "first").exists() and not (layout / "root" / "escape").exists()


def test_inside_the_root_it_still_works(worker: WorkerStub, layout: Path) -> None:
    root = layout / "root"
    outside = snapshot(layout / "outside")
    for folder in (str(root / "work"), "work", f"{root}/work/../work"):
        assert worker.Process(request(folder)).output.WhichOneof("type") == "ok"
        assert (root / "work" / "out").read_bytes() == b"payload;dep;"
        (root / "work" / "out").unlink()
    (root / "payload").write_bytes(b"at the root;")  # the root itself is a valid data folder
    (root / "dep").write_bytes(b"")
    assert worker.Process(request(str(root))).output.WhichOneof("type") == "ok"
    assert (root / "out").read_bytes() == b"at the root;"
    assert snapshot(layout / "outside") == outside


def test_missing_inputs_inside_the_root(worker: WorkerStub, layout: Path) -> None:
    work = str(layout / "root" / "work")
    for field, change in (
        ("payload_id", {"payload": "nothing"}),
        ("data_dependencies[0]", {"dep": "nothing"}),
    ):
        error = rpc_error(worker.Process, request(work, **change))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error.details() == f"{field}: 'nothing' not found in data_folder"
    error = rpc_error(worker.Process, request("no-such-folder"))  # inside the root, missing
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "payload_id: 'payload' not found in data_folder"


def test_default_root_is_private_and_temporary(tmp_path: Path) -> None:
    outside = tmp_path / "folder"
    outside.mkdir()
    (outside / "payload").write_bytes(b"x")
    with manual_server() as server:
        root: Any = server.run(lambda: dataroot.data_root(state(server)))
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
        with grpc.insecure_channel(server.grpc_address) as channel:
            assert refused(WorkerStub(channel), request(str(outside), dep="payload")) == FOLDER_MESSAGE
    assert not os.path.exists(root) and os.listdir(outside) == ["payload"]


def test_an_output_is_never_written_through_a_link(worker: WorkerStub, layout: Path) -> None:
    work = layout / "root" / "work"
    (work / "inner-link").symlink_to(work / "dep")  # even one pointing inside the root
    try:
        error = rpc_error(worker.Process, request(str(work), out="inner-link"))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (
            error.details() == "expected_output_keys[0]: cannot write 'inner-link' as a file in data_folder"
        )
        assert (work / "dep").read_bytes() == b"dep;"
    finally:
        (work / "inner-link").unlink()
