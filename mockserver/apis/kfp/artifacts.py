"""Artifact objects as the object store holds them for Argo: a gzipped tar of one file.

Bytes are deterministic for a given content and time (fixed tar and gzip
headers), so two reads of the same artifact compare equal byte for byte.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile


def tgz(filename: str, content: bytes, mtime: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(filename)
        info.size = len(content)
        info.mtime = mtime
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def untgz(data: bytes) -> dict[str, bytes]:
    """Files inside an artifact (for tests and the conformance suite)."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            extracted = archive.extractfile(member)
            if extracted is not None:
                files[member.name] = extracted.read()
    return files


def object_key(run_id: str, node_id: str, name: str) -> str:
    return f"artifacts/{run_id}/{node_id}/{name}.tgz"


def run_prefix(run_id: str) -> str:
    return f"artifacts/{run_id}/"


def content(task: str, name: str, path: str, phase: str, attempt: int) -> tuple[str, bytes]:
    """(file name inside the archive, bytes) for an artifact a finished task wrote."""
    if name == "main-logs":
        text = f"{task}: attempt {attempt + 1} started\n{task}: {phase.lower()}\n"
        return "main.log", text.encode()
    filename = posixpath.basename(path) if path else f"{name}.txt"
    if name == "mlpipeline-ui-metadata":
        return filename or "mlpipeline-ui-metadata.json", b'{"outputs": []}'
    if name == "mlpipeline-metrics":
        return filename or "mlpipeline-metrics.json", b'{"metrics": []}'
    return filename or f"{name}.txt", f"{task} {name}\n".encode()
