"""A built wheel, installed read-only, serves and checks without protoc and without writing a file.

The .proto files are compiled when the wheel is built; at run time the package
only reads its descriptor set.  The install, HOME and the working directory are
made read-only and, since a root test run ignores file modes, also compared
before and after, as is the (writable) TMPDIR.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from protoconform.mockserver.launcher import READY

PROJECT = Path(__file__).resolve().parents[1]
# grpc_tools must not be needed at run time: a stub that cannot be imported shadows the real one,
# so neither `import grpc_tools` nor a `python -m grpc_tools.protoc` child works.  (grpcio itself
# tries the import for a legacy alias and ignores the ImportError.)
STUB_MESSAGE = "grpc_tools is not available in this run"
STUB = f"raise ImportError({STUB_MESSAGE!r})\n"

# Modules of the [build-system] requirements.
BUILD_MODULES = ("setuptools", "grpc_tools", "google.protobuf", "google.api", "flyteidl")

Snapshot = dict[str, tuple[bool, int, int]]


def _snapshot(root: Path) -> Snapshot:
    """Every entry below ``root``: is-dir, size and modification time."""
    entries: Snapshot = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        is_dir = stat.S_ISDIR(info.st_mode)
        entries[path.relative_to(root).as_posix()] = (is_dir, info.st_size, info.st_mtime_ns)
    return entries


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "-q", *args], cwd=PROJECT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout}{done.stderr}"


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def readonly_install(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A wheel of this checkout installed into a read-only folder, plus a read-only HOME."""
    missing = [name for name in BUILD_MODULES if importlib.util.find_spec(name) is None]
    if missing:  # the wheel is built without isolation, from this venv
        why = f"building the wheel needs {', '.join(missing)} in this environment"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    wheels, install = tmp_path / "wheels", tmp_path / "ro"
    # This venv has the build requirements, so the build runs protoc as an isolated build would.
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), ".")
    (wheel,) = wheels.glob("protoconform-*.whl")
    _pip("install", "--no-deps", "--no-compile", "--target", str(install), str(wheel))
    stubs = tmp_path / "stubs"
    (stubs / "grpc_tools").mkdir(parents=True)
    (stubs / "grpc_tools" / "__init__.py").write_text(STUB)
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    paths = {"install": install, "home": home, "tmp": scratch, "stubs": stubs}
    for path in (install, home, stubs):
        _set_writable(path, False)
    try:
        yield paths
    finally:  # pytest must be able to remove tmp_path
        for path in (install, home, stubs):
            _set_writable(path, True)


def _env(paths: dict[str, Path]) -> dict[str, str]:
    """A clean environment: nothing from this test run leaks in (no XDG_CACHE_HOME, no user site)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(paths["home"]),
        "TMPDIR": str(paths["tmp"]),
        "PYTHONPATH": os.pathsep.join([str(paths["stubs"]), str(paths["install"])]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("LANG", "LC_ALL", "SYSTEMROOT"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _start_server(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str, list[str]]:
    """``serve`` on free ports; the process, its gRPC address and its output so far (still filling)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "protoconform.mockserver", "serve", "--port", "0", "--http-port", "0"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            lines.put(output[-1])
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            pytest.fail("server not ready in 60 s:\n" + "\n".join(output))
        if line is None:
            process.wait()
            pytest.fail(f"server exited ({process.returncode}) before ready:\n" + "\n".join(output))
        if match := READY.match(line):
            return process, match["grpc"], output


def test_readonly_install_serves_and_checks_without_protoc_or_writes(
    readonly_install: dict[str, Path],
) -> None:
    paths = readonly_install
    env = _env(paths)
    cwd = paths["home"]
    before = {name: _snapshot(path) for name, path in paths.items()}

    # The package under test is the read-only install, and grpc_tools is out of reach.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util, protoconform.mockserver, protoconform.protos;"
            "print(protoconform.mockserver.__file__); print(protoconform.protos.__file__);"
            "print(importlib.util.find_spec('grpc_tools').origin);"
            "import grpc_tools",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 1 and STUB_MESSAGE in probe.stderr, probe.stderr
    mockserver_file, protos_file, grpc_tools_origin = probe.stdout.split()
    assert Path(mockserver_file).is_relative_to(paths["install"]), mockserver_file
    assert Path(protos_file).is_relative_to(paths["install"]), protos_file
    assert Path(grpc_tools_origin).is_relative_to(paths["stubs"]), grpc_tools_origin

    process, grpc_address, server_output = _start_server(env, cwd)
    try:
        check = subprocess.run(
            [
                sys.executable,
                "-m",
                "protoconform.mockserver",
                "check",
                "--target",
                grpc_address,
                "--api",
                "kfp",
                "--suite",
                "surface",
                # pytest's output capture would use (unlinked) files in TMPDIR; with it off, no
                # file at all may appear there.
                "--",
                "-s",
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert check.returncode == 0, check.stdout + check.stderr
    assert STUB_MESSAGE not in check.stdout + check.stderr
    assert not any(STUB_MESSAGE in line for line in server_output), "\n".join(server_output)

    after = {name: _snapshot(path) for name, path in paths.items()}
    for name in paths:
        changed = sorted(set(before[name].items()) ^ set(after[name].items()))
        assert not changed, f"written under {name} ({paths[name]}): {changed}"
