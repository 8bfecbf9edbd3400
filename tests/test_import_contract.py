"""The layers point one way (protos <- specs <- {mockserver, conformance} <- load), checked by import-linter,
and only load/ imports locust and gevent (locust patches the interpreter it is imported in).

The contracts live in pyproject.toml; the first test holds the installed code to
them, the others show each fails when a module below load/ breaks it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import protoconform.conformance
import protoconform.specs

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
LINT = Path(sys.executable).with_name("lint-imports")
FOLDERS = ("protos", "specs", "mockserver", "conformance", "load")


def _lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(PYPROJECT), "--no-cache"],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_code_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def _copy_tree(tmp_path: Path) -> Path:
    installed = {
        "specs": Path(protoconform.specs.__file__).parent,
        "conformance": Path(protoconform.conformance.__file__).parent,
    }
    tree = tmp_path / "protoconform"
    for folder in FOLDERS:
        source = installed.get(folder) or installed["specs"].parent / folder
        shutil.copytree(source, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def test_a_harness_module_importing_the_mock_breaks_the_contract(tmp_path: Path) -> None:
    """A copy of the package tree with one conformance -> mockserver import added."""
    tree = _copy_tree(tmp_path)
    (tree / "conformance" / "peek.py").write_text("from protoconform.mockserver import dispatch\n")
    result = _lint(tmp_path, {"PYTHONPATH": str(tmp_path), "PYTHONNOUSERSITE": "1"})
    assert result.returncode != 0, result.stdout
    assert "protoconform.conformance.peek -> protoconform.mockserver.dispatch" in result.stdout


def test_a_mock_module_importing_locust_breaks_the_contract(tmp_path: Path) -> None:
    """Locust imported below load/ would gevent-patch the mock serving in that process."""
    tree = _copy_tree(tmp_path)
    (tree / "mockserver" / "swarm.py").write_text("import locust\n")
    (tree / "specs" / "users.py").write_text("from protoconform.load import grpc_user\n")
    result = _lint(tmp_path, {"PYTHONPATH": str(tmp_path), "PYTHONNOUSERSITE": "1"})
    assert result.returncode != 0, result.stdout
    assert "only load imports locust and gevent BROKEN" in result.stdout
    assert "protoconform.mockserver.swarm -> locust" in result.stdout
    assert "protoconform.specs.users -> protoconform.load.grpc_user" in result.stdout
