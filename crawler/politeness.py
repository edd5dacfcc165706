"""Per-host politeness: one :class:`HostSlot` per host and a heap of hosts ordered by readiness.

A slot allows at most ``per_host`` requests in flight to its host and spaces request *starts*
at least ``max(delay, crawl_delay) + backoff`` seconds apart. A 429 or 503 answer doubles the
host's backoff (and honours Retry-After); successful answers let it decay again. The
:class:`ReadyHeap` lets a single dispatcher find the next host that may be contacted without
any worker sleeping on behalf of a slow host (no head-of-line blocking).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

SLOWDOWN_STATUSES = frozenset({429, 503})
MAX_BACKOFF = 60.0
FIRST_BACKOFF = 1.0


@dataclass(slots=True)
class HostSlot:
    """Politeness state of one host (scheme://host[:port])."""

    key: str
    per_host: int
    delay: float = 0.0
    crawl_delay: float = 0.0
    backoff: float = 0.0
    in_flight: int = 0
    next_allowed_at: float = 0.0
    paused: bool = False
    requests: int = 0

    @property
    def interval(self) -> float:
        """Seconds between two request starts to this host."""
        return max(self.delay, self.crawl_delay) + self.backoff

    def has_capacity(self) -> bool:
        return not self.paused and self.in_flight < self.per_host

    def ready_at(self) -> float:
        return self.next_allowed_at

    def start(self, now: float) -> None:
        """A request to this host starts now."""
        self.in_flight += 1
        self.requests += 1
        self.next_allowed_at = max(self.next_allowed_at, now) + self.interval

    def finish(
        self, now: float, status: int | None = None, retry_after: float | None = None
    ) -> None:
        """A request to this host got its answer (``status`` None: no HTTP response)."""
        self.in_flight = max(0, self.in_flight - 1)
        if status in SLOWDOWN_STATUSES:
            self.backoff = min(MAX_BACKOFF, max(FIRST_BACKOFF, self.backoff * 2))
            wait = retry_after if retry_after is not None else self.backoff
            self.next_allowed_at = max(self.next_allowed_at, now + wait)
        elif status is not None and self.backoff:
            self.backoff = self.backoff / 2 if self.backoff > 0.05 else 0.0

    def __repr__(self) -> str:
        return (
            f"<HostSlot {self.key} in_flight={self.in_flight}/{self.per_host} "
            f"interval={self.interval:.3g}s next_allowed_at={self.next_allowed_at:.3f}"
            f"{' paused' if self.paused else ''} requests={self.requests}>"
        )


@dataclass(slots=True)
class ReadyHeap:
    """Hosts with queued work, ordered by the time their slot next allows a request.

    Entries are lazy: a host is pushed again whenever its readiness changes, and stale
    entries (an older time, or a host that no longer qualifies) are dropped when popped.
    """

    _heap: list[tuple[float, int, str]] = field(default_factory=list)
    _key_time: dict[str, float] = field(default_factory=dict)
    _seq: int = 0

    def push(self, key: str, at: float) -> None:
        if self._key_time.get(key) == at:
            return
        self._key_time[key] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, key))

    def discard(self, key: str) -> None:
        self._key_time.pop(key, None)

    def peek(self) -> tuple[float, str] | None:
        """The earliest live entry, without removing it."""
        while self._heap:
            at, _, key = self._heap[0]
            if self._key_time.get(key) == at:
                return at, key
            heapq.heappop(self._heap)
        return None

    def pop(self) -> tuple[float, str] | None:
        top = self.peek()
        if top is not None:
            heapq.heappop(self._heap)
            del self._key_time[top[1]]
        return top

    def __len__(self) -> int:
        return len(self._key_time)

    def __repr__(self) -> str:
        top = self.peek()
        return f"<ReadyHeap hosts={len(self)} next={top}>"
