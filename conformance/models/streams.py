"""Server streams read in the background, so a check can wait for what a model expects.

:class:`StreamReader` drains a streaming call on a thread; the check asks for
the next message matching a predicate within a time window, and learns
whether (and how) the stream ended.  A family lists its stream checks as
:class:`StreamCheck` values; the *streams* suite runs them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from protoconform.conformance.caller import Reply

_END = object()


class StreamEnded(Exception):
    """The server closed the stream (``code`` is its status)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}" if details else code.name)
        self.code = code
        self.details = details


class StreamReader:
    def __init__(self, call: Any, reply: Reply | None = None) -> None:
        self.call = call
        self.reply = reply  # the recorded request, for reproducers
        self.received: list[Any] = []
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.ended_at: float | None = None
        self.cancelled = False
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._drain, daemon=True, name="stream-reader")
        self._thread.start()

    def _drain(self) -> None:
        try:
            for item in self.call:
                self._queue.put(item)
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            self.code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            self.details = (exc.details() if hasattr(exc, "details") else str(exc)) or ""
        finally:
            self.ended_at = time.monotonic()
            self._queue.put(_END)

    def next(self, timeout: float) -> Any:
        """The next message; None when none came within ``timeout``; StreamEnded when the stream closed."""
        try:
            item = self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if item is _END:
            self._queue.put(_END)  # stays ended for later calls
            assert self.code is not None
            raise StreamEnded(self.code, self.details)
        self.received.append(item)
        return item

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> Any:
        """The first message (from now on) satisfying ``predicate``; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.next(deadline - time.monotonic())
            if item is None:
                return None
            if predicate(item):
                return item

    def quiet(self, window: float) -> list[Any]:
        """Everything that arrives within ``window`` seconds (the stream may end: StreamEnded)."""
        found = []
        deadline = time.monotonic() + window
        while (item := self.next(deadline - time.monotonic())) is not None:
            found.append(item)
        return found

    def cancel(self) -> None:
        self.cancelled = True
        self.call.cancel()

    def ended(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


@dataclass(frozen=True)
class StreamCheck:
    name: str  # case id part
    method: str  # "Service.Method" of the stream
    rule: str  # the rule a failure names by default
    run: Callable[..., None]  # run(env, target, examples: int) -> raises Mismatch
    mutating: bool = True
