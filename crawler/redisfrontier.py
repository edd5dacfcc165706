"""A frontier shared through Redis: many crawler processes (and machines) crawl one site together.

:class:`RedisFrontier` implements the :class:`~crawler.frontier.Frontier` protocol, so the engine
runs unchanged; each worker process writes its own SQLite database. What lives in Redis (see
:mod:`crawler.redis_scripts` for the keys and the Lua scripts that change them atomically):

- the seen set, as 64-bit fingerprints in 2**14 intset buckets (about 9 bytes per URL once the
  crawl is large), and one queue per host of compact entries (depth, kind, path);
- politeness for all workers together: each host's in-flight requests, next allowed time (Redis
  ``TIME`` is the one clock), Crawl-delay and 429/503 backoff. A worker starts a request only
  when the ``take`` script grants it a slot, so ``per_host`` and ``delay`` hold across workers;
- robots.txt, fetched by one worker per host (the others wait for it) and shared;
- leases: a URL handed to a worker stays leased to it until the worker's database has committed
  its row (:meth:`RedisFrontier.committed`, called by the storage after each transaction). A
  worker's leases last while its heartbeat does: a worker that dies (kill -9) stops renewing, and
  any other worker puts its URLs back in their queues (``reap``);
- counters (queued, leased, done, the page budget) and per-worker numbers for ``status``.

The protocol's synchronous methods (add, push, retry, release, task_done ...) only buffer; a
background flusher sends the buffers in one pipeline, adds before acks, so a page's links are
queued in Redis before the page counts as done. ``add`` returns True when the URL is new *to this
worker* (its fingerprint was not sent before): Redis decides whether it is new to the crawl.

Redirect hops and retries stay with the worker that started them (their chain of rows belongs
to its database); they still wait for a slot of their host in Redis. A worker hands out nothing
more once the crawl's shared page budget (``max_pages``) is spent, and finishes when the shared
queues are empty and no URL is leased anywhere.

If Redis goes away mid-crawl, every call is retried for ``redis_wait`` seconds; then the worker
stops (:class:`~crawler.errors.FrontierLostError`) with its database saved. Its id is derived
from the machine and the database path, so the same command started again takes up its own
leases: those its database saved are acked, the others go back to the queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawler.config import Config
from crawler.errors import ConfigError, FrontierError, FrontierLostError
from crawler.frontier import SEEN_IN_MEMORY, Task, TaskKind, stored_kind
from crawler.redis_scripts import PRELUDE, SCRIPTS
from crawler.robots import RobotsCache, rules_from_answer
from crawler.urls import fingerprint, host_key

log = logging.getLogger("crawler")

SEEN_BUCKET_BITS = 14
ADD_BATCH = 500  # URLs per add script call
ACK_BATCH = 1000
POLL_SECONDS = 0.05  # longest wait for other workers' news when nothing is ready
MAX_TAKE = 16  # tasks taken in one round trip at most (they hold their host's slots)
CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 5.0
RATE_WINDOW = 10.0  # seconds of acks behind a worker's pages/s

# Redis errors that mean "not reachable right now" (retried for redis_wait seconds).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class WorkerStorage(Protocol):
    """What the shared frontier needs from the worker's database."""

    def queue_url(self, url: str, depth: int, host: str, seq: int, kind: str = "page") -> None: ...

    async def done_among(self, fingerprints: Sequence[int]) -> set[int]: ...

    async def queued_urls(self) -> list[tuple[str, int, str]]: ...


def key_prefix(name: str) -> str:
    return f"crawler:{name}:"


def seen_bucket(fp: int) -> int:
    """The seen-set bucket of a fingerprint: its top SEEN_BUCKET_BITS bits."""
    return (fp >> (64 - SEEN_BUCKET_BITS)) & ((1 << SEEN_BUCKET_BITS) - 1)


def pack_entry(url: str, host: str, depth: int, kind: TaskKind, owner: str | None = None) -> str:
    """A queue entry: depth, kind letter, and the URL's path (the host is the queue's key).

    ``p``/``a`` (page/asset) are followed by the path, ``P``/``A`` by the whole URL when it does
    not start with its host key (a URL with userinfo, say); ``o``/``O`` are an asset a plugin
    asked for: the plugin's name, a space, then the path or the URL.
    """
    letter = "o" if owner else "a" if kind == "asset" else "p"
    prefix = f"{owner} " if owner else ""
    if url.startswith(host) and url[len(host) : len(host) + 1] == "/":
        return f"{depth}{letter}{prefix}{url[len(host) :]}"
    return f"{depth}{letter.upper()}{prefix}{url}"


def unpack_entry(host: str, entry: str) -> tuple[str, int, TaskKind, str | None]:
    """(url, depth, kind, owner) of a queue entry of ``host``."""
    i = 0
    while entry[i].isdigit():
        i += 1
    letter, rest = entry[i], entry[i + 1 :]
    owner = None
    if letter in "oO":
        owner, _, rest = rest.partition(" ")
    url = host + rest if letter in "pao" else rest
    return url, int(entry[:i]), "page" if letter in "pP" else "asset", owner


def task_entry(task: Task) -> str:
    return pack_entry(task.url, task.host, task.depth, task.kind, task.owner)


def default_worker_id(db: Path) -> str:
    """This machine and database: the same command started again is the same worker."""
    return f"{socket.gethostname()}:{db.resolve()}"


def redacted(url: str) -> str:
    """The Redis URL without its password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"


@dataclass(slots=True)
class _Grant:
    """A slot Redis granted for a task: what to send back when it is released."""

    host: str
    token: str
    next_at: str  # the host's next allowed time the grant set (ms), to give back if unused


class RedisFrontier:
    """The shared frontier of one crawl (``name``) in one Redis database, seen from one worker.

    Open with :meth:`connect` (checks Redis and the crawl's settings), then :meth:`join` (with
    the worker's storage), :meth:`attach` (the engine's robots cache), and :meth:`close`.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        config: Config,
        *,
        worker: str,
        seen_in_memory: int = SEEN_IN_MEMORY,
    ) -> None:
        assert config.frontier is not None
        self.client = client
        self.url = config.frontier
        self.name = config.name
        self.prefix = key_prefix(config.name)
        self.per_host = config.per_host
        self.delay_ms = round(config.delay * 1000)
        self.concurrency = config.concurrency
        self.max_pages = config.max_pages
        self.respect_robots = config.respect_robots
        self.lease_ms = round(config.lease_timeout * 1000)
        self.redis_wait = config.redis_wait
        self.heartbeat_every = min(2.0, config.lease_timeout / 3)
        self.worker = worker
        self.db = str(config.db)
        self.seen_in_memory = seen_in_memory
        self.robots = RobotsCache(config.robots_token, enabled=config.respect_robots)
        self.on_blocked: Callable[[Task], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.on_queue: Callable[[str, int, str, int, str], None] | None = None
        self.spills = 0
        self.failed: FrontierLostError | None = None
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(PRELUDE + body) for name, body in SCRIPTS.items()
        }
        self._base = [self.prefix, str(self.per_host), str(self.delay_ms), worker]
        # Buffers, flushed in this order.
        self._adds: list[str] = []
        self._releases: list[str] = []
        self._robots_done: list[list[str]] = []
        self._acks: list[str] = []
        self._requeues: list[str] = []
        self._sent: set[int] = set()  # fingerprints this worker sent to the seen set
        self._leases: dict[int, tuple[str, str]] = {}  # fp -> (host, entry)
        self._grants: dict[tuple[str, str], _Grant] = {}  # (host, token) -> grant
        self._prefetched: deque[Task] = deque()
        self._waiting: deque[Task] = deque()  # hops and due retries: need a slot
        self._delayed: list[tuple[float, int, Task]] = []
        self._seq = 0
        self._outstanding = 0  # handed to the engine, task_done not yet called
        self._fetching = 0  # handed to the engine, release not yet called
        self._remote_queued = 0
        self._remote_leased = 0
        self._budget_spent = False
        self._no_new = False
        self._stopped = False
        self._wakeup = asyncio.Event()
        self._dirty = asyncio.Event()
        self._io = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._acked: deque[tuple[float, int]] = deque()  # (time, pages) for the rate
        self.pages_done = 0
        self.handed_out = 0
        self.lost_leases = 0
        self.outage_started: float | None = None
        self._started_at = time.monotonic()

    @property
    def where(self) -> str:
        """The Redis URL, password hidden."""
        return redacted(self.url)

    # -- opening and closing ---------------------------------------------------------------

    @classmethod
    async def connect(cls, config: Config, *, worker: str | None = None) -> RedisFrontier:
        """Connect, check that Redis answers, and create or check the crawl's settings.

        Raises FrontierError (the CLI exits 2) naming the URL when Redis cannot be reached,
        and ConfigError when the crawl in Redis was started with other settings.
        """
        assert config.frontier is not None
        client = open_client(config.frontier, min(SOCKET_TIMEOUT, max(1.0, config.redis_wait)))
        frontier = cls(client, config, worker=worker or default_worker_id(config.db))
        try:
            await client.ping()
            await frontier._init_meta(config)
        except UNREACHABLE as exc:
            await client.aclose()
            raise FrontierError(unreachable(config.frontier, exc)) from None
        except RedisError as exc:
            await client.aclose()
            raise FrontierError(f"Redis at {redacted(config.frontier)}: {exc}") from None
        except BaseException:
            await client.aclose()
            raise
        return frontier

    async def _init_meta(self, config: Config) -> None:
        wanted = {
            "per_host": str(config.per_host),
            "delay_ms": str(self.delay_ms),
            "scope": config.scope,
            "robots": "1" if config.respect_robots else "0",
            "seen_bucket_bits": str(SEEN_BUCKET_BITS),
        }
        args = [item for pair in wanted.items() for item in pair]
        reply = await self._scripts["init"](args=[*self._base, *args])
        stored = dict(zip(reply[::2], reply[1::2], strict=True))
        flags = {
            "per_host": f"--per-host {stored.get('per_host')}",
            "delay_ms": f"--delay {int(stored.get('delay_ms') or 0) / 1000:g}",
            "scope": f"--scope {stored.get('scope')}",
            "robots": "--no-robots" if stored.get("robots") == "0" else "robots.txt obeyed",
        }
        for key, flag in flags.items():
            if stored and stored.get(key) != wanted[key]:
                raise ConfigError(
                    f"the crawl {self.name!r} at {redacted(self.url)} was started with {flag}; "
                    f"every worker must use the same settings (or pass --name NEW for a new "
                    f"crawl)"
                )

    async def join(self, storage: WorkerStorage) -> int:
        """Register this worker; take back the leases of a previous process with the same id.

        From now on every URL this worker sends to Redis is also written to its database's
        ``frontier`` table (state 0, in the transaction of the page that found it), so nothing
        found is lost if Redis or the process goes away before the URL reached Redis. Leases
        taken back whose URL the database holds as done are acked, after every URL the database
        holds as found has been sent again (Redis drops those it has); the others go back to
        their queues. Returns the number of leases taken back.
        """
        info = self._info()
        info["pid"] = str(os.getpid())
        info["machine"] = socket.gethostname()
        info["db"] = self.db
        args = [str(self.lease_ms), *(item for pair in info.items() for item in pair)]
        leases = await self._call(lambda: self._scripts["register"](args=[*self._base, *args]))
        if leases:
            pairs = []
            for item in leases:
                host, _, entry = item.partition("\t")
                url, *_ = unpack_entry(host, entry)
                pairs.append((fingerprint(url), host, entry))
            saved = await storage.done_among([fp for fp, _, _ in pairs])
            acks = [x for fp, host, entry in pairs if fp in saved for x in (host, entry)]
            back = [x for fp, host, entry in pairs if fp not in saved for x in (host, entry)]
            if acks:
                for url, depth, stored in await storage.queued_urls():
                    kind, _, owner = stored.partition(":")
                    self._send(url, depth, "asset" if kind == "asset" else "page", owner or None)
                await self._sync()
                await self._call(lambda: self._scripts["ack"](args=[*self._base, *acks]))
            if back:
                await self._call(lambda: self._scripts["requeue"](args=[*self._base, *back]))
        self.on_queue = storage.queue_url
        self._tasks.append(asyncio.create_task(self._flush_loop()))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop()))
        return len(leases)

    def attach(self, robots: RobotsCache, on_blocked: Callable[[Task], None]) -> RedisFrontier:
        """The engine's frontier factory: use its robots cache and blocked-URL callback."""
        self.robots = robots
        self.on_blocked = on_blocked
        return self

    async def close(self, state: str = "stopped") -> None:
        """Send what is buffered, give back every lease not acked, leave; close the client."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, FrontierLostError):
                await task
        self._tasks.clear()
        try:
            if self.failed is None:
                await self._sync()
                info = [item for pair in self._info().items() for item in pair]
                await self._call(lambda: self._scripts["leave"](args=[*self._base, state, *info]))
        except FrontierLostError:
            pass
        finally:
            await self.client.aclose()

    async def counters(self) -> dict[str, int]:
        values = await self._call(lambda: self.client.hgetall(self.prefix + "n"))
        return {str(k): int(v) for k, v in values.items()}

    # -- the storage's hook ----------------------------------------------------------------

    def committed(self, fingerprints: Sequence[int]) -> None:
        """The worker's database committed these URLs as done: ack their leases in Redis."""
        for fp in fingerprints:
            lease = self._leases.pop(fp, None)
            if lease is not None:
                self._acks.extend(lease)
        if self._acks:
            self._dirty.set()

    # -- the Frontier protocol -------------------------------------------------------------

    def add(self, url: str, depth: int, kind: TaskKind = "page", owner: str | None = None) -> bool:
        """Queue ``url`` in Redis unless this worker sent it before; True when it did not.

        Whether the URL is new to the whole crawl is decided in Redis, by the seen set.
        """
        fp = fingerprint(url)
        if fp in self._sent:
            return False
        if len(self._sent) >= self.seen_in_memory:
            self._sent.clear()  # Redis' seen set still decides; this only saves round trips
        self._sent.add(fp)
        host = self._send(url, depth, kind, owner, fp)
        if self.on_queue is not None:
            self.on_queue(url, depth, host, 0, stored_kind(kind, owner))
        return True

    def _send(
        self, url: str, depth: int, kind: TaskKind, owner: str | None, fp: int | None = None
    ) -> str:
        """Buffer ``url`` for the add script; returns its host."""
        fp = fingerprint(url) if fp is None else fp
        host = host_key(url)
        entry = pack_entry(url, host, depth, kind, owner)
        self._adds += (str(seen_bucket(fp)), str(fp), host, entry)
        self._dirty.set()
        return host

    async def claim(self, url: str, depth: int) -> bool:
        """Reserve a redirect target for this worker's chain; False if the crawl has seen it."""
        fp = fingerprint(url)
        if fp in self._sent:
            return False
        host = host_key(url)
        entry = pack_entry(url, host, depth, "page")
        budget = "-1" if self.max_pages is None else str(self.max_pages)
        args = [budget, str(seen_bucket(fp)), str(fp), host, entry]
        try:
            claimed = await self._call(lambda: self._scripts["claim"](args=[*self._base, *args]))
        except FrontierLostError:
            return False
        self._sent.add(fp)
        if claimed:
            self._leases[fp] = (host, entry)
        return bool(claimed)

    def push(self, task: Task) -> None:
        self._waiting.appendleft(task)
        self._wakeup.set()

    def retry(self, task: Task, delay: float) -> None:
        self._seq += 1
        heapq.heappush(
            self._delayed,
            (time.monotonic() + delay, self._seq, replace(task, attempt=task.attempt + 1)),
        )
        self._wakeup.set()

    def release(self, task: Task, status: int | None, retry_after: float | None = None) -> None:
        token = "R" if task.kind == "robots" else task_entry(task)
        self._grants.pop((task.host, token), None)
        self._fetching = max(0, self._fetching - 1)
        retry_ms = "" if retry_after is None else str(round(retry_after * 1000))
        self._releases += (task.host, token, "" if status is None else str(status), retry_ms, "")
        self._dirty.set()
        self._wakeup.set()

    def robots_loaded(self, host: str) -> None:
        rules = self.robots.get(host)
        if rules is None:
            return
        status = "" if rules.status is None else str(rules.status)
        delay_ms = str(round(rules.crawl_delay(self.robots.token) * 1000))
        self._robots_done.append([host, status, rules.text, rules.error or "", delay_ms])
        self._dirty.set()

    def task_done(self, task: Task) -> None:
        self._outstanding -= 1
        self._wakeup.set()

    def stop(self) -> None:
        self._stopped = True
        self._wakeup.set()

    def stop_new(self) -> None:
        self._no_new = True
        self._wakeup.set()

    @property
    def queued(self) -> int:
        """URLs this worker may still hand out: its own waiting tasks, and the shared queues
        unless the page budget is spent or it takes no new URLs."""
        local = len(self._waiting) + len(self._delayed) + len(self._prefetched)
        if self._no_new or self._budget_spent or self._stopped:
            return local
        return self._remote_queued + local

    async def next_ready(self) -> Task | None:
        while True:
            if self._stopped or self.failed is not None:
                return None
            if self._prefetched:
                self._outstanding += 1
                self._fetching += 1
                self.handed_out += 1
                return self._prefetched.popleft()
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                self._waiting.append(heapq.heappop(self._delayed)[2])
            # The engine asks when it has room for one more request; take what may follow.
            want = max(1, min(MAX_TAKE, self.concurrency - self._fetching))
            self._wakeup.clear()  # news from here on (a slot freed meanwhile) ends the wait below
            try:
                wait = await self._take(want)
            except FrontierLostError:
                return None
            if self._prefetched:
                continue
            if self._finished():
                return None
            timeouts = [POLL_SECONDS]
            if wait >= 0:
                timeouts.append(wait / 1000)
            if self._delayed:
                timeouts.append(self._delayed[0][0] - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(0.002, min(timeouts)))

    def _finished(self) -> bool:
        if self._outstanding or self._waiting or self._delayed or self._prefetched:
            return False
        if self._no_new or self._budget_spent:
            return True
        return self._remote_queued == 0 and self._remote_leased == 0 and not self._adds

    # -- talking to Redis ------------------------------------------------------------------

    async def _take(self, want: int) -> float:
        """One round trip: flush the buffers, get slots for waiting tasks and new tasks.

        Returns how long (ms) until a host may be ready (-1: unknown)."""
        waiting = list(self._waiting)[:want]
        pairs: list[str] = []
        for task in waiting:
            pairs += (task.host, task_entry(task))
        budget = "-1" if self.max_pages is None else str(self.max_pages)
        args = [
            str(want),
            "1" if self.respect_robots else "0",
            budget,
            "1" if self._no_new else "0",
            str(len(waiting)),
            *pairs,
        ]
        reply = await self._sync(take=args)
        assert reply is not None
        wait, queued, leased, spent = (int(float(x)) for x in reply[:4])
        self._remote_queued, self._remote_leased = queued, leased
        self._budget_spent = bool(spent)
        results = reply[4 : 4 + len(waiting)]
        granted: list[Task] = []
        for index, (task, result) in enumerate(zip(waiting, results, strict=True)):
            if result.startswith("G"):
                token = pairs[2 * index + 1]
                self._grants[(task.host, token)] = _Grant(task.host, token, result[1:])
                granted.append(task)
        if granted:
            chosen = {id(task) for task in granted}
            self._waiting = deque(task for task in self._waiting if id(task) not in chosen)
        rest = reply[4 + len(waiting) :]
        fresh: list[tuple[str, str, str, str]] = [
            (rest[i], rest[i + 1], rest[i + 2], rest[i + 3]) for i in range(0, len(rest), 4)
        ]
        await self._load_robots({host for kind, host, _, _ in fresh if kind == "P"})
        await self._load_robots({task.host for task in granted if task.attempt == 1})
        for task in granted:
            self._hand_out(task)
        for kind, host, entry, next_at in fresh:
            if kind == "R":
                self.robots.mark_loading(host)
                self._grants[(host, "R")] = _Grant(host, "R", next_at)
                self._prefetched.append(Task(f"{host}/robots.txt", 0, host, kind="robots"))
                continue
            url, depth, task_kind, owner = unpack_entry(host, entry)
            self._leases[fingerprint(url)] = (host, entry)
            self._grants[(host, entry)] = _Grant(host, entry, next_at)
            self._hand_out(Task(url, depth, host, kind=task_kind, owner=owner))
        return float(wait)

    def _hand_out(self, task: Task) -> None:
        """Queue a granted task for the engine, unless robots.txt disallows it."""
        if task.attempt == 1 and not self.robots.allows(task.host, task.url):
            token = task_entry(task)
            grant = self._grants.pop((task.host, token), None)
            self._releases += (task.host, token, "", "", grant.next_at if grant else "")
            self._dirty.set()
            if self.on_blocked is not None:
                self.on_blocked(task)
            return
        self._prefetched.append(task)

    async def _load_robots(self, hosts: Iterable[str]) -> None:
        """Fetch from Redis the robots.txt of hosts this worker has not seen yet."""
        if not self.respect_robots:
            return
        unknown = [host for host in hosts if self.robots.get(host) is None]
        if not unknown:
            return

        async def load() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for host in unknown:
                pipe.hmget(self.prefix + "h:" + host, "rs", "rt", "re")
            return list(await pipe.execute())

        for host, (status, text, error) in zip(unknown, await self._call(load), strict=True):
            code = int(status) if status else None
            rules = rules_from_answer(host, code, (text or "").encode(), error or None)
            self.robots.store(rules)

    async def _sync(self, take: list[str] | None = None) -> list[Any] | None:
        """Send the buffers (adds, releases, robots.txt, acks) and maybe a take, in one pipeline.

        The buffers are taken before the round trip; on a lost connection they are put back
        and the whole pipeline is sent again (every script can be repeated safely)."""
        async with self._io:
            adds, self._adds = self._adds, []
            releases, self._releases = self._releases, []
            robots_done, self._robots_done = self._robots_done, []
            acks, self._acks = self._acks, []
            if not (adds or releases or robots_done or acks or take is not None):
                return None

            async def send() -> list[Any]:
                pipe = self.client.pipeline(transaction=False)
                base = self._base
                for i in range(0, len(adds), 4 * ADD_BATCH):
                    await self._scripts["add"](
                        args=[*base, *adds[i : i + 4 * ADD_BATCH]], client=pipe
                    )
                if releases:
                    await self._scripts["release"](args=[*base, *releases], client=pipe)
                for item in robots_done:
                    await self._scripts["robots_done"](args=[*base, *item], client=pipe)
                for i in range(0, len(acks), 2 * ACK_BATCH):
                    await self._scripts["ack"](
                        args=[*base, *acks[i : i + 2 * ACK_BATCH]], client=pipe
                    )
                if take is not None:
                    await self._scripts["take"](args=[*base, *take], client=pipe)
                return list(await pipe.execute())

            try:
                replies = await self._retrying(send)
            except FrontierLostError:
                self._adds[:0], self._releases[:0] = adds, releases
                self._robots_done[:0], self._acks[:0] = robots_done, acks
                raise
            self._count_acks(replies, len(adds), len(releases), len(robots_done))
            return replies[-1] if take is not None else None

    def _count_acks(self, replies: list[Any], adds: int, releases: int, robots: int) -> None:
        skip = -(-adds // (4 * ADD_BATCH)) + (1 if releases else 0) + robots
        now = time.monotonic()
        for reply in replies[skip:]:
            if isinstance(reply, list) and len(reply) == 2:
                done, lost = int(reply[0]), int(reply[1])
                self.pages_done += done
                self.lost_leases += lost
                self._acked.append((now, done))

    async def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        async with self._io:
            return await self._retrying(fn)

    async def _retrying(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fn``; while Redis is unreachable, retry for ``redis_wait`` seconds in all."""
        delay = 0.1
        while True:
            if self.failed is not None:
                raise self.failed
            try:
                result = await fn()
            except UNREACHABLE as exc:
                now = time.monotonic()
                if self.outage_started is None:
                    self.outage_started = now
                    log.warning(
                        "Redis at %s is unreachable (%s); retrying for up to %g s",
                        redacted(self.url),
                        exc,
                        self.redis_wait,
                    )
                if now - self.outage_started >= self.redis_wait:
                    self._lose(
                        f"Redis at {redacted(self.url)} was unreachable for "
                        f"{now - self.outage_started:.0f} s (redis_wait = {self.redis_wait:g} s)"
                    )
                    assert self.failed is not None
                    raise self.failed from exc
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
                continue
            if self.outage_started is not None:
                await self._recovered()
            return result

    async def _recovered(self) -> None:
        """Redis answers again: check that it kept the crawl, and that we hold what we think."""
        outage = time.monotonic() - (self.outage_started or 0.0)
        self.outage_started = None
        if not await self.client.exists(self.prefix + "meta"):
            self._lose(
                f"Redis at {redacted(self.url)} came back after {outage:.0f} s without the "
                f"crawl {self.name!r} (restarted without persistence?)"
            )
            assert self.failed is not None
            raise self.failed
        log.warning("Redis at %s answers again after %.1f s", redacted(self.url), outage)
        # A script whose reply was lost may have granted slots or leases we do not know of.
        held = [str(f) for f in await self.client.hkeys(self.prefix + "wl:" + self.worker)]
        known_slots = {f"S{host}\t{token}" for host, token in self._grants}
        known_leases = {f"L{host}\t{entry}" for host, entry in self._leases.values()}
        releases: list[str] = []
        requeues: list[str] = []
        for field in held:
            host, _, item = field[1:].partition("\t")
            if field.startswith("S") and field not in known_slots:
                releases += (host, item, "", "", "")
            elif field.startswith("L") and field not in known_leases:
                requeues += (host, item)
        if releases:
            await self._scripts["release"](args=[*self._base, *releases])
        if requeues:
            await self._scripts["requeue"](args=[*self._base, *requeues])

    def _lose(self, message: str) -> None:
        self.failed = FrontierLostError(
            f"{message}; stopped with everything fetched saved in {self.db}. Start the worker "
            "again (same command, with --resume) to continue the crawl"
        )
        self._stopped = True
        self._wakeup.set()
        if self.on_lost is not None:
            self.on_lost()

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._sync()
            except FrontierLostError:
                return

    def _info(self) -> dict[str, str]:
        now = time.monotonic()
        while self._acked and self._acked[0][0] < now - RATE_WINDOW:
            self._acked.popleft()
        window = min(RATE_WINDOW, max(1.0, now - self._started_at))
        rate = sum(n for _, n in self._acked) / window
        return {
            "rate": f"{rate:.2f}",
            "requests": str(self.handed_out),
            "in_flight": str(self._outstanding),
            "leases": str(len(self._leases)),
            "lost": str(self.lost_leases),
        }

    async def _heartbeat_loop(self) -> None:
        self._started_at = time.monotonic()
        while True:
            await asyncio.sleep(self.heartbeat_every)
            info = self._info()
            args = [str(self.lease_ms), *(item for pair in info.items() for item in pair)]
            try:
                alive = await self._call(
                    lambda args=args: self._scripts["heartbeat"](args=[*self._base, *args])  # type: ignore[misc]
                )
                reaped = await self._call(lambda: self._scripts["reap"](args=[*self._base]))
            except FrontierLostError:
                return
            if not alive:
                log.warning(
                    "worker %s was taken for dead (no heartbeat for %g s); its leases went to "
                    "other workers",
                    self.worker,
                    self.lease_ms / 1000,
                )
            if reaped and int(reaped[0]):
                log.warning(
                    "%s dead worker(s) found: %s of their URLs went back to the queues",
                    reaped[0],
                    reaped[1],
                )
                self._wakeup.set()

    def __repr__(self) -> str:
        state = " failed" if self.failed else (" stopped" if self._stopped else "")
        return (
            f"<RedisFrontier {redacted(self.url)} name={self.name!r} worker={self.worker!r} "
            f"queued={self._remote_queued} leased={self._remote_leased} "
            f"mine={len(self._leases)} outstanding={self._outstanding} "
            f"waiting={len(self._waiting)} delayed={len(self._delayed)}{state}>"
        )


def open_client(url: str, timeout: float = SOCKET_TIMEOUT) -> aioredis.Redis:
    """A client for ``url``: short timeouts, no retries of its own (callers retry)."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=min(CONNECT_TIMEOUT, timeout),
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # outages are retried here, for redis_wait seconds
    )
    return client


def unreachable(url: str, exc: BaseException) -> str:
    return f"cannot reach Redis at {redacted(url)} (--frontier): {exc}"
