"""Compile the .proto files of this folder into a ``FileDescriptorSet``, at build time.

setup.py's ``build_protos`` step loads this file by path (the package is not
importable while it is being built) and writes the result next to the built
package as ``descriptors.binpb``; ``protoconform.protos`` reads that file at run
time.  Nothing here runs when the package is merely imported, so this module
imports only the standard library and protobuf at the top: grpc_tools is
imported when a compile actually happens.

For a source checkout (an editable install, where the package is the source
folder) ``python -m protoconform.protos.build`` writes the file into this folder.

Imports are resolved from, in order: this folder, grpc_tools' bundled
well-known types, the ``googleapis-common-protos`` tree (``google/api/*.proto``)
and, for files that exist only as generated ``*_pb2`` modules (the flyteidl
wheel ships no ``.proto`` sources), descriptors taken from protobuf's default
pool and handed to protoc with ``--descriptor_set_in``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool

DESCRIPTOR_SET = "descriptors.binpb"
HERE = Path(__file__).resolve().parent

_IMPORT_RE = re.compile(rb'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)

# protoc warnings caused by deliberate choices in our sources.
_EXPECTED_WARNINGS = (
    # run.proto keeps the real server's import list: nothing in it names api.Error
    # any more, but the error types must stay in RunService's import closure.
    "Import backend/api/error.proto is unused.",
)

log = logging.getLogger(__name__)


# The package re-exports it; setup.py loads this file on its own, by path.
class ProtoCompileError(RuntimeError):
    """Our descriptors cannot be compiled or loaded (missing, stale, unusable); the message says why."""


def proto_files(root: Path = HERE) -> list[str]:
    """Names of the .proto files below ``root``, relative to it (posix, sorted)."""
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.proto"))


def compile_descriptor_set(root: Path = HERE) -> bytes:
    """Run protoc on the sources below ``root``.

    Returns a deterministic serialized ``FileDescriptorSet`` of only those
    files, dependencies first.
    """
    root = root.resolve()
    sources = {name: (root / name).read_bytes() for name in proto_files(root)}
    if not sources:
        raise ProtoCompileError(f"no .proto files below {root}")
    include_dirs = _include_dirs(root)
    imports = {match.decode() for content in sources.values() for match in _IMPORT_RE.findall(content)}
    external = sorted(imports - set(sources))
    # Files no include dir holds come from the default pool (generated modules only).
    from_pool = [name for name in external if not any((d / name).is_file() for d in include_dirs)]
    pool_set = _descriptor_set(load_into_default_pool(from_pool))

    with tempfile.TemporaryDirectory(prefix="protoconform-build-") as scratch:
        set_in, set_out = Path(scratch, "imports.binpb"), Path(scratch, "compiled.binpb")
        set_in.write_bytes(pool_set.SerializeToString(deterministic=True))
        args = [f"--proto_path={d}" for d in include_dirs]
        args += [f"--descriptor_set_in={set_in}", f"--descriptor_set_out={set_out}", "--include_imports"]
        args += [str(root / name) for name in sources]
        code, diagnostics = _run_protoc(args)
        if code != 0:
            raise ProtoCompileError(f"protoc failed (exit {code}) on {root}:\n{diagnostics.strip()}")
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


def write_descriptor_set(target: Path, root: Path = HERE) -> Path:
    """Compile the sources below ``root`` and write the result to ``target`` atomically."""
    payload = compile_descriptor_set(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".binpb", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp_name, 0o644)  # mkstemp's 0600 would travel into wheels
        # Always replaced, even when unchanged: the run-time staleness check
        # compares its mtime with the sources'.
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _include_dirs(root: Path) -> list[Path]:
    import grpc_tools  # only a compile needs protoc

    dirs = [root, Path(grpc_tools.__file__).resolve().parent / "_proto"]
    spec = importlib.util.find_spec("google.api.annotations_pb2")
    if spec is not None and spec.origin is not None:
        dirs.append(Path(spec.origin).resolve().parents[2])  # <root>/google/api/annotations_pb2.py
    return dirs


def _run_protoc(args: list[str]) -> tuple[int, str]:
    """Run grpcio-tools' protoc in a child process; return its exit code and diagnostics.

    A child process, because protoc writes its diagnostics straight to file
    descriptor 2.
    """
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", *args], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stderr


# -- descriptors of imported files ---------------------------------------------


def load_into_default_pool(names: Iterable[str]) -> list[descriptor.FileDescriptor]:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m protoconform.protos.build",
        description=f"Compile the package's .proto files into {DESCRIPTOR_SET} (for source checkouts).",
    )
    parser.add_argument(
        "--output", type=Path, default=HERE / DESCRIPTOR_SET, help="where to write (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(message)s")
    try:
        target = write_descriptor_set(args.output)
    except (ProtoCompileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
