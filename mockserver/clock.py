"""The shared virtual clock that moves runs, tasks and executions through their lifecycles.

Virtual time runs at ``speed`` times wall time (1.0 = real time, 10.0 = ten times
faster).  With ``speed == 0`` the clock is *manual*: time only moves when
:meth:`Clock.advance` is called (from tests or the control API), which makes
lifecycles fully deterministic.

Virtual time stays within :data:`MAX_ELAPSED` of its start, so every timestamp
the server writes is representable; it stops there (health reports it) until
:meth:`Clock.reset` starts it anew from the wall clock.

Timers are plain callbacks; they run on the server's event loop, so they never
race with handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

MAX_ELAPSED = 100 * 365.25 * 86400.0  # a century of virtual time: far past any test, far from year 9999


@dataclass(order=True)
class Timer:
    due: float  # virtual seconds since the clock's epoch
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if not math.isfinite(speed) or speed < 0:
            raise ValueError("clock speed must be a finite number >= 0")
        self.speed = speed
        self._start = start
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._wakeup: asyncio.Event | None = None
        # Called after timers ran (a durable store commits what they changed).
        self.after_timers: Callable[[], None] = lambda: None
        self.reset()

    def reset(self) -> None:
        """Forget every timer and start virtual time anew from the wall clock (same speed)."""
        self.cancel_all()
        self._epoch = self._start or datetime.now(UTC)
        self._wall_base = time.monotonic()
        self._offset = 0.0  # virtual seconds added by advance()

    def restore(self, epoch: datetime, elapsed: float) -> None:
        """Go on from a saved reading (a restarted server); time passed while it was down does not count."""
        self._epoch = epoch
        self._wall_base = time.monotonic()
        self._offset = min(max(0.0, elapsed), MAX_ELAPSED)

    def reading(self) -> tuple[datetime, float]:
        """(epoch, elapsed virtual seconds): what :meth:`restore` takes."""
        return self._epoch, self.elapsed()

    # -- reading time -------------------------------------------------------
    @property
    def manual(self) -> bool:
        return self.speed == 0

    def elapsed(self) -> float:
        """Virtual seconds since the clock started."""
        running = 0.0 if self.manual else (time.monotonic() - self._wall_base) * self.speed
        return min(running + self._offset, MAX_ELAPSED)

    def headroom(self) -> float:
        """Virtual seconds left before the clock reaches :data:`MAX_ELAPSED` and stops."""
        return MAX_ELAPSED - self.elapsed()

    def stopped(self) -> bool:
        return self.headroom() <= 0

    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self.elapsed())

    # -- scheduling ----------------------------------------------------------
    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once ``delay`` virtual seconds have passed."""
        timer = Timer(self.elapsed() + max(0.0, delay), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        if self._wakeup is not None:
            self._wakeup.set()
        return timer

    def cancel_all(self) -> None:
        """Forget every pending timer (state reset)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def pending(self) -> int:
        return sum(1 for t in self._timers if not t.cancelled)

    def fire_due(self) -> int:
        """Run every timer that is due now; returns how many ran."""
        ran = 0
        now = self.elapsed()
        while self._timers and self._timers[0].due <= now:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            ran += 1
            try:
                timer.callback()
            except Exception:  # a broken timer must not stop the clock
                log.exception("timer callback failed")
        if ran:
            try:
                self.after_timers()
            except Exception:
                log.exception("saving what timers changed failed")
        return ran

    def advance(self, seconds: float) -> int:
        """Move virtual time forward, running timers in order as their time comes."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("seconds must be a finite number >= 0")
        if seconds > self.headroom():
            raise ValueError(f"seconds must be at most {self.headroom():.0f} (the clock's headroom)")
        target = self.elapsed() + seconds
        ran = 0
        # Step timer by timer so callbacks see the time they were due at, and
        # timers they schedule inside the window also run.
        while self._timers and self._timers[0].due <= target:
            step = max(0.0, self._timers[0].due - self.elapsed())
            self._offset += step
            ran += self.fire_due()
        self._offset += max(0.0, target - self.elapsed())
        return ran

    async def run(self) -> None:
        """Drive timers in real time (scaled by speed) until cancelled."""
        self._wakeup = asyncio.Event()
        while True:
            self.fire_due()
            self._wakeup.clear()
            delay = 1.0
            if self._timers and not self.manual:
                delay = max(0.0, (self._timers[0].due - self.elapsed()) / self.speed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=min(delay, 1.0))
