"""The audit's sitemaps during a crawl: which to read, fetching them, what they list.

Which sitemaps (``[audit] sitemaps``): with ``"auto"``, those named by ``Sitemap:`` lines in
the robots.txt of each crawled host (read when the host's first response is in, before its
links are queued) and ``/sitemap.xml`` of each seed host (a guess: "not found" there is no
finding); and any URL given. A sitemap outside the crawl's scope is not fetched.

Sitemaps are fetched through the crawler as assets owned by the audit plugin
(``request_asset(..., owner=...)``): robots.txt and politeness apply, each URL once, and no
other plugin takes them for its own (the images plugin skips them). The body is read in the
process pool (:func:`plugins.auditsitemap.read_sitemap`). An index's sitemaps are fetched in
turn, :data:`MAX_LEVELS` levels deep and :data:`MAX_SITEMAPS` sitemaps per crawl at most.

What is found goes to two tables, which the whole-crawl rules read (``sitemap_error``,
``orphan_page`` in :mod:`plugins.auditsite`)::

    audit_sitemaps(url, source, found_in, site, level, kind, entries, error)
    audit_sitemap_urls(sitemap_url, url, problem)

The pages a sitemap lists are queued once the link graph is done (``on_idle``), at depth 1,
so that the link graph alone decides the depth of every page it reaches; the others, orphans
most likely, are then crawled and audited like any page.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from crawler.parse import SNIFF_BYTES, is_html
from crawler.urls import host_key, normalize_url
from plugins.auditrules import AUTO_SITEMAPS
from plugins.auditsitemap import SitemapFile, read_sitemap

if TYPE_CHECKING:
    from crawler.engine import Crawler
    from crawler.fetcher import Response
    from crawler.frontier import Task

__all__ = ["MAX_LEVELS", "MAX_SITEMAPS", "SITEMAP_TABLES", "SitemapCrawl", "SitemapRef"]

MAX_SITEMAPS: Final = 1000  # sitemaps read per crawl, indexes included
MAX_LEVELS: Final = 3  # index -> index -> index -> sitemap; sitemaps.org allows one level
LISTED_PAGE_DEPTH: Final = 1  # a listed page counts as one step from the seeds
_BATCH: Final = 10_000  # listed URLs read per query when queueing them

SITEMAP_TABLES: Final = """
CREATE TABLE IF NOT EXISTS audit_sitemaps(
    url TEXT PRIMARY KEY, source TEXT, found_in TEXT, site TEXT, level INTEGER,
    kind TEXT, entries INTEGER, error TEXT
);
CREATE TABLE IF NOT EXISTS audit_sitemap_urls(sitemap_url TEXT, url TEXT, problem TEXT);
CREATE INDEX IF NOT EXISTS audit_sitemap_urls_url ON audit_sitemap_urls(url);
"""
_INSERT_SITEMAP: Final = (
    "INSERT OR IGNORE INTO audit_sitemaps(url, source, found_in, site, level) "
    "VALUES (?, ?, ?, ?, ?)"
)
_UPDATE_SITEMAP: Final = "UPDATE audit_sitemaps SET kind = ?, entries = ?, error = ? WHERE url = ?"
_INSERT_LISTED: Final = "INSERT INTO audit_sitemap_urls(sitemap_url, url, problem) VALUES (?, ?, ?)"

Source = Literal["robots", "config", "guess", "index"]


@dataclass(frozen=True, slots=True)
class SitemapRef:
    """A sitemap to read, and where it was found."""

    url: str
    source: Source  # robots.txt, [audit] sitemaps, the /sitemap.xml guess, or an index
    found_in: str | None  # the robots.txt or index URL that names it
    site: str  # the host key whose URLs it may list, besides its own host's
    level: int  # 0, or its index's level + 1

    def row(self) -> tuple[str, str, str | None, str, int]:
        return (self.url, self.source, self.found_in, self.site, self.level)


def _load_refs(path: Path) -> list[SitemapRef]:
    """The sitemaps an earlier run over this database asked for (a resumed crawl)."""
    with sqlite3.connect(path, timeout=30) as db:
        rows = db.execute("SELECT url, source, found_in, site, level FROM audit_sitemaps")
        refs = [SitemapRef(*row) for row in rows]
    db.close()
    return refs


def _listed_after(path: Path, rowid: int) -> list[tuple[int, str]]:
    """Good listed URLs recorded after ``rowid``, a batch of them."""
    with sqlite3.connect(path, timeout=30) as db:
        rows = db.execute(
            "SELECT rowid, url FROM audit_sitemap_urls WHERE problem IS NULL AND rowid > ? "
            "ORDER BY rowid LIMIT ?",
            (rowid, _BATCH),
        ).fetchall()
    db.close()
    return [(int(r), str(u)) for r, u in rows]


class SitemapCrawl:
    """One crawl's sitemaps: asks the crawler for them, reads them, records what they list."""

    def __init__(self, owner: str, sitemaps: Iterable[str], crawler: Crawler) -> None:
        self.owner = owner
        self.auto = AUTO_SITEMAPS in sitemaps
        self.explicit = [url for url in sitemaps if url != AUTO_SITEMAPS]
        self.crawler = crawler
        self.refs: dict[str, SitemapRef] = {}
        self._hosts_seen: set[str] = set()
        self._listed_rowid = 0  # listed URLs up to this rowid were offered to the frontier
        self.read = 0
        self.listed = 0
        self.queued = 0

    @property
    def enabled(self) -> bool:
        return self.auto or bool(self.explicit)

    async def open(self) -> None:
        if not self.enabled:
            return
        for ref in await asyncio.to_thread(_load_refs, self.crawler.storage.path):
            self.refs[ref.url] = ref
        for url in self.explicit:
            self._request(SitemapRef(url, "config", None, host_key(url), 0))
        if self.auto:
            for seed in self.crawler.seeds:
                host = host_key(seed)
                self._request(SitemapRef(f"{host}/sitemap.xml", "guess", None, host, 0))

    def _request(self, ref: SitemapRef) -> bool:
        """Fetch ``ref`` unless it is known or out of scope; False if over the crawl's limit."""
        if ref.url in self.refs:
            return True
        if len(self.refs) >= MAX_SITEMAPS:
            return False
        crawler = self.crawler
        if not crawler.scope.allows(ref.url):
            if crawler.progress is not None and ref.source != "index":
                crawler.progress.note(
                    f"audit: sitemap {ref.url} is outside --scope {crawler.config.scope}; not read"
                )
            return True
        self.refs[ref.url] = ref
        crawler.storage.add_rows(_INSERT_SITEMAP, [ref.row()])
        crawler.request_asset(ref.url, 0, owner=self.owner)
        return True

    def discover(self, host: str) -> None:
        """Read the sitemaps named in ``host``'s robots.txt (once per host)."""
        if not self.auto or host in self._hosts_seen:
            return
        self._hosts_seen.add(host)
        rules = self.crawler.robots.get(host)
        if rules is None or rules.parser is None:
            return
        robots_url = f"{host}/robots.txt"
        for raw in rules.parser.sitemaps:
            url = normalize_url(str(raw), robots_url)
            if url is not None:
                self._request(SitemapRef(url, "robots", robots_url, host, 0))

    def sitemap_of(self, task: Task) -> SitemapRef | None:
        """The sitemap ``task`` fetched (its last hop, for a redirected one), if any."""
        return self.refs.get(task.origin or task.url) if self.refs else None

    async def on_response(self, task: Task, response: Response, ref: SitemapRef) -> None:
        """Read the sitemap ``ref`` that ``response`` answered (its status is in pages)."""
        self.discover(task.host)
        if not response.ok:
            return  # the pages row says why; the whole-crawl rule reports it
        crawler = self.crawler
        hosts = frozenset({host_key(task.url), host_key(ref.url), ref.site})
        found: SitemapFile = await crawler.cpu.run(
            read_sitemap, response.body, hosts, crawler.config.max_bytes
        )
        if found.kind is None and is_html(
            response.headers.get("content-type"), response.body[:SNIFF_BYTES]
        ):
            # A site's answer to the guessed /sitemap.xml is often its "not found" page.
            error = None if ref.source == "guess" else "an HTML page, not a sitemap"
            crawler.storage.add_rows(_UPDATE_SITEMAP, [(None, 0, error, ref.url)])
            return
        self.read += 1
        errors = list(found.errors)
        rows: list[tuple[str, str, str | None]] = []
        if found.kind == "sitemapindex":
            errors += self._request_children(ref, found.locs)
        else:
            rows += [(ref.url, url, None) for url in found.locs]
            self.listed += len(found.locs)
        rows += [(ref.url, entry, problem) for entry, problem in found.problems]
        if rows:
            crawler.storage.add_rows(_INSERT_LISTED, rows)
        error = "; ".join(errors) if errors else None
        crawler.storage.add_rows(_UPDATE_SITEMAP, [(found.kind, found.entries, error, ref.url)])

    def _request_children(self, index: SitemapRef, urls: Iterable[str]) -> list[str]:
        """Fetch the sitemaps an index lists; what could not be, in words."""
        level = index.level + 1
        urls = list(urls)
        if urls and level > MAX_LEVELS:
            return [
                f"lists {len(urls):,} sitemap(s) below {MAX_LEVELS} levels of sitemap "
                "indexes: not read (an index should list sitemaps, not other indexes)"
            ]
        left_out = 0
        for url in urls:
            if not self._request(SitemapRef(url, "index", index.url, index.site, level)):
                left_out += 1
        if left_out:
            return [
                f"{left_out:,} of its sitemaps not read: the crawl reads {MAX_SITEMAPS:,} "
                "sitemaps at most"
            ]
        return []

    async def queue_listed(self) -> None:
        """Queue the good URLs the sitemaps listed that the crawl has not met yet."""
        if not self.refs:
            return
        crawler = self.crawler
        await crawler.storage.flush()
        while batch := await asyncio.to_thread(
            _listed_after, crawler.storage.path, self._listed_rowid
        ):
            for _, url in batch:
                if crawler.request_page(url, LISTED_PAGE_DEPTH):
                    self.queued += 1
            self._listed_rowid = batch[-1][0]

    def __repr__(self) -> str:
        return (
            f"<SitemapCrawl auto={self.auto} explicit={len(self.explicit)} "
            f"known={len(self.refs)} read={self.read} listed={self.listed} queued={self.queued}>"
        )
