"""SQLite storage through aiosqlite: the contract's schema, WAL, batched writes, one writer.

Rows are buffered in memory and written by a single flusher in one transaction per batch
(``executemany``), so durability does not cost a commit per row. A caller that outruns the
disk waits in :meth:`Storage.wait_room` instead of growing the buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from crawler.errors import StorageError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS pages(
    url TEXT UNIQUE, final_url TEXT, status INTEGER, content_type TEXT, depth INTEGER,
    title TEXT, bytes INTEGER, elapsed_ms REAL, content_hash TEXT, error TEXT, fetched_at TEXT,
    error_kind TEXT, noindex INTEGER, attempts INTEGER
);
CREATE TABLE IF NOT EXISTS links(src_url TEXT, dst_url TEXT, tag TEXT, nofollow INTEGER);
CREATE INDEX IF NOT EXISTS links_src ON links(src_url);
CREATE INDEX IF NOT EXISTS links_dst ON links(dst_url);
CREATE TABLE IF NOT EXISTS redirects(url TEXT, hop INTEGER, status INTEGER, location TEXT);
CREATE INDEX IF NOT EXISTS redirects_url ON redirects(url);
CREATE TABLE IF NOT EXISTS images(
    url TEXT UNIQUE, sha256 TEXT, bytes INTEGER, width INTEGER, height INTEGER, path TEXT
);
CREATE TABLE IF NOT EXISTS audit(url TEXT, rule TEXT, severity TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS robots(
    host TEXT PRIMARY KEY, status INTEGER, verdict TEXT, crawl_delay REAL, error TEXT,
    fetched_at TEXT
);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
"""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class PageRow:
    """One row of the pages table (the contract's columns, then ours)."""

    url: str
    final_url: str | None
    status: int | None
    content_type: str | None
    depth: int
    title: str | None
    bytes: int | None
    elapsed_ms: float | None
    content_hash: str | None
    error: str | None
    fetched_at: str
    error_kind: str | None = None
    noindex: int | None = None
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class LinkRow:
    src_url: str
    dst_url: str
    tag: str
    nofollow: int


@dataclass(frozen=True, slots=True)
class RedirectRow:
    url: str
    hop: int
    status: int
    location: str


@dataclass(frozen=True, slots=True)
class RobotsRow:
    host: str
    status: int | None
    verdict: str
    crawl_delay: float
    error: str | None
    fetched_at: str


def _insert(table: str, cls: type, verb: str = "INSERT") -> str:
    names = [f.name for f in fields(cls)]
    marks = ", ".join("?" * len(names))
    return f"{verb} INTO {table}({', '.join(names)}) VALUES ({marks})"


INSERT_PAGE = _insert("pages", PageRow, "INSERT OR REPLACE")
INSERT_LINK = _insert("links", LinkRow)
INSERT_REDIRECT = _insert("redirects", RedirectRow)
INSERT_ROBOTS = _insert("robots", RobotsRow, "INSERT OR REPLACE")


class Storage:
    """The crawl database. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, path: Path, db: aiosqlite.Connection, *, batch_rows: int = 2000) -> None:
        self.path = path
        self._db = db
        self.batch_rows = batch_rows
        self._pending: dict[str, list[tuple[Any, ...]]] = {
            INSERT_PAGE: [],
            INSERT_LINK: [],
            INSERT_REDIRECT: [],
            INSERT_ROBOTS: [],
        }
        self._rows = 0
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self.rows_written = 0
        self.commits = 0

    @classmethod
    async def open(cls, path: Path, *, flush_interval: float = 0.5) -> Storage:
        try:
            db = await aiosqlite.connect(path)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {path}: {exc}") from exc
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(SCHEMA)
            await db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            await db.commit()
        except sqlite3.Error as exc:
            await db.close()
            raise StorageError(f"cannot use database {path}: {exc}") from exc
        storage = cls(path, db)
        storage._flusher = asyncio.create_task(storage._flush_every(flush_interval))
        return storage

    async def count(self, table: str) -> int:
        async with self._db.execute(f"SELECT count(*) FROM {table}") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- buffered writes -----------------------------------------------------------------

    def add_page(self, row: PageRow) -> None:
        self._add(INSERT_PAGE, [astuple(row)])

    def add_links(self, rows: Iterable[LinkRow]) -> None:
        self._add(INSERT_LINK, [astuple(r) for r in rows])

    def add_redirects(self, rows: Sequence[RedirectRow]) -> None:
        self._add(INSERT_REDIRECT, [astuple(r) for r in rows])

    def add_robots(self, row: RobotsRow) -> None:
        self._add(INSERT_ROBOTS, [astuple(row)])

    def _add(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._pending[sql].extend(rows)
        self._rows += len(rows)

    async def wait_room(self) -> None:
        """Flush now if the buffer is full (back-pressure for fast producers)."""
        if self._rows >= self.batch_rows:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self._rows:
                return
            batches = {sql: rows for sql, rows in self._pending.items() if rows}
            for sql in batches:
                self._pending[sql] = []
            count, self._rows = self._rows, 0
            try:
                for sql, rows in batches.items():
                    await self._db.executemany(sql, rows)
                await self._db.commit()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write to database {self.path}: {exc}") from exc
            self.rows_written += count
            self.commits += 1

    async def _flush_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        try:
            await self.flush()
        finally:
            await self._db.close()

    def __repr__(self) -> str:
        return (
            f"<Storage {self.path} buffered={self._rows} written={self.rows_written} "
            f"commits={self.commits}>"
        )


def existing_pages(path: Path) -> int:
    """How many pages rows a database already holds (0 when it does not exist yet)."""
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            has_pages = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='pages'"
            ).fetchone()
            if not has_pages:
                return 0
            return int(db.execute("SELECT count(*) FROM pages").fetchone()[0])
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read database {path}: {exc}") from exc
