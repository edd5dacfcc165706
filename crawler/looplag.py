"""How late the event loop runs: the crawler's own measure of a stalled loop.

A task sleeps ``interval`` seconds again and again; how much later than asked it wakes is the
loop's lag at that moment (a callback that held the loop, a burst of parsing inline, a slow
pickle). Every sample goes into a histogram of 0.1 ms bins, so percentiles over a whole crawl
cost constant memory; the last few seconds are kept apart for the concurrency controller.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from typing import Final

BIN: Final = 1e-4  # seconds per histogram bin
RECENT: Final = 40  # samples in the recent window (2 s at the default interval)


class LoopLag:
    """Samples the event loop's lag from a background task; percentiles in seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._bins: Counter[int] = Counter()
        self._recent: deque[float] = deque(maxlen=RECENT)
        self.samples = 0
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sample(), name="loop-lag")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _sample(self) -> None:
        while True:
            asked = time.perf_counter() + self.interval
            await asyncio.sleep(self.interval)
            self.record(max(0.0, time.perf_counter() - asked))

    def record(self, lag: float) -> None:
        self._bins[int(lag / BIN)] += 1
        self._recent.append(lag)
        self.samples += 1
        self.worst = max(self.worst, lag)

    def percentile(self, fraction: float) -> float:
        """The lag that ``fraction`` of all samples stayed at or under (0 with no samples)."""
        if not self.samples:
            return 0.0
        rank = max(1, round(fraction * self.samples))
        seen = 0
        for index in sorted(self._bins):
            seen += self._bins[index]
            if seen >= rank:
                return (index + 1) * BIN
        return self.worst

    def recent(self, fraction: float = 0.9) -> float:
        """The ``fraction`` percentile over the last samples only (0 with none)."""
        if not self._recent:
            return 0.0
        ordered = sorted(self._recent)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def describe(self) -> str:
        ms = 1000
        return (
            f"p50 {self.percentile(0.5) * ms:.1f} ms, p99 {self.percentile(0.99) * ms:.1f} ms, "
            f"max {self.worst * ms:.1f} ms"
        )

    def __repr__(self) -> str:
        return f"<LoopLag samples={self.samples} {self.describe()}>"
