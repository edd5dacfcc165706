"""Crawler vs Scrapy vs the limit: ``python -m bench.compare [--pages 20000] [--rounds 3]``.

Setup once: ``bash scripts/bench-setup.sh`` (Debian's nginx, and ``.venv-bench`` with Scrapy).

It generates the :mod:`bench.sitegen` site (20,000 pages of 10-40 KB by default, each with 20-60
URL elements: relative, ``../``, root-relative, absolute, protocol-relative, ``#fragment`` and
``?page=K`` variants, images, a stylesheet), writes it to a temporary directory and serves it
with nginx on 127.0.0.1 (:mod:`bench.nginx`), after checking that nginx answers every file of
the site with its body and Content-Type. Then it runs the contenders in interleaved rounds
(round r starts with a different contender each time), each from the site's root:

- ``crawler``: ``python -m crawler SEED --quiet --db ROUND.db --per-host 32 --concurrency 64
  [--workers W]``, in a directory without config.toml (so the crawler's defaults plus these
  flags). The site is one host, so ``--per-host`` is the cap that binds (the default of 8 would
  measure politeness), ``--concurrency`` is above it so that it never binds first, and
  ``--workers`` is the crawler's default (one parse process per CPU) unless given;
- ``scrapy``: ``.venv-bench/bin/python -m scrapy runspider bench/scrapy_spider.py`` with
  Scrapy's broad-crawl settings and the same caps (``CONCURRENT_REQUESTS`` = ``--concurrency``,
  ``CONCURRENT_REQUESTS_PER_DOMAIN`` = ``--per-host``), storing every page and link in SQLite;
- ``limit``: ``python bench/limit.py SEED --workers N`` (N = ``--per-host``): uvloop, aiohttp,
  selectolax, ``urljoin``/``urldefrag``, a queue and N workers; it stores nothing.

Each run is measured like ``bench.crawl`` (:func:`bench.procs.run_measured`, this process a
child subreaper): wall seconds from spawn to exit (start-up included), CPU seconds of the
contender's whole process tree, peak RSS (``VmHWM``) of its main process and the peak summed
PSS of its tree, nginx's CPU seconds (master and worker, from /proc) and the CPU the rest of
the machine used meanwhile. Its time counts only if its output is exactly the site:

- ``crawler`` and ``scrapy``: the ``pages`` rows are exactly the site's page URLs, each once,
  all status 200 (and no error); the ``links`` rows are exactly the expected (src, dst, tag)
  rows, each once; the crawler printed nothing with ``--quiet``; Scrapy finished with reason
  ``finished`` and logged no error;
- ``limit``: the URLs it fetched are exactly the site's pages, each once, all 200, and the
  per-page distinct (target, tag) links it resolved add up to the expected number of rows;
- for all: exit code 0, and nginx answered exactly the expected number of requests (the pages,
  plus robots.txt for the two that obey it), from nginx's ``stub_status`` counter.

The report: one line per run, then the table of medians over the correct rounds with pages/s
relative to Scrapy's and to the limit's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.checks import SHOWN, check_links, check_pages, examples
from bench.crawl import crawler_command
from bench.nginx import NginxError, NginxSite, free_port
from bench.procs import MB, REPO_ROOT, become_subreaper, describe_crawler, run_measured
from bench.report import align, keep_workdir, print_failures
from bench.sitegen import SitePlan, check_plan, plan_site

__all__ = ["CONTENDERS", "Run", "main"]

DEFAULT_PAGES = 20_000
DEFAULT_SEED = 20240501  # bench.sitegen's
BENCH_VENV = REPO_ROOT / ".venv-bench"
SPIDER = REPO_ROOT / "bench" / "scrapy_spider.py"
LIMIT = REPO_ROOT / "bench" / "limit.py"
CONTENDERS = ("crawler", "scrapy", "limit")


@dataclass(slots=True)
class Run:
    """One contender's run in one round: its measures and what its check found."""

    contender: str
    round: int
    exit_code: int = 0
    seconds: float = 0.0
    pages: int = 0  # pages in its output
    cpu_seconds: float = 0.0  # its whole process tree, user + sys
    peak_rss_mb: float = 0.0  # VmHWM of its main process
    tree_pss_mb: float = 0.0  # peak summed PSS of its process tree
    processes: int = 0
    nginx_cpu_seconds: float = 0.0
    other_cpu_seconds: float = 0.0
    requests: int = 0  # requests nginx answered during the run
    loop_lag_p99_ms: float | None = None  # the crawler's own measure (meta last_run)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * self.cpu_seconds / self.pages if self.pages else 0.0

    @property
    def nginx_percent(self) -> float:
        """nginx's CPU as a percentage of one core over the run (its one worker's ceiling)."""
        return 100 * self.nginx_cpu_seconds / self.seconds if self.seconds else 0.0


# --------------------------------------------------------------------------- checks


def read_database(db: Path, pages_sql: str) -> tuple[list[Any], list[Any]]:
    if not db.exists():
        raise FileNotFoundError(db)
    connection = sqlite3.connect(db)
    try:
        pages = connection.execute(pages_sql).fetchall()
        links = connection.execute("SELECT src_url, dst_url, tag FROM links").fetchall()
    finally:
        connection.close()
    return pages, links


def last_run_lag(db: Path) -> float | None:
    """The p99 event loop lag (ms) the crawler measured, from its ``meta`` row ``last_run``."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        row = connection.execute("SELECT value FROM meta WHERE key = 'last_run'").fetchone()
    return float(json.loads(row[0])["loop_lag_ms"]["p99"]) if row else None


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").strip().splitlines() if path.exists() else []


# --------------------------------------------------------------------------- contenders


@dataclass(frozen=True, slots=True)
class Contender:
    """How to run one contender and check its output."""

    name: str
    command: Callable[[Path], list[str]]  # the run's directory -> command line
    check: Callable[[Path, Run], None]  # sets run.pages, appends to run.problems
    robots: bool  # fetches robots.txt (one request more)


def make_contenders(args: argparse.Namespace, plan: SitePlan, workdir: Path) -> list[Contender]:
    seed_file = workdir / "seed.txt"
    seed_file.write_text(plan.seed_url + "\n")
    bench_python = str(BENCH_VENV / "bin" / "python")

    def crawler(run_dir: Path) -> list[str]:
        return crawler_command(seed_file, run_dir / "crawl.db", args)

    def check_crawler(run_dir: Path, run: Run) -> None:
        if lines := log_lines(run_dir / "output.log"):
            run.problems.append(f"printed {len(lines)} line(s) with --quiet: {lines[0][:200]!r}")
        sql = "SELECT url, status, error FROM pages"
        pages, links = read_database(run_dir / "crawl.db", sql)
        run.pages = len(pages)
        run.problems += check_pages(plan, pages)
        run.problems += check_links(plan, links)
        run.loop_lag_p99_ms = last_run_lag(run_dir / "crawl.db")

    def scrapy(run_dir: Path) -> list[str]:
        return [
            bench_python,
            "-m",
            "scrapy",
            "runspider",
            str(SPIDER),
            "-a",
            f"seed={plan.seed_url}",
            "-a",
            f"db={run_dir / 'scrapy.db'}",
            "-s",
            f"CONCURRENT_REQUESTS={args.concurrency}",
            "-s",
            f"CONCURRENT_REQUESTS_PER_DOMAIN={args.per_host}",
        ]

    def check_scrapy(run_dir: Path, run: Run) -> None:
        errors = [line for line in log_lines(run_dir / "output.log") if "ERROR" in line]
        if errors:
            run.problems.append(f"logged {len(errors)} error line(s), first: {errors[0][:200]!r}")
        stats_file = run_dir / "scrapy.db.stats.json"
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        if stats.get("finish_reason") != "finished":
            run.problems.append(f"finish reason {stats.get('finish_reason')!r}, not 'finished'")
        sql = "SELECT url, status, NULL FROM pages"
        pages, links = read_database(run_dir / "scrapy.db", sql)
        run.pages = len(pages)
        run.problems += check_pages(plan, pages)
        run.problems += check_links(plan, links)

    def limit(run_dir: Path) -> list[str]:
        workers = str(args.limit_workers or args.per_host)
        out = str(run_dir / "limit.json")
        return [sys.executable, str(LIMIT), plan.seed_url, "--workers", workers, "--out", out]

    def check_limit(run_dir: Path, run: Run) -> None:
        if lines := log_lines(run_dir / "output.log"):
            run.problems.append(f"printed {len(lines)} line(s): {lines[0][:200]!r}")
        result = json.loads((run_dir / "limit.json").read_text())
        pages = [(url, status, None) for url, status in result["pages"]]
        run.pages = len(pages)
        run.problems += check_pages(plan, pages)
        if result["errors"]:
            run.problems.append(f"{len(result['errors'])} error(s): {result['errors'][:SHOWN]}")
        if result["link_rows"] != len(plan.expected_links):
            expected = len(plan.expected_links)
            run.problems.append(
                f"resolved {result['link_rows']} distinct links, expected {expected}"
            )

    table = {
        "crawler": Contender("crawler", crawler, check_crawler, robots=True),
        "scrapy": Contender("scrapy", scrapy, check_scrapy, robots=True),
        "limit": Contender("limit", limit, check_limit, robots=False),
    }
    return [table[name] for name in args.contenders]


def run_once(
    contender: Contender, number: int, site: NginxSite, workdir: Path, timeout: float
) -> Run:
    run_dir = workdir / f"{contender.name}-{number}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    run = Run(contender.name, number)
    site.requests()  # reset the counter
    nginx_before = site.cpu_seconds()
    measured = run_measured(
        contender.command(run_dir),
        cwd=run_dir,  # no config.toml, no scrapy.cfg
        log_path=run_dir / "output.log",
        keep=site.pid,
        timeout=timeout,
    )
    run.nginx_cpu_seconds = site.cpu_seconds() - nginx_before
    run.requests = site.requests()
    run.exit_code = measured.exit_code
    run.seconds = measured.seconds
    run.cpu_seconds = measured.cpu_seconds
    run.peak_rss_mb = measured.sampler.root_hwm_kb * 1024 / MB
    run.tree_pss_mb = measured.sampler.peak_pss_kb * 1024 / MB
    run.processes = measured.sampler.peak_processes
    run.other_cpu_seconds = max(
        0.0,
        measured.machine_busy_seconds
        - measured.cpu_seconds
        - run.nginx_cpu_seconds
        - measured.bench_cpu_seconds,
    )
    if measured.timed_out:
        run.problems.append(f"stopped after the {timeout:.0f} s timeout")
    if measured.exit_code != 0:
        run.problems.append(f"exited with {measured.exit_code}")
    if not site.alive():
        raise NginxError(f"nginx died during the {contender.name} run: {site.errors()}")
    try:
        contender.check(run_dir, run)
    except (OSError, ValueError, KeyError, sqlite3.Error) as error:
        run.problems.append(f"no usable output: {error!r}")
    expected = len(site.plan.targets) + (1 if contender.robots else 0)
    if run.requests != expected:
        what = "pages + robots.txt" if contender.robots else "pages"
        run.problems.append(f"nginx answered {run.requests} requests, expected {expected} ({what})")
    return run


# --------------------------------------------------------------------------- report

Column = tuple[str, str, Callable[[Run], float]]
COLUMNS: tuple[Column, ...] = (
    ("seconds", "{:.2f}", lambda r: r.seconds),
    ("pages/s", "{:.0f}", lambda r: r.pages_per_second),
    ("CPU s", "{:.2f}", lambda r: r.cpu_seconds),
    ("CPU ms/page", "{:.2f}", lambda r: r.cpu_ms_per_page),
    ("peak RSS MB", "{:.1f}", lambda r: r.peak_rss_mb),
    ("tree PSS MB", "{:.1f}", lambda r: r.tree_pss_mb),
    ("procs", "{:.0f}", lambda r: r.processes),
    ("nginx CPU s", "{:.2f}", lambda r: r.nginx_cpu_seconds),
    ("nginx %", "{:.0f}", lambda r: r.nginx_percent),
    ("other CPU s", "{:.2f}", lambda r: r.other_cpu_seconds),
)


def format_runs(runs: Sequence[Run]) -> str:
    lines = [["round", "contender", *(name for name, _, _ in COLUMNS), "check"]]
    for run in runs:
        values = [fmt.format(value(run)) for _, fmt, value in COLUMNS]
        lines.append([str(run.round), run.contender, *values, "ok" if run.ok else "FAIL"])
    return align(lines, left=(0, 1, -1))


def medians(runs: Sequence[Run]) -> dict[str, float]:
    return {name: statistics.median(value(r) for r in runs) for name, _, value in COLUMNS}


def format_summary(names: Sequence[str], runs: Sequence[Run]) -> str:
    """Medians over each contender's correct runs, with pages/s relative to Scrapy and limit."""
    good = {name: [r for r in runs if r.contender == name and r.ok] for name in names}
    summary = {name: medians(good[name]) for name in names if good[name]}
    scrapy = summary.get("scrapy", {}).get("pages/s")
    limit = summary.get("limit", {}).get("pages/s")
    header = ["contender", *(name for name, _, _ in COLUMNS), "vs Scrapy", "vs limit", "rounds ok"]
    lines = [header]
    for name in names:
        total = sum(1 for r in runs if r.contender == name)
        counted = f"{len(good[name])}/{total}"
        if name not in summary:
            lines.append([name, *("-" for _ in COLUMNS), "-", "-", counted])
            continue
        values = summary[name]
        rate = values["pages/s"]
        lines.append(
            [
                name,
                *(fmt.format(values[column]) for column, fmt, _ in COLUMNS),
                f"{rate / scrapy:.2f}x" if scrapy else "-",
                f"{100 * rate / limit:.0f}%" if limit else "-",
                counted,
            ]
        )
    return align(lines, left=(0, -1))


LEGEND = """\
seconds      wall time of the contender's command, spawn to exit (start-up included)
pages/s      pages in its output / seconds
CPU s        user+sys of its whole process tree (the crawler's parse workers included)
CPU ms/page  CPU s per page
peak RSS MB  peak RSS (VmHWM) of its main process, polled from /proc every 50 ms
tree PSS MB  peak of the summed PSS of its process tree (shared pages split between processes)
procs        most processes alive in its tree at once
nginx CPU s  CPU of nginx (master + its one worker) during the run
nginx %      nginx CPU s / seconds: its single worker saturates at 100
other CPU s  CPU the rest of the machine used meanwhile (/proc/stat busy time minus the
             contender, nginx and this process): well above 0, the timings are noisy
vs Scrapy    median pages/s / Scrapy's median pages/s
vs limit     median pages/s / the limit's median pages/s
rounds ok    runs whose output was exactly the site (only those are in the medians)"""


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description="Time the crawler, Scrapy and a raw aiohttp+selectolax loop on one "
        "nginx-served generated site, in interleaved rounds; check each run's output.",
    )
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES, help="pages in the site")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every contender")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma-separated, from {', '.join(CONTENDERS)} (default: all)",
    )
    parser.add_argument(
        "--per-host",
        type=int,
        default=32,
        help="crawler --per-host, Scrapy's CONCURRENT_REQUESTS_PER_DOMAIN, the limit's workers",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="crawler --concurrency, Scrapy's CONCURRENT_REQUESTS",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="crawler --workers (default: the crawler's)"
    )
    parser.add_argument(
        "--limit-workers", type=int, default=None, help="the limit's workers (default: --per-host)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="site generator seed")
    parser.add_argument(
        "--timeout", type=float, default=1200.0, help="seconds before a run is stopped"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (site, outputs, logs)"
    )
    args = parser.parse_args(argv)
    if args.pages < 1 or args.rounds < 1:
        parser.error("--pages and --rounds must be at least 1")
    args.contenders = [name.strip() for name in args.contenders.split(",") if name.strip()]
    if unknown := set(args.contenders) - set(CONTENDERS):
        parser.error(f"unknown contender(s): {', '.join(sorted(unknown))}")
    if not args.contenders:
        parser.error("no contenders")
    return args


def scrapy_version() -> str:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run `bash scripts/bench-setup.sh` first")
    answer = subprocess.run(
        [
            str(python),
            "-c",
            "import scrapy, sys; print(scrapy.__version__, sys.version.split()[0])",
        ],
        capture_output=True,
        text=True,
    )
    if answer.returncode != 0:
        raise SystemExit(f"Scrapy is not importable from {python}: run scripts/bench-setup.sh")
    version, python_version = answer.stdout.split()
    return f"Scrapy {version} on Python {python_version} ({python})"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scrapy = scrapy_version() if "scrapy" in args.contenders else ""
    subreaper = become_subreaper()
    workdir = Path(tempfile.mkdtemp(prefix="crawler-compare-"))
    keep = args.keep
    site: NginxSite | None = None
    try:
        started = time.perf_counter()
        plan = plan_site(args.pages, free_port(), args.seed)
        check_plan(plan)
        site = NginxSite(plan, workdir / "nginx")
        written = site.write()
        site.start()
        if problems := site.verify():
            raise NginxError(
                f"nginx does not serve the site as planned: {examples(problems)}; "
                f"error log: {site.errors()}"
            )
        print(
            f"site: {len(plan.targets)} pages ({written / MB:.0f} MB with assets), "
            f"{len(plan.expected_links)} links rows expected, served by {site.version} at "
            f"{plan.base} (pid {site.pid}), all {len(site.files)} files checked; "
            f"ready in {time.perf_counter() - started:.0f} s"
        )
        contenders = make_contenders(args, plan, workdir)
        workers = args.workers if args.workers is not None else f"default ({os.cpu_count()} CPUs)"
        print(f"crawler code: {describe_crawler(workdir)}")
        print(
            f"crawler: --per-host {args.per_host} --concurrency {args.concurrency} "
            f"--workers {workers}; Python {platform.python_version()} ({sys.executable})"
        )
        if "scrapy" in args.contenders:
            print(
                f"scrapy: {scrapy}; CONCURRENT_REQUESTS={args.concurrency} "
                f"CONCURRENT_REQUESTS_PER_DOMAIN={args.per_host}"
            )
        if "limit" in args.contenders:
            print(f"limit: {args.limit_workers or args.per_host} workers")
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(
            f"machine: {os.cpu_count()} CPUs, load average {load} at start"
            + ("" if subreaper else "; not a subreaper: orphaned processes' CPU may be missing"),
            flush=True,
        )
        runs: list[Run] = []
        for number in range(1, args.rounds + 1):
            shift = (number - 1) % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                run = run_once(contender, number, site, workdir, args.timeout)
                runs.append(run)
                print(
                    f"  round {number} {contender.name}: {run.seconds:.2f} s, {run.pages} pages, "
                    f"{run.requests} requests, " + ("ok" if run.ok else "FAIL"),
                    flush=True,
                )
                if not keep and run.ok:
                    shutil.rmtree(workdir / f"{contender.name}-{number}", ignore_errors=True)
        print()
        print(format_runs(runs))
        print()
        print(format_summary([c.name for c in contenders], runs))
        lags = [r.loop_lag_p99_ms for r in runs if r.ok and r.loop_lag_p99_ms is not None]
        if lags:
            print(
                f"\ncrawler event loop lag, p99 (its own measure, meta last_run): median "
                f"{statistics.median(lags):.1f} ms, worst {max(lags):.1f} ms "
                f"over {len(lags)} rounds"
            )
        print()
        print(LEGEND)
        failed = [r for r in runs if not r.ok]
        print_failures(
            [(f"{r.contender} round {r.round} (not in the medians)", r.problems) for r in failed]
        )
        if nginx_errors := site.error_lines():
            print(f"\nnginx error log ({len(nginx_errors)} lines), last: {nginx_errors[-1]}")
        keep = keep_workdir(keep, bool(failed), workdir)
        return 1 if failed else 0
    finally:
        if site is not None:
            site.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
