"""Running examples against the target: the ``scenario`` fixture.

:class:`Scenario` resolves the placeholders of a request template (``${name.path}``,
``${ns}``, ``${unique}``, ``${uuid}``, ``${now}``, ``${name.path+N}``, ``${bytes:...}``;
see :mod:`.parsing`), runs an example's steps in order (repeating a step ``until`` a
field of its reply has a wanted value; an ``http:`` step is a plain HTTP request, a
``wait:`` step lets server time pass), makes the example's own call, checks what
``then`` steps read afterwards and registers the example's cleanup.

An example that runs ``inside`` a place (see :mod:`.parsing`) gets it from the
``places`` the scenario was given (a family's ``places`` module, through the plugin's
``places`` fixture): :meth:`Scenario.within` runs the steps that do not need the
place, enters it (binding what it binds), runs the other steps, and leaves it when
the block ends; a place that cannot be had in this run skips the case with its reason.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import itertools
import random
import re
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import pytest
from google.protobuf import json_format, message
from protoconform.conformance.caller import Caller, Reply
from protoconform.conformance.examples.expectations import field_mismatch, lookup, lookup_or_none
from protoconform.conformance.examples.parsing import (
    BUILTINS,
    PLACEHOLDER,
    Example,
    FamilyExamples,
    Step,
    book,
    placeholders,
)
from protoconform.conformance.verdict import Mismatch, short_method


class Place(Protocol):
    """Where an example may run (``inside:``); a family provides its own."""

    binds: str  # the name of what it binds ("" when nothing)

    def unavailable(self) -> str:
        """Why no case can run there in this run ("" when one can)."""
        ...

    def hold(
        self, scenario: Scenario, settings: dict[str, Any], bindings: dict[str, Any]
    ) -> contextlib.AbstractContextManager[Any]:
        """Enter the place for one example (its settings, the bindings so far); yields what it binds."""
        ...


HTTP_TIMEOUT_SECONDS = 10.0
HTTP_MAX_REPLY_BYTES = 1 << 20  # an HTTP step keeps this much of an answer's body
UNTIL_GRACE_SECONDS = 2.0  # real seconds a moved mock gets to finish what the moved clock started
FIRST_PAUSE_SECONDS = 0.01  # the first real pause between rounds of an ``until`` on our mock


def as_dict(msg: message.Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class Scenario:
    """Runs examples against the target: steps, the valid request, cleanup afterwards."""

    def __init__(
        self,
        rpc: Caller,
        namespace: str,
        rng: random.Random,
        cleanup: list[Callable[[], None]],
        control: Any = None,
        books: Callable[[str], FamilyExamples] = book,
        places: Mapping[str, Place] | None = None,
        served: set[str] | None = None,
    ) -> None:
        self.rpc = rpc
        self.namespace = namespace
        self.rng = rng
        self.cleanup = cleanup
        self.control = control
        self.books = books
        self.places = dict(places or {})
        self.served = served  # services the run can call (None: unknown, assume all)
        self._counter = itertools.count(1)
        self._names: dict[str, str] = {}  # ${name:LABEL} -> the name it stands for in this case

    def book_of(self, method: str) -> FamilyExamples:
        return self.books(self.rpc.resolve(method).family)

    # -- templates ---------------------------------------------------------------------
    def fresh_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _builtin(self, name: str) -> str:
        if name == "ns":
            return self.namespace
        if name == "unique":
            return f"{self.namespace}-{next(self._counter)}"
        if name == "uuid":
            return self.fresh_id()
        if name == "now":
            return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise KeyError(name)

    def resolve(self, template: Any, bindings: dict[str, Any]) -> Any:
        """``template`` with every placeholder replaced."""
        if isinstance(template, str):
            whole = PLACEHOLDER.fullmatch(template)
            if whole:
                return self._placeholder(whole, bindings)
            return PLACEHOLDER.sub(lambda m: str(self._placeholder(m, bindings)), template)
        if isinstance(template, dict):
            return {k: self.resolve(v, bindings) for k, v in template.items()}
        if isinstance(template, list | tuple):
            return [self.resolve(v, bindings) for v in template]
        return template

    def _placeholder(self, match: re.Match[str], bindings: dict[str, Any]) -> Any:
        ref = match["ref"]
        if match["fn"] == "name":  # the same fresh name wherever the case writes this label
            if ref not in self._names:
                # Not from the seeded rng: a second run against the same server must not meet the
                # names of the first (registrations are immutable). Lower-case letters, digits and
                # '-' only, so it is a valid Flyte execution name too.
                self._names[ref] = f"{self.namespace}-{ref}-{secrets.token_hex(4)}"
            return self._names[ref]
        value: Any = int(ref) if ref.isdigit() else self._value(ref, bindings)
        if match["plus"] is not None:
            value = _number(value, ref) + int(match["plus"])
        if match["fn"] == "bytes":  # protojson carries bytes as base64
            return base64.b64encode(b"x" * max(0, _number(value, ref))).decode()
        return value

    def _value(self, dotted: str, bindings: dict[str, Any]) -> Any:
        if dotted in BUILTINS:
            return self._builtin(dotted)
        try:
            return lookup(bindings, dotted)
        except KeyError as exc:
            raise Mismatch(
                f"a reply carrying {dotted.partition('.')[2] or dotted}",
                "no such field",
                rule="",
                detail=str(exc.args[0]),
            ) from None

    # -- calls ------------------------------------------------------------------------
    def call(
        self, method: str, template: Any, bindings: dict[str, Any], stream: dict[str, Any] | None = None
    ) -> Reply:
        data = self.resolve(template, bindings)
        stream = stream or {}
        kwargs = {"window": stream.get("window"), "max_responses": stream.get("max_responses")}
        m = self.rpc.resolve(method)
        if m.client_streaming:
            return self.rpc(m, requests=data if isinstance(data, list) else [data], **kwargs)
        return self.rpc(m, data, **kwargs)

    def bind(self, reply: Reply) -> Any:
        if not reply.ok:  # a refusal binds as {code, message, details}: its details can be checked
            return reply.error_view(self.rpc.registry)
        if reply.method.server_streaming:
            return [as_dict(r) for r in reply.responses]
        return as_dict(reply.response) if reply.response is not None else {}

    def run_steps(self, steps: Iterable[Step], bindings: dict[str, Any] | None = None) -> dict[str, Any]:
        bindings = {} if bindings is None else bindings
        for step in steps:
            bindings[step.name] = self._step_value(step, bindings)
        return bindings

    def _step_value(self, step: Step, bindings: dict[str, Any], phase: str = "preparing step") -> Any:
        """Run one step; what it binds."""
        if step.wait:
            self._wait(step.wait)
            return {}
        if step.http:
            return self._http(step, bindings, phase)
        return self.bind(self._run_step(step, bindings, phase))

    def _wait(self, seconds: float) -> None:
        if self.control is not None:
            self.control.advance(seconds)  # our mock: its clock, not the run's time
        else:
            time.sleep(seconds)

    def _http(self, step: Step, bindings: dict[str, Any], phase: str) -> dict[str, Any]:
        spec = self.resolve(step.request, bindings)
        url, verb = str(spec["url"]), str(spec["method"]).upper()
        where = f"{phase} {step.name!r}"
        if not url.startswith(("http://", "https://")):
            raise Mismatch("an http(s) URL", url, rule="", detail=where)
        body = spec.get("body")
        data = None if body is None else str(body).encode()
        headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
        request = urllib.request.Request(url, data=data, headers=headers, method=verb)
        try:
            # a URL the target handed out (e.g. a signed upload URL): the run's CA and client certificate
            context = self.rpc.target.ssl_context() if url.startswith("https://") else None
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS, context=context) as answer:
                status, raw, got = answer.status, answer.read(HTTP_MAX_REPLY_BYTES), answer.headers
        except urllib.error.HTTPError as error:
            status, raw, got = error.code, error.read(HTTP_MAX_REPLY_BYTES), error.headers
        except (OSError, ValueError) as exc:
            raise Mismatch("an HTTP answer", str(exc), rule="", detail=f"{where}: {verb} {url}") from None
        result = {"status": status, "body": raw.decode(errors="replace"), "headers": dict(got.items())}
        for wanted in step.reply:
            problem = field_mismatch(result, {**self.resolve(wanted, bindings), "field": wanted["field"]})
            if problem is not None:
                seen = f"{verb} {url} answered {status} {raw[:200]!r}"
                raise Mismatch(*problem, rule="", detail=f"{where}: {seen}")
        return result

    # -- places -----------------------------------------------------------------------
    def unavailable(self, example: Example | None, calls: Iterable[str] = ()) -> str:
        """Why the case of ``example`` (calling ``calls``) cannot run here ("" when it can):
        its place cannot be had, or the target serves a service it calls through no route."""
        if example is not None and example.inside:
            place = self.places.get(example.inside)
            reason = place.unavailable() if place is not None else ""
            if reason:
                return reason
        if self.served is not None:
            missing = sorted({self.rpc.resolve(m).service for m in calls} - self.served)
            if missing:
                names = ", ".join(s.rpartition(".")[2] for s in missing)
                return f"the target does not serve {names} (not listed over reflection)"
        return ""

    @contextlib.contextmanager
    def within(self, example: Example, steps: Iterable[Step] | None = None) -> Iterator[dict[str, Any]]:
        """Run the steps (all, or those given) where the example runs; yields the bindings.

        Inside a place, the steps that do not need what it binds (directly or through other
        steps) run first, then the place is entered and the others run there; the place is
        left when the block ends."""
        steps = tuple(example.given if steps is None else steps)
        if not example.inside:
            yield self.run_steps(steps)
            return
        place = self.places.get(example.inside)
        if place is None:
            where = short_method(example.method)
            raise Mismatch(f"a place {example.inside!r}", "none in this run", rule="", detail=where)
        reason = place.unavailable()
        if reason:
            pytest.skip(reason)
        name = example.binds
        inner: set[str] = set()
        for step in steps:  # in order: a step needs the place if it refers to it or to such a step
            if placeholders([step.request, step.requests]) & ({name} - {""} | inner):
                inner.add(step.name)
        bindings = self.run_steps([s for s in steps if s.name not in inner])
        with place.hold(self, example.inside_settings, dict(bindings)) as bound:
            if name:
                bindings[name] = bound
            yield self.run_steps([s for s in steps if s.name in inner], bindings)

    def follow(self, example: Example, bindings: dict[str, Any], reply: Reply) -> None:
        """Run the example's ``then`` steps after its call (``reply`` bound to the call's reply).

        A deviation there is the case's own (its rule), not a failed preparation."""
        scope = {**bindings, "reply": self.bind(reply)}
        for step in example.then:
            try:
                scope[step.name] = self._step_value(step, scope, phase="after the call, in step")
            except Mismatch as exc:
                exc.rule = None
                raise

    def _run_step(self, step: Step, bindings: dict[str, Any], phase: str = "preparing step") -> Reply:
        if step.example:
            example = self.book_of(step.method).example(step.method)
            if example is None:
                raise Mismatch("an example", "none", detail=f"no example for {short_method(step.method)}")
            reply = self._until(step, lambda: self.run(example)[0])
        else:
            template = list(step.requests) if step.requests is not None else (step.request or {})
            reply = self._until(step, lambda: self.call(step.method, template, bindings, step.stream))
        if reply.code.name != step.expect:
            raise Mismatch(
                step.expect,
                reply.status(),
                rule="",
                method=reply.name,
                reply=reply,
                detail=f"{phase} {step.name!r}",
            )
        if step.reply:
            data = self.bind(reply)
            for wanted in step.reply:
                problem = field_mismatch(data, {**self.resolve(wanted, bindings), "field": wanted["field"]})
                if problem is not None:
                    raise Mismatch(
                        *problem, rule="", method=reply.name, reply=reply, detail=f"{phase} {step.name!r}"
                    )
        return reply

    def _until(self, step: Step, once: Callable[[], Reply]) -> Reply:
        """Repeat a step until a field of its reply has one of the wanted values.

        ``timeout`` is server time: real seconds for a real server; on our mock, whose clock the
        step moves by ``advance`` each round, the wait ends once the clock has been moved that far
        (plus a short real grace for the last changes), so a server that never gets there fails
        in a second or two instead of holding the run for the whole timeout."""
        reply = once()
        if not step.until or not reply.ok:
            return reply
        path, wanted = step.until["field"], [str(v) for v in step.until["in"]]
        timeout = float(step.until.get("timeout", 30))
        advance = float(step.until.get("advance") or 0)
        deadline = time.monotonic() + timeout
        interval = float(step.until.get("interval", 0.1))
        # On our mock the clock moves by call and most changes land at once: ask again soon, then
        # back off to the step's interval (a real server's pace) for work that runs in real time.
        pause = min(interval, FIRST_PAUSE_SECONDS) if self.control is not None and advance else interval
        moved, grace_end = 0.0, None
        # Wanted enum names, got a bare number: a value outside the field's enum (protojson shows an
        # unknown enum number as a number). It can never turn into a wanted name: fail now rather
        # than hold the run for the whole wait.
        names_only = all(not _is_number(name) for name in wanted)
        while True:
            value = lookup_or_none(self.bind(reply), path)
            if str(value) in wanted:
                return reply
            out_of_enum = names_only and isinstance(value, int) and not isinstance(value, bool)
            now = time.monotonic()
            if out_of_enum or now > deadline or (grace_end is not None and now > grace_end):
                why = (
                    f": {value} is no value of the field's enum"
                    if out_of_enum
                    else f" ({timeout:g}s of server time)"
                )
                raise Mismatch(
                    f"{path} in {wanted}",
                    value,
                    rule="",
                    method=reply.name,
                    reply=reply,
                    detail=f"waiting in step {step.name!r}{why}",
                )
            if self.control is not None and advance and grace_end is None:
                self.control.advance(advance)  # our mock: move its clock along
                moved += advance
                if moved >= timeout:
                    grace_end = time.monotonic() + UNTIL_GRACE_SECONDS
            time.sleep(pause)
            pause = min(pause * 2, interval)
            reply = once()
            if not reply.ok:
                return reply

    def run(self, example: Example, steps: Iterable[Step] | None = None) -> tuple[Reply, dict[str, Any]]:
        """Run the steps (all, or those given) and the example's own call (inside its place,
        left before this returns)."""
        with self.within(example, steps) as bindings:
            reply = self.call(example.method, example.template, bindings, example.stream)
        if reply.ok and example.cleanup:
            self._register_cleanup(example, {**bindings, "reply": self.bind(reply)})
        return reply, bindings

    def _register_cleanup(self, example: Example, bindings: dict[str, Any]) -> None:
        for raw in example.cleanup:
            method = self.book_of(example.method).qualify(raw["call"])
            template = raw.get("request") or {}

            def undo(method: str = method, template: Any = template) -> None:
                with contextlib.suppress(Exception):  # best effort; the case already has its verdict
                    self.call(method, template, bindings)

            self.cleanup.append(undo)

    def prepare(self, method: str, template: Any = None, steps: Iterable[Step] | None = None) -> Any:
        """The resolved request data of ``method``'s example (after running its steps)."""
        full = self.rpc.resolve(method)
        example = self.book_of(method).example(f"{full.service}.{full.name}")
        if example is None:
            raise Mismatch("an example", "none", detail=f"no example for {short_method(method)}")
        # inside a place, the case goes on there: the place is left when the case's cleanup runs
        stack = contextlib.ExitStack()
        bindings = stack.enter_context(self.within(example, steps))
        if example.inside:
            self.cleanup.append(stack.close)
        return self.resolve(example.template if template is None else template, bindings)

    def message(self, method: str, data: Any) -> message.Message | list[message.Message]:
        m = self.rpc.resolve(method)
        if m.client_streaming:
            return [self.rpc.build(m, d) for d in (data if isinstance(data, list) else [data])]
        return self.rpc.build(m, data)


def _number(value: Any, ref: str) -> int:
    try:
        return int(value)  # protojson writes 64-bit integers as strings
    except (TypeError, ValueError):
        raise Mismatch("a number", value, rule="", detail=f"${{{ref}}} is not a number") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
