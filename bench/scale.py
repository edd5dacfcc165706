"""Scale-out benchmark: ``python -m bench.scale [--pages 5000] [--procs 1,2,4] [--rounds 1]``.

How the crawl rate grows with the number of crawler processes sharing one Redis frontier. It
writes the :mod:`bench.sitegen` site to a temporary directory, serves it with its own nginx
(:mod:`bench.nginx`, with a timing access log) and starts its own ``redis-server`` (127.0.0.1,
a free port, no persistence). For each process count N, in each round, it starts N

    python -m crawler SEED --quiet --frontier redis://127.0.0.1:PORT/0 --name RUN --db wK.db
                      --workers 0 --per-host P --concurrency C [--delay D]

at once (parsing inline, ``workers = 0``: each process is one event loop on one core), and
times them from the first spawn to the last exit. Each run counts only if it is right: the
workers' ``pages`` rows together are exactly the site's pages, each in one database only, all
200; their ``links`` rows together are exactly the expected ones; nginx answered exactly one
request per page plus one robots.txt; and per-host politeness held at the server: from nginx's
log (start = end - request time, millisecond resolution, so each request is counted as lasting
at least 1 ms, which can only over-count), never more than P requests in flight, and with
``--delay``, request starts at least D apart (minus 5 ms of clock resolution).

It prints one line per run (seconds, pages/s, speedup over the 1-process median, CPU seconds of
the crawler processes, of nginx and of Redis, and the CPU everything else on the machine used
meanwhile: other jobs make the timings noisy), then the medians, then what Redis holds per URL
for the last crawl (``MEMORY USAGE`` of the seen set and of the queues). With ``--memory-urls
N`` it also fills a crawl with N synthetic URLs on 100 hosts, none fetched, and reports the
bytes per URL of the seen set and of the queues at that size.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.checks import check_links, check_pages
from bench.nginx import NginxSite, free_port
from bench.procs import CLOCK_TICKS, become_subreaper, machine_busy_seconds, stat_fields
from bench.report import align, keep_workdir, print_failures
from bench.sitegen import DEFAULT_SEED, SitePlan, check_plan, plan_site
from tests.redisserver import RedisServer

__all__ = ["RedisProcess", "ScaleRun", "main"]

CLOCK_SLACK = 0.005  # nginx logs milliseconds


class RedisProcess:
    """A redis-server of the benchmark's own: 127.0.0.1, a free port, no persistence."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.access(binary, os.X_OK):
            raise SystemExit("redis-server is not installed: run `bash scripts/system-deps.sh`")
        try:
            self.server = RedisServer(binary, directory)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        self.port = self.server.port
        self.process = self.server.process

    @property
    def url(self) -> str:
        return self.server.url()

    def cpu_seconds(self) -> float:
        fields = stat_fields(self.process.pid)
        return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        self.server.stop()

    def __repr__(self) -> str:
        return f"<RedisProcess 127.0.0.1:{self.port} pid={self.process.pid}>"


@dataclass(slots=True)
class ScaleRun:
    """One crawl by N processes, and what its checks found."""

    procs: int
    round: int
    seconds: float
    pages: int
    crawler_cpu: float
    nginx_cpu: float
    redis_cpu: float
    other_cpu: float
    max_in_flight: int
    min_gap: float | None
    exit_codes: list[int]
    per_worker: list[int]
    problems: list[str] = field(default_factory=list)

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def politeness(
    timings: list[tuple[float, float, str]],
) -> tuple[int, float | None]:
    """(most requests in flight at once, smallest gap between request starts) from the log.

    Each request lasts at least 1 ms (the log's resolution), so the count can only be high."""
    events: list[tuple[float, int]] = []
    for start, end, _ in timings:
        events.append((start, 1))
        events.append((max(end, start + 0.001), -1))
    events.sort()  # at equal times an end (-1) comes before a start (+1)
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    starts = sorted(start for start, _, _ in timings)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    return most, (min(gaps) if gaps else None)


def run_once(
    procs: int,
    number: int,
    args: argparse.Namespace,
    plan: SitePlan,
    nginx: NginxSite,
    redis: RedisProcess,
    workdir: Path,
) -> ScaleRun:
    run_dir = workdir / f"p{procs}-r{number}"
    run_dir.mkdir()
    (run_dir / "seed.txt").write_text(plan.seed_url + "\n")
    command = [
        sys.executable, "-m", "crawler", "seed.txt", "--quiet", "--frontier", redis.url,
        "--name", f"scale-{procs}-{number}", "--workers", "0",
        "--per-host", str(args.per_host), "--concurrency", str(args.concurrency),
    ]  # fmt: skip
    if args.delay:
        command += ["--delay", str(args.delay)]
    nginx.requests()
    logged_before = len(nginx.timings())
    cpu_before, busy_before = children_cpu(), machine_busy_seconds()
    nginx_before, redis_before = nginx.cpu_seconds(), redis.cpu_seconds()
    start = time.perf_counter()
    workers = [
        subprocess.Popen(
            [*command, "--db", f"w{k}.db"],
            cwd=run_dir,
            stdin=subprocess.DEVNULL,
            stdout=open(run_dir / f"w{k}.log", "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        )
        for k in range(procs)
    ]
    codes = [worker.wait(args.timeout) for worker in workers]
    seconds = time.perf_counter() - start
    crawler_cpu = children_cpu() - cpu_before
    busy = machine_busy_seconds() - busy_before
    nginx_cpu = nginx.cpu_seconds() - nginx_before
    redis_cpu = redis.cpu_seconds() - redis_before
    requests = nginx.requests()
    timings = [t for t in nginx.timings()[logged_before:] if not t[2].startswith("/__bench")]
    most, gap = politeness(timings)
    run = ScaleRun(
        procs=procs,
        round=number,
        seconds=seconds,
        pages=0,
        crawler_cpu=crawler_cpu,
        nginx_cpu=nginx_cpu,
        redis_cpu=redis_cpu,
        other_cpu=max(0.0, busy - crawler_cpu - nginx_cpu - redis_cpu),
        max_in_flight=most,
        min_gap=gap,
        exit_codes=codes,
        per_worker=[],
    )
    verify(run, plan, run_dir, requests, args)
    return run


def verify(
    run: ScaleRun, plan: SitePlan, run_dir: Path, requests: int, args: argparse.Namespace
) -> None:
    problems = run.problems
    for k, code in enumerate(run.exit_codes):
        if code != 0:
            problems.append(f"worker {k} exited with {code}: see {run_dir}/w{k}.log")
        elif output := (run_dir / f"w{k}.log").read_text(errors="replace").strip():
            problems.append(f"worker {k} printed with --quiet: {output.splitlines()[0][:200]!r}")
    pages: list[tuple[str, int, object]] = []
    links: list[tuple[str, str, str]] = []
    for k in range(run.procs):
        db = run_dir / f"w{k}.db"
        if not db.exists():
            problems.append(f"no database {db}")
            continue
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT url, status, error FROM pages").fetchall()
            links += conn.execute("SELECT src_url, dst_url, tag FROM links").fetchall()
        run.per_worker.append(len(rows))
        pages += rows
    run.pages = len(pages)
    problems += check_pages(plan, pages)  # a page in two databases shows as "more than once"
    problems += check_links(plan, links)
    if requests != len(plan.targets) + 1:
        problems.append(f"nginx answered {requests} requests, expected {len(plan.targets) + 1}")
    if run.max_in_flight > args.per_host:
        problems.append(
            f"{run.max_in_flight} requests in flight at nginx at once, per_host is {args.per_host}"
        )
    if args.delay and run.min_gap is not None and run.min_gap < args.delay - CLOCK_SLACK:
        problems.append(f"request starts {run.min_gap:.3f} s apart, delay is {args.delay} s")


async def fill_memory(url: str, count: int) -> dict[str, float]:
    """Queue ``count`` synthetic URLs (100 hosts) in a crawl of their own; bytes per URL."""
    from crawler.config import Config
    from crawler.redisfrontier import RedisFrontier
    from crawler.status import memory_usage

    config = Config(frontier=url, name="memory", respect_robots=False)
    frontier = await RedisFrontier.connect(config, worker="bench")
    try:
        for i in range(count):
            frontier.add(f"http://site{i % 100}.example/articles/{i}/index.html", 1)
            if i % 20_000 == 19_999:
                await frontier._sync()
        await frontier._sync()
        counters = await frontier.counters()
        usage = await memory_usage(frontier.client, frontier.prefix, counters["seen"], count)
        await frontier.client.delete(
            *[k async for k in frontier.client.scan_iter("crawler:memory:*")]
        )
        return usage
    finally:
        await frontier.client.aclose()


def crawl_memory(url: str, name: str, pages: int) -> dict[str, float]:
    from crawler.status import read_status

    status = asyncio.run(read_status(url, name, memory=True))
    assert status.memory is not None
    return status.memory


COLUMNS = (
    *("procs", "round", "seconds", "pages/s", "speedup", "pages per worker", "crawler CPU s"),
    *("nginx CPU s", "redis CPU s", "other CPU s", "max in flight", "min gap s", "check"),
)


def row(run: ScaleRun, base: float) -> list[str]:
    return [
        str(run.procs),
        str(run.round),
        f"{run.seconds:.2f}",
        f"{run.pages_per_second:.1f}",
        f"{run.pages_per_second / base:.2f}x" if base else "-",
        "/".join(map(str, run.per_worker)),
        f"{run.crawler_cpu:.2f}",
        f"{run.nginx_cpu:.2f}",
        f"{run.redis_cpu:.2f}",
        f"{run.other_cpu:.2f}",
        str(run.max_in_flight),
        "-" if run.min_gap is None else f"{run.min_gap:.3f}",
        "ok" if run.ok else "FAIL",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description="Crawl rate with 1, 2, 4 ... crawler processes sharing one Redis frontier.",
    )
    parser.add_argument("--pages", type=int, default=5000, help="pages in the site")
    parser.add_argument("--procs", default="1,2,4", help="process counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="runs per process count")
    parser.add_argument("--per-host", type=int, default=64, help="crawler --per-host")
    parser.add_argument("--concurrency", type=int, default=32, help="crawler --concurrency")
    parser.add_argument("--delay", type=float, default=0.0, help="crawler --delay")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run at most")
    parser.add_argument("--memory-urls", type=int, default=0, help="also fill N URLs (memory)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="site generator seed")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    args.proc_counts = [int(n) for n in args.procs.split(",")]
    if args.pages < 1 or args.rounds < 1 or min(args.proc_counts) < 1:
        parser.error("--pages, --rounds and --procs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    become_subreaper()
    workdir = Path(tempfile.mkdtemp(prefix="crawler-scale-"))
    (workdir / "redis").mkdir()
    plan = plan_site(args.pages, free_port(), args.seed)
    check_plan(plan)
    nginx = NginxSite(plan, workdir / "nginx", timing_log=True)
    redis: RedisProcess | None = None
    runs: list[ScaleRun] = []
    keep = args.keep
    try:
        nginx.write()
        nginx.start()
        redis = RedisProcess(workdir / "redis")
        print(
            f"site: {len(plan.targets)} pages served by nginx {nginx.version} at {plan.base}; "
            f"redis-server at {redis.url}; crawler --workers 0 --per-host {args.per_host} "
            f"--concurrency {args.concurrency}"
            + (f" --delay {args.delay}" if args.delay else "")
            + f"; Python {platform.python_version()}, {os.cpu_count()} CPUs",
            flush=True,
        )
        for number in range(1, args.rounds + 1):
            for procs in args.proc_counts:
                run = run_once(procs, number, args, plan, nginx, redis, workdir)
                runs.append(run)
                print(
                    f"  {procs} process(es), round {number}: {run.seconds:.2f} s, "
                    f"{run.pages_per_second:.1f} pages/s, " + ("ok" if run.ok else "FAIL"),
                    flush=True,
                )
        ones = [r.pages_per_second for r in runs if r.procs == 1 and r.ok]
        base = statistics.median(ones) if ones else 0.0
        print()
        print(align([list(COLUMNS), *(row(r, base) for r in runs)], left=(-1,)))
        print("\nmedians (correct runs):")
        medians = [["procs", "pages/s", "speedup"]]
        for procs in args.proc_counts:
            rates = [r.pages_per_second for r in runs if r.procs == procs and r.ok]
            if rates:
                rate = statistics.median(rates)
                medians.append([str(procs), f"{rate:.1f}", f"{rate / base:.2f}x" if base else "-"])
        print(align(medians))
        last = runs[-1]
        memory = crawl_memory(redis.url, f"scale-{last.procs}-{last.round}", args.pages)
        print(
            f"\nRedis, crawl of {args.pages} pages: seen set {memory['seen_bytes']:.0f} bytes "
            f"({memory['seen_bytes_per_url']:.1f} B/URL at this size)"
        )
        if args.memory_urls:
            usage = asyncio.run(fill_memory(redis.url, args.memory_urls))
            print(
                f"Redis, {args.memory_urls} URLs queued: seen set "
                f"{usage['seen_bytes_per_url']:.1f} B/URL, queues "
                f"{usage['queue_bytes_per_url']:.1f} B/URL"
            )
        failed = [r for r in runs if not r.ok]
        print_failures([(f"{r.procs} process(es), round {r.round}", r.problems) for r in failed])
        keep = keep_workdir(keep, bool(failed), workdir)
        return 1 if failed else 0
    finally:
        if redis is not None:
            redis.stop()
        nginx.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
