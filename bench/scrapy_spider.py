"""The Scrapy contender of ``bench.compare``: the same work as ``python -m crawler``, in Scrapy.

Run with the benchmark's own virtualenv (``bash scripts/bench-setup.sh`` makes it; Scrapy is not
a dependency of the project)::

    .venv-bench/bin/scrapy runspider bench/scrapy_spider.py -a seed=http://127.0.0.1:PORT/ \\
        -a db=OUT.db [-s CONCURRENT_REQUESTS=64 -s CONCURRENT_REQUESTS_PER_DOMAIN=32]

From the seed it follows every ``<a href>`` on the seed's host (scheme, host and port), each
URL once (a seen set in the spider, then Scrapy's own duplicate filter), and stores every page
and every link in SQLite, as the crawler does: a ``pages`` row per response (URL, status,
Content-Type, title, bytes, SHA-256 of the body, fetch time) and one ``links`` row per distinct
(target, tag) of the page, for ``<a href>``, ``<img src>`` and ``<link href>``, resolved with
``response.urljoin`` and without the fragment. Rows go through an item pipeline that inserts
them with ``executemany`` and commits every 500 pages.

The settings are Scrapy's advice for broad crawls ("Broad Crawls" in its documentation), for
one local host: many requests in flight (``CONCURRENT_REQUESTS`` 64 and 32 per domain by
default, the crawler's ``--concurrency`` and ``--per-host`` in the benchmark), no AutoThrottle
and no download delay, cookies off, retries and redirects as by default, breadth-first order,
the downloader-aware priority queue, ``LOG_LEVEL`` INFO, the telnet console and the remote
control server off, and robots.txt obeyed, like the crawler. When the spider closes it writes
Scrapy's stats next to the database (``OUT.db.stats.json``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urldefrag, urlsplit

import scrapy  # type: ignore[import-not-found]
from scrapy.http import Response, TextResponse  # type: ignore[import-not-found]

SCHEMA = """
CREATE TABLE pages(
    url TEXT UNIQUE, status INTEGER, content_type TEXT, title TEXT, bytes INTEGER,
    content_hash TEXT, fetched_at REAL
);
CREATE TABLE links(src_url TEXT, dst_url TEXT, tag TEXT);
"""
COMMIT_EVERY = 500
URL_ELEMENTS = (("a", "a::attr(href)"), ("img", "img::attr(src)"), ("link", "link::attr(href)"))


class SqlitePipeline:
    """Stores each page item and its links in SQLite, a transaction per COMMIT_EVERY pages."""

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None
        self.pending = 0

    def open_spider(self, spider: Any) -> None:
        self.db = sqlite3.connect(spider.db)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def process_item(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
        assert self.db is not None
        self.db.execute(
            "INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                item["url"],
                item["status"],
                item["content_type"],
                item["title"],
                item["bytes"],
                item["content_hash"],
                item["fetched_at"],
            ),
        )
        self.db.executemany(
            "INSERT INTO links VALUES (?, ?, ?)",
            [(item["url"], dst, tag) for dst, tag in item["links"]],
        )
        self.pending += 1
        if self.pending >= COMMIT_EVERY:
            self.db.commit()
            self.pending = 0
        return item

    def close_spider(self, spider: Any) -> None:
        if self.db is not None:
            self.db.commit()
            self.db.close()
            self.db = None


class SiteSpider(scrapy.Spider):  # type: ignore[misc]
    name = "bench-site"
    custom_settings = {
        "ITEM_PIPELINES": {SqlitePipeline: 300},
        "ROBOTSTXT_OBEY": True,
        "CONCURRENT_REQUESTS": 64,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "COOKIES_ENABLED": False,
        "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
        "DEPTH_PRIORITY": 1,
        "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
        "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
        "REACTOR_THREADPOOL_MAXSIZE": 20,
        "LOG_LEVEL": "INFO",
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,  # Scrapy 2.19: an HTTP control server on a port
        "USER_AGENT": "bench-scrapy (+local benchmark)",
    }

    def __init__(self, seed: str, db: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.db = db
        parts = urlsplit(seed)
        self.prefix = f"{parts.scheme}://{parts.netloc}/"
        self.allowed_domains = [parts.hostname or ""]
        self.seen = {seed}

    async def start(self) -> AsyncIterator[Any]:  # Scrapy >= 2.13
        yield scrapy.Request(self.seed, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Any]:
        body = response.body
        url = response.url
        rows: dict[tuple[str, str], None] = {}
        title = None
        if isinstance(response, TextResponse):
            title = response.css("title::text").get()
            for tag, query in URL_ELEMENTS:
                for value in response.css(query).getall():
                    rows[(urldefrag(response.urljoin(value))[0], tag)] = None
        yield {
            "url": url,
            "status": response.status,
            "content_type": response.headers.get("Content-Type", b"").decode("latin-1"),
            "title": title,
            "bytes": len(body),
            "content_hash": hashlib.sha256(body).hexdigest(),
            "fetched_at": time.time(),
            "links": list(rows),
        }
        seen, prefix = self.seen, self.prefix
        for target, tag in rows:
            if tag == "a" and target not in seen and target.startswith(prefix):
                seen.add(target)
                yield scrapy.Request(target, callback=self.parse)

    def closed(self, reason: str) -> None:
        stats = dict(self.crawler.stats.get_stats())
        stats["finish_reason"] = reason
        with open(self.db + ".stats.json", "w") as out:
            json.dump(stats, out, default=str, indent=1, sort_keys=True)
