"""Fault rules: latency and failures injected into calls, by method pattern.

One model for both places faults are injected: the mock (an observer of its
dispatcher, :mod:`.control.faults`) and ``protoconform proxy`` (:mod:`.proxy`).
Nothing here knows the dispatcher; a call is its gRPC path, its family (when
known) and its peer.

A rule is a JSON/YAML object (README, "Faults")::

    name: sessions-down                 # unique; default rule-1, rule-2...
    method: "/armonik.api.grpc.v1.sessions.Sessions/*"   # glob on the gRPC path (default "*")
    service: "*.Sessions"               # optional glob on the full service name
    family: armonik                     # optional glob on the method's API family
    latency: 0.4                        # seconds, or [min, max] drawn uniformly
    status: UNAVAILABLE                 # a failure: at most one of status, cut_after, deadline, reset
    message: "try again"
    probability: 0.5                    # of firing when the call is picked (default 1)
    nth: 3                              # only the 3rd matching call; or every: 3 (3rd, 6th...)
    times: 2                            # stops firing after 2 hits

Rules come from the network (control API), so each field is checked and
bounded; a bad rule is a :class:`RuleError` naming the field.

Every matching rule, in order, counts the call; a rule that fires adds its
latency, and the first that fires with a failure decides how the call fails
(later rules are not consulted).  Random draws come from one generator seeded
with ``seed``, so a run with the same seed and the same calls fires the same way.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import logging
import math
import os
import random
import re
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

log = logging.getLogger(__name__)

MAX_RULES = 100
MAX_PATTERN = 256  # characters of a method/service glob
MAX_LATENCY = 300.0  # seconds of latency, or of a held deadline
MAX_MESSAGE = 512  # characters of an injected status message
MAX_COUNT = 1_000_000  # nth, every, times, cut_after
MAX_FILE_BYTES = 1024 * 1024
RESET_GRACE = 5.0  # seconds a reset call waits for its cancellation before answering UNAVAILABLE
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_FIELDS = {
    "name",
    "method",
    "service",
    "family",
    "latency",
    "status",
    "message",
    "probability",
    "nth",
    "every",
    "times",
    "cut_after",
    "deadline",
    "reset",
}
FAILURES = ("status", "cut_after", "deadline", "reset")
KIND_OF = {"status": "status", "cut_after": "cut", "deadline": "deadline", "reset": "reset"}


class RuleError(ValueError):
    """A rule refused; the message names the field."""


class InjectedStatus(Exception):
    """A call that a rule fails with a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def _status_code(value: Any, where: str) -> grpc.StatusCode:
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        for code in grpc.StatusCode:
            if code.value[0] == value and code != grpc.StatusCode.OK:
                return code
    elif isinstance(value, str):
        found = grpc.StatusCode.__members__.get(value.strip().upper())
        if found is not None and found != grpc.StatusCode.OK:
            return found
    names = ", ".join(c.name for c in grpc.StatusCode if c != grpc.StatusCode.OK)
    raise RuleError(f"{where}: {str(value)[:40]!r} is not a gRPC status other than OK ({names}, or 1..16)")


def _number(value: Any, where: str, low: float, high: float) -> float:
    try:
        finite = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits
        finite = False
    if not finite:
        raise RuleError(f"{where}: must be a finite number, not {str(value)[:40]!r}")
    if not low <= value <= high:
        raise RuleError(f"{where}: {value:g} is not within {low:g}..{high:g}")
    return float(value)


def _count(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(f"{where}: must be an integer, not {str(value)[:40]!r}")
    if not low <= value <= MAX_COUNT:
        raise RuleError(f"{where}: {value} is not within {low}..{MAX_COUNT}")
    return value


def _pattern(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise RuleError(f"{where}: must be a non-empty glob string")
    if len(value) > MAX_PATTERN:
        raise RuleError(f"{where}: {len(value)} characters, at most {MAX_PATTERN}")
    return value


@dataclass
class Rule:
    name: str
    method: str = "*"
    service: str | None = None
    family: str | None = None
    latency: tuple[float, float] = (0.0, 0.0)
    kind: str = "latency"  # latency, status, cut, deadline, reset
    code: grpc.StatusCode | None = None
    message: str = ""
    probability: float = 1.0
    nth: int | None = None
    every: int | None = None
    times: int | None = None
    cut_after: int | None = None
    deadline: float | None = None
    matched: int = 0  # calls the rule's patterns matched
    hits: int = 0  # calls the rule fired on

    @classmethod
    def parse(cls, data: Any, default_name: str) -> Rule:
        if not isinstance(data, Mapping):
            raise RuleError(f"rule: must be an object, not {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in _FIELDS)
        if unknown:
            raise RuleError(f"{unknown[0][:40]}: unknown field; known: {', '.join(sorted(_FIELDS))}")
        name = data.get("name", default_name)
        if not isinstance(name, str) or not _NAME.match(name):
            raise RuleError(f"name: {str(name)[:40]!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
        rule = cls(name=name, method=_pattern(data.get("method", "*"), "method"))
        if "service" in data:
            rule.service = _pattern(data["service"], "service")
        if "family" in data:
            rule.family = _pattern(data["family"], "family")
        if "latency" in data:
            rule.latency = _latency(data["latency"])
        failures = [f for f in FAILURES if f in data]
        if "status" in failures and "cut_after" in failures:
            failures.remove("status")  # the status a cut stream ends with
        if len(failures) > 1:
            raise RuleError(f"{failures[1]}: a rule has one failure; {failures[0]} is already set")
        if failures:
            rule.kind = KIND_OF[failures[0]]
        if "status" in data:
            rule.code = _status_code(data["status"], "status")
        if rule.kind == "cut":
            rule.cut_after = _count(data["cut_after"], "cut_after", 0)
            rule.code = rule.code or grpc.StatusCode.UNAVAILABLE
        elif rule.kind == "deadline":
            rule.deadline = _number(data["deadline"], "deadline", 0.0, MAX_LATENCY)
            rule.code = grpc.StatusCode.DEADLINE_EXCEEDED
        elif rule.kind == "reset":
            if data["reset"] is not True:
                raise RuleError("reset: must be true")
            rule.code = grpc.StatusCode.UNAVAILABLE
        if "message" in data:
            if rule.kind == "latency":
                raise RuleError(
                    "message: only a rule that fails a call (status, cut_after, deadline, reset) has one"
                )
            message = data["message"]
            if not isinstance(message, str) or len(message) > MAX_MESSAGE:
                raise RuleError(f"message: must be a string of at most {MAX_MESSAGE} characters")
            rule.message = message
        else:
            rule.message = f"injected fault {name!r}"
        if "probability" in data:
            rule.probability = _number(data["probability"], "probability", 0.0, 1.0)
        if "nth" in data and "every" in data:
            raise RuleError("every: a rule fires on its nth call or on every Nth, not both")
        if "nth" in data:
            rule.nth = _count(data["nth"], "nth", 1)
        if "every" in data:
            rule.every = _count(data["every"], "every", 1)
        if "times" in data:
            rule.times = _count(data["times"], "times", 1)
        if rule.kind == "latency" and rule.latency == (0.0, 0.0):
            raise RuleError("latency: a rule needs latency or a failure (status, cut_after, deadline, reset)")
        return rule

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, path: str, service: str, family: str) -> bool:
        return (
            fnmatch.fnmatchcase(path, self.method)
            and (self.service is None or fnmatch.fnmatchcase(service, self.service))
            and (self.family is None or fnmatch.fnmatchcase(family, self.family))
        )

    def fires(self, rng: random.Random) -> bool:
        """Counts a matching call; whether the rule applies to it."""
        self.matched += 1
        if self.spent:
            return False
        if self.nth is not None and self.matched != self.nth:
            return False
        if self.every is not None and self.matched % self.every:
            return False
        return self.probability >= 1.0 or rng.random() < self.probability

    def as_json(self) -> dict[str, Any]:
        """The rule as it was read (defaults filled in), its kind and counters."""
        low, high = self.latency
        fields: dict[str, Any] = {
            "name": self.name,
            "method": self.method,
            "service": self.service,
            "family": self.family,
            "latency": (low if low == high else [low, high]) if high else None,
            "status": self.code.name if self.kind in ("status", "cut") and self.code else None,
            "cut_after": self.cut_after,
            "deadline": self.deadline,
            "reset": True if self.kind == "reset" else None,
            "message": self.message if self.kind != "latency" else None,
            "probability": self.probability,
            "nth": self.nth,
            "every": self.every,
            "times": self.times,
        }
        shown = {key: value for key, value in fields.items() if value is not None}
        return {**shown, "kind": self.kind, "matched": self.matched, "hits": self.hits, "spent": self.spent}


def _latency(value: Any) -> tuple[float, float]:
    if isinstance(value, Mapping):
        value = [value.get("min"), value.get("max")]
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise RuleError("latency: a range is [min, max]")
        low = _number(value[0], "latency.min", 0.0, MAX_LATENCY)
        high = _number(value[1], "latency.max", 0.0, MAX_LATENCY)
        if high < low:
            raise RuleError(f"latency: max {high:g} is below min {low:g}")
        return low, high
    fixed = _number(value, "latency", 0.0, MAX_LATENCY)
    return fixed, fixed


@dataclass
class Plan:
    """What the rules do to one call: the rules that fired, total latency, the failing one."""

    hits: list[Rule]
    latency: float
    failure: Rule | None

    def names(self) -> list[dict[str, str]]:
        return [{"name": rule.name, "kind": rule.kind} for rule in self.hits]


class FaultSet:
    """The active rules, their counters and the seeded generator.  Used from one event loop."""

    def __init__(
        self,
        rules: Iterable[Any] = (),
        seed: int | None = None,
        family_of: Callable[[str], str] | None = None,
    ) -> None:
        self.rules: list[Rule] = []
        self.family_of = family_of or (lambda service: "")
        self.reseed(seed)
        self.add(list(rules))

    def reseed(self, seed: int | None) -> None:
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)  # shown in as_json, so a run can be replayed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise RuleError(f"seed: must be an integer within 0..2**64-1, not {str(seed)[:40]!r}")
        self.seed = seed
        self.rng = random.Random(self.seed)

    def add(self, items: list[Any]) -> list[Rule]:
        """Adds rules, all or none."""
        if len(self.rules) + len(items) > MAX_RULES:
            raise RuleError(f"rules: at most {MAX_RULES} rules")
        taken = {rule.name for rule in self.rules}
        new: list[Rule] = []
        for index, item in enumerate(items):
            rule = Rule.parse(item, self._free_name(taken))
            if rule.name in taken:
                raise RuleError(f"name: a rule named {rule.name!r} already exists (rule {index + 1})")
            taken.add(rule.name)
            new.append(rule)
        self.rules.extend(new)
        return new

    def replace(self, items: list[Any], seed: int | None = None) -> None:
        checked = FaultSet(items, seed=0 if seed is None else seed)  # refused before anything changes
        self.rules = checked.rules
        if seed is not None:
            self.seed, self.rng = checked.seed, checked.rng

    def _free_name(self, taken: set[str]) -> str:
        n = len(taken) + 1
        while f"rule-{n}" in taken:
            n += 1
        return f"rule-{n}"

    def remove(self, name: str) -> None:
        before = len(self.rules)
        self.rules = [rule for rule in self.rules if rule.name != name]
        if len(self.rules) == before:
            raise KeyError(f"no fault rule named {name!r}")

    def clear(self) -> None:
        self.rules = []

    def as_json(self) -> dict[str, Any]:
        return {"rules": [rule.as_json() for rule in self.rules], "seed": self.seed}

    def plan(self, path: str, family: str | None = None) -> Plan | None:
        """The faults of one call to ``path`` (``/pkg.Service/Method``), None when no rule fires."""
        if not self.rules:
            return None
        service = path[1:].split("/", 1)[0]
        if family is None and any(rule.family is not None for rule in self.rules):
            family = self.family_of(service)
        hits: list[Rule] = []
        latency = 0.0
        failure = None
        for rule in self.rules:
            if not rule.matches(path, service, family or "") or not rule.fires(self.rng):
                continue
            rule.hits += 1
            hits.append(rule)
            low, high = rule.latency
            latency += low if low == high else self.rng.uniform(low, high)
            if rule.kind != "latency":
                failure = rule
                break
        return Plan(hits, min(latency, MAX_LATENCY), failure) if hits else None


async def enact(plan: Plan, peer: str) -> Rule | None:
    """Applies ``plan`` before the call is answered.

    Sleeps the latency, then raises :class:`InjectedStatus` for a status, a
    deadline (after holding the call ``deadline`` seconds: a client whose own
    deadline is sooner gives up first) or a reset (after cutting the client's
    connection, see :func:`reset_connection`).  Returns the cut rule when the
    response stream is to be cut after ``rule.cut_after`` messages.
    """
    if plan.latency > 0:
        await asyncio.sleep(plan.latency)
    rule = plan.failure
    if rule is None:
        return None
    assert rule.code is not None
    if rule.kind == "deadline":
        await asyncio.sleep(rule.deadline or 0.0)
    elif rule.kind == "reset":
        if connection_resetter.get()(peer):
            # the transport closing cancels this call; answering is the fallback
            await asyncio.sleep(RESET_GRACE)
    elif rule.kind == "cut" and rule.cut_after:
        return rule
    raise InjectedStatus(rule.code, rule.message)


def cut_now(rule: Rule | None, sent: int) -> None:
    """Raises the cut's status once ``sent`` response messages have gone out."""
    if rule is not None and rule.cut_after is not None and sent >= rule.cut_after:
        assert rule.code is not None
        raise InjectedStatus(rule.code, rule.message)


def _peer_address(peer: str) -> tuple[str, int] | None:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` -> (address, port)."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    host, _, port = rest.rpartition(":")
    try:
        return str(ipaddress.ip_address(host.strip("[]"))), int(port)
    except ValueError:
        return None


def _normal(host: str) -> str:
    address = ipaddress.ip_address(host.split("%", 1)[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def reset_connection(peer: str) -> bool:
    """Resets this process's TCP connection from ``peer``; False when it cannot.

    grpcio has no way for a handler to reset its stream, so the connection is
    found by its remote address among the process's sockets (Linux /proc) and
    reset: SO_LINGER 0, then shutting its reading side makes the server's own
    transport close it, which sends a TCP RST.  Every call on that connection
    ends, as with a real reset; the client sees UNAVAILABLE ("Socket closed" or
    "Connection reset by peer") and its channel reconnects for the next call.
    """
    wanted = _peer_address(peer)
    if wanted is None or not os.path.isdir("/proc/self/fd"):
        return False
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        with sock:
            if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                remote = sock.getpeername()
            except OSError:
                continue
            if (_normal(remote[0]), remote[1]) == wanted:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)
                return True
    log.warning("fault rule: no connection from %s to reset", peer)
    return False


# How a reset rule cuts the client's connection: :func:`reset_connection` when the
# connection is this process's; a server whose connections live in another process
# sets its own for the call (the context is the call's task, so it stays per call).
connection_resetter: ContextVar[Callable[[str], bool]] = ContextVar(
    "connection_resetter", default=reset_connection
)


def load_file(path: str) -> tuple[list[Any], int | None]:
    """Rules of a YAML or JSON file: a list of rules, or ``{"seed": N, "rules": [...]}``."""
    import yaml  # JSON is YAML too

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(MAX_FILE_BYTES + 1)
        if len(text) > MAX_FILE_BYTES:
            raise RuleError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise RuleError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RuleError(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise RuleError(f"{path} is not YAML or JSON: {exc}") from None
    seed = None
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"rules", "seed"})
        if unknown:
            raise RuleError(f"{unknown[0]}: unknown key of a fault file (rules, seed)")
        seed = data.get("seed")
        data = data.get("rules", [])
    if data is None:
        data = []
    if not isinstance(data, list):
        raise RuleError(f"{path}: must be a list of rules, or an object with 'rules'")
    return data, seed
