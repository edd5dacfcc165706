"""Fixtures shared by every test: real local web sites on 127.0.0.1 (see tests/site.py)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from crawler.config import Config
from crawler.engine import CrawlStats, crawl
from crawler.urls import normalize_url
from tests.redisserver import RedisServer
from tests.site import RawServer, Site, SiteFactory


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    """One started site (one host), stopped after the test."""
    async with Site() as started:
        yield started


@pytest.fixture
async def make_site() -> AsyncIterator[SiteFactory]:
    """A factory of independent started sites (distinct hosts by port), all stopped after."""
    sites: list[Site] = []

    async def factory() -> Site:
        started = await Site().start()
        sites.append(started)
        return started

    yield factory
    for started in sites:
        await started.close()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throwaway certificate authority for the tests' https sites."""
    return trustme.CA()


@pytest.fixture
def ca_file(tls_ca: trustme.CA, tmp_path: Path) -> Path:
    """The test CA's certificate as a PEM file: ``SSL_CERT_FILE`` for a crawler subprocess."""
    path = tmp_path / "test-ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def https_site(tls_ca: trustme.CA) -> AsyncIterator[Site]:
    """One started https site on 127.0.0.1, its certificate issued by ``tls_ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("127.0.0.1").configure_cert(context)
    async with Site(tls=context) as started:
        yield started


@pytest.fixture
async def make_raw_server() -> AsyncIterator[Callable[[bytes], Awaitable[RawServer]]]:
    """A factory of bare TCP servers that answer every connection with the given bytes."""
    servers: list[RawServer] = []

    async def factory(reply: bytes) -> RawServer:
        server = await RawServer(reply).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.close()


@dataclass
class CrawlResult:
    """A finished crawl: its stats and its database, opened for the test to query."""

    stats: CrawlStats
    db: sqlite3.Connection
    path: Path

    def rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        return list(self.db.execute(sql, args))

    def pages(self) -> dict[str, sqlite3.Row]:
        return {row["url"]: row for row in self.rows("SELECT * FROM pages")}

    def page(self, url: str) -> sqlite3.Row:
        rows = self.rows("SELECT * FROM pages WHERE url = ?", url)
        assert len(rows) == 1, f"expected one pages row for {url}, got {len(rows)}"
        return rows[0]

    def links(self, src_url: str | None = None) -> list[tuple[str, str, str, int]]:
        sql = "SELECT src_url, dst_url, tag, nofollow FROM links"
        rows = self.rows(sql + " WHERE src_url = ?", src_url) if src_url else self.rows(sql)
        return [tuple(row) for row in rows]  # type: ignore[misc]


RunCrawl = Callable[..., Awaitable[CrawlResult]]


@pytest.fixture
async def run_crawl(tmp_path: Path) -> AsyncIterator[RunCrawl]:
    """Run a real crawl in this event loop: ``await run_crawl([site.url()], max_depth=2)``.

    Parsing is inline (``workers=0``) unless a test asks for processes, so tests stay fast.
    """
    opened: list[sqlite3.Connection] = []

    async def run(seeds: list[str], **overrides: Any) -> CrawlResult:
        settings: dict[str, Any] = {"workers": 0, "timeout": 5.0}
        settings.update(overrides)
        db = tmp_path / f"crawl{len(opened)}.db"
        config = Config(db=db, **settings)
        normalized = [url for url in map(normalize_url, seeds) if url]
        stats = await crawl(config, normalized)
        conn = sqlite3.connect(db)
        conn.row_factory = sqlite3.Row
        opened.append(conn)
        return CrawlResult(stats, conn, db)

    yield run
    for conn in opened:
        conn.close()


def require_program(name: str) -> str:
    """The path of system program ``name``, which scripts/system-deps.sh installs.

    Missing, the calling test is skipped locally (the reason names the script) and fails under
    CI (``CI=true``), where the script has run and the program must be there.
    """
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is not None:
        return found
    reason = f"{name} is not installed: run `bash scripts/system-deps.sh` (Debian packages)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started redis-server of this test's own (skipped locally without redis-server)."""
    binary = require_program("redis-server")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(binary, directory)
    yield server
    server.stop()
