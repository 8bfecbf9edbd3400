"""Tools outside Python that some end-to-end tests need (installed by ``bash .ci/tools``)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(*names: str) -> str:
    """The path of the first tool of ``names`` on PATH; in CI (``CI=true``) a missing one fails the
    test, elsewhere it skips it (``.ci/tools`` installs them)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    why = f"{' or '.join(names)} is not installed (bash .ci/tools installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)
