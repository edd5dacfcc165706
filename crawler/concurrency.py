"""How many requests the crawler keeps in flight, adapted while it runs.

``concurrency`` (the user's) is the ceiling. Within it, :class:`ConcurrencyController` moves the
size of a :class:`ConcurrencyLimit` every half second from two measures:

- **Loop lag** (:class:`crawler.looplag.LoopLag`): when the event loop runs late, it has more
  to do than it can (parsing inline, pickling, thousands of callbacks): more requests in flight
  would only add to the lag, so the limit shrinks by a quarter. It also shrinks when the loop is
  late by over a third of the target, and stops growing.
- **Server latency**: a moving average of the requests' own time, against the best seen lately.
  When it climbs past twice that, the servers are slowing under the load, and the limit shrinks
  in proportion (as in TCP Vegas or Netflix's gradient limiter).
- Otherwise, when every slot is in use, the limit grows by an eighth (at least one), back up to
  the ceiling.

It starts at the ceiling: a crawl that is fine at the user's concurrency never loses a request
to a slow start.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Final

from crawler.looplag import LoopLag

TARGET_LAG: Final = 0.05  # seconds of loop lag (p90 of the last 2 s) the controller aims under
LATENCY_TOLERANCE: Final = 2.0  # latency over this many times the best seen: servers are slowing
SMOOTHING: Final = 0.1
BEST_DECAY: Final = 1.02  # per adjustment: the best latency seen slowly forgets itself


class ConcurrencyLimit:
    """A semaphore whose size can change while it is held (a smaller size applies as holders
    release)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.held < self.size and not self._waiters:
            self.held += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just as it was cancelled: hand the slot on
            raise

    def release(self) -> None:
        self.held -= 1
        self._wake()

    def resize(self, size: int) -> None:
        self.size = max(1, size)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.held < self.size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.held += 1
                waiter.set_result(None)

    @property
    def saturated(self) -> bool:
        return self.held >= self.size

    def __repr__(self) -> str:
        return f"<ConcurrencyLimit {self.held}/{self.size} waiting={len(self._waiters)}>"


@dataclass(slots=True)
class ConcurrencyController:
    """Decides the limit's size from loop lag and server latency, within [minimum, maximum]."""

    maximum: int
    minimum: int = 0  # 0: a quarter of the maximum, at least 4
    target_lag: float = TARGET_LAG
    latency: float | None = None  # moving average of request seconds
    best_latency: float | None = None
    lowest: int = 0  # the smallest size it chose (for the summary)
    changes: int = 0

    def __post_init__(self) -> None:
        self.maximum = max(1, self.maximum)
        floor = self.minimum or max(4, self.maximum // 4)
        self.minimum = max(1, min(floor, self.maximum))
        self.lowest = self.maximum

    def observe(self, seconds: float) -> None:
        """One request's own time (not its wait for a slot)."""
        self.latency = (
            seconds
            if self.latency is None
            else (self.latency + SMOOTHING * (seconds - self.latency))
        )

    def decide(self, size: int, lag: float, saturated: bool) -> int:
        """The next size, given the current one, the recent loop lag and whether every slot is
        in use. Pure but for the latency memory it updates."""
        new = size
        gradient = 1.0
        if self.latency is not None:
            if self.best_latency is None or self.latency < self.best_latency:
                self.best_latency = self.latency
            else:
                self.best_latency *= BEST_DECAY
            gradient = min(1.0, LATENCY_TOLERANCE * self.best_latency / max(self.latency, 1e-9))
        if lag > self.target_lag:
            new = int(size * 0.75)
        elif gradient < 1.0:
            new = int(size * max(0.5, gradient))
        elif saturated and lag < self.target_lag / 3:
            new = size + max(1, size // 8)
        new = max(self.minimum, min(self.maximum, new))
        if new != size:
            self.changes += 1
        self.lowest = min(self.lowest, new)
        return new

    async def run(self, limit: ConcurrencyLimit, lag: LoopLag, interval: float = 0.5) -> None:
        """Adjust ``limit`` every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            limit.resize(self.decide(limit.size, lag.recent(), limit.saturated))

    def __repr__(self) -> str:
        latency = f"{self.latency * 1000:.1f} ms" if self.latency is not None else "-"
        return (
            f"<ConcurrencyController {self.minimum}..{self.maximum} lowest={self.lowest} "
            f"changes={self.changes} latency={latency}>"
        )
