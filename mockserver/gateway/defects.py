"""Deliberate deviations of the REST gateway, for proving the conformance suite can catch them.

Off by default; switched on through ``server.dispatcher.defects`` (``serve --defect NAME``
or the control API).
"""

from __future__ import annotations

DEFECTS: dict[str, str] = {
    "rest.error-as-200": (
        "a REST route answers HTTP 200 with the error body instead of the status its gRPC code maps to"
    ),
}
