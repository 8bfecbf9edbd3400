"""The README's commands run as pasted, in order, on a fresh copy of the checkout.

Every ``sh`` block is run line by line from the copy's root (the first one
creates its ``.venv``), and every ``python`` block with that venv's Python.  A
``protoconform serve`` line starts a server in the background (the tour's keeps
running for the blocks after it; the side examples are started and stopped).
The README's fixed ports are swapped for free ones, as everywhere in the tests.
Two commands are not run, on purpose: ``bash .ci/test`` (it is this very test
suite) and the benchmarks, which run for minutes each (their command line is
checked with ``--help``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.S)
PORT = re.compile(r"\b(5005[0-9]|808[0-9])\b")
READY = re.compile(r"^protoconform ready grpc=\S+ http=\S+( \S+=\S+)*$")  # tls=, auth= when set
NOT_RUN = {"bash .ci/test": "the test command itself"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _commands(text: str) -> list[str]:
    """The command lines of an sh block: continuations joined, comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the tracked files, as a new user clones them."""
    target = tmp_path_factory.mktemp("readme") / "protoconform"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False, timeout=60)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.decode().split("\0")):
            source = ROOT / name
            if source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
    else:  # not a git checkout: everything but local state
        ignore = shutil.ignore_patterns(".venv", ".tools", ".git", "__pycache__", "*.egg-info", "reports")
        shutil.copytree(ROOT, target, ignore=ignore)
    return target


class Servers:
    def __init__(self) -> None:
        self.running: list[subprocess.Popen[str]] = []

    def start(self, command: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.running.append(process)
        deadline = time.monotonic() + 300  # the first server waits for the install before it
        assert process.stdout is not None
        seen = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip())
            if READY.match(line.strip()):
                return process
        raise AssertionError(f"{command!r} never got ready:\n" + "\n".join(seen[-30:]))

    def stop(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop_all(self) -> None:
        for process in self.running:
            self.stop(process)


@pytest.fixture
def servers() -> Iterator[Servers]:
    running = Servers()
    yield running
    running.stop_all()


def test_every_readme_command_runs_as_pasted(checkout: Path, servers: Servers) -> None:
    ports: dict[str, str] = {}

    def local(text: str) -> str:
        return PORT.sub(lambda m: ports.setdefault(m[1], str(_free_port())), text)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = os.pathsep.join([str(ROOT / ".tools" / "node_modules" / ".bin"), env.get("PATH", "")])
    blocks = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert blocks and "venv" in blocks[0][1]
    tour_started = False
    for kind, text in blocks:
        if kind == "python":
            result = subprocess.run(
                [str(checkout / ".venv/bin/python"), "-"],
                input=local(text),
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, f"python block failed:\n{text}\n{result.stdout}{result.stderr}"
            continue
        for command in _commands(text):
            if command.strip() in NOT_RUN:
                continue
            command = local(command)
            if "protoconform serve" in command:
                before, _, serve = command.rpartition(" && ")
                if before:  # the first block: install, then serve
                    done = subprocess.run(
                        before, shell=True, cwd=checkout, env=env, capture_output=True, text=True, timeout=900
                    )
                    assert done.returncode == 0, (
                        f"{before!r} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
                    )
                serve = serve or command
                if "--port" not in serve:  # the default ports, as the README's other commands use them
                    serve += f" --port {local('50051')} --http-port {local('8080')}"
                process = servers.start(serve, checkout, env)
                if tour_started:
                    servers.stop(process)  # a side example: it starts, that is all it shows
                tour_started = True
                continue
            if "load.benchmarks" in command:
                command = command.split("#")[0].strip() + " --help"  # minutes each: check the command only
            done = subprocess.run(
                command, shell=True, cwd=checkout, env=env, capture_output=True, text=True, timeout=900
            )
            assert done.returncode == 0, f"{command!r} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    assert tour_started
