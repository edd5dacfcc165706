"""What a CPU job costs, run inline or moved to a worker: ``python -m bench.cpucall``.

For the pages of the benchmark site (:mod:`bench.sitegen`) it measures, on this machine:

- the work: parsing a page (``crawler.analyze.analyze``) and hashing one (``digest``), inline;
- the crawler process's CPU time (all its threads: the executor's feeder and manager threads
  included) per ``run_in_executor`` call of an empty batch, the fixed cost that
  ``crawler.cpu.CALL_COST`` stands for;
- pickling a page's call and unpickling its result, per page;
- the CPU time of the crawler process per page sent through :class:`crawler.cpu.CpuPool`, with
  batches of 1 and of ``MAX_BATCH`` pages, against parsing the same pages inline.

That is the trade the pool makes at run time: moving a job must cost the crawler's process less
than doing it.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from bench.report import align
from bench.sitegen import content_type, plan_site, render_site
from crawler.analyze import analyze, digest
from crawler.cpu import MAX_BATCH, CpuPool, _run_batch

HEADERS = {"content-type": "text/html; charset=utf-8"}


def _cpu_per(calls: int, fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) / calls


async def _empty_calls(executor: ProcessPoolExecutor, calls: int) -> None:
    loop = asyncio.get_running_loop()
    payload = pickle.dumps([])
    for _ in range(calls):
        await loop.run_in_executor(executor, _run_batch, payload)


async def _through_pool(pages: list[tuple[str, bytes]], batch: int) -> float:
    pool = CpuPool(2, max_batch=batch, adaptive=False)
    try:
        await asyncio.gather(*(pool.run(analyze, b, u, HEADERS) for u, b in pages[:50]))  # warm
        start = time.process_time()
        await asyncio.gather(*(pool.run(analyze, b, u, HEADERS) for u, b in pages))
        return (time.process_time() - start) / len(pages)
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpucall", description=__doc__)
    parser.add_argument("--pages", type=int, default=1000, help="pages of the bench site")
    args = parser.parse_args()

    plan = plan_site(args.pages, port=8080)
    pages = [
        (f"http://127.0.0.1:8080{target}", body)
        for target, body in render_site(plan).items()
        if content_type(target).startswith("text/html")
    ]
    n = len(pages)
    parse = _cpu_per(n, lambda: [analyze(b, u, HEADERS) for u, b in pages])
    hashing = _cpu_per(n, lambda: [digest(b) for _, b in pages])
    results = [analyze(b, u, HEADERS) for u, b in pages]
    calls = [pickle.dumps([(analyze, (b, u, HEADERS, ()), {})]) for u, b in pages]
    dumps = _cpu_per(
        n, lambda: [pickle.dumps([(analyze, (b, u, HEADERS, ()), {})]) for u, b in pages]
    )
    outcomes = [pickle.dumps([(True, r, 0.0)]) for r in results]
    loads = _cpu_per(n, lambda: [pickle.loads(o) for o in outcomes])
    del calls

    with ProcessPoolExecutor(1) as executor:
        asyncio.run(_empty_calls(executor, 50))
        call = statistics.median(
            _cpu_per(500, lambda: asyncio.run(_empty_calls(executor, 500))) for _ in range(3)
        )
    one = asyncio.run(_through_pool(pages, 1))
    batched = asyncio.run(_through_pool(pages, MAX_BATCH))

    us = 1e6
    rows = [
        ("parse + hash a page, inline", f"{parse * us:.0f}"),
        ("hash a page only, inline", f"{hashing * us:.0f}"),
        ("pickle a page's call (body) in the crawler", f"{dumps * us:.0f}"),
        ("unpickle a page's result in the crawler", f"{loads * us:.0f}"),
        ("one empty run_in_executor call, crawler CPU", f"{call * us:.0f}"),
        ("a page through CpuPool, batches of 1, crawler CPU", f"{one * us:.0f}"),
        (f"a page through CpuPool, batches of {MAX_BATCH}, crawler CPU", f"{batched * us:.0f}"),
    ]
    print(f"{n} pages of the bench site, {sum(len(b) for _, b in pages) / n / 1024:.1f} KB each")
    print(align([("", "µs per job"), *rows]))


if __name__ == "__main__":
    main()
