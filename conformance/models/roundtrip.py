"""Create, then read back: what was sent must be what is read.

A family lists its :class:`RoundTrip` specs (which method creates, how the
created entity is read, which request paths come back at which response
paths); the check is the same for all.  Only values that were sent non-empty
are compared: servers fill defaults for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import message
from protoconform.conformance import strategies
from protoconform.conformance.caller import Reply
from protoconform.conformance.models.base import Env, expect_codes, fail


@dataclass(frozen=True)
class RoundTrip:
    create: str  # "Service.Method"
    rule: str  # the rule a difference breaks
    base: Callable[[Env], dict[str, Any]]  # a valid request (may create what it needs first)
    read: Callable[[Env, Reply], Reply]  # reads back what ``create`` made
    pairs: tuple[tuple[str, str], ...]  # (request path, read response path)
    vary: tuple[str, ...] = ()  # request paths drawn from their whole type
    fixed: tuple[str, ...] = ()  # request paths kept from the base (ids of existing entities)
    undo: Callable[[Env, Reply], Any] | None = None

    @property
    def name(self) -> str:
        return self.create


def comparable(value: Any) -> Any:
    if isinstance(value, message.Message):
        return strategies.canonical(value)
    if hasattr(value, "items"):
        return {k: comparable(v) for k, v in value.items()}
    return value


def check(env: Env, spec: RoundTrip, request: message.Message) -> None:
    reply = env.rpc(spec.create, request)
    try:
        expect_codes(reply, {"OK"}, spec.rule, "a request keeping every request rule")
        read = spec.read(env, reply)
        expect_codes(read, {"OK"}, spec.rule, "reading back what was created")
        for sent_path, read_path in spec.pairs:
            sent = strategies.values_at(request, sent_path)
            if not sent or any(strategies.is_empty(v) for v in sent):
                continue
            got = strategies.values_at(read.response, read_path)
            if [comparable(v) for v in sent] != [comparable(v) for v in got]:
                raise fail(spec.rule, read, f"{read_path} {sent!r} as sent in {sent_path}", repr(got))
    finally:
        if reply.ok and spec.undo is not None:
            spec.undo(env, reply)
