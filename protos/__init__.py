"""The .proto sources this project owns, compiled at run time.

:func:`compile_protos` turns every ``*.proto`` below this folder into a
``FileDescriptorSet`` with the protoc bundled in ``grpcio-tools`` (no
generated code).  Imports are resolved from, in order: this folder,
grpc_tools' bundled well-known types, the ``googleapis-common-protos`` tree
(``google/api/*.proto``) and, for files that exist only as generated ``*_pb2``
modules (the flyteidl wheel ships no ``.proto`` sources), descriptors taken from
protobuf's default pool and handed to protoc with ``--descriptor_set_in``.

The result is cached on disk, keyed by the sources and the versions of the
packages that affect it, so a warm start is a file read.  When the cache dir is
not writable the compile still happens and nothing is persisted.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message

__all__ = ["CACHE_DIR_ENV", "PROTO_ROOT", "ProtoCompileError", "compile_protos", "proto_files"]

PROTO_ROOT = Path(__file__).resolve().parent
CACHE_DIR_ENV = "PROTOCONFORM_CACHE_DIR"

# Bump when the cached payload changes meaning (e.g. different protoc flags).
_CACHE_FORMAT = "1"
_CACHE_PREFIX = "protos-"
_CACHE_SUFFIX = ".binpb"
_STALE_AFTER_S = 24 * 3600
# Packages whose versions change the compiled output or the imported descriptors.
_KEY_DISTRIBUTIONS = ("protobuf", "grpcio-tools", "googleapis-common-protos", "flyteidl")
_IMPORT_RE = re.compile(rb'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)

# protoc warnings caused by deliberate choices in our sources.
_EXPECTED_WARNINGS = (
    # run.proto keeps the real server's import list: nothing in it names api.Error
    # any more, but the error types must stay in RunService's import closure.
    "Import backend/api/error.proto is unused.",
)

log = logging.getLogger(__name__)
_lock = threading.Lock()
_memo: dict[str, bytes] = {}  # cache key -> serialized FileDescriptorSet, per process


class ProtoCompileError(RuntimeError):
    """protoc rejected the sources; the message carries its diagnostics."""


def proto_files() -> list[str]:
    """Names of our .proto files relative to :data:`PROTO_ROOT` (posix, sorted)."""
    return sorted(path.relative_to(PROTO_ROOT).as_posix() for path in PROTO_ROOT.rglob("*.proto"))


def compile_protos() -> descriptor_pb2.FileDescriptorSet:
    """Compile our .proto files; only ours are returned, dependencies first.

    Every file they import from elsewhere is loaded into protobuf's default pool
    as a side effect, so each returned file can be added to that pool in order.
    """
    sources = {name: (PROTO_ROOT / name).read_bytes() for name in proto_files()}
    key = _cache_key(sources)
    with _lock:
        payload = _memo.get(key)
        if payload is None:
            payload = _read_cache(key, set(sources))
            if payload is None:
                payload = _compile(sources)
                _write_cache(key, payload)
            _memo[key] = payload
    files = descriptor_pb2.FileDescriptorSet.FromString(payload).file
    _load_into_default_pool(
        {dep for file in files for dep in file.dependency} - {file.name for file in files}
    )
    # Parsed again now that imported option extensions (google.api.http) are
    # registered, so they come back as extensions rather than unknown fields.
    return descriptor_pb2.FileDescriptorSet.FromString(payload)


# -- cache -------------------------------------------------------------------


def _cache_key(sources: dict[str, bytes]) -> str:
    digest = hashlib.sha256(f"format={_CACHE_FORMAT}\n".encode())
    for name in _KEY_DISTRIBUTIONS:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{name}={version}\n".encode())
    for name, content in sorted(sources.items()):
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:32]


def _cache_dir() -> Path:
    if configured := os.environ.get(CACHE_DIR_ENV):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "protoconform"


def _read_cache(key: str, expected: set[str]) -> bytes | None:
    path = _cache_dir() / f"{_CACHE_PREFIX}{key}{_CACHE_SUFFIX}"
    try:
        payload = path.read_bytes()
        cached = descriptor_pb2.FileDescriptorSet.FromString(payload)
    except (OSError, message.DecodeError):  # missing, unreadable or corrupt: recompile
        return None
    return payload if {file.name for file in cached.file} == expected else None


def _write_cache(key: str, payload: bytes) -> None:
    """Persist atomically; a read-only or missing cache dir just means no cache."""
    directory = _cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=_CACHE_SUFFIX, dir=directory)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp_name, directory / f"{_CACHE_PREFIX}{key}{_CACHE_SUFFIX}")
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        return
    # Entries for other sources or package versions are dropped once they are a
    # day old (not at once: two checkouts may share the cache dir).
    cutoff = time.time() - _STALE_AFTER_S
    for stale in directory.glob(f"{_CACHE_PREFIX}*{_CACHE_SUFFIX}"):
        with contextlib.suppress(OSError):
            if stale.name != f"{_CACHE_PREFIX}{key}{_CACHE_SUFFIX}" and stale.stat().st_mtime < cutoff:
                stale.unlink()


# -- compile -----------------------------------------------------------------


def _include_dirs() -> list[Path]:
    import grpc_tools  # deferred: only a cold start needs protoc

    dirs = [PROTO_ROOT, Path(grpc_tools.__file__).resolve().parent / "_proto"]
    spec = importlib.util.find_spec("google.api.annotations_pb2")
    if spec is not None and spec.origin is not None:
        dirs.append(Path(spec.origin).resolve().parents[2])  # <root>/google/api/annotations_pb2.py
    return dirs


def _compile(sources: dict[str, bytes]) -> bytes:
    """Run protoc on our sources; return a FileDescriptorSet of only our files."""
    include_dirs = _include_dirs()
    imports = {match.decode() for content in sources.values() for match in _IMPORT_RE.findall(content)}
    external = sorted(imports - set(sources))
    # Files no include dir holds come from the default pool (generated modules only).
    from_pool = [name for name in external if not any((d / name).is_file() for d in include_dirs)]
    pool_set = _descriptor_set(_load_into_default_pool(from_pool))

    with tempfile.TemporaryDirectory(prefix="protoconform-") as scratch:
        set_in, set_out = Path(scratch, "imports.binpb"), Path(scratch, "compiled.binpb")
        set_in.write_bytes(pool_set.SerializeToString())
        args = [f"--proto_path={d}" for d in include_dirs]
        args += [f"--descriptor_set_in={set_in}", f"--descriptor_set_out={set_out}", "--include_imports"]
        args += [str(PROTO_ROOT / name) for name in sources]
        code, diagnostics = _run_protoc(args)
        if code != 0:
            raise ProtoCompileError(f"protoc failed (exit {code}) on {PROTO_ROOT}:\n{diagnostics.strip()}")
        compiled = descriptor_pb2.FileDescriptorSet.FromString(set_out.read_bytes())
    for line in diagnostics.splitlines():
        if line.strip() and not line.endswith(_EXPECTED_WARNINGS):
            log.warning("protoc: %s", line)

    ours = descriptor_pb2.FileDescriptorSet()
    ours.file.extend(file for file in compiled.file if file.name in sources)  # keeps protoc's order
    missing = set(sources) - {file.name for file in ours.file}
    if missing:
        raise ProtoCompileError(f"protoc output lacks {sorted(missing)}")
    return ours.SerializeToString(deterministic=True)


def _run_protoc(args: list[str]) -> tuple[int, str]:
    """Run grpcio-tools' protoc in a child process; return its exit code and diagnostics.

    A child process, because protoc writes its diagnostics straight to file
    descriptor 2; only a cold start (no cached descriptor set) pays for it.
    """
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", *args], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stderr


# -- descriptors of imported files ---------------------------------------------


def _load_into_default_pool(names: Iterable[str]) -> list[descriptor.FileDescriptor]:
    """Import the generated module of each .proto name and return its descriptor."""
    pool = descriptor_pool.Default()
    files = []
    for name in sorted(names):
        module = name.removesuffix(".proto").replace("/", ".") + "_pb2"
        try:
            importlib.import_module(module)
            files.append(pool.FindFileByName(name))
        except (ImportError, KeyError) as exc:
            raise ProtoCompileError(f"{name}: imported in protos/ but no module {module} defines it") from exc
    return files


def _descriptor_set(files: Iterable[descriptor.FileDescriptor]) -> descriptor_pb2.FileDescriptorSet:
    """The given files and everything they import, dependencies first."""
    result = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(file: descriptor.FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        file.CopyToProto(result.file.add())

    for file in files:
        add(file)
    return result
