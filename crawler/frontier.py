"""The frontier: what to fetch next, when, and what has been seen.

:class:`Frontier` is the seam between the engine and where crawl state lives. The engine
only ever calls the methods of the protocol, so another implementation (SQLite-backed,
Redis-backed for many processes) slots in without touching it.

:class:`MemoryFrontier` keeps per-host queues and a :class:`~crawler.politeness.ReadyHeap`
of hosts. It has a single consumer, the engine's dispatcher, which calls :meth:`next_ready`
and gets either a task whose host slot it may use right now, or ``None`` when the crawl has
run out of work. A host waiting out its delay never holds up a task for another host.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from crawler.politeness import HostSlot, ReadyHeap
from crawler.robots import RobotsCache
from crawler.urls import fingerprint, host_key

TaskKind = Literal["page", "asset", "robots"]

# URLs kept in memory per host, and in all; the rest wait on disk (the frontier table) and are
# loaded a batch at a time when their host runs dry, so memory stays flat as the queue grows.
HOST_MEMORY_QUEUE = 1000
MEMORY_QUEUE = 50_000
# Fingerprints of URLs seen, kept in memory at most. Until it overflows the set is exact and
# decides alone; after that (and after a resume) the frontier table on disk is the seen set:
# every URL goes there with INSERT OR IGNORE, and only rows that were new come back to fetch.
SEEN_IN_MEMORY = 500_000

QueueWriter = Callable[[str, int, str, int, str], None]
QueueLoader = Callable[[str, int, int], Awaitable[list[tuple[str, int, int, str]]]]
Claimer = Callable[[str, int, str], Awaitable[bool]]


@dataclass(slots=True)
class Spill:
    """A host whose queue continues on disk from sequence number ``from_seq`` on."""

    from_seq: int
    count: int = 0
    generation: int = 0


@dataclass(slots=True)
class Task:
    """One request to make: a page (maybe a redirect hop or a retry) or a host's robots.txt."""

    url: str
    depth: int
    host: str
    attempt: int = 1
    kind: TaskKind = "page"
    origin: str | None = None
    chain: tuple[Any, ...] = field(default=())
    owner: str | None = None  # the plugin that asked for this asset (request_asset)

    def __repr__(self) -> str:
        extra = f" attempt={self.attempt}" if self.attempt > 1 else ""
        if self.owner:
            extra += f" owner={self.owner}"
        if self.origin:
            extra += f" hop={len(self.chain)} of {self.origin}"
        return f"<Task {self.kind} {self.url} depth={self.depth}{extra}>"


def stored_kind(kind: TaskKind, owner: str | None = None) -> str:
    """The frontier table's ``kind``: ``page``, ``asset``, or ``asset:OWNER`` for a plugin's."""
    return f"{kind}:{owner}" if owner else kind


def _task_kind(stored: str) -> tuple[TaskKind, str | None]:
    """The task kind and owner of a frontier table ``kind`` (see :func:`stored_kind`)."""
    kind, _, owner = stored.partition(":")
    return ("asset" if kind == "asset" else "page"), owner or None


class Frontier(Protocol):
    """What the engine needs from crawl state; every call is made from the event loop."""

    def add(self, url: str, depth: int, kind: TaskKind = "page", owner: str | None = None) -> bool:
        """Queue ``url`` unless it was seen before; True when it is new. ``owner`` names the
        plugin that asked for an asset; it is kept with the task, across a resume too."""

    async def claim(self, url: str, depth: int) -> bool:
        """Mark ``url`` seen without queueing it (a redirect target); True when it was new."""

    def push(self, task: Task) -> None:
        """Queue an already-claimed task (redirect hop) ahead of its host's other work."""

    def retry(self, task: Task, delay: float) -> None:
        """Queue the next attempt of ``task`` after ``delay`` seconds."""

    async def next_ready(self) -> Task | None:
        """Wait for a task whose host may be contacted now; None when the crawl is done."""

    def release(self, task: Task, status: int | None, retry_after: float | None = None) -> None:
        """The request for ``task`` got its answer: free the host slot."""

    def robots_loaded(self, host: str) -> None:
        """``host``'s robots.txt is known: its page tasks may proceed."""

    def task_done(self, task: Task) -> None:
        """All work for a task returned by next_ready is finished."""

    def stop(self) -> None:
        """Hand out no more tasks: next_ready returns None from now on."""

    def stop_new(self) -> None:
        """Hand out no new URLs, only retries and redirect hops of started ones."""

    @property
    def queued(self) -> int: ...

    @property
    def spills(self) -> int:
        """URLs that waited on disk rather than in memory (for the summary)."""


# Builds the crawl's frontier from the engine's robots cache and its blocked-URL callback
# (the engine's seam: the default is a MemoryFrontier over the crawl database).
FrontierFactory = Callable[[RobotsCache, Callable[[Task], None]], Frontier]


class MemoryFrontier:
    """An in-process frontier: per-host deques, a ready-host heap and a seen set."""

    def __init__(
        self,
        *,
        per_host: int,
        delay: float,
        robots: RobotsCache,
        on_blocked: Callable[[Task], None] | None = None,
        on_queue: QueueWriter | None = None,
        loader: QueueLoader | None = None,
        claimer: Claimer | None = None,
        clock: Callable[[], float] = time.monotonic,
        host_memory_queue: int | None = None,
        memory_queue: int | None = None,
        seen_in_memory: int | None = None,
    ) -> None:
        self.per_host = per_host
        self.delay = delay
        self.robots = robots
        self.on_blocked = on_blocked
        self.on_queue = on_queue
        self.loader = loader
        self.claimer = claimer
        self.clock = clock
        self.host_memory_queue = host_memory_queue or HOST_MEMORY_QUEUE
        self.memory_queue = memory_queue or MEMORY_QUEUE
        self.seen_in_memory = seen_in_memory or SEEN_IN_MEMORY
        self._seen: set[int] = set()
        self._exact = True  # _seen holds every URL of the crawl
        self._queues: dict[str, deque[Task]] = {}
        self._spills: dict[str, Spill] = {}
        self._spilled = 0
        self._next_seq = 0
        self.spills = 0
        self.refills = 0
        self._no_new = False
        self._slots: dict[str, HostSlot] = {}
        self._ready = ReadyHeap()
        self._delayed: list[tuple[float, int, Task]] = []
        self._seq = 0
        self._queued = 0
        self._unfinished = 0
        self._stopped = False
        self._wakeup = asyncio.Event()

    # -- adding work -------------------------------------------------------------------

    def add(self, url: str, depth: int, kind: TaskKind = "page", owner: str | None = None) -> bool:
        """Queue ``url`` unless seen; True when it is new, or may be (the table decides)."""
        fp = fingerprint(url)
        if fp in self._seen:
            return False
        self._remember(fp)
        host = host_key(url)
        seq = self._next_seq
        self._next_seq += 1
        if self.on_queue is not None:
            self.on_queue(url, depth, host, seq, stored_kind(kind, owner))
        if self._no_new:
            return True  # saved for a later --resume, not fetched in this run
        if self.loader is not None and self._must_spill(host):
            self._spill(host, seq)
        else:
            self._enqueue(Task(url, depth, host, kind=kind, owner=owner))
        return True

    def _remember(self, fp: int) -> None:
        if len(self._seen) >= self.seen_in_memory and self.loader is not None:
            # Forget, and let the frontier table (INSERT OR IGNORE) tell new from seen.
            self._seen.clear()
            self._exact = False
        self._seen.add(fp)

    def _must_spill(self, host: str) -> bool:
        if not self._exact or host in self._spills or self._queued >= self.memory_queue:
            return True
        queue = self._queues.get(host)
        return queue is not None and len(queue) >= self.host_memory_queue

    def _spill(self, host: str, seq: int) -> None:
        """Leave the URL numbered ``seq`` on disk only; its host loads it when it runs dry."""
        spill = self._spills.get(host)
        if spill is None:
            spill = self._spills[host] = Spill(seq)
        spill.count += 1
        spill.generation += 1
        self.spills += 1
        self._spilled += 1
        self._unfinished += 1
        self._schedule(host)
        self._wakeup.set()

    def restore(self, queued: Mapping[str, int], next_seq: int) -> None:
        """Take up a saved crawl: how many URLs each host still has queued.

        The queued URLs stay on disk; each host loads them a batch at a time. The seen set
        is the frontier table itself from now on.
        """
        self._exact = False
        self._next_seq = max(self._next_seq, next_seq)
        for host, count in queued.items():
            if count:
                self._spills[host] = Spill(0, count)
                self._spilled += count
                self._unfinished += count
                self._schedule(host)
        self._wakeup.set()

    async def _refill(self, host: str) -> None:
        """Load the next batch of ``host``'s queue from disk into memory."""
        spill = self._spills[host]
        assert self.loader is not None
        generation = spill.generation
        room = max(10, min(self.host_memory_queue, self.memory_queue - self._queued))
        rows = await self.loader(host, spill.from_seq, room)
        self.refills += 1
        for url, depth, _, stored in rows:
            kind, owner = _task_kind(stored)
            self._enqueue(Task(url, depth, host, kind=kind, owner=owner), counted=True)
        spill.count -= len(rows)
        self._spilled -= len(rows)
        if rows:
            spill.from_seq = rows[-1][2] + 1
        if spill.generation == generation and (spill.count <= 0 or not rows):
            # The host's whole queue is in memory now. A count left over would be work that
            # is not on disk; dropping it from the books lets the crawl finish.
            del self._spills[host]
            self._spilled -= spill.count
            self._unfinished -= spill.count
        self._schedule(host)

    def add_many(self, items: Iterable[tuple[str, int]]) -> int:
        return sum(self.add(url, depth) for url, depth in items)

    async def claim(self, url: str, depth: int) -> bool:
        """Reserve ``url`` for a redirect chain that is about to fetch it; False if seen."""
        fp = fingerprint(url)
        if fp in self._seen:
            return False
        if self.claimer is not None and not await self.claimer(url, depth, host_key(url)):
            return False
        self._remember(fp)
        return True

    def seen(self, url: str) -> bool:
        return fingerprint(url) in self._seen

    def push(self, task: Task) -> None:
        self._enqueue(task, front=True)

    def retry(self, task: Task, delay: float) -> None:
        self._seq += 1
        nxt = replace(task, attempt=task.attempt + 1)
        heapq.heappush(self._delayed, (self.clock() + delay, self._seq, nxt))
        self._unfinished += 1
        self._wakeup.set()

    def _enqueue(self, task: Task, *, front: bool = False, counted: bool = False) -> None:
        queue = self._queues.get(task.host)
        if queue is None:
            queue = self._queues[task.host] = deque()
        if front:
            queue.appendleft(task)
        else:
            queue.append(task)
        self._queued += 1
        if not counted:
            self._unfinished += 1
        self._schedule(task.host)
        self._wakeup.set()

    # -- scheduling --------------------------------------------------------------------

    def slot(self, host: str) -> HostSlot:
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = HostSlot(host, self.per_host, self.delay)
        return slot

    def _schedule(self, host: str) -> None:
        """(Re)place ``host`` on the ready heap if it has work and a free slot."""
        slot = self.slot(host)
        if (self._queues.get(host) or host in self._spills) and slot.has_capacity():
            self._ready.push(host, slot.ready_at())
        else:
            self._ready.discard(host)

    def _promote_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, task = heapq.heappop(self._delayed)
            self._unfinished -= 1  # _enqueue counts it again
            self._enqueue(task, front=True)

    async def next_ready(self) -> Task | None:
        while True:
            if self._stopped or self._unfinished == 0:
                return None
            now = self.clock()
            self._promote_due(now)
            top = self._ready.peek()
            if top is not None and top[0] <= now:
                host = top[1]
                if not self._queues.get(host) and host in self._spills:
                    await self._refill(host)
                    continue
                task = self._take(host, now)
                if task is not None:
                    return task
                continue
            wait_until = [t for t in (top and top[0], self._delayed and self._delayed[0][0]) if t]
            timeout = max(0.0, min(wait_until) - now) if wait_until else None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def _take(self, host: str, now: float) -> Task | None:
        """Start the next request for ``host``: its robots.txt first, then allowed pages."""
        self._ready.discard(host)
        slot = self.slot(host)
        queue = self._queues[host]
        if self.robots.needs_fetch(host):
            self.robots.mark_loading(host)
            slot.paused = True
            slot.start(now)
            self._unfinished += 1
            return Task(f"{host}/robots.txt", 0, host, kind="robots")
        while queue:
            task = queue.popleft()
            self._queued -= 1
            if task.attempt == 1 and not self.robots.allows(host, task.url):
                self._unfinished -= 1
                if self.on_blocked is not None:
                    self.on_blocked(task)
                continue
            slot.start(now)
            self._schedule(host)
            return task
        self._schedule(host)
        self._wakeup.set()
        return None

    # -- completion --------------------------------------------------------------------

    def release(self, task: Task, status: int | None, retry_after: float | None = None) -> None:
        slot = self.slot(task.host)
        slot.finish(self.clock(), status, retry_after)
        self._schedule(task.host)
        self._wakeup.set()

    def robots_loaded(self, host: str) -> None:
        slot = self.slot(host)
        slot.crawl_delay = self.robots.crawl_delay(host)
        slot.paused = False
        slot.next_allowed_at = max(slot.next_allowed_at, self.clock() + slot.interval)
        self._schedule(host)
        self._wakeup.set()

    def task_done(self, task: Task) -> None:
        self._unfinished -= 1
        if self._unfinished <= 0:
            self._wakeup.set()

    def stop(self) -> None:
        self._stopped = True
        self._wakeup.set()

    def stop_new(self) -> None:
        """Start no new URL from now on (the page budget is spent); retries and the redirect
        hops of URLs already started still run. What is dropped stays queued on disk."""
        if self._no_new:
            return
        self._no_new = True
        for host, queue in self._queues.items():
            keep = deque(task for task in queue if task.attempt > 1 or task.chain)
            dropped = len(queue) - len(keep)
            self._queues[host] = keep
            self._queued -= dropped
            self._unfinished -= dropped
        self._unfinished -= self._spilled
        self._spilled = 0
        self._spills.clear()
        for host in self._queues:
            self._schedule(host)
        self._wakeup.set()

    @property
    def queued(self) -> int:
        return self._queued + self._spilled + len(self._delayed)

    @property
    def in_memory(self) -> int:
        return self._queued

    @property
    def seen_count(self) -> int:
        return len(self._seen)

    @property
    def hosts(self) -> int:
        return len(self._slots)

    def __repr__(self) -> str:
        state = " stopped" if self._stopped else ""
        return (
            f"<MemoryFrontier seen={len(self._seen)} queued={self._queued} "
            f"on_disk={self._spilled} "
            f"delayed={len(self._delayed)} unfinished={self._unfinished} "
            f"hosts={len(self._slots)} ready={len(self._ready)}{state}>"
        )
