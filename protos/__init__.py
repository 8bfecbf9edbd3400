"""The .proto sources this project owns, compiled when the package is built.

The build (setup.py's ``build_protos`` step, see :mod:`protoconform.protos.build`)
runs protoc once and ships the result as package data, ``descriptors.binpb``: a
``FileDescriptorSet`` of only our files, dependencies first.  At run time
:func:`compile_protos` reads that file; no compiler runs and nothing is
written, so read-only installs and home directories work.

A source checkout that was never built, or whose .proto files changed since,
has no usable file: :func:`compile_protos` then says how to rebuild it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2, message

# The build step's module imports only the standard library and protobuf: one copy of these.
from protoconform.protos.build import (
    DESCRIPTOR_SET,
    ProtoCompileError,
    load_into_default_pool,
    proto_files,
)

__all__ = ["DESCRIPTOR_SET", "PROTO_ROOT", "ProtoCompileError", "compile_protos", "proto_files"]

PROTO_ROOT = Path(__file__).resolve().parent

_REBUILD_HINT = (
    "rebuild it with `python -m protoconform.protos.build` (source checkout or editable install), "
    "or reinstall from the project root: `pip install -e .` or `pip install .`"
)


def compile_protos() -> descriptor_pb2.FileDescriptorSet:
    """Our compiled .proto files, as built with the package; dependencies first.

    Every file they import from elsewhere is loaded into protobuf's default pool
    as a side effect, so each returned file can be added to that pool in order.
    """
    payload = _payload()
    files = descriptor_pb2.FileDescriptorSet.FromString(payload).file
    load_into_default_pool({dep for file in files for dep in file.dependency} - {file.name for file in files})
    # Parsed again now that imported option extensions (google.api.http) are
    # registered, so they come back as extensions rather than unknown fields.
    return descriptor_pb2.FileDescriptorSet.FromString(payload)


@cache
def _payload() -> bytes:
    """The packaged descriptor set, checked against the sources; read once per process."""
    resource = resources.files(__name__).joinpath(DESCRIPTOR_SET)
    try:
        payload = resource.read_bytes()
        names = {file.name for file in descriptor_pb2.FileDescriptorSet.FromString(payload).file}
    except FileNotFoundError:
        raise ProtoCompileError(
            f"{resource} is missing (the .proto files were never compiled); {_REBUILD_HINT}"
        ) from None
    except (OSError, message.DecodeError) as exc:
        raise ProtoCompileError(f"{resource} is unreadable ({exc}); {_REBUILD_HINT}") from exc
    expected = set(proto_files())
    if names != expected:
        differences = [
            f"{label}: {', '.join(sorted(group))}"
            for label, group in (("not compiled", expected - names), ("no longer a source", names - expected))
            if group
        ]
        raise ProtoCompileError(
            f"{resource} does not match the .proto files ({'; '.join(differences)}); {_REBUILD_HINT}"
        )
    _check_fresh(Path(str(resource)))
    return payload


def _check_fresh(compiled: Path) -> None:
    """In a source tree, refuse a descriptor set older than any .proto file.

    Only there: an installed package's files all come from one build, and
    installers do not keep the build's modification times.
    """
    if not (PROTO_ROOT.parent / "setup.py").is_file():  # the protos/ folder of a checkout
        return
    built = compiled.stat().st_mtime_ns
    newer = [name for name in proto_files() if (PROTO_ROOT / name).stat().st_mtime_ns > built]
    if newer:
        raise ProtoCompileError(f"{compiled} is older than {', '.join(newer)}; {_REBUILD_HINT}")
