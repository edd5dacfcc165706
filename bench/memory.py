"""Memory benchmark: ``python -m bench.memory [--pages 20000] [--fanout 50] [--workers N] ...``.

How much RAM does the crawler need per URL it knows? Its frontier keeps the seen set in memory
(a set of 64-bit URL fingerprints) and spills the queue to SQLite beyond 1,000 URLs per host
or 50,000 in all, so memory should grow with the URLs known, by little per URL, and not with
the queue. Targets: peak RSS at most 150 MB for a 20,000-page crawl, at most 300 MB for a
crawl that discovers 1,000,000 distinct URLs.

It starts ``bench.server --fanout K`` (its own process, uvloop, 127.0.0.1, a free port): the
endless site of :mod:`bench.treesite`, where page ``/n/<i>`` (2-3 KB) links to its K children
and its parent, so a crawl that saves P pages knows exactly ``1 + K*P`` URLs. Then it runs
``python -m crawler SEED --quiet --max-pages P --db RUN.db --per-host 32 --concurrency 64
[--workers W]`` from ``/n/0``, on a fresh database each time, for:

- ``baseline``: a 1-page crawl (same flags, same site as the first run): the crawler's fixed
  RSS (interpreter, imports, SQLite, HTTP client; the parse pool with ``--workers`` > 0);
- ``small``: P pages (``--pages``) on the site with ``--small-fanout`` (2) links per page:
  the 20,000-page crawl, knowing ``1 + 2P`` (40,001) URLs; target 150 MB;
- ``wide``: P pages with ``--fanout`` (50) links per page: ``1 + 50P`` (1,000,001) URLs
  known, nearly all of them still queued (mostly on disk) when the crawl stops; target 300 MB.

Each crawl is measured with :func:`bench.procs.run_measured`, as in ``bench.crawl``: wall
seconds, the peak RSS (``VmHWM``) of the crawler process and the peaks of the summed RSS and
PSS of its process tree (parse workers included), polled from /proc every 50 ms. Then the
database is read: ``pages`` rows, ``frontier`` rows (every URL known), the ``frontier`` rows
still queued (``state = 0``), its size on disk. Each crawl is checked: exit code 0, nothing
printed with ``--quiet``, exactly P pages rows, all 200 without error, exactly ``1 + K*P``
frontier rows of which P done, and (from the server's counters) P page requests plus
robots.txt, none twice, no 404.

The crawler is imported as installed; ``PYTHONPATH=DIR`` (a ``git archive REV | tar -x -C DIR``
checkout) measures a fixed revision, and the header names the code used.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.checks import SHOWN
from bench.crawl import crawler_command
from bench.procs import (
    MB,
    BenchServer,
    become_subreaper,
    describe_crawler,
    quiet_run_problems,
    run_measured,
)
from bench.report import align
from bench.treesite import DEFAULT_FANOUT, SEED_TARGET, known_urls

__all__ = ["MemoryRun", "main"]

DEFAULT_PAGES = 20_000
DEFAULT_SMALL_FANOUT = 2
SMALL_TARGET_MB = 150
WIDE_TARGET_MB = 300
DEFAULT_TIMEOUT = 3600.0  # seconds per crawl before the watchdog stops it


@dataclass(frozen=True, slots=True)
class Plan:
    """One crawl to run: its name, the site's fanout, the page limit and the RSS target."""

    name: str
    fanout: int
    pages: int
    target_mb: float | None  # None for the baseline

    @property
    def known(self) -> int:
        return known_urls(self.pages, self.fanout)


@dataclass(slots=True)
class MemoryRun:
    """What one crawl measured and what its check found."""

    plan: Plan
    exit_code: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # user + sys of the crawler's whole process tree
    main_cpu_seconds: float = 0.0  # of the crawler process alone (its threads included)
    main_kb: int = 0  # VmHWM of the crawler process
    tree_rss_kb: int = 0  # peak of the summed RSS of its process tree
    tree_pss_kb: int = 0  # peak of the summed PSS of its process tree
    pages: int = 0
    known: int = 0  # frontier rows
    queued: int = 0  # frontier rows with state 0
    db_bytes: int = 0  # database + WAL
    tail_seconds: float | None = None  # from the crawler's last request to its exit
    baseline_kb: int | None = None  # main_kb of the baseline run
    problems: list[str] = field(default_factory=list)

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    @property
    def bytes_per_url(self) -> float | None:
        if self.baseline_kb is None or not self.known:
            return None
        return (self.main_kb - self.baseline_kb) * 1024 / self.known

    def within(self, kb: int) -> bool | None:
        """Whether ``kb`` is within the plan's target (None: no target)."""
        target = self.plan.target_mb
        return None if target is None else kb * 1024 <= target * MB

    @property
    def ok(self) -> bool:
        return not self.problems and self.within(self.main_kb) is not False


# --------------------------------------------------------------------------- one crawl


@contextmanager
def tree_server(fanout: int) -> Iterator[BenchServer]:
    server = BenchServer(["--fanout", str(fanout)])
    try:
        yield server
    finally:
        server.close()


def run_crawl(
    plan: Plan, args: argparse.Namespace, server: BenchServer, workdir: Path
) -> MemoryRun:
    seed_file = workdir / f"seed-{server.port}.txt"
    seed_file.write_text(server.base + SEED_TARGET + "\n")
    db = workdir / f"{plan.name}.db"
    for leftover in workdir.glob(f"{plan.name}.db*"):
        leftover.unlink()
    log_path = workdir / f"{plan.name}.log"
    command = [*crawler_command(seed_file, db, args), "--max-pages", str(plan.pages)]

    server.reset()
    run = run_measured(
        command,
        cwd=workdir,  # no ./config.toml there: the crawler's defaults plus our flags
        log_path=log_path,
        keep=server.process.pid,
        timeout=args.timeout,
    )
    stats = server.stats()
    last_request = stats.get("last_request_at")
    result = MemoryRun(
        plan,
        exit_code=run.exit_code,
        seconds=run.seconds,
        cpu_seconds=run.cpu_seconds,
        main_cpu_seconds=run.main_cpu_seconds,
        main_kb=run.sampler.root_hwm_kb,
        tree_rss_kb=run.sampler.peak_rss_kb,
        tree_pss_kb=run.sampler.peak_pss_kb,
        tail_seconds=None if last_request is None else run.ended_at - float(last_request),
    )
    if run.timed_out:
        result.problems.append(f"still running after {args.timeout:.0f} s: stopped (SIGTERM)")
    result.problems.extend(quiet_run_problems(run.exit_code, log_path))
    if db.exists():
        read_database(db, result)
    else:
        result.problems.append(f"no database at {db}")
    check_requests(stats, result)
    return result


def read_database(db: Path, result: MemoryRun) -> None:
    """Fill in the counts and size from the crawl's database; append what is wrong."""
    result.db_bytes = sum(
        path.stat().st_size for path in (db, db.with_name(db.name + "-wal")) if path.exists()
    )
    problems, plan = result.problems, result.plan
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:

        def count(sql: str) -> int:
            return int(connection.execute(sql).fetchone()[0])

        result.pages = count("SELECT count(*) FROM pages")
        result.known = count("SELECT count(*) FROM frontier")
        result.queued = count("SELECT count(*) FROM frontier WHERE state = 0")
        bad = "FROM pages WHERE status IS NOT 200 OR error IS NOT NULL"
        if errors := count(f"SELECT count(*) {bad}"):
            rows = connection.execute(
                f"SELECT url, status, error_kind, error {bad} LIMIT {SHOWN}"
            ).fetchall()
            problems.append(
                f"{errors} pages row(s) not 200 or with an error: "
                + ", ".join(f"{u} status={s} {k}: {e}" for u, s, k, e in rows)
            )
    if result.pages != plan.pages:
        problems.append(f"{result.pages} pages rows, expected {plan.pages} (--max-pages)")
    if result.known != plan.known:
        problems.append(
            f"{result.known} frontier rows (URLs known), expected 1 + {plan.fanout} x "
            f"{plan.pages} = {plan.known}"
        )
    if result.known - result.queued != result.pages:
        problems.append(
            f"{result.known - result.queued} frontier rows done, but {result.pages} pages rows"
        )


def check_requests(stats: dict[str, Any], result: MemoryRun) -> None:
    """P page requests and robots.txt, none repeated, nothing unknown."""
    expected = result.plan.pages + 1
    if stats["requests"] != expected:
        result.problems.append(
            f"server saw {stats['requests']} requests, expected {expected} (pages + robots.txt)"
        )
    if stats["repeated"]:
        shown = list(stats["repeated_targets"].items())[:SHOWN]
        result.problems.append(f"{stats['repeated']} target(s) requested more than once: {shown}")
    if stats["not_found"]:
        result.problems.append(
            f"{stats['not_found']} request(s) for targets the site does not have: "
            f"{stats['not_found_targets'][:SHOWN]}"
        )


# --------------------------------------------------------------------------- report


def _mb(kb: int) -> str:
    return f"{kb * 1024 / MB:.1f}"


def _verdict(within: bool | None) -> str:
    return "-" if within is None else "pass" if within else "FAIL"


def format_table(results: Sequence[MemoryRun]) -> str:
    lines = [
        [
            "config",
            "pages",
            "known URLs",
            "queued",
            "seconds",
            "pages/s",
            "tail s",
            "CPU s",
            "main CPU s",
            "main MB",
            "tree RSS MB",
            "tree PSS MB",
            "B/URL",
            "db MB",
            "target MB",
            "main",
            "tree",
            "check",
        ]
    ]
    for r in results:
        per_url = r.bytes_per_url
        lines.append(
            [
                f"{r.plan.name} k={r.plan.fanout}",
                f"{r.pages:,}",
                f"{r.known:,}",
                f"{r.queued:,}",
                f"{r.seconds:.1f}",
                f"{r.pages_per_second:.0f}",
                "-" if r.tail_seconds is None else f"{r.tail_seconds:.1f}",
                f"{r.cpu_seconds:.1f}",
                f"{r.main_cpu_seconds:.1f}",
                _mb(r.main_kb),
                _mb(r.tree_rss_kb),
                _mb(r.tree_pss_kb),
                "-" if per_url is None else f"{per_url:.0f}",
                f"{r.db_bytes / MB:.1f}",
                "-" if r.plan.target_mb is None else f"<= {r.plan.target_mb:.0f}",
                _verdict(r.within(r.main_kb)),
                _verdict(r.within(r.tree_pss_kb)),
                "FAIL" if r.problems else "ok",
            ]
        )
    return align(lines, left=(0, -3, -2, -1))


LEGEND = """\
config       baseline: a 1-page crawl; small/wide: --pages pages; k = links to new pages per page
pages        pages rows in the database
known URLs   frontier rows: every URL the crawl knew (1 + k x pages on this site)
queued       frontier rows with state 0: known, never fetched (the crawl stopped at --max-pages)
seconds      wall time of `python -m crawler`, spawn to exit (start-up and pool included)
pages/s      pages / seconds
tail s       from the crawler's last request to its exit (draining, writing, shutting down)
CPU s        user+sys of the crawler's whole process tree (main, forkserver, parse workers)
main CPU s   user+sys of the crawler process alone (event loop, SQLite writer thread)
main MB      peak RSS (VmHWM) of the crawler process, polled from /proc every 50 ms
tree RSS MB  peak of the summed RSS of the crawler's process tree (over-counts shared pages)
tree PSS MB  peak of the summed PSS of the process tree (shared pages split): its real total
B/URL        (main MB - baseline main MB) / known URLs, in bytes: RAM per URL known
db MB        the database file and its WAL after the crawl
target MB    the peak RSS allowed
main, tree   main MB, tree PSS MB within the target
check        ok: exit 0, silent, exactly --pages pages all 200, 1 + k x pages URLs known,
             each page requested once"""


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory",
        description="Peak RSS of `python -m crawler` per URL known, on an endless local site.",
    )
    parser.add_argument(
        "--pages", type=int, default=DEFAULT_PAGES, help="crawler --max-pages of each crawl"
    )
    parser.add_argument(
        "--fanout", type=int, default=DEFAULT_FANOUT, help="new links per page, wide crawl"
    )
    parser.add_argument(
        "--small-fanout",
        type=int,
        default=DEFAULT_SMALL_FANOUT,
        help="new links per page, small crawl",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="crawler --workers (default: the crawler's)"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="crawler --concurrency")
    parser.add_argument("--per-host", type=int, default=32, help="crawler --per-host")
    parser.add_argument(
        "--only", choices=("small", "wide"), default=None, help="run one of the two crawls"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds a crawl may take before it is stopped",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (seed files, databases, logs)"
    )
    args = parser.parse_args(argv)
    if min(args.pages, args.fanout, args.small_fanout) < 1:
        parser.error("--pages, --fanout and --small-fanout must be at least 1")
    return args


def plans(args: argparse.Namespace) -> list[Plan]:
    runs = []
    if args.only in (None, "small"):
        runs.append(Plan("small", args.small_fanout, args.pages, SMALL_TARGET_MB))
    if args.only in (None, "wide"):
        runs.append(Plan("wide", args.fanout, args.pages, WIDE_TARGET_MB))
    return [Plan("baseline", runs[0].fanout, 1, None), *runs]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    subreaper = become_subreaper()
    workdir = Path(tempfile.mkdtemp(prefix="crawler-memory-"))
    keep = args.keep
    try:
        workers = args.workers if args.workers is not None else f"default ({os.cpu_count()} CPUs)"
        print(f"crawler code: {describe_crawler(workdir)}")
        print(
            f"crawler: --max-pages P --per-host {args.per_host} --concurrency "
            f"{args.concurrency} --workers {workers}; Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs"
            + ("" if subreaper else "; not a subreaper: orphaned workers may linger"),
            flush=True,
        )
        results: list[MemoryRun] = []
        todo = plans(args)
        for fanout in dict.fromkeys(plan.fanout for plan in todo):
            with tree_server(fanout) as server:
                print(f"site: {server.base}{SEED_TARGET}, {fanout} new links per page", flush=True)
                for plan in (p for p in todo if p.fanout == fanout):
                    result = run_crawl(plan, args, server, workdir)
                    results.append(result)
                    print(
                        f"  {plan.name}: pages {result.pages:,}, URLs known {result.known:,}, "
                        f"{result.seconds:.1f} s, peak RSS {_mb(result.main_kb)} MB, "
                        + ("ok" if not result.problems else "FAIL"),
                        flush=True,
                    )
        baseline = results[0].main_kb if results[0].plan.name == "baseline" else None
        for result in results[1:]:
            result.baseline_kb = baseline
        print()
        print(format_table(results))
        print()
        print(LEGEND)
        failed = [r for r in results if not r.ok]
        for result in results:
            over = [
                f"{what} {_mb(kb)} MB > {result.plan.target_mb:.0f} MB"
                for what, kb in (("peak RSS", result.main_kb), ("tree PSS", result.tree_pss_kb))
                if result.within(kb) is False
            ]
            if result.problems or over:
                print(f"\n{result.plan.name}: {'FAILED' if result in failed else 'note'}")
                for line in [*over, *result.problems]:
                    print(f"  - {line}")
        keep = keep or bool(failed)
        if keep:
            print(f"\nwork directory kept: {workdir}")
        return 1 if failed else 0
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
