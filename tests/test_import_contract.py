"""The layers point one way (protos <- specs <- {mockserver, conformance} <- load), checked by import-linter.

The contract lives in pyproject.toml; the first test holds the installed code to
it, the second shows it fails when the harness imports the mock.
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
    assert "1 kept, 0 broken" in result.stdout


def test_a_harness_module_importing_the_mock_breaks_the_contract(tmp_path: Path) -> None:
    """A copy of the package tree with one conformance -> mockserver import added."""
    installed = {
        "specs": Path(protoconform.specs.__file__).parent,
        "conformance": Path(protoconform.conformance.__file__).parent,
    }
    tree = tmp_path / "protoconform"
    for folder in FOLDERS:
        source = installed.get(folder) or installed["specs"].parent / folder
        shutil.copytree(source, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "conformance" / "peek.py").write_text("from protoconform.mockserver import dispatch\n")
    result = _lint(tmp_path, {"PYTHONPATH": str(tmp_path), "PYTHONNOUSERSITE": "1"})
    assert result.returncode != 0, result.stdout
    assert "protoconform.conformance.peek -> protoconform.mockserver.dispatch" in result.stdout
