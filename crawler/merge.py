"""``python -m crawler merge OUT_DB WORKER_DB...``: one crawl database from the databases of
several crawler processes (workers that shared one frontier, each writing its own SQLite file).

The merged database has the contract's schema and every table found in any input (a plugin's,
from its installed DDL or else from the input's own), merged by column name: a column that only
some inputs have is added, and rows without it get NULL. Row by row:

- ``pages``: one row per URL. When several workers fetched a URL (a lease ran out and another
  worker fetched it again), the row kept is the one with an HTTP status over one with an error,
  then the latest ``fetched_at``, then the first input given.
- The rows a fetch produced come with the fetch kept, from the same input, and no others: the
  ``links`` found on the page, the ``redirects`` of a chain it started, ``images`` and every
  plugin table. A row belongs to the fetch of its ``src_url`` (the page it was found on) when
  it has one, else of its ``url``. Rows of a URL that has no ``pages`` row in any input come
  from the first input that has some. Tables with neither column are appended; a row that
  breaks a UNIQUE constraint is dropped (the first input wins).
- ``robots``: one row per host, by the rule of ``pages``.
- ``frontier``: a URL done in any input is done, else queued if queued in any, so that
  ``--resume`` on the merged database fetches exactly what no worker saved. Every URL with a
  ``pages`` row is done.
- ``meta``: the seeds of all inputs, the scope (the inputs must agree), ``merged_from`` (the
  inputs) and ``merged_at``.

Then each plugin whose tables are in the merged database gets its ``after_merge`` hook: the
audit recomputes its whole-crawl findings, which each worker computed over its part only.

Inputs are never written: they are attached read-only (immutable when no crawl can be writing
them). One of an older schema version is migrated in a copy; one still being written by a
running crawl is refused, or with ``--allow-running`` merged from a consistent snapshot. Rows
move with ``INSERT ... SELECT`` between attached databases, one input at a time, so memory
stays flat whatever the size. The result is built in a temporary file beside ``OUT_DB`` and
renamed into place at the end: an error or Ctrl-C leaves no half-merged database behind.

Exit codes: 0 merged; 1 the merged database could not be written (disk full ...); 2 a usage
error or an input that cannot be merged (the message names the file); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NoReturn, TextIO

from crawler.config import Config, load_file_config
from crawler.errors import ConfigError, PluginError, StorageError, StorageWriteError
from crawler.plugins import Plugin, available_plugins, load_plugins
from crawler.storage import (
    READ_INDEXES,
    SCHEMA,
    SCHEMA_VERSION,
    CrawlLock,
    explain_error,
    prepare_schema,
    read_schema_version,
    utc_now,
)
from crawler.urls import fingerprint

__all__ = [
    "MergeReport",
    "WorkerDb",
    "fetch_key",
    "merge_databases",
    "merge_main",
    "merged_meta",
    "plugin_tables",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

# How one process's run went: not the merged crawl's.
_PER_RUN_META: Final = ("last_run",)
# A row with an HTTP status beats an error row, then the later fetch wins (ISO times sort).
_BETTER: Final = (
    "(excluded.status IS NOT NULL, coalesce(excluded.fetched_at, '')) > "
    "({t}.status IS NOT NULL, coalesce({t}.fetched_at, ''))"
)
# Frontier states by precedence: done (1) over queued (0) over claimed by a redirect chain (2).
_RANK: Final = "(CASE {s} WHEN 1 THEN 2 WHEN 0 THEN 1 ELSE 0 END)"
_TEMP_TABLES: Final = """
CREATE TEMP TABLE winner(
    url TEXT PRIMARY KEY, input INTEGER NOT NULL, answered INTEGER NOT NULL, fetched_at TEXT
) WITHOUT ROWID;
CREATE TEMP TABLE orphan(
    tbl TEXT NOT NULL, key TEXT NOT NULL, input INTEGER NOT NULL, PRIMARY KEY (tbl, key)
) WITHOUT ROWID;
"""


def _q(name: str) -> str:
    """An SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- what inputs hold


@dataclass(frozen=True, slots=True)
class TableInfo:
    """One table of a database: its columns (name, declared type), DDL and indexes' DDL."""

    name: str
    columns: tuple[tuple[str, str], ...]
    sql: str
    indexes: tuple[tuple[str, str], ...] = ()  # (name, sql)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


def read_tables(db: sqlite3.Connection, schema: str = "main") -> dict[str, TableInfo]:
    """The tables of ``schema`` (SQLite's own excepted), with their columns and indexes."""
    rows = db.execute(
        f"SELECT type, name, tbl_name, sql FROM {schema}.sqlite_master "
        "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite%' ORDER BY rowid"
    ).fetchall()
    indexes: dict[str, list[tuple[str, str]]] = {}
    for kind, name, table, sql in rows:
        if kind == "index":
            indexes.setdefault(table, []).append((name, sql))
    tables: dict[str, TableInfo] = {}
    for kind, name, _, sql in rows:
        if kind != "table" or sql.upper().startswith("CREATE VIRTUAL"):
            continue
        columns = tuple(
            (str(col[1]), str(col[2]))
            for col in db.execute(f"PRAGMA {schema}.table_info({_q(name)})")
        )
        tables[name] = TableInfo(name, columns, sql, tuple(indexes.get(name, ())))
    return tables


# Columns naming the page or file a row was found in, in order of preference.
SOURCE_COLUMNS = ("src_url", "sitemap_url")


def fetch_key(columns: Sequence[str], alias: str = "t") -> str | None:
    """The SQL expression naming the URL whose fetch a row of a table with ``columns`` belongs
    to: its ``src_url`` (the page it was found on) or ``sitemap_url`` (the sitemap that listed
    it), else its ``url``; None when it has none of them.
    """
    found_in = next((name for name in SOURCE_COLUMNS if name in columns), None)
    src = f"{alias}.{found_in}" if found_in else None
    url = f"{alias}.url" if "url" in columns else None
    if src and url:
        return f"coalesce({src}, {url})"
    return src or url


def plugin_tables(ddl: str) -> frozenset[str]:
    """The tables a plugin's DDL creates beyond the contract's schema."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(SCHEMA)
        before = set(read_tables(db))
        db.executescript(ddl)
        return frozenset(set(read_tables(db)) - before)


def merged_meta(inputs: Sequence[tuple[Path, Mapping[str, str]]]) -> dict[str, str]:
    """The merged database's meta table from the inputs' (path, meta): the seeds of all of
    them in order, their common scope (StorageError naming two inputs that disagree), the
    other keys from the first input that has them (not a run's own statistics, ``last_run``),
    and which databases were merged."""
    merged: dict[str, str] = {}
    seeds: dict[str, None] = {}
    scope: tuple[Path, str] | None = None
    for path, meta in inputs:
        if "scope" in meta:
            if scope is not None and meta["scope"] != scope[1]:
                raise StorageError(
                    f"{scope[0]} was crawled with --scope {scope[1]} and {path} with --scope "
                    f"{meta['scope']}: merge the databases of one crawl only"
                )
            scope = scope or (path, meta["scope"])
        try:
            listed = json.loads(meta.get("seeds", "[]"))
        except ValueError:
            listed = []
        if isinstance(listed, list):
            seeds.update((str(seed), None) for seed in listed)
        for key, value in meta.items():
            if key not in _PER_RUN_META:
                merged.setdefault(key, value)
    merged["schema_version"] = str(SCHEMA_VERSION)
    merged["seeds"] = json.dumps(list(seeds))
    merged["merged_from"] = json.dumps([str(path.resolve()) for path, _ in inputs])
    merged["merged_at"] = utc_now()
    return merged


def _read_uri(path: Path, *, immutable: bool) -> str:
    return path.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")


def _stamp(path: Path) -> tuple[tuple[int, int] | None, ...]:
    """Size and mtime of a database and its WAL: what changes when a crawl writes to it."""

    def one(file: Path) -> tuple[int, int] | None:
        try:
            stat = file.stat()
        except FileNotFoundError:
            return None
        return (stat.st_size, stat.st_mtime_ns) if stat.st_size else None

    return one(path), one(path.with_name(path.name + "-wal"))


@dataclass(slots=True)
class WorkerDb:
    """One input: checked, with what it holds, and what the merge took from it."""

    path: Path  # as given
    version: int
    running: str | None  # pid of a crawl writing it now (merged from a snapshot)
    stamp: tuple[tuple[int, int] | None, ...]
    source: Path  # what is read: the file itself, or a migrated copy or snapshot of it
    tables: dict[str, TableInfo] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    pages: int = 0
    links: int = 0
    kept: int = 0  # its pages rows in the merged database

    @property
    def dropped(self) -> int:
        """Pages rows (with their links ...) another input's fetch of the same URL replaced."""
        return self.pages - self.kept

    @property
    def uri(self) -> str:
        # No WAL and no crawl: nothing can change it, so SQLite need not even lock it.
        quiet = self.source != self.path or (self.running is None and self.stamp[1] is None)
        return _read_uri(self.source, immutable=quiet)

    def __repr__(self) -> str:
        copy = f" via {self.source}" if self.source != self.path else ""
        return (
            f"<WorkerDb {self.path}{copy} v{self.version} pages={self.pages} "
            f"kept={self.kept} running={self.running}>"
        )


def inspect_input(path: Path, *, allow_running: bool) -> WorkerDb:
    """Check that ``path`` is a crawl database this crawler can merge; StorageError names it."""
    if not path.exists():
        raise StorageError(f"{path} does not exist")
    if not path.is_file():
        raise StorageError(f"{path} is not a file")
    running = CrawlLock.holder(path)
    if running is not None and not allow_running:
        raise StorageError(
            f"{path} is still being written by a running crawl (pid {running}): wait for that "
            "worker to finish, or pass --allow-running to merge what it has saved so far"
        )
    stamp = _stamp(path)
    worker = WorkerDb(path, 0, running, stamp, path)
    try:
        with contextlib.closing(sqlite3.connect(worker.uri, uri=True)) as db:
            version = read_schema_version(db, path, "leave it out of the merge")
            if version is None:
                raise StorageError(f"{path} is empty: not a crawl database")
            worker.version = version
            _describe(worker, db)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read {path}: {explain_error(exc)}") from exc
    return worker


def _describe(worker: WorkerDb, db: sqlite3.Connection) -> None:
    worker.tables = read_tables(db)
    if "meta" in worker.tables:
        worker.meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
    for table in ("pages", "links"):
        if table in worker.tables:
            count = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            setattr(worker, table, count)


def _snapshot(worker: WorkerDb, copy: Path) -> None:
    """Read ``worker`` from a copy: a consistent snapshot of a running crawl's database, or
    one of an older schema, migrated there (the input itself is never written)."""
    with (
        contextlib.closing(sqlite3.connect(worker.uri, uri=True)) as src,
        contextlib.closing(sqlite3.connect(copy)) as dst,
    ):
        src.backup(dst)
    if worker.version < SCHEMA_VERSION:
        prepare_schema(copy)
    worker.source = copy
    with contextlib.closing(sqlite3.connect(worker.uri, uri=True)) as db:
        _describe(worker, db)


# --------------------------------------------------------------------------- progress


class MergeLog:
    """Progress on stderr: a line per input, growing table by table; silent when quiet."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self._open = False

    def line(self, text: str) -> None:
        self.end()
        self.write(text + "\n")

    def part(self, text: str) -> None:
        self.write(text)
        self._open = True

    def end(self) -> None:
        if self._open:
            self._open = False
            self.write("\n")

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        """``text``, then how long what follows took, on one line."""
        started = time.monotonic()
        self.part(text)
        yield
        self.part(f" ({time.monotonic() - started:.1f} s)")
        self.end()

    def write(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text)
            self.stream.flush()

    def __repr__(self) -> str:
        return f"<MergeLog {'quiet' if self.quiet else 'on'}>"


# --------------------------------------------------------------------------- merging


@dataclass(frozen=True, slots=True)
class MergeReport:
    """What a merge did: the inputs with their counts, and the merged database's."""

    out: Path
    inputs: tuple[WorkerDb, ...]
    pages: int
    links: int
    redirects: int
    queued: int
    plugin_lines: tuple[tuple[str, str], ...]
    seconds: float

    def table(self) -> str:
        """The summary: one line per input, and the merged database."""
        rows = [("input", "pages", "links", "duplicates dropped")]
        rows += [
            (str(w.path), f"{w.pages:,}", f"{w.links:,}", f"{w.dropped:,}") for w in self.inputs
        ]
        rows.append((f"= {self.out}", f"{self.pages:,}", f"{self.links:,}", ""))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            f"merged {len(self.inputs)} databases into {self.out} in {self.seconds:.1f} s",
            *(
                "  "
                + "  ".join(
                    cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                    for i, cell in enumerate(row)
                ).rstrip()
                for row in rows
            ),
        ]
        extra = [("redirects", f"{self.redirects:,}")]
        if self.queued:
            extra.append(
                (
                    "still queued",
                    f"{self.queued:,} URLs: python -m crawler SEED_FILE --resume --db {self.out}",
                )
            )
        extra.extend(self.plugin_lines)
        width = max(len(label) for label, _ in extra)
        lines += [f"  {label:<{width}}  {value}" for label, value in extra]
        return "\n".join(lines)


def _used_plugins(tables: set[str], config: Config, log: MergeLog) -> list[Plugin]:
    """The installed plugins whose own tables some input holds, with their settings."""
    names: list[str] = []
    for name, entry in sorted(available_plugins().items()):
        try:
            cls = entry.load()
            own = plugin_tables(cls.tables) if cls.tables else frozenset()
        except Exception as exc:
            log.line(f"warning: plugin {name!r} cannot be loaded ({exc}); its tables are merged")
            continue
        if own & tables:
            names.append(name)
    return load_plugins(dataclasses.replace(config, plugins=tuple(names)))


def _check_output(out: Path, workers: Sequence[WorkerDb], force: bool) -> None:
    folder = out.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot create {out}: the folder {folder} does not exist")
    for worker in workers:
        if worker.path.resolve() == out.resolve() or (
            out.exists() and os.path.samefile(worker.path, out)
        ):
            raise ConfigError(f"{out} is one of the inputs: merge into a new file")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists: pass --force to replace it, or merge elsewhere")
    holder = CrawlLock.holder(out)
    if holder is not None:
        raise ConfigError(f"{out} is in use by a running crawl (pid {holder}): merge elsewhere")


class _Output:
    """The merged database under construction, in ``path`` (a temporary file)."""

    def __init__(self, path: Path, workers: Sequence[WorkerDb], log: MergeLog) -> None:
        self.path = path
        self.workers = workers
        self.log = log
        self.db = sqlite3.connect(path, isolation_level=None)
        # A temporary file renamed into place when complete: no journal needed.
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA temp_store=FILE")
        self.db.create_function("fingerprint", 1, fingerprint, deterministic=True)
        self.db.executescript(_TEMP_TABLES)
        self.tables: dict[str, TableInfo] = {}
        self.indexes: list[str] = []

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def attached(self, worker: WorkerDb) -> Iterator[None]:
        self.db.execute("ATTACH DATABASE ? AS src", (worker.uri,))
        try:
            self.db.execute("BEGIN")
            yield
            self.db.execute("COMMIT")
        finally:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.db.execute("DETACH DATABASE src")

    def create_tables(self) -> None:
        """Tables no installed plugin declared come from the inputs' own DDL; columns that
        only some inputs have are added."""
        self.tables = read_tables(self.db)
        for worker in self.workers:
            for name, info in worker.tables.items():
                if name not in self.tables:
                    self.db.execute(info.sql)
                    have = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master")}
                    for index, sql in info.indexes:
                        if index not in have:
                            self.db.execute(sql)
                else:
                    known = set(self.tables[name].column_names)
                    for column, kind in info.columns:
                        if column not in known:
                            self.db.execute(
                                f"ALTER TABLE {_q(name)} ADD COLUMN {_q(column)} {kind}"
                            )
                            known.add(column)
                self.tables = read_tables(self.db)

    def drop_indexes(self) -> None:
        """Indexes go while rows pour in, and come back sorted in one go (:meth:`finish`):
        several times faster than updating them row by row. The links' indexes for reading,
        which a crawl builds when it finishes, are built too."""
        for name, sql in self.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall():
            self.indexes.append(sql)
            self.db.execute(f"DROP INDEX {_q(name)}")
        self.indexes += [sql.strip() for sql in READ_INDEXES.split(";") if sql.strip()]

    def columns(self, worker: WorkerDb, table: str) -> tuple[str, ...]:
        """The columns of ``table`` the input and the merged database share."""
        have = set(worker.tables[table].column_names)
        return tuple(c for c in self.tables[table].column_names if c in have)

    def choose_pages(self, index: int) -> None:
        """Let this input's pages rows compete for their URLs (see the module's rule)."""
        self.db.execute(
            "INSERT INTO temp.winner(url, input, answered, fetched_at) "
            "SELECT url, ?, status IS NOT NULL, coalesce(fetched_at, '') FROM src.pages "
            "WHERE url IS NOT NULL ON CONFLICT(url) DO UPDATE SET input = excluded.input, "
            "answered = excluded.answered, fetched_at = excluded.fetched_at "
            "WHERE (excluded.answered, excluded.fetched_at) > (winner.answered, winner.fetched_at)",
            (index,),
        )

    def copy(self, index: int, worker: WorkerDb, table: str) -> int:
        """Copy this input's rows of ``table``; the number of rows the merged table gained."""
        columns = self.columns(worker, table)
        if not columns:
            return 0
        names = ", ".join(_q(c) for c in columns)
        picked = ", ".join(f"t.{_q(c)}" for c in columns)
        into = f"INSERT INTO main.{_q(table)}({names}) SELECT {picked} FROM src.{_q(table)} AS t"
        if table == "pages":
            return self.db.execute(
                f"{into} WHERE EXISTS (SELECT 1 FROM temp.winner AS w "
                "WHERE w.url = t.url AND w.input = ?)",
                (index,),
            ).rowcount
        if table == "robots":
            return self._copy_robots(into, columns)
        if table == "frontier":
            return self._copy_frontier(index, worker)
        if table == "meta":
            return 0  # merged_meta()
        key = fetch_key(columns)
        if key is None:
            return self.db.execute(into.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)).rowcount
        return self._copy_keyed(index, table, into, key)

    def _copy_keyed(self, index: int, table: str, into: str, key: str) -> int:
        # Rows of URLs no input has a pages row for: from the first input that has them.
        orphans = self.db.execute(
            f"INSERT OR IGNORE INTO temp.orphan(tbl, key, input) "
            f"SELECT ?, coalesce({key}, ''), ? FROM src.{_q(table)} AS t "
            f"WHERE NOT EXISTS (SELECT 1 FROM temp.winner AS w WHERE w.url = {key})",
            (table, index),
        ).rowcount
        where = f"EXISTS (SELECT 1 FROM temp.winner AS w WHERE w.url = {key} AND w.input = :i)"
        if orphans:
            where += (
                " OR EXISTS (SELECT 1 FROM temp.orphan AS o WHERE o.tbl = :table "
                f"AND o.key = coalesce({key}, '') AND o.input = :i)"
            )
        sql = into.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1) + " WHERE " + where
        return self.db.execute(sql, {"i": index, "table": table}).rowcount

    def _copy_robots(self, into: str, columns: Sequence[str]) -> int:
        updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in columns if c != "host")
        better = _BETTER.format(t="robots") if {"status", "fetched_at"} <= set(columns) else "0"
        return self.db.execute(
            f"{into} WHERE true ON CONFLICT(host) DO UPDATE SET {updates} WHERE {better}"
        ).rowcount

    def _copy_frontier(self, index: int, worker: WorkerDb) -> int:
        columns = self.columns(worker, "frontier")
        # Sequence numbers stay unique and keep each host's queue in crawl order across inputs.
        picked = [
            f"t.seq * {len(self.workers)} + {index}" if c == "seq" else f"t.{_q(c)}"
            for c in columns
        ]
        take = f"{_RANK.format(s='excluded.state')} > {_RANK.format(s='frontier.state')}"
        updates = ["depth = min(frontier.depth, excluded.depth)"] + [
            f"{_q(c)} = CASE WHEN {take} THEN excluded.{_q(c)} ELSE frontier.{_q(c)} END"
            for c in ("state", "host", "seq", "kind")
            if c in columns
        ]
        return self.db.execute(
            f"INSERT INTO main.frontier({', '.join(_q(c) for c in columns)}) "
            f"SELECT {', '.join(picked)} FROM src.frontier AS t WHERE true "
            f"ON CONFLICT(fp) DO UPDATE SET {', '.join(updates)}"
        ).rowcount

    def finish(self, meta: Mapping[str, str], plugins: Sequence[Plugin]) -> list[tuple[str, str]]:
        """Indexes, meta, the frontier's done marks, the plugins' whole-crawl work."""
        self.db.execute("BEGIN")
        with self.log.step(f"  indexing ({len(self.indexes)} indexes)"):
            for sql in self.indexes:
                self.db.execute(sql)
        self.db.execute(
            "INSERT INTO frontier(fp, url, depth, state) "
            "SELECT fingerprint(url), url, coalesce(depth, 0), 1 FROM pages WHERE url IS NOT NULL "
            "ON CONFLICT(fp) DO UPDATE SET state = 1 WHERE state != 1"
        )
        self.db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", meta.items())
        lines: list[tuple[str, str]] = []
        for plugin in plugins:
            if type(plugin).after_merge is Plugin.after_merge:
                continue
            try:
                with self.log.step(f"  {plugin.name}: recomputing what needs the whole crawl"):
                    lines.extend(plugin.after_merge(self.db))
            except Exception as exc:
                raise PluginError(f"plugin {plugin.name!r} failed after the merge: {exc}") from exc
        self.db.execute("COMMIT")
        self.db.execute("PRAGMA journal_mode=WAL")  # a crawl database, like the inputs
        return lines

    def count(self, sql: str) -> int:
        return int(self.db.execute(sql).fetchone()[0])

    def __repr__(self) -> str:
        return (
            f"<_Output {self.path} inputs={len(self.workers)} tables={len(self.tables)} "
            f"indexes_to_build={len(self.indexes)}>"
        )


def merge_databases(
    out: Path,
    inputs: Sequence[Path],
    *,
    force: bool = False,
    allow_running: bool = False,
    config: Config | None = None,
    log: MergeLog | None = None,
) -> MergeReport:
    """Merge the crawl databases ``inputs`` into a new database ``out`` (see the module).

    Raises ConfigError (usage: ``out`` exists without ``force``, an input given twice ...),
    StorageError (an input that cannot be merged, named), PluginError (a plugin's settings in
    ``config``) before anything is written, and StorageWriteError when ``out`` cannot be
    written; ``out`` is then as it was.
    """
    started = time.monotonic()
    log = log or MergeLog()
    config = config or Config()
    if not inputs:
        raise ConfigError("no worker databases to merge")
    seen: dict[Path, Path] = {}
    for path in inputs:
        resolved = path.resolve()
        if resolved in seen:
            raise ConfigError(f"{path} is given twice (as {seen[resolved]} too)")
        seen[resolved] = path
    workers = [inspect_input(path, allow_running=allow_running) for path in inputs]
    _check_output(out, workers, force)
    meta = merged_meta([(w.path, w.meta) for w in workers])
    plugins = _used_plugins({t for w in workers for t in w.tables}, config, log)
    lock = CrawlLock(out)
    lock.acquire()
    work: Path | None = None
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.merge-", dir=out.parent))
        for index, worker in enumerate(workers):
            if worker.running is not None or worker.version < SCHEMA_VERSION:
                why = "snapshot of a running crawl" if worker.running else "migrated copy"
                log.line(f"{worker.path}: reading a {why}")
                _snapshot(worker, work / f"input{index}.db")
        built = work / "merged.db"
        lines, counts = _write_merged(built, workers, meta, plugins, log)
        for worker in workers:
            if worker.running is None and _stamp(worker.path) != worker.stamp:
                raise StorageError(
                    f"{worker.path} changed while it was being merged (a crawl wrote to it): "
                    f"{out} was not written; merge again once that crawl is finished"
                )
        _install(built, out)
    except sqlite3.Error as exc:
        raise StorageWriteError(f"cannot write {out}: {explain_error(exc)}") from exc
    except OSError as exc:
        raise StorageWriteError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        lock.release()
    return MergeReport(
        out, tuple(workers), *counts, plugin_lines=tuple(lines), seconds=time.monotonic() - started
    )


def _write_merged(
    path: Path,
    workers: Sequence[WorkerDb],
    meta: Mapping[str, str],
    plugins: Sequence[Plugin],
    log: MergeLog,
) -> tuple[list[tuple[str, str]], tuple[int, int, int, int]]:
    prepare_schema(path, [plugin.tables for plugin in plugins if plugin.tables])
    build = _Output(path, workers, log)
    try:
        build.create_tables()
        build.drop_indexes()
        log.line(f"merging {len(workers)} databases")
        for index, worker in enumerate(workers):
            if "pages" in worker.tables:
                with build.attached(worker):
                    try:
                        build.choose_pages(index)
                    except sqlite3.Error as exc:
                        raise _input_error(worker, "pages", exc) from exc
        for index, worker in enumerate(workers):
            log.part(f"  [{index + 1}/{len(workers)}] {worker.path}:")
            started = time.monotonic()
            with build.attached(worker):
                order = [t for t in worker.tables if t != "pages"]
                for table in ["pages", *order] if "pages" in worker.tables else order:
                    try:
                        rows = build.copy(index, worker, table)
                    except sqlite3.Error as exc:
                        raise _input_error(worker, table, exc) from exc
                    if table == "pages":
                        worker.kept = rows
                        log.part(f" pages {rows:,} of {worker.pages:,}")
                    elif table != "meta":
                        log.part(f", {table} {rows:,}")
            log.part(f" ({time.monotonic() - started:.1f} s)")
            log.end()
        lines = build.finish(meta, plugins)
        counts = (
            build.count("SELECT count(*) FROM pages"),
            build.count("SELECT count(*) FROM links"),
            build.count("SELECT count(*) FROM redirects"),
            build.count("SELECT count(*) FROM frontier WHERE state = 0"),
        )
    finally:
        log.end()
        build.close()
    return lines, counts


def _input_error(worker: WorkerDb, table: str, exc: sqlite3.Error) -> StorageError:
    explained = explain_error(exc)
    if "disk is full" in explained:
        return StorageWriteError(f"cannot write the merged database: {explained}")
    return StorageError(f"cannot merge table {table} of {worker.path}: {explained}")


def _install(built: Path, out: Path) -> None:
    """Put the finished database in place of ``out``, durably and at once."""
    with open(built, "rb") as file:
        os.fsync(file.fileno())
    for stale in (out.with_name(out.name + "-wal"), out.with_name(out.name + "-shm")):
        stale.unlink(missing_ok=True)  # an old WAL must never be replayed onto the new file
    os.replace(built, out)
    folder = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


# --------------------------------------------------------------------------- command


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def merge_main(argv: Sequence[str]) -> int:
    """The ``merge`` command; exit 0, 1 (the output cannot be written), 2 or 130."""
    parser = _ArgumentParser(
        prog="python -m crawler merge",
        description="Merge the databases of several crawler processes into one crawl database.",
    )
    parser.add_argument("out", metavar="OUT_DB", help="the merged database to create")
    parser.add_argument("inputs", metavar="WORKER_DB", nargs="+", help="a worker's database")
    parser.add_argument("--force", action="store_true", help="replace OUT_DB if it exists")
    parser.add_argument(
        "--allow-running",
        action="store_true",
        help="merge a worker still crawling, from a snapshot of what it has saved so far",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="settings of the plugins (default: ./config.toml if present)",
    )
    parser.add_argument("--quiet", action="store_true", help="print errors only")
    log = MergeLog()
    try:
        args = parser.parse_args(list(argv))
        log.quiet = args.quiet
        report = merge_databases(
            Path(args.out),
            [Path(p) for p in args.inputs],
            force=args.force,
            allow_running=args.allow_running,
            config=load_file_config(args.config),
            log=log,
        )
    except StorageWriteError as exc:
        log.end()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ConfigError, PluginError, StorageError) as exc:
        log.end()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        log.end()
        print("error: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    log.line(report.table())
    return EXIT_OK
