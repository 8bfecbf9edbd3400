"""Start the mock server for tests, benchmarks and the conformance self-check.

Two ways, same addresses:
- :class:`ServerProcess`: ``protoconform serve`` in a child process, exactly as a
  user runs it; the ready line gives the addresses.
- :class:`ThreadedServer`: a :class:`MockServer` on an event loop in a thread of
  this process, for tests that need to look inside (state, dispatcher).
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from protoconform.mockserver.config import ServerConfig

# Fields after the addresses (tls=on|mutual, auth=token+jwt) appear only when set.
READY = re.compile(r"^protoconform ready grpc=(?P<grpc>\S+) http=(?P<http>\S+)(?P<rest>(?: \S+=\S+)*)$")
T = TypeVar("T")


class ServerProcess:
    def __init__(
        self, args: Sequence[str] = (), env: dict[str, str] | None = None, timeout: float = 30.0
    ) -> None:
        self.args = ["serve", "--port", "0", "--http-port", "0", *args]
        self.env = env
        self.timeout = timeout
        self.process: subprocess.Popen[str] | None = None
        self.grpc_address = ""
        self.http_address = ""
        self.output: list[str] = []
        self.fields: dict[str, str] = {}  # the ready line's extra fields

    @property
    def http_url(self) -> str:
        scheme = "https" if "tls" in self.fields else "http"
        return f"{scheme}://{self.http_address}"

    def start(self) -> ServerProcess:
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "protoconform.mockserver", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise TimeoutError(
                    f"server not ready in {self.timeout}s:\n" + "\n".join(self.output)
                ) from None
            if line is None:
                raise RuntimeError("server exited before ready:\n" + "\n".join(self.output))
            self.output.append(line)
            match = READY.match(line)
            if match:
                self.grpc_address, self.http_address = match["grpc"], match["http"]
                self.fields = dict(item.split("=", 1) for item in match["rest"].split())
                self._drain(lines)
                return self

    def _drain(self, lines: queue.Queue[str | None]) -> None:
        def keep() -> None:
            while (line := lines.get()) is not None:
                self.output.append(line)

        threading.Thread(target=keep, daemon=True).start()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class ThreadedServer:
    """A MockServer running on its own event loop thread."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        from protoconform.mockserver.server import MockServer

        self.config = config or ServerConfig()
        self.server = MockServer(self.config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="mockserver")

    @property
    def grpc_address(self) -> str:
        return self.server.grpc_address

    @property
    def http_address(self) -> str:
        return self.server.http_address

    @property
    def http_url(self) -> str:
        return f"{self.server.http_scheme}://{self.server.http_address}"

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (state must only be touched there)."""

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(30)

    def start(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
