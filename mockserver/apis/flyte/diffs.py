"""Digests and differences of registered specs, as flyteadmin reports a changed re-registration.

flyteadmin hashes the compiled entity; a second registration under the same id
is ALREADY_EXISTS when the hash matches and INVALID_ARGUMENT listing the
differences (``path:\\n\\t- old \\n\\t+ new``) when it does not.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from google.protobuf import json_format, message

MAX_DIFF = 3 * 1024 * 1024


def digest(msg: message.Message) -> bytes:
    return hashlib.sha256(msg.SerializeToString(deterministic=True)).digest()


def _walk(old: Any, new: Any, path: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _walk(old.get(key), new.get(key), f"{path}/{key}", out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            _walk(a, b, f"{path}/{index}", out)
    elif old != new:
        shown_old = "" if old is None else json.dumps(old, sort_keys=True)
        shown_new = "" if new is None else json.dumps(new, sort_keys=True)
        out.append(f"{path or '/'}:\n\t- {shown_old} \n\t+ {shown_new}")


def difference(old: message.Message, new: message.Message) -> str:
    """The changed paths between two messages, one block per path."""
    out: list[str] = []
    _walk(
        json_format.MessageToDict(old, preserving_proto_field_name=True),
        json_format.MessageToDict(new, preserving_proto_field_name=True),
        "",
        out,
    )
    text = "\n".join(out) + ("\n" if out else "")
    return text[:MAX_DIFF]
