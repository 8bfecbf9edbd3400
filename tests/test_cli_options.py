"""Bad command-line options: one line naming the option, the subcommand's usage, exit 2, no traceback.

Every case is a parse error, so no server starts; the real CLI runs in a subprocess.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "protoconform.mockserver"]
TIMEOUT = 60  # a parse error answers in about a second; a server that started would hang here


def _prog(args: list[str]) -> str:
    """The (sub)command the arguments name: ``protoconform specs extract``."""
    return " ".join(["protoconform", *itertools.takewhile(lambda a: not a.startswith("-"), args)])


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False)


BAD = [
    (["serve", "--port", "99999"], "--port"),
    (["serve", "--http-port", "-1"], "--http-port"),
    (["serve", "--host", ""], "--host"),
    (["serve", "--defect", "nope"], "--defect"),
    (["serve", "--clock-speed", "-1"], "--clock-speed"),
    (["serve", "--max-pending-calls", "0"], "--max-pending-calls"),
    (["serve", "--kfp-task-seconds", "-5"], "--kfp-task-seconds"),
    (["serve", "--kfp-task-seconds", "inf"], "--kfp-task-seconds"),
    (["serve", "--kfp-experiment", "=id-only"], "--kfp-experiment"),
    (["serve", "--kfp-pipeline", "x=/nonexistent"], "--kfp-pipeline"),
    (["serve", "--kfp-pipeline", "no-file"], "--kfp-pipeline"),
    (["serve", "--armonik-partition", "gpu:priority=abc"], "--armonik-partition"),
    (["serve", "--armonik-partition", "gpu:preemption=101"], "--armonik-partition"),
    (["serve", "--armonik-partition", "gpu:colour=red"], "--armonik-partition"),
    (["serve", "--armonik-partition", "a", "--armonik-partition", "a"], "--armonik-partition"),
    (["serve", "--armonik-default-partition", "gpu"], "--armonik-default-partition"),
    (["serve", "--armonik-dispatch-delay", "-1"], "--armonik-dispatch-delay"),
    (["serve", "--armonik-cancel-delay", "abc"], "--armonik-cancel-delay"),
    (["serve", "--armonik-max-priority", "0"], "--armonik-max-priority"),
    (["serve", "--armonik-max-parallel", "1.5"], "--armonik-max-parallel"),
    (["serve", "--armonik-chunk-size", "-3"], "--armonik-chunk-size"),
    (["serve", "--armonik-worker", "nohost"], "--armonik-worker"),
    (["serve", "--armonik-worker-agent", "host:0"], "--armonik-worker-agent"),
    (["serve", "--armonik-data-root", "/etc/hostname/inside"], "--armonik-data-root"),
    (["serve", "--armonik-compat", "other"], "--armonik-compat"),
    (["serve", "--api", "nope"], "--api"),
    (["check", "--target", "nohost"], "--target"),
    (["check", "--target", "host:99999"], "--target"),
    (["check", "--target", "h:1", "--max-examples", "0"], "--max-examples"),
    (["check", "--target", "h:1", "--seed", "x"], "--seed"),
    (["check", "--target", "h:1", "--rest", "ftp://x"], "--rest"),
    (["check", "--target", "h:1", "--control", "http://x:99999"], "--control"),
    (["check", "--target", "h:1", "--call-timeout", "0"], "--call-timeout"),
    (["check", "--target", "h:1", "--ca", "/nonexistent.pem"], "--ca"),
    (["check", "--target", "h:1", "--api", "nope"], "--api"),
    (["check", "--target", "h:1", "--json", "/proc/no-report.json"], "--json"),
    (["check", "--target", "h:1", "--html", "/"], "--html"),
    (["check", "--target", "h:1", "--junit", "/dev/null/x.xml"], "--junit"),
    (["specs", "extract", "--seeds", "/nonexistent", "--out", "X"], "--seeds"),
    (["specs", "extract", "--seeds", "."], "--out"),
    (["specs", "drift", "--family", "nope"], "--family"),
]


@pytest.fixture(scope="module")
def bad_runs() -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """Every BAD case run up front, four at a time: each is a fresh interpreter (most of its
    half second is start-up), so the cases take a fraction of the time; each test judges its own."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda args: _run(*args), [args for args, _ in BAD]))
    return {tuple(args): run for (args, _), run in zip(BAD, runs, strict=True)}


@pytest.mark.parametrize(("args", "option"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_option_is_one_line_naming_it(
    args: list[str], option: str, bad_runs: dict[tuple[str, ...], subprocess.CompletedProcess[str]]
) -> None:
    result = bad_runs[tuple(args)]
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{_prog(args)}: error: "), last
    assert option in last, last


@pytest.mark.parametrize(
    "args",
    [["serve", "--bogus"], ["check", "--target", "h:1", "--bogus"], ["specs", "drift", "--bogus"]],
    ids=["serve", "check", "specs drift"],
)
def test_an_unknown_flag_shows_the_subcommand_usage(args: list[str]) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"usage: {_prog(args)} "), result.stderr[:200]
    assert result.stderr.strip().splitlines()[-1] == f"{_prog(args)}: error: unrecognized arguments: --bogus"


def _drift_into(stdout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "specs", "drift", "--json"],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_a_reader_that_stops_after_one_line_gets_no_traceback() -> None:
    with subprocess.Popen(
        [*CLI, "specs", "drift", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline()
        process.stdout.close()  # like `| head -1`
        errors = process.stderr.read()
        process.wait(timeout=TIMEOUT)
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
    assert process.returncode in (0, 1, 141)  # 0/1: drift's answer, when it was written before the close


def test_a_closed_stdout_exits_quietly_with_141() -> None:
    """The same, without the race: the reading end is closed before anything is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = _drift_into(write)
    finally:
        os.close(write)
    assert result.stderr == ""
    assert result.returncode == 141


def test_extract_writes_only_where_told(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    out = tmp_path / "new" / "inventory"
    result = _run("specs", "extract", "--seeds", str(seeds), "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert out.is_dir()


def test_a_checked_data_root_is_not_left_behind(tmp_path: Path) -> None:
    """Checking that --armonik-data-root can be created does not create it (a later error stops serve)."""
    root = tmp_path / "a" / "b"
    result = _run("serve", "--armonik-data-root", str(root), "--port", "99999")
    assert result.returncode == 2
    assert not (tmp_path / "a").exists()
