"""In-process publish/subscribe for watch and event streams.

State changes are published synchronously by handlers and clock timers; each
open stream holds a :class:`Subscription` and awaits its items.  Subscribers
are independent: a slow one only fills its own queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Subscription(Generic[T]):
    def __init__(self, topic: Topic[T], accept: Callable[[T], bool] | None) -> None:
        self._topic = topic
        self._accept = accept
        self._queue: asyncio.Queue[T] = asyncio.Queue()
        self.closed = False

    def offer(self, item: T) -> None:
        if not self.closed and (self._accept is None or self._accept(item)):
            self._queue.put_nowait(item)

    async def get(self) -> T:
        return await self._queue.get()

    def get_nowait(self) -> T | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self.closed = True
        self._topic._subscriptions.discard(self)

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Topic(Generic[T]):
    def __init__(self) -> None:
        self._subscriptions: set[Subscription[T]] = set()

    def subscribe(self, accept: Callable[[T], bool] | None = None) -> Subscription[T]:
        subscription = Subscription(self, accept)
        self._subscriptions.add(subscription)
        return subscription

    def publish(self, item: T) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(item)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
