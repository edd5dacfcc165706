"""SQLite storage through aiosqlite: the contract's schema, WAL, batched writes, one writer.

Rows are buffered in memory and written by a single flusher in one transaction per batch
(``executemany``), so durability does not cost a commit per row. A caller that outruns the
disk waits in :meth:`Storage.wait_room` instead of growing the buffer without bound.

The frontier lives here too: the ``frontier`` table holds every URL the crawl has queued, by
64-bit fingerprint, with ``state`` 0 (queued) or 1 (done). A page's row and the ``state = 1`` of
its URL are written in the same transaction as the URLs its links added, so whatever moment
the process dies at, the database says exactly which pages are saved and which are still to
fetch, and ``--resume`` continues from there.

After each commit, :attr:`Storage.on_commit` (when set) gets the fingerprints of the URLs that
transaction marked done: a shared frontier acks their leases only once they are safe on disk.

One crawl at a time: a lock file (``crawl.db.lock``, flock) keeps a second crawler out, and is
released by the kernel even after ``kill -9``. The schema carries a version number
(``meta.schema_version``); older databases are migrated forward, newer ones refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite

from crawler.errors import StorageError, StorageWriteError
from crawler.urls import fingerprint

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS pages(
    url TEXT UNIQUE, final_url TEXT, status INTEGER, content_type TEXT, depth INTEGER,
    title TEXT, bytes INTEGER, elapsed_ms REAL, content_hash TEXT, error TEXT, fetched_at TEXT,
    error_kind TEXT, noindex INTEGER, attempts INTEGER
);
CREATE TABLE IF NOT EXISTS links(src_url TEXT, dst_url TEXT, tag TEXT, nofollow INTEGER);
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
CREATE TABLE IF NOT EXISTS frontier(
    fp INTEGER PRIMARY KEY, url TEXT NOT NULL, depth INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0, host TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'page'
);
CREATE INDEX IF NOT EXISTS frontier_queue ON frontier(host, seq) WHERE state = 0;
"""

# Indexes for reading the links table. Keeping them up to date row by row cost the writer
# thread three quarters of its time (two B-trees of long text keys per link); built in one sort
# when the crawl ends they cost a fraction of that. So a crawl drops them when it starts or
# resumes, and builds them when it finishes (an interrupted crawl gets them when its --resume
# finishes).
READ_INDEXES = """
CREATE INDEX IF NOT EXISTS links_src ON links(src_url);
CREATE INDEX IF NOT EXISTS links_dst ON links(dst_url);
"""
_INDEX_NAME_RE = re.compile(r"CREATE\s+INDEX\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE)


def drop_indexes_sql(ddl: str) -> str:
    """``DROP INDEX IF EXISTS`` for each index ``ddl`` creates."""
    return "".join(f"DROP INDEX IF EXISTS {name};\n" for name in _INDEX_NAME_RE.findall(ddl))


QUEUED, DONE, CLAIMED = 0, 1, 2  # CLAIMED: a redirect chain is fetching it right now


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Version 1 had no frontier: every saved page becomes a done frontier entry."""
    db.executescript(SCHEMA)
    rows = db.execute("SELECT url, coalesce(depth, 0) FROM pages").fetchall()
    db.executemany(
        "INSERT OR IGNORE INTO frontier(fp, url, depth, state) VALUES (?, ?, ?, 1)",
        [(fingerprint(url), url, depth) for url, depth in rows],
    )


# MIGRATIONS[v] upgrades a database of schema version v to v + 1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2}


def explain_error(exc: BaseException) -> str:
    """A sqlite3 or OS error in words a user can act on."""
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return f"the file is read-only ({text})"
    if "full" in text:
        return f"the disk is full ({text})"
    if "locked" in text:
        return f"another program holds the database locked ({text})"
    if "not a database" in text or "malformed" in text:
        return f"the file is not a usable SQLite database ({text})"
    return text


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


class LinkRow(NamedTuple):
    src_url: str
    dst_url: str
    tag: str
    nofollow: int


class RedirectRow(NamedTuple):
    url: str
    hop: int
    status: int
    location: str


class RobotsRow(NamedTuple):
    host: str
    status: int | None
    verdict: str
    crawl_delay: float
    error: str | None
    fetched_at: str


def _insert(table: str, names: Sequence[str], verb: str = "INSERT") -> str:
    marks = ", ".join("?" * len(names))
    return f"{verb} INTO {table}({', '.join(names)}) VALUES ({marks})"


PAGE_COLUMNS = tuple(f.name for f in fields(PageRow))
INSERT_PAGE = _insert("pages", PAGE_COLUMNS, "INSERT OR REPLACE")
INSERT_LINK = _insert("links", LinkRow._fields)
INSERT_REDIRECT = _insert("redirects", RedirectRow._fields)
INSERT_ROBOTS = _insert("robots", RobotsRow._fields, "INSERT OR REPLACE")


INSERT_META = "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)"
INSERT_FRONTIER = (
    "INSERT OR IGNORE INTO frontier(fp, url, depth, state, host, seq, kind) "
    "VALUES (?, ?, ?, 0, ?, ?, ?)"
)
INSERT_CLAIM = (
    "INSERT OR IGNORE INTO frontier(fp, url, depth, state, host, seq, kind) "
    f"VALUES (?, ?, ?, {CLAIMED}, ?, 0, 'page')"
)
MARK_DONE = (
    "INSERT INTO frontier(fp, url, depth, state) VALUES (?, ?, ?, 1) "
    "ON CONFLICT(fp) DO UPDATE SET state = 1"
)


@dataclass(frozen=True, slots=True)
class SavedFrontier:
    """What a database says about its crawl, for ``--resume``."""

    known: int  # URLs in the frontier table: the seen set
    queued: dict[str, int]  # host -> URLs still queued
    next_seq: int
    pages: int
    meta: dict[str, str]

    @property
    def queued_total(self) -> int:
        return sum(self.queued.values())

    def __repr__(self) -> str:
        return (
            f"<SavedFrontier known={self.known} queued={self.queued_total} "
            f"hosts={len(self.queued)} pages={self.pages}>"
        )


class CrawlLock:
    """An exclusive flock on ``<db>.lock``: one crawler per database, released on any exit."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot create lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StorageError(
                f"{self.path.with_suffix('')} is in use by another crawl (pid {holder}); "
                "wait for it to finish, or pass --db OTHER.db"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    @staticmethod
    def holder(db_path: Path) -> str | None:
        """The pid of the crawl that holds ``db_path``'s lock now, or None; creates nothing."""
        try:
            fd = os.open(db_path.with_name(db_path.name + ".lock"), os.O_RDONLY)
        except OSError:
            return None  # no lock file: no crawl ever ran there, or it ended
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)  # closing the descriptor drops a lock taken here
        return None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None

    def __repr__(self) -> str:
        return f"<CrawlLock {self.path} {'held' if self._fd is not None else 'free'}>"


def read_schema_version(db: sqlite3.Connection, path: Path, instead: str) -> int | None:
    """The schema version of the crawl database open in ``db``; None when it has no tables.

    StorageError (naming ``path``, and ``instead`` as what to do) for a SQLite database that is
    not a crawl database, or whose version is unknown or newer than this crawler's.
    """
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        if not tables:
            return None
        raise StorageError(
            f"{path} is a SQLite database, but not a crawl database (tables: "
            f"{', '.join(sorted(tables))}); {instead}"
        )
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    version = int(row[0]) if row and str(row[0]).isdigit() else 0
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{path} has schema version {version}, newer than this crawler's "
            f"{SCHEMA_VERSION}: upgrade the crawler, or {instead}"
        )
    if version < 1:
        raise StorageError(f"{path} has an unknown schema version; {instead}")
    return version


def prepare_schema(
    path: Path, extra_ddl: Sequence[str] = (), read_indexes: Sequence[str] = ()
) -> None:
    """Create or migrate the schema of ``path``; refuse databases that are not ours.

    ``extra_ddl`` holds the plugins' own ``CREATE TABLE IF NOT EXISTS`` statements,
    ``read_indexes`` their indexes for reading, dropped here with ours (see READ_INDEXES).
    """
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            version = read_schema_version(db, path, "pass --db NEW.db") or SCHEMA_VERSION
            with db:
                while version < SCHEMA_VERSION:
                    MIGRATIONS[version](db)
                    version += 1
                db.executescript(SCHEMA)
                for ddl in (READ_INDEXES, *read_indexes):
                    db.executescript(drop_indexes_sql(ddl))
                for ddl in extra_ddl:
                    db.executescript(ddl)
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(version),),
                )
    except sqlite3.Error as exc:
        raise StorageError(f"cannot use database {path}: {explain_error(exc)}") from exc


class Storage:
    """The crawl database. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(
        self, path: Path, db: aiosqlite.Connection, lock: CrawlLock, *, batch_rows: int = 2000
    ) -> None:
        self.path = path
        self._db = db
        self._lock_file = lock
        self.batch_rows = batch_rows
        # Written in this order within one transaction: a URL is queued before it is done.
        self._pending: dict[str, list[tuple[Any, ...]]] = {
            INSERT_FRONTIER: [],
            INSERT_PAGE: [],
            INSERT_LINK: [],
            INSERT_REDIRECT: [],
            INSERT_ROBOTS: [],
            INSERT_META: [],
            MARK_DONE: [],
        }
        self._rows = 0
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self.rows_written = 0
        self.commits = 0
        self.failed: StorageError | None = None
        # Called after each commit with the fingerprints of the URLs it marked done.
        self.on_commit: Callable[[list[int]], None] | None = None
        self._writing: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self.read_indexes: list[str] = [READ_INDEXES]  # built by build_indexes()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        flush_interval: float = 0.2,
        extra_ddl: Sequence[str] = (),
        read_indexes: Sequence[str] = (),
    ) -> Storage:
        lock = CrawlLock(path)
        lock.acquire()
        try:
            prepare_schema(path, extra_ddl, read_indexes)
            db = await aiosqlite.connect(path)
        except (sqlite3.Error, OSError) as exc:
            lock.release()
            raise StorageError(f"cannot open database {path}: {explain_error(exc)}") from exc
        except BaseException:
            lock.release()
            raise
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            await db.close()
            lock.release()
            raise StorageError(f"cannot use database {path}: {explain_error(exc)}") from exc
        storage = cls(path, db, lock)
        storage.read_indexes = [READ_INDEXES, *read_indexes]
        storage._flusher = asyncio.create_task(storage._flush_every(flush_interval))
        return storage

    async def count(self, table: str) -> int:
        async with self._db.execute(f"SELECT count(*) FROM {table}") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- crawl state -----------------------------------------------------------------------

    async def load_frontier(self) -> SavedFrontier:
        """How many URLs each host has queued, the crawl's settings, and counts."""
        await self.flush()
        async with self._lock:
            # Chains that were fetching these when the last run stopped will claim them again.
            await self._db.execute("DELETE FROM frontier WHERE state = ?", (CLAIMED,))
            await self._db.commit()
        async with self._db.execute(
            "SELECT host, count(*) FROM frontier WHERE state = 0 GROUP BY host"
        ) as cur:
            queued = {str(host): int(n) for host, n in await cur.fetchall()}
        async with self._db.execute("SELECT coalesce(max(seq), -1) + 1 FROM frontier") as cur:
            row = await cur.fetchone()
        async with self._db.execute("SELECT key, value FROM meta") as cur:
            meta = {str(k): str(v) for k, v in await cur.fetchall()}
        next_seq = int(row[0]) if row else 0
        known = await self.count("frontier")
        return SavedFrontier(known, queued, next_seq, await self.count("pages"), meta)

    async def queued_count(self) -> int:
        """URLs still to fetch, once everything buffered is written."""
        await self.flush()
        async with self._db.execute("SELECT count(*) FROM frontier WHERE state = 0") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def claim(self, url: str, depth: int, host: str) -> bool:
        """Reserve ``url`` for a redirect chain: True unless the frontier table knows it."""
        async with self._lock:
            await self._flush_locked()
            try:
                cur = await self._db.execute(INSERT_CLAIM, (fingerprint(url), url, depth, host))
                await self._db.commit()
            except sqlite3.Error as exc:
                self.failed = StorageWriteError(
                    f"cannot write to database {self.path}: {explain_error(exc)}"
                )
                raise self.failed from exc
            return cur.rowcount == 1

    async def done_among(self, fingerprints: Sequence[int]) -> set[int]:
        """Which of these URL fingerprints the database holds as done (saved)."""
        await self.flush()
        found: set[int] = set()
        for i in range(0, len(fingerprints), 500):
            chunk = list(fingerprints[i : i + 500])
            marks = ", ".join("?" * len(chunk))
            async with self._db.execute(
                f"SELECT fp FROM frontier WHERE state = {DONE} AND fp IN ({marks})", chunk
            ) as cur:
                found.update(int(row[0]) for row in await cur.fetchall())
        return found

    async def queued_urls(self) -> list[tuple[str, int, str]]:
        """(url, depth, kind) of every URL still queued (state 0) in the frontier table."""
        await self.flush()
        async with self._db.execute(
            "SELECT url, depth, kind FROM frontier WHERE state = 0 ORDER BY seq"
        ) as cur:
            return [(str(u), int(d), str(k)) for u, d, k in await cur.fetchall()]

    async def load_queue(
        self, host: str, from_seq: int, limit: int
    ) -> list[tuple[str, int, int, str]]:
        """Up to ``limit`` URLs ``host`` still has queued, from sequence ``from_seq`` on."""
        await self.flush()
        async with self._db.execute(
            "SELECT url, depth, seq, kind FROM frontier WHERE state = 0 AND host = ? "
            "AND seq >= ? ORDER BY seq LIMIT ?",
            (host, from_seq, limit),
        ) as cur:
            return [(str(u), int(d), int(q), str(k)) for u, d, q, k in await cur.fetchall()]

    def set_meta(self, values: dict[str, Any]) -> None:
        """Crawl settings kept with the crawl (written with the next batch)."""
        rows = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()]
        self._add(INSERT_META, rows)

    # -- buffered writes -----------------------------------------------------------------

    def queue_url(self, url: str, depth: int, host: str, seq: int, kind: str = "page") -> None:
        """A URL joined the frontier (written with the page whose links found it)."""
        self._add(INSERT_FRONTIER, [(fingerprint(url), url, depth, host, seq, kind)])

    def add_rows(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows for a plugin's own tables, written in the same transactions as the crawl's."""
        if sql not in self._pending:
            # Plugin rows go before MARK_DONE, so a page is done only with its plugin rows.
            done = self._pending.pop(MARK_DONE)
            self._pending[sql] = []
            self._pending[MARK_DONE] = done
        self._add(sql, list(rows))

    def mark_done(self, url: str, depth: int) -> None:
        """A URL needs no more work although it has no page row (robots.txt disallows it)."""
        self._add(MARK_DONE, [(fingerprint(url), url, depth)])

    def add_page(self, row: PageRow) -> None:
        self._add(INSERT_PAGE, [tuple(getattr(row, name) for name in PAGE_COLUMNS)])
        self.mark_done(row.url, row.depth)

    def add_links(self, rows: Iterable[LinkRow | tuple[str, str, str, int]]) -> None:
        """``links`` rows: LinkRow or plain tuples in its column order."""
        self._add(INSERT_LINK, rows if isinstance(rows, list) else list(rows))

    def add_redirects(self, rows: Sequence[RedirectRow]) -> None:
        self._add(INSERT_REDIRECT, list(rows))

    def add_robots(self, row: RobotsRow) -> None:
        self._add(INSERT_ROBOTS, [row])

    def _add(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._pending[sql].extend(rows)
        self._rows += len(rows)

    async def wait_room(self) -> None:
        """Flush now if the buffer is full (back-pressure for fast producers).

        Raises the StorageError of a failed background flush, so the crawl stops at once.
        """
        if self.failed is not None:
            raise self.failed
        if self._rows >= self.batch_rows:
            await self.flush()

    async def flush(self) -> None:
        """Write everything buffered in one transaction.

        The write runs in a task of its own and is shielded: a caller cancelled mid-flush (a
        worker stopped by Ctrl-C) never leaves half a batch to be committed by the next one.
        """
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if self._writing is not None:
            await asyncio.shield(self._writing)
        if not self._rows:
            return
        batches = {sql: rows for sql, rows in self._pending.items() if rows}
        for sql in batches:
            self._pending[sql] = []
        count, self._rows = self._rows, 0
        self._writing = asyncio.create_task(self._write(batches, count))
        await asyncio.shield(self._writing)

    async def _write(self, batches: dict[str, list[tuple[Any, ...]]], count: int) -> None:
        try:
            for sql, rows in batches.items():
                await self._db.executemany(sql, rows)
            await self._db.commit()
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                await self._db.rollback()
            self.failed = StorageWriteError(
                f"cannot write to database {self.path}: {explain_error(exc)}"
            )
            raise self.failed from exc
        finally:
            self._writing = None
        self.rows_written += count
        self.commits += 1
        if self.on_commit is not None and MARK_DONE in batches:
            self.on_commit([row[0] for row in batches[MARK_DONE]])

    async def build_indexes(self) -> None:
        """Write what is buffered, then build the indexes for reading (see READ_INDEXES)."""
        async with self._lock:
            await self._flush_locked()
            try:
                for ddl in self.read_indexes:
                    await self._db.executescript(ddl)
                await self._db.commit()
            except sqlite3.Error as exc:
                self.failed = StorageWriteError(
                    f"cannot index database {self.path}: {explain_error(exc)}"
                )
                raise self.failed from exc

    async def _flush_every(self, interval: float) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), interval)
            try:
                await self.flush()
            except StorageError:
                return  # kept in self.failed; wait_room() raises it to the crawl

    async def close(self) -> None:
        """Write what is buffered, close the database and release the lock."""
        self._closing.set()
        try:
            if self._flusher is not None:
                with contextlib.suppress(StorageError):
                    await self._flusher
                self._flusher = None
            if self.failed is not None:
                raise self.failed
            await self.flush()
        finally:
            await self._db.close()
            self._lock_file.release()

    def __repr__(self) -> str:
        return (
            f"<Storage {self.path} buffered={self._rows} written={self.rows_written} "
            f"commits={self.commits}>"
        )


def existing_crawl(path: Path) -> int:
    """How many URLs (pages saved or queued) a database already holds; 0 if it is new.

    Raises StorageError when the database (or its folder) cannot be written.
    """
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise StorageError(f"cannot create {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StorageError(
            f"{path} is read-only (or its folder is): the crawler must write to it; "
            "pass --db with a writable path"
        )
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            total = 0
            for table in ("pages", "frontier"):
                if table in tables:
                    total = max(
                        total, int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                    )
            return total
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read database {path}: {explain_error(exc)}") from exc
