"""Latency benchmark: ``python -m bench.latency [--pages 200] [--latency 0.1] [--concurrency 20]``.

A crawler spends most of a real crawl waiting for servers. This measures how well it overlaps
the waits: a site of N pages where every answer (robots.txt included) takes ``--latency``
seconds, the root linking to every other page, crawled with ``--concurrency C --per-host C``.
The best any crawler can do is one round trip for robots.txt, one for the root, then
``ceil((N - 1) / C)`` waves of C requests: for 200 pages, 100 ms and 20 in flight, 1.2 s.
Target: at most 1.3 s.

The site runs in its own process (``python -m bench.latency --serve``: aiohttp on uvloop,
127.0.0.1, a free port, printed first), which logs when each request arrived and when its answer
left. The crawler runs as ``python -m crawler SEED --quiet --db ROUND.db --concurrency C
--per-host C`` once per round. Reported per round: the crawl time as the server saw it (first
request in to last answer out: interpreter start-up and imports are not the crawl), the wall
time of the whole command, the most requests in flight at the server, and the check that each
page was requested once and saved with status 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.report import align

__all__ = ["main"]


def _page(index: int, pages: int) -> str:
    links = (
        "".join(f'<li><a href="/p{i}">page {i}</a></li>' for i in range(1, pages))
        if not index
        else ""
    )
    return f"<!doctype html><title>page {index}</title><h1>page {index}</h1><ul>{links}</ul>"


async def _serve(pages: int, latency: float) -> None:
    import uvloop
    from aiohttp import web

    log: list[tuple[str, float, float]] = []
    in_flight = {"now": 0, "most": 0}

    async def handle(request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        try:
            await asyncio.sleep(latency)
            path = request.path
            if path == "/__bench/stats":
                body = {"log": log, "most_in_flight": in_flight["most"]}
                return web.json_response(body)
            if path == "/__bench/reset":
                log.clear()
                in_flight["most"] = 0
                return web.Response(text="ok")
            if path == "/robots.txt":
                response = web.Response(text="User-agent: *\nAllow: /\n")
            elif path == "/" or (path.startswith("/p") and path[2:].isdigit()):
                index = 0 if path == "/" else int(path[2:])
                if index >= pages:
                    raise web.HTTPNotFound()
                response = web.Response(text=_page(index, pages), content_type="text/html")
            else:
                raise web.HTTPNotFound()
            log.append((path, arrived, time.time()))
            return response
        finally:
            in_flight["now"] -= 1

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), done.set)  # the parent closed our stdin: stop
    await done.wait()
    await runner.cleanup()
    del uvloop


def _get(port: int, path: str) -> dict[str, object]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
        text = answer.read().decode()
    return json.loads(text) if text.startswith("{") else {}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per answer")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="crawler --workers")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(_serve(args.pages, args.latency))
        return

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.latency",
            "--serve",
            "--pages",
            str(args.pages),
            "--latency",
            str(args.latency),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    best = (2 + math.ceil((args.pages - 1) / args.concurrency)) * args.latency
    rows: list[tuple[str, ...]] = [
        ("round", "crawl s", "wall s", "pages", "most in flight", "check")
    ]
    crawl_times: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seed = Path(tmp) / "seed.txt"
            seed.write_text(f"http://127.0.0.1:{port}/\n")
            for index in range(1, args.rounds + 1):
                _get(port, "/__bench/reset")
                db = Path(tmp) / f"round{index}.db"
                command = [
                    sys.executable,
                    "-m",
                    "crawler",
                    str(seed),
                    "--quiet",
                    "--db",
                    str(db),
                    "--concurrency",
                    str(args.concurrency),
                    "--per-host",
                    str(args.concurrency),
                ]
                if args.workers is not None:
                    command += ["--workers", str(args.workers)]
                start = time.perf_counter()
                code = subprocess.run(command, check=False).returncode
                wall = time.perf_counter() - start
                stats = _get(port, "/__bench/stats")
                log = [tuple(entry) for entry in stats["log"]]  # type: ignore[union-attr]
                crawl = max(e[2] for e in log) - min(e[1] for e in log)
                with sqlite3.connect(db) as conn:
                    saved = dict(conn.execute("SELECT status, count(*) FROM pages GROUP BY 1"))
                requests = Counter(e[0] for e in log)
                ok = (
                    code == 0
                    and saved == {200: args.pages}
                    and len(requests) == args.pages + 1
                    and set(requests.values()) == {1}
                )
                crawl_times.append(crawl)
                rows.append(
                    (
                        str(index),
                        f"{crawl:.3f}",
                        f"{wall:.2f}",
                        str(sum(saved.values())),
                        str(stats["most_in_flight"]),
                        "ok" if ok else f"FAILED (exit {code}, {saved})",
                    )
                )
                if not ok:
                    raise SystemExit(align(rows))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    median = statistics.median(crawl_times)
    rows.append(("median", f"{median:.3f}", "", "", "", ""))
    print(
        f"{args.pages} pages, {args.latency * 1000:.0f} ms per answer, concurrency "
        f"{args.concurrency}; best possible {best:.2f} s; target 1.3 s; Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(align(rows))
    print(f"\nmedian crawl time {median:.3f} s: {'within' if median <= 1.3 else 'OVER'} 1.3 s")


if __name__ == "__main__":
    main()
