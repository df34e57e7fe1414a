"""The reconcile work queue: which Workflows need a pass, in what order, and never two passes at once.

The controller-runtime pattern: items are only keys (level-based, never "handle this event"), a key is queued
at most once however many events arrive, a key being processed is re-queued after its pass instead of run in
parallel, delayed adds (backoff wake-ups, error retries) keep only the earliest time, and ready keys come out
highest `spec.priority` first, then oldest. A deferred add (`defer`) is a pass wanted by a given time at the
latest and no sooner than needed: any pass of that key that starts before it takes its place. The queue lives
on the event loop; `add` and `defer` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, loop: asyncio.AbstractEventLoop, order: Callable[[K], tuple[Any, ...]]) -> None:
        self._loop = loop
        self._order = order
        self._heap: list[tuple[tuple[Any, ...], int, K]] = []
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._again: set[K] = set()
        self._delayed: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._deferred: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._ready = asyncio.Event()
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: K, delay: float = 0.0) -> None:
        """Queue `key` now or after `delay` seconds; safe to call from any thread."""
        if _on_loop(self._loop):
            self._add(key, delay)
        else:
            self._loop.call_soon_threadsafe(self._add, key, delay)

    def defer(self, key: K, delay: float) -> None:
        """A pass of `key` within `delay` seconds, unless one starts sooner; safe to call from any thread."""
        if _on_loop(self._loop):
            self._defer(key, delay)
        else:
            self._loop.call_soon_threadsafe(self._defer, key, delay)

    def _defer(self, key: K, delay: float) -> None:
        if key in self._queued:
            return  # its pass is coming, and will see what the caller saw
        when = self._loop.time() + delay
        current = self._deferred.get(key)
        if current is not None:
            if current[0] <= when:
                return
            current[1].cancel()
        self._deferred[key] = (when, self._loop.call_at(when, self._fire_deferred, key))

    def _fire_deferred(self, key: K) -> None:
        self._deferred.pop(key, None)
        self._add(key, 0.0)

    def _add(self, key: K, delay: float) -> None:
        if delay > 0:
            self._add_later(key, delay)
        elif key in self._processing:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            heapq.heappush(self._heap, (self._order(key), next(self._sequence), key))
            self._ready.set()

    def _add_later(self, key: K, delay: float) -> None:
        when = self._loop.time() + delay
        current = self._delayed.get(key)
        if current is not None:
            if current[0] <= when:
                return
            current[1].cancel()
        handle = self._loop.call_at(when, self._fire, key)
        self._delayed[key] = (when, handle)

    def _fire(self, key: K) -> None:
        self._delayed.pop(key, None)
        self._add(key, 0.0)

    async def get(self) -> K:
        while not self._heap:
            self._ready.clear()
            await self._ready.wait()
        _, _, key = heapq.heappop(self._heap)
        self._queued.discard(key)
        self._processing.add(key)
        deferred = self._deferred.pop(key, None)
        if deferred is not None:  # this pass sees everything the deferred one was for
            deferred[1].cancel()
        return key

    def done(self, key: K) -> None:
        """Mark a pass finished; a key added during the pass is queued again now."""
        self._processing.discard(key)
        if key in self._again:
            self._again.discard(key)
            self._add(key, 0.0)

    def queued_again(self, key: K) -> bool:
        """Whether `key` was added while its pass runs (so another pass follows at once); any thread may ask."""
        return key in self._again

    def processing(self, key: K) -> bool:
        """Whether a pass of `key` is running now; any thread may ask (the answer may be a moment old)."""
        return key in self._processing

    def forget(self, key: K) -> None:
        for timers in (self._delayed, self._deferred):
            current = timers.pop(key, None)
            if current is not None:
                current[1].cancel()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
