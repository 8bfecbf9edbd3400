"""Scenario parameters (sizes, weights, pauses) from the environment ``protoconform load`` sets.

``protoconform load --param tasks=20`` reaches a user as ``PROTOCONFORM_LOAD_PARAM_TASKS=20``;
workers of a distributed run take their own ``--param`` options. Plain functions, no locust, so
the command line can list scenarios without importing it.
"""

from __future__ import annotations

import itertools
import os
import secrets

PARAM_PREFIX = "PROTOCONFORM_LOAD_PARAM_"
_serial = itertools.count(1)


def env_name(name: str) -> str:
    return PARAM_PREFIX + name.upper().replace("-", "_").replace(".", "_")


def number(name: str, default: float) -> float:
    """A number parameter; a value that is not one names the parameter."""
    text = os.environ.get(env_name(name), "")
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"scenario parameter {name}={text!r} is not a number") from None


def count(name: str, default: int, low: int = 1, high: int = 10_000) -> int:
    """A whole-number parameter held to [low, high] (sizes stay bounded)."""
    value = number(name, default)
    if value != int(value) or not low <= value <= high:
        raise ValueError(f"scenario parameter {name}={value:g} must be a whole number in [{low}, {high}]")
    return int(value)


def namespace(kind: str) -> str:
    """A name prefix no other user (of this or another process) uses: each user's state is its own."""
    return f"lt-{kind}-{os.getpid()}-{next(_serial)}-{secrets.token_hex(3)}"
