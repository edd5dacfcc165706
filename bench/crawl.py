"""Crawl benchmark: ``python -m bench.crawl [--pages 2000] [--rounds 3] [--workers N] ...``.

It starts ``bench.server`` (its own process, uvloop, 127.0.0.1, a free port), writes a seed file
with the site's root, and runs ``python -m crawler SEED --quiet --db ROUND.db --per-host P
--concurrency C [--workers W]`` as a subprocess once per round, on a fresh database each time.

Per round it measures, for the crawler subprocess:

- wall seconds from spawn to exit (interpreter start-up, imports and the worker pool included);
- CPU seconds (user + sys) of the whole crawler process tree: the ``RUSAGE_CHILDREN`` delta of
  this process once the crawler and all its descendants are reaped. This process makes itself a
  child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``), so the forkserver and the parse workers,
  which are not the crawler's own children or outlive it, are reaped here and counted too;
- the CPU seconds of the crawler process alone (its own utime + stime, read from
  ``/proc/PID/stat`` while it is a zombie, before it is reaped);
- peak RSS of the crawler process: its ``VmHWM`` (a high-water mark, so polling every 50 ms
  misses at most growth in its last 50 ms). ``ru_maxrss`` from ``wait4`` is shown too, but on
  Linux it is not the crawler's own: the kernel folds in the high-water RSS of the image the
  child replaced at exec, which with fork/vfork+exec is this benchmark process (check:
  a parent holding 200 MB spawns ``python -c pass`` and wait4 reports 211 MB);
- the peak over time of the summed RSS and PSS of the crawler's whole process tree (main,
  forkserver, parse workers, resource tracker), polled from ``/proc`` every 50 ms. Forked
  workers share pages with their parent, so the RSS sum over-counts; PSS splits shared pages;
- the server's CPU seconds in the round (to see whether the server was the bottleneck), and the
  CPU seconds everything else on the machine used meanwhile (other jobs make the timings noisy).

Then it checks the database against the site plan: the ``pages`` rows are exactly the expected
page URLs, all status 200 with no error; the ``links`` rows are exactly the expected
(src, dst, tag) rows (so their count equals the expected total); and, from the server's
counters, each page and robots.txt was requested exactly once and nothing else was requested.

The crawler is imported the usual way (the installed, usually editable, package); set
``PYTHONPATH`` to a checkout (``git archive REV | tar -x -C DIR``) to benchmark a fixed revision
while the working tree changes. The header names the code that was used.

``--per-host 32 --concurrency 64`` by default: the site is a single host, so ``per_host`` is the
cap that binds (the crawler's default of 8 in flight to one host would measure politeness, not
throughput); 32 requests in flight over loopback keep the fetcher and the parse workers busy,
and ``concurrency`` is set above it so that the global cap never binds before the per-host one.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.checks import check_links, check_pages, examples
from bench.procs import (
    MB,
    BenchServer,
    become_subreaper,
    describe_crawler,
    quiet_run_problems,
    run_measured,
)
from bench.report import align, keep_workdir, print_failures
from bench.sitegen import DEFAULT_PAGES, DEFAULT_SEED, SitePlan, check_plan, plan_site

__all__ = ["RoundResult", "main"]


@dataclass(slots=True)
class RoundResult:
    """What one crawl round measured and what its check found."""

    round: int
    exit_code: int
    seconds: float
    pages: int
    cpu_seconds: float  # the crawler's whole process tree, user + sys
    main_cpu_seconds: float  # the crawler process alone
    peak_rss_mb: float  # VmHWM of the crawler process
    wait4_maxrss_mb: float  # wait4 ru_maxrss: includes this process's own peak, see the legend
    tree_rss_mb: float  # peak of the summed RSS of the process tree
    tree_pss_mb: float  # peak of the summed PSS of the process tree
    tree_processes: int  # most processes seen in the tree at once
    server_cpu_seconds: float
    other_cpu_seconds: float  # everything else the machine ran meanwhile
    problems: list[str] = field(default_factory=list)

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * self.cpu_seconds / self.pages if self.pages else 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- one round


def crawler_command(seed_file: Path, db: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "crawler", str(seed_file), "--quiet", "--db", str(db)]
    command += ["--per-host", str(args.per_host), "--concurrency", str(args.concurrency)]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    return command


def run_round(
    number: int, args: argparse.Namespace, server: BenchServer, plan: SitePlan, workdir: Path
) -> RoundResult:
    seed_file = workdir / "seed.txt"
    db = workdir / f"round-{number}.db"
    for leftover in workdir.glob(f"round-{number}.db*"):
        leftover.unlink()
    log_path = workdir / f"round-{number}.log"

    server.reset()
    server_cpu_before = float(server.stats()["cpu_seconds"])
    run = run_measured(
        crawler_command(seed_file, db, args),
        cwd=workdir,  # no ./config.toml there: the crawler's defaults plus our flags
        log_path=log_path,
        keep=server.process.pid,
    )
    server_stats = server.stats()
    server_cpu = float(server_stats["cpu_seconds"]) - server_cpu_before

    sampler = run.sampler
    result = RoundResult(
        round=number,
        exit_code=run.exit_code,
        seconds=run.seconds,
        pages=0,
        cpu_seconds=run.cpu_seconds,
        main_cpu_seconds=run.main_cpu_seconds,
        peak_rss_mb=sampler.root_hwm_kb * 1024 / MB,
        wait4_maxrss_mb=run.wait4_maxrss_kb * 1024 / MB,
        tree_rss_mb=sampler.peak_rss_kb * 1024 / MB,
        tree_pss_mb=sampler.peak_pss_kb * 1024 / MB,
        tree_processes=sampler.peak_processes,
        server_cpu_seconds=server_cpu,
        # Slightly off: the tree's CPU is counted to its last reaped process, not to its exit.
        other_cpu_seconds=max(
            0.0, run.machine_busy_seconds - run.cpu_seconds - server_cpu - run.bench_cpu_seconds
        ),
    )
    result.problems.extend(quiet_run_problems(run.exit_code, log_path))
    if db.exists():
        verify_database(db, plan, result)
    else:
        result.problems.append(f"no database at {db}")
    verify_requests(server_stats, plan, result)
    return result


# --------------------------------------------------------------------------- checks


def verify_database(db: Path, plan: SitePlan, result: RoundResult) -> None:
    """Compare the pages and links tables with the plan; append what differs to problems."""
    import sqlite3

    connection = sqlite3.connect(db)
    try:
        pages = connection.execute("SELECT url, status, error, error_kind FROM pages").fetchall()
        links = connection.execute("SELECT src_url, dst_url, tag, nofollow FROM links").fetchall()
    finally:
        connection.close()
    problems = result.problems
    result.pages = len(pages)
    problems += check_pages(plan, [(url, status, error) for url, status, error, _ in pages])
    if bad := Counter(f"status={s} error_kind={k}" for _, s, e, k in pages if s != 200 or e):
        problems.append(f"bad pages rows by kind: {dict(bad)}")
    problems += check_links(plan, [(src, dst, tag) for src, dst, tag, _ in links])
    if nofollow := sum(1 for *_, flag in links if flag):
        problems.append(f"{nofollow} link row(s) with nofollow=1 (the site has none)")


def verify_requests(stats: dict[str, Any], plan: SitePlan, result: RoundResult) -> None:
    """Each page and robots.txt requested once, nothing else requested."""
    expected = len(plan.targets) + 1  # + robots.txt
    if stats["requests"] != expected:
        result.problems.append(
            f"server saw {stats['requests']} requests, expected {expected} (pages + robots.txt)"
        )
    if stats["repeated"]:
        result.problems.append(
            f"{stats['repeated']} target(s) requested more than once: "
            + examples(list(stats["repeated_targets"].items()))
        )
    if stats["not_found"]:
        result.problems.append(
            f"{stats['not_found']} request(s) for targets the site does not have: "
            + examples(stats["not_found_targets"])
        )


# --------------------------------------------------------------------------- report

Column = tuple[str, str, Callable[[RoundResult], float]]
COLUMNS: tuple[Column, ...] = (
    ("seconds", "{:.2f}", lambda r: r.seconds),
    ("pages/s", "{:.1f}", lambda r: r.pages_per_second),
    ("CPU s", "{:.2f}", lambda r: r.cpu_seconds),
    ("CPU ms/page", "{:.2f}", lambda r: r.cpu_ms_per_page),
    ("peak RSS MB", "{:.1f}", lambda r: r.peak_rss_mb),
    ("main CPU s", "{:.2f}", lambda r: r.main_cpu_seconds),
    ("tree RSS MB", "{:.1f}", lambda r: r.tree_rss_mb),
    ("tree PSS MB", "{:.1f}", lambda r: r.tree_pss_mb),
    ("procs", "{:.0f}", lambda r: r.tree_processes),
    ("server CPU s", "{:.2f}", lambda r: r.server_cpu_seconds),
    ("other CPU s", "{:.2f}", lambda r: r.other_cpu_seconds),
    ("wait4 RSS MB", "{:.1f}", lambda r: r.wait4_maxrss_mb),
)


def format_table(results: Sequence[RoundResult]) -> str:
    """One aligned line per round, then the median of each column."""
    lines = [["round", *(name for name, _, _ in COLUMNS), "check"]]
    for result in results:
        values = [fmt.format(value(result)) for _, fmt, value in COLUMNS]
        lines.append([str(result.round), *values, "ok" if result.ok else "FAIL"])
    medians = [
        fmt.format(statistics.median(value(r) for r in results)) for _, fmt, value in COLUMNS
    ]
    lines.append(["median", *medians, "ok" if all(r.ok for r in results) else "FAIL"])
    return align(lines, left=(0, -1))


LEGEND = """\
seconds      wall time of `python -m crawler`, spawn to exit (start-up and pool included)
pages/s      pages rows / seconds
CPU s        user+sys of the crawler's whole process tree (main, forkserver, parse workers)
CPU ms/page  CPU s per pages row
peak RSS MB  peak RSS (VmHWM) of the crawler process, polled from /proc every 50 ms
main CPU s   user+sys of the crawler process alone (event loop, fetching, SQLite)
tree RSS MB  peak of the summed RSS of the process tree, polled every 50 ms (over-counts shared)
tree PSS MB  peak of the summed PSS of the process tree (shared pages split between processes)
procs        most processes alive in the tree at once
server CPU s CPU of the benchmark server during the round (it shares the machine's CPUs)
other CPU s  CPU the rest of the machine used during the round (/proc/stat busy time minus the
             crawler tree, the server and this process): well above 0, the timings are noisy
wait4 RSS MB ru_maxrss from wait4: Linux folds in the RSS high-water mark of the image the child
             had before exec, i.e. of this benchmark process, so it is only an upper bound
check        ok: pages, links and requests exactly as planned"""


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.crawl",
        description="Time `python -m crawler` on a generated local site and check its database.",
    )
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES, help="pages in the site")
    parser.add_argument("--rounds", type=int, default=3, help="crawls, each on a fresh database")
    parser.add_argument(
        "--workers", type=int, default=None, help="crawler --workers (default: the crawler's)"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="crawler --concurrency")
    parser.add_argument("--per-host", type=int, default=32, help="crawler --per-host")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="site generator seed")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (seed file, databases, logs)"
    )
    args = parser.parse_args(argv)
    if args.pages < 1 or args.rounds < 1:
        parser.error("--pages and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    subreaper = become_subreaper()
    workdir = Path(tempfile.mkdtemp(prefix="crawler-bench-"))
    server = BenchServer(["--pages", str(args.pages), "--seed", str(args.seed)])
    keep = args.keep
    try:
        plan = plan_site(args.pages, server.port, args.seed)
        check_plan(plan)
        (workdir / "seed.txt").write_text(plan.seed_url + "\n")
        workers = args.workers if args.workers is not None else f"default ({os.cpu_count()} CPUs)"
        print(
            f"site: {len(plan.targets)} pages, {len(plan.expected_links)} links rows expected, "
            f"server {plan.base} (pid {server.process.pid})"
        )
        print(f"crawler code: {describe_crawler(workdir)}")
        print(
            f"crawler: --per-host {args.per_host} --concurrency {args.concurrency} "
            f"--workers {workers}; Python {platform.python_version()}, {os.cpu_count()} CPUs"
            + ("" if subreaper else "; not a subreaper: orphaned workers' CPU may be missing"),
            flush=True,
        )
        results = []
        for number in range(1, args.rounds + 1):
            result = run_round(number, args, server, plan, workdir)
            results.append(result)
            print(
                f"  round {number}: {result.seconds:.2f} s, {result.pages} pages, "
                + ("ok" if result.ok else "FAIL"),
                flush=True,
            )
        print()
        print(format_table(results))
        print()
        print(LEGEND)
        failed = [r for r in results if not r.ok]
        print_failures([(f"round {r.round}", r.problems) for r in failed])
        keep = keep_workdir(keep, bool(failed), workdir)
        return 1 if failed else 0
    finally:
        server.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
