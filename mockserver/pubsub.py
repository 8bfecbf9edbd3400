"""In-process publish/subscribe for watch and event streams.

State changes are published synchronously by handlers and clock timers; each
open stream holds a :class:`Subscription` and awaits its items.

Routing: a subscription may register under keys (e.g. a session id) and an item
is published with its keys; ``publish`` visits only the subscriptions of those
keys plus the key-less ones, so its cost does not grow with subscribers that
watch something else.  An item published without a key reaches only key-less
subscriptions.  ``accept`` still filters what a visited subscription keeps.

Slow consumers: each subscription buffers at most ``limit`` items.  When an item
arrives at a full subscription, the subscription *overflows*: its buffer is
dropped, it is detached from the topic (it takes nothing more, so a stalled
client costs at most ``limit`` items of memory) and ``get()`` raises
:class:`Overflowed`; the stream then ends with an error telling the client it fell
behind.  A ``notify_only`` subscription is for calls that only need to know that
something changed and then re-read the state (bounded waits): it keeps at most
one item, drops later ones instead of overflowing, and outlives :meth:`Topic.close_all`.

Shutdown: :meth:`Topic.close_all` ends every other subscription at once (pending
and later ``get()`` raise :class:`ShuttingDown`) and refuses new ones the same way,
so streams that never end by themselves do not hold the server for its whole
grace period.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# 10,000 events cover a burst of a few thousand tasks (each brings a NewTask, a
# NewResult per output and several status updates) published in one call, before
# the stream can send any of it, while bounding a stalled stream to about 1 MB.
DEFAULT_LIMIT = 10_000


class SubscriptionEnded(Exception):
    """The subscription takes no more items; ``get()`` raises a subclass of this."""


class Overflowed(SubscriptionEnded):
    def __init__(self, limit: int, delivered: int) -> None:
        self.limit = limit
        self.delivered = delivered  # items the consumer had taken before it fell behind
        super().__init__(f"{limit + 1} items were waiting to be delivered (limit {limit})")


class ShuttingDown(SubscriptionEnded):
    def __init__(self) -> None:
        super().__init__("the server is shutting down")


class Subscription(Generic[T]):
    def __init__(
        self,
        topic: Topic[T],
        accept: Callable[[T], bool] | None,
        limit: int,
        notify_only: bool,
    ) -> None:
        self._topic = topic
        self._accept = accept
        self.keys: set[Hashable] = set()
        self.limit = 1 if notify_only else max(1, limit)
        self.notify_only = notify_only
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.delivered = 0
        self.ended: SubscriptionEnded | None = None

    @property
    def closed(self) -> bool:
        return self.ended is not None

    @property
    def pending(self) -> int:
        return len(self._items)

    def add_key(self, key: Hashable) -> None:
        """Also receive items published under ``key`` (e.g. an id a stream starts watching)."""
        if self.ended is None and key not in self.keys:
            self.keys.add(key)
            self._topic._bucket(key).add(self)

    def offer(self, item: T) -> None:
        if self.ended is not None or (self._accept is not None and not self._accept(item)):
            return
        if len(self._items) >= self.limit:
            if not self.notify_only:  # a notify-only subscriber is already woken: drop
                self._topic.overflows += 1
                self._end(Overflowed(self.limit, self.delivered))
            return
        self._items.append(item)
        self._wake()

    async def get(self) -> T:
        """The next item; raises the :class:`SubscriptionEnded` that ended the subscription."""
        while not self._items:
            if self.ended is not None:
                raise self.ended
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.delivered += 1
        return self._items.popleft()

    def get_nowait(self) -> T | None:
        if not self._items:
            return None
        self.delivered += 1
        return self._items.popleft()

    def close(self) -> None:
        self._end(SubscriptionEnded("closed"))

    def _end(self, reason: SubscriptionEnded) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        self._items.clear()  # an ended subscription delivers nothing more; free its buffer now
        self._topic._detach(self)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Topic(Generic[T]):
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._buckets: dict[Hashable, set[Subscription[T]]] = {}  # key (None: key-less) -> subscriptions
        self._all: set[Subscription[T]] = set()
        self.shutting_down = False
        self.overflows = 0  # subscriptions ended because their consumer fell behind

    def subscribe(
        self,
        accept: Callable[[T], bool] | None = None,
        *,
        keys: Iterable[Hashable] | None = None,
        limit: int | None = None,
        notify_only: bool = False,
    ) -> Subscription[T]:
        """A subscription to the items published under ``keys`` (all items when None).

        After :meth:`close_all` the subscription is born ended (``get()`` raises
        :class:`ShuttingDown`), unless it is ``notify_only``.
        """
        subscription = Subscription(self, accept, self.limit if limit is None else limit, notify_only)
        if self.shutting_down and not notify_only:
            subscription.ended = ShuttingDown()
            return subscription
        self._all.add(subscription)
        for key in (None,) if keys is None else keys:
            subscription.add_key(key)
        return subscription

    def publish(self, item: T, *keys: Hashable) -> None:
        """Offer ``item`` to the subscriptions of ``keys`` and to the key-less ones."""
        buckets = [b for b in map(self._buckets.get, (None, *keys)) if b]
        if len(buckets) == 1:
            for subscription in tuple(buckets[0]):  # a copy: an overflow detaches while we iterate
                subscription.offer(item)
        elif buckets:
            seen: set[Subscription[T]] = set()  # a subscription under several of the keys gets it once
            for bucket in buckets:
                for subscription in tuple(bucket):
                    if subscription not in seen:
                        seen.add(subscription)
                        subscription.offer(item)

    def close_all(self) -> None:
        """End every subscription except notify-only ones, now and for later subscribers."""
        self.shutting_down = True
        for subscription in tuple(self._all):
            if not subscription.notify_only:
                subscription._end(ShuttingDown())

    def _bucket(self, key: Hashable) -> set[Subscription[T]]:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
        return bucket

    def _detach(self, subscription: Subscription[T]) -> None:
        self._all.discard(subscription)
        for key in subscription.keys:
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.discard(subscription)
                if not bucket:
                    del self._buckets[key]

    @property
    def subscriber_count(self) -> int:
        return len(self._all)

    @property
    def pending(self) -> int:
        """Items buffered over all subscriptions (what slow consumers cost in memory)."""
        return sum(s.pending for s in self._all)
