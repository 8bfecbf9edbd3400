"""What an install pulls in: the base install serves without the harness, and the harness joins an
existing test environment without forcing its pytest or Hypothesis version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HARNESS = {"pytest", "hypothesis", "schemathesis"}


def _venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    return where / "bin" / "python"


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _installed(python: Path) -> dict[str, str]:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    return {name.lower(): version for name, _, version in (line.partition("==") for line in listed.split())}


def test_the_base_install_serves_without_the_harness(tmp_path: Path) -> None:
    python = _venv(tmp_path / "base")
    _pip(python, "-c", str(ROOT / "constraints.txt"), str(ROOT))
    installed = _installed(python)
    assert "protoconform" in installed
    assert not HARNESS & set(installed), sorted(HARNESS & set(installed))
    help_text = subprocess.run(
        [str(python), "-m", "protoconform.mockserver", "serve", "--help"], capture_output=True, text=True
    )
    assert help_text.returncode == 0 and "--max-pending-calls" in help_text.stdout
    refused = subprocess.run(
        [str(python), "-m", "protoconform.mockserver", "check", "--target", "127.0.0.1:1"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "protoconform[check]" in refused.stderr


def test_the_harness_joins_an_environment_with_other_test_versions(tmp_path: Path) -> None:
    """An existing environment with an older pytest and Hypothesis minor keeps them."""
    python = _venv(tmp_path / "theirs")
    _pip(python, "pytest==8.4.2", "hypothesis==6.140.0")
    _pip(python, f"{ROOT}[check]")
    installed = _installed(python)
    assert installed["pytest"] == "8.4.2" and installed["hypothesis"] == "6.140.0", installed
    assert "schemathesis" in installed
