"""The crawl loop: a dispatcher hands ready tasks to fetch coroutines, bounded by ``concurrency``.

Data flows one way: seeds -> frontier -> politeness slot -> fetcher -> analysis (process
pool) -> storage -> new URLs -> frontier. Redirects are followed hop by hop through the
frontier, so every hop waits for its own host's slot and robots.txt, and each hop of a chain
is recorded under the URL that started it. Retries go back to the frontier with a due time
instead of sleeping in a coroutine, so a struggling host never holds a worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crawler.analyze import Analysis, analyze, digest
from crawler.concurrency import ConcurrencyController, ConcurrencyLimit
from crawler.config import Config
from crawler.cpu import CpuPool, default_workers
from crawler.errors import ConfigError, StorageError
from crawler.fetcher import Fetcher, Inspector, Response, retry_delay, should_retry
from crawler.frontier import Frontier, FrontierFactory, MemoryFrontier, Task
from crawler.looplag import LoopLag
from crawler.parse import SNIFF_BYTES, PageHook, PageHookError, is_html
from crawler.plugins import Plugin, load_plugins
from crawler.progress import Progress
from crawler.robots import RobotsCache, fetch_robots
from crawler.storage import (
    PageRow,
    RedirectRow,
    RobotsRow,
    SavedFrontier,
    Storage,
    utc_now,
)
from crawler.urls import Scope, host_key, normalize_url

if TYPE_CHECKING:
    from crawler.redisfrontier import RedisFrontier

log = logging.getLogger("crawler")

ChainLink = tuple[PageRow, RedirectRow]


@dataclass(slots=True)
class CrawlStats:
    """Counters of one crawl, for the progress line and the summary."""

    pages: int = 0
    requests: int = 0
    bytes: int = 0
    retries: int = 0
    robots_blocked: int = 0
    links: int = 0
    in_flight: int = 0
    status_classes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    internal_errors: int = 0
    spilled_urls: int = 0
    over_budget: int = 0
    plugin_errors: Counter[str] = field(default_factory=Counter)
    plugin_summary: list[tuple[str, str]] = field(default_factory=list)
    # How the crawl ran: loop lag, concurrency, where parsing ran (for the summary).
    details: list[tuple[str, str]] = field(default_factory=list)
    loop_lag_p99: float = 0.0  # seconds
    concurrency_low: int = 0  # the fewest requests in flight the controller allowed
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    interrupted: bool = False

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.monotonic()) - self.started_at

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def record(self, row: PageRow) -> None:
        self.pages += 1
        self.bytes += row.bytes or 0
        if row.status is not None:
            self.status_classes[f"{row.status // 100}xx"] += 1
        if row.error:
            self.errors[row.error_kind or "error"] += 1

    def __repr__(self) -> str:
        return (
            f"<CrawlStats pages={self.pages} requests={self.requests} errors={self.error_count} "
            f"bytes={self.bytes} elapsed={self.elapsed:.1f}s>"
        )


class Crawler:
    """One crawl: seeds in, rows in the database out."""

    def __init__(
        self,
        config: Config,
        seeds: list[str],
        *,
        storage: Storage,
        fetcher: Fetcher,
        cpu: CpuPool,
        progress: Progress | None = None,
        saved: SavedFrontier | None = None,
        plugins: Sequence[Plugin] = (),
        frontier: FrontierFactory | None = None,
    ) -> None:
        self.config = config
        self.seeds = seeds
        self.storage = storage
        self.fetcher = fetcher
        self.cpu = cpu
        self.progress = progress
        self.saved = saved
        self.scope = Scope.from_seeds(seeds, config.scope)
        self.robots = RobotsCache(config.robots_token, enabled=config.respect_robots)
        self.frontier: Frontier = (frontier or self._memory_frontier)(self.robots, self._blocked)
        self.stats = CrawlStats()
        self.lag = LoopLag()
        # Answers being processed (parsed, handed to plugins, saved) are bounded apart from the
        # requests in flight: as many as the CPU pool can queue, and one per request slot.
        self._processing = asyncio.Semaphore(config.concurrency + cpu.max_pending)
        self.controller = ConcurrencyController(config.concurrency)
        self.plugins = list(plugins)
        # Plugins' extra work on each HTML page, done in the parse worker on the same tree.
        self._hooks: tuple[PageHook, ...] = tuple(
            hook for p in self.plugins if (hook := type(p).page_hook) is not None
        )
        self._started_urls = saved.pages if saved is not None else 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.fatal: StorageError | None = None
        # Set by a plugin in open(): sees the first bytes of every asset download and may
        # stop it (see Fetcher.fetch's ``inspect``).
        self.asset_inspector: Inspector | None = None
        self._reported: set[tuple[str, str]] = set()

    def _memory_frontier(
        self, robots: RobotsCache, on_blocked: Callable[[Task], None]
    ) -> MemoryFrontier:
        """The default frontier: in this process, queue and seen set kept in the database."""
        frontier = MemoryFrontier(
            per_host=self.config.per_host,
            delay=self.config.delay,
            robots=robots,
            on_blocked=on_blocked,
            on_queue=self.storage.queue_url,
            loader=self.storage.load_queue,
            claimer=self.storage.claim,
        )
        if self.saved is not None:
            frontier.restore(self.saved.queued, self.saved.next_seq)
        return frontier

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> CrawlStats:
        for seed in self.seeds:
            self.frontier.add(seed, 0)
        self.storage.set_meta({"scope": self.config.scope, "seeds": self.seeds})
        if self.saved is not None:
            queued = await self.storage.queued_count()  # the table decides which seeds are new
            if self.progress is not None:
                self.progress.note(
                    f"resuming {self.config.db}: {self.saved.pages} pages saved, "
                    f"{self.saved.queued_total} queued, "
                    f"{queued - self.saved.queued_total} new seeds"
                )
            reason = self._nothing_to_resume(queued)
            if reason is not None:
                if self.progress is not None:
                    self.progress.note(f"nothing to do: {reason}")
                await self.storage.build_indexes()
                self.stats.finished_at = time.monotonic()
                return self.stats
        limit = ConcurrencyLimit(self.config.concurrency)
        for plugin in self.plugins:
            await self._call(plugin, "open", self)
        if self.progress is not None:
            self.progress.start(self)
        self.lag.start()
        controller = (
            asyncio.create_task(self.controller.run(limit, self.lag), name="concurrency")
            if self.config.adaptive
            else None
        )
        try:
            while True:
                await self._dispatch(limit)
                if self.fatal is not None:
                    raise self.fatal
                if self._stopping or not await self._idle():
                    break
        finally:
            if controller is not None:
                controller.cancel()
            self.lag.stop()
            if not self.stats.interrupted and self.fatal is None:
                # Before the plugins close: whole-crawl checks (the audit's) read the links.
                await self.storage.build_indexes()
            for plugin in self.plugins:
                await self._call(plugin, "close")
                try:
                    self.stats.plugin_summary.extend(plugin.summary())
                except Exception:
                    self.stats.plugin_errors[plugin.name] += 1
                    log.exception("plugin %r failed in summary()", plugin.name)
            self.stats.finished_at = time.monotonic()
            self.stats.spilled_urls = self.frontier.spills
            self.stats.loop_lag_p99 = self.lag.percentile(0.99)
            self.stats.concurrency_low = self.controller.lowest if controller else limit.size
            self.stats.details = self._details(adaptive=controller is not None)
            self.storage.set_meta({"last_run": self._last_run()})
            if self.progress is not None:
                self.progress.stop()
        return self.stats

    def _details(self, *, adaptive: bool) -> list[tuple[str, str]]:
        control = self.controller
        if adaptive:
            concurrency = (
                f"{control.lowest}..{control.maximum} in flight, adapted "
                f"{control.changes} times (loop lag, latency)"
            )
        else:
            concurrency = f"{self.config.concurrency} in flight (fixed)"
        return [
            ("event loop lag", self.lag.describe()),
            ("concurrency", concurrency),
            ("parsing", self.cpu.describe()),
        ]

    def _last_run(self) -> dict[str, object]:
        """How this run went, kept in ``meta`` (key ``last_run``) for tools and benchmarks."""
        ms = 1000
        return {
            "pages": self.stats.pages,
            "seconds": round(self.stats.elapsed, 3),
            "interrupted": self.stats.interrupted,
            "loop_lag_ms": {
                "p50": round(self.lag.percentile(0.5) * ms, 1),
                "p99": round(self.stats.loop_lag_p99 * ms, 1),
                "max": round(self.lag.worst * ms, 1),
            },
            "concurrency": {"max": self.controller.maximum, "lowest": self.stats.concurrency_low},
            "cpu": {
                "workers": self.cpu.workers,
                "jobs": self.cpu.jobs,
                "inline": self.cpu.inline_jobs,
                "batches": self.cpu.batches,
            },
        }

    async def _dispatch(self, limit: ConcurrencyLimit) -> None:
        """Hand out tasks until the frontier has none left and every handler is done."""
        while True:
            await limit.acquire()
            task = await self.frontier.next_ready()
            if task is None:
                limit.release()
                break
            fetched = _SlotRelease(limit)
            handler = asyncio.create_task(self._handle(task, fetched))
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
            handler.add_done_callback(fetched)
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _idle(self) -> bool:
        """Nothing is left to fetch: plugins may queue more (``on_idle``). True if they did."""
        for plugin in self.plugins:
            await self._call(plugin, "on_idle")
        return self.frontier.queued > 0 and not self._stopping

    def request_asset(self, url: str, depth: int, owner: str | None = None) -> bool:
        """Fetch ``url`` as an asset (an image, say): recorded, not parsed, scope not applied,
        robots.txt and politeness applied as to any request. True when it is new.

        ``owner`` (a plugin's name) travels with the task to ``on_response``, so that each
        plugin handles the assets it asked for and no other plugin's."""
        return self.frontier.add(url, depth, kind="asset", owner=owner or None)

    def request_page(self, url: str, depth: int) -> bool:
        """Crawl ``url`` as a page, as if a link at ``depth - 1`` led there: scope and
        ``max_depth`` apply. True when it is new."""
        if self.config.max_depth is not None and depth > self.config.max_depth:
            return False
        return self.scope.allows(url) and self.frontier.add(url, depth)

    async def _call(self, plugin: Plugin, hook: str, *args: object) -> None:
        """Run one plugin hook; an error is logged and counted, never fatal to the crawl."""
        try:
            await getattr(plugin, hook)(*args)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.plugin_errors[plugin.name] += 1
            if (plugin.name, hook) not in self._reported:
                # The first failure of each hook with its traceback; the rest are counted.
                self._reported.add((plugin.name, hook))
                log.exception(
                    "plugin %r failed in %s() (further failures are only counted)",
                    plugin.name,
                    hook,
                )

    def _nothing_to_resume(self, queued: int) -> str | None:
        """Why a resumed crawl has no page left to fetch, or None when it has."""
        if queued == 0:
            return f"the crawl in {self.config.db} is complete ({self._started_urls} pages)"
        if not self._has_budget():
            return (
                f"{self.config.db} holds {self._started_urls} pages, the --max-pages limit "
                f"({self.config.max_pages}); raise it to crawl the {queued} "
                "URLs still queued"
            )
        return None

    def stop(self) -> None:
        """Stop handing out work and abandon requests in flight (they stay unfetched)."""
        if self._stopping:
            return
        self._stopping = True
        self.stats.interrupted = True
        self.frontier.stop()
        for handler in list(self._handlers):
            handler.cancel()

    async def _handle(self, task: Task, fetched: Callable[[], None]) -> None:
        """Fetch ``task`` and process the answer. ``fetched`` frees the request's concurrency
        slot once the answer is in: the next request goes out while this one is processed."""
        self.stats.in_flight += 1
        processing = False
        try:
            if task.kind == "robots":
                await self._robots(task)
            else:
                response = await self._fetch(task)
                if response is not None:
                    await self._processing.acquire()  # bodies being processed are bounded too
                    processing = True
                    fetched()
                    # Let the dispatcher send the next request before this answer is processed:
                    # a request's latency is worth more than a parse's.
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
                    await self._page(task, response)
        except asyncio.CancelledError:
            raise
        except StorageError as exc:
            # The database cannot take more rows: stop rather than fetch pages we cannot keep.
            self.fatal = self.fatal or exc
            self.stop()
        except Exception:
            self.stats.internal_errors += 1
            log.exception("internal error while handling %r", task)
        finally:
            if processing:
                self._processing.release()
            self.stats.in_flight -= 1
            self.frontier.task_done(task)

    # -- robots.txt ----------------------------------------------------------------------

    async def _robots(self, task: Task) -> None:
        rules, requests = await fetch_robots(self.fetcher, task.host)
        self.stats.requests += requests
        self.frontier.release(task, rules.status)
        self.robots.store(rules)
        self.frontier.robots_loaded(task.host)
        self.storage.add_robots(
            RobotsRow(
                task.host,
                rules.status,
                rules.verdict,
                rules.crawl_delay(self.robots.token),
                rules.error,
                utc_now(),
            )
        )
        if rules.disallow_all and self.progress is not None:
            self.progress.warn(f"robots.txt of {task.host}: {rules.error}; skipping the host")

    def _blocked(self, task: Task) -> None:
        """The frontier dropped ``task`` because robots.txt disallows it."""
        self.stats.robots_blocked += 1
        self.storage.mark_done(task.url, task.depth)
        if task.chain:
            self._finish_chain(task.chain, final_url=task.url)

    # -- pages ---------------------------------------------------------------------------

    def _has_budget(self) -> bool:
        limit = self.config.max_pages
        return limit is None or self._started_urls < limit

    async def _fetch(self, task: Task) -> Response | None:
        """Request ``task``'s URL; None when the page budget is spent (nothing requested)."""
        if task.attempt == 1:
            if not self._has_budget():
                self.stats.over_budget += 1
                self.frontier.release(task, None)
                if task.chain:
                    self._finish_chain(task.chain, final_url=task.url)
                return None
            self._started_urls += 1
            if not self._has_budget():
                self.frontier.stop_new()  # the rest stays queued for a --resume
        inspect = self.asset_inspector if task.kind == "asset" else None
        resp = await self.fetcher.fetch(task.url, inspect=inspect)
        self.stats.requests += 1
        self.controller.observe(resp.elapsed_ms / 1000)
        self.frontier.release(task, resp.status, _slowdown(resp, task.attempt))
        return resp

    async def _page(self, task: Task, resp: Response) -> None:
        if should_retry(resp) and task.attempt < self.config.retries and not self._stopping:
            self.stats.retries += 1
            self.frontier.retry(task, retry_delay(resp, task.attempt))
            return
        if resp.is_redirect:
            await self._redirect(task, resp)
            return
        if (
            task.kind == "page"
            and resp.status is not None
            and 200 <= resp.status < 300
            and is_html(resp.headers.get("content-type"), resp.body[:SNIFF_BYTES])
        ):
            analysis = await self.cpu.run(analyze, resp.body, task.url, resp.headers, self._hooks)
        else:
            analysis = await self.cpu.run(digest, resp.body)
        row = _page_row(task, resp, analysis)
        # Plugin hooks run before the row is saved: whatever they write or queue is committed
        # no later than the mark that this URL is done, so a crash never loses it.
        for plugin in self.plugins:
            await self._call(plugin, "on_response", task, resp, row)
        if analysis.page is not None:
            await self._on_page(row, analysis)
        if task.chain:
            self._finish_chain(task.chain, final_url=task.url, last=row)
        else:
            self._save(row)
        if analysis.page is not None:
            self._links(task, analysis)
        await self.storage.wait_room()

    async def _on_page(self, row: PageRow, analysis: Analysis) -> None:
        results = iter(analysis.extras)  # one per hooked plugin, in plugin order
        for plugin in self.plugins:
            if type(plugin).page_hook is None:
                await self._call(plugin, "on_page", row, analysis.page)
                continue
            result = next(results, None)
            if isinstance(result, PageHookError):
                self._hook_failed(plugin, result)
                result = None
            await self._call(plugin, "on_page", row, analysis.page, result)

    def _hook_failed(self, plugin: Plugin, failure: PageHookError) -> None:
        self.stats.plugin_errors[plugin.name] += 1
        if (plugin.name, "page_hook") not in self._reported:
            self._reported.add((plugin.name, "page_hook"))
            log.error(
                "plugin %r failed in its page hook %s (further failures are only counted):\n%s",
                plugin.name,
                failure.hook,
                failure.error,
            )

    def _links(self, task: Task, analysis: Analysis) -> None:
        page = analysis.page
        assert page is not None
        src = task.url
        # Plain tuples in the LinkRow column order: this runs for every link of every page.
        self.storage.add_links(
            [(src, url, tag, 1 if nofollow else 0) for url, tag, nofollow, _, _ in page.links]
        )
        self.stats.links += len(page.links)
        depth = task.depth + 1
        if self.config.max_depth is not None and depth > self.config.max_depth:
            return
        allows, add = self.scope.allows, self.frontier.add
        for url, _, _, follow, _ in page.links:
            if follow and allows(url):
                add(url, depth)

    async def _redirect(self, task: Task, resp: Response) -> None:
        raw_location = resp.location or ""
        target = normalize_url(raw_location, task.url)
        origin = task.origin or task.url
        hop = len(task.chain) + 1
        row = _page_row(task, resp, None)
        chain = (
            *task.chain,
            (row, RedirectRow(origin, hop, resp.status or 0, target or raw_location)),
        )
        if target is None:
            self._finish_chain(chain, None, error=f"redirect to unusable location {raw_location!r}")
        elif target in {r.url for r, _ in chain}:
            path = " -> ".join([r.url for r, _ in chain] + [target])
            self._finish_chain(chain, target, error=f"redirect loop: {path}")
        elif hop > self.config.max_redirects:
            self._finish_chain(
                chain,
                target,
                error=f"too many redirects: more than {self.config.max_redirects}",
            )
        elif task.kind != "asset" and not self.scope.allows(target):
            # (An asset, an image say, follows its redirects anywhere: CDNs live elsewhere.)
            if task.depth == 0 and self.progress is not None:
                self.progress.warn(
                    f"seed {origin} redirects to {target}, outside --scope "
                    f"{self.config.scope}: add that URL to the seed file to crawl it"
                )
            self._finish_chain(chain, target)
        else:
            await self._follow_hop(task, target, origin, chain)

    async def _follow_hop(
        self, task: Task, target: str, origin: str, chain: tuple[ChainLink, ...]
    ) -> None:
        if not self._has_budget() or not await self.frontier.claim(target, task.depth):
            self._finish_chain(chain, target)
            return
        self.frontier.push(
            Task(
                target,
                task.depth,
                host_key(target),
                kind=task.kind,
                origin=origin,
                chain=chain,
                owner=task.owner,
            )
        )

    def _finish_chain(
        self,
        chain: tuple[ChainLink, ...],
        final_url: str | None,
        *,
        last: PageRow | None = None,
        error: str | None = None,
    ) -> None:
        rows = [row for row, _ in chain]
        for row in rows:
            row.final_url = final_url
        if error is not None:
            origin = rows[0]
            origin.status, origin.error, origin.error_kind = None, error, "redirect"
        if last is not None:
            rows.append(last)
        for row in rows:
            self._save(row)
        self.storage.add_redirects([redirect for _, redirect in chain])

    def _save(self, row: PageRow) -> None:
        self.storage.add_page(row)
        self.stats.record(row)


class _SlotRelease:
    """Frees one request's concurrency slot, once, whichever of its callers comes first."""

    __slots__ = ("limit", "released")

    def __init__(self, limit: ConcurrencyLimit) -> None:
        self.limit = limit
        self.released = False

    def __call__(self, _: object = None) -> None:
        if not self.released:
            self.released = True
            self.limit.release()


def _slowdown(resp: Response, attempt: int) -> float | None:
    """The Retry-After of a 429/503 answer, which pauses the whole host."""
    if resp.status in (429, 503) and "retry-after" in resp.headers:
        return retry_delay(resp, attempt)
    return None


def _page_row(task: Task, resp: Response, analysis: Analysis | None) -> PageRow:
    page = analysis.page if analysis is not None else None
    return PageRow(
        url=task.url,
        final_url=task.url,
        status=resp.status,
        content_type=resp.content_type or None,
        depth=task.depth,
        title=page.title if page is not None else None,
        bytes=len(resp.body) if resp.status is not None else None,
        elapsed_ms=round(resp.elapsed_ms, 3),
        content_hash=analysis.sha256 if analysis is not None else None,
        error=resp.error,
        fetched_at=utc_now(),
        error_kind=resp.error_kind,
        noindex=int(page.meta_noindex) if page is not None else None,
        attempts=task.attempt,
    )


async def crawl(
    config: Config,
    seeds: list[str],
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
) -> CrawlStats:
    """Open the database, the fetcher and the CPU pool, run one crawl, and close them all.

    Setting ``stop`` (from a signal handler, say) ends the crawl early: nothing new starts,
    requests in flight are abandoned, and what was fetched so far is saved.
    """
    plugins = load_plugins(config)
    shared = await _connect_shared(config) if config.frontier else None
    try:
        storage = await Storage.open(
            config.db,
            extra_ddl=[plugin.tables for plugin in plugins if plugin.tables],
            read_indexes=[plugin.indexes for plugin in plugins if plugin.indexes],
        )
    except BaseException:
        if shared is not None:
            await shared.client.aclose()
        raise
    cpu: CpuPool | None = None
    stats: CrawlStats | None = None
    try:
        # With a shared frontier the crawl's state is in Redis: --resume only appends to --db.
        saved = await storage.load_frontier() if config.resume and shared is None else None
        if saved is not None:
            check_resumable(saved, config)
        if shared is not None:
            await _join_shared(shared, storage, progress)
        cpu = CpuPool(default_workers() if config.workers is None else config.workers)
        async with Fetcher(
            user_agent=config.user_agent,
            timeout=config.timeout,
            max_bytes=config.max_bytes,
            concurrency=config.concurrency,
        ) as fetcher:
            crawler = Crawler(
                config,
                seeds,
                storage=storage,
                fetcher=fetcher,
                cpu=cpu,
                progress=progress,
                saved=saved,
                plugins=plugins,
                frontier=shared.attach if shared is not None else None,
            )
            if shared is not None:
                shared.on_lost = crawler.stop
            watcher = asyncio.create_task(_stop_when_set(stop, crawler)) if stop else None
            try:
                stats = await crawler.run()
            finally:
                if watcher is not None:
                    watcher.cancel()
    finally:
        if cpu is not None:
            cpu.close(cancel=True)
        try:
            await storage.close()
        finally:
            if shared is not None:
                # After the last commit: its URLs are acked, every other lease goes back.
                state = (
                    "stopped" if stats is None else "interrupted" if stats.interrupted else "done"
                )
                await shared.close(state)
    if shared is not None and shared.failed is not None:
        raise shared.failed
    assert stats is not None
    return stats


async def _connect_shared(config: Config) -> RedisFrontier:
    """The Redis frontier named by ``config.frontier``, connected and checked (exit 2 if not)."""
    from crawler.redisfrontier import RedisFrontier

    return await RedisFrontier.connect(config)


async def _join_shared(shared: RedisFrontier, storage: Storage, progress: Progress | None) -> None:
    taken_back = await shared.join(storage)
    storage.on_commit = shared.committed
    storage.set_meta({"frontier": shared.where, "name": shared.name})
    if progress is not None:
        counters = await shared.counters()
        progress.note(
            f"worker {shared.worker} joined the crawl {shared.name!r} at {shared.where}: "
            f"{counters.get('done', 0)} pages done, {counters.get('queued', 0)} queued"
            + (f", {taken_back} leases of a previous run taken back" if taken_back else "")
        )


def check_resumable(saved: SavedFrontier, config: Config) -> None:
    """Refuse to resume a crawl under a different scope: its queue was chosen by the old one."""
    scope = saved.meta.get("scope")
    if scope is not None and scope != config.scope:
        raise ConfigError(
            f"{config.db} was crawled with --scope {scope}; resume it with --scope {scope}, "
            f"or start a new crawl with --db NEW.db"
        )


async def _stop_when_set(stop: asyncio.Event, crawler: Crawler) -> None:
    await stop.wait()
    crawler.stop()
