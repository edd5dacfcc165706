"""The practical limit: ``python bench/limit.py SEED_URL --workers N --out RESULT.json``.

The least a Python crawler of one site can do, as a yardstick for ``bench.compare``: uvloop,
one aiohttp session (keep-alive, N connections), a queue and N worker tasks. Each worker
fetches a URL, parses the body with selectolax (Lexbor, as the crawler does), resolves every
``<a href>``, ``<img src>`` and ``<link href>`` with ``urljoin`` and ``urldefrag``, dedupes them
per page (what would be the page's link rows), and queues the ``<a>`` targets on the seed's
host (scheme, host and port) that it has not seen. It stores nothing: no database, no
robots.txt, no politeness, no retries, no normalization beyond ``urljoin``.

For the benchmark's check, and only once the crawl is over, it writes ``--out``: JSON with the
URLs fetched and their statuses, the number of requests, and the number of per-page distinct
(target, tag) links it resolved.

It imports nothing from the project, so it runs as a plain script with any Python that has
aiohttp, uvloop and selectolax (the project's own dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
import uvloop
from selectolax.lexbor import LexborHTMLParser

SELECTOR = "a[href], img[src], link[href]"
ATTRIBUTE = {"a": "href", "img": "src", "link": "href"}


class Limit:
    """The crawl's state: queue, seen set, what was fetched."""

    def __init__(self, seed: str) -> None:
        parts = urlsplit(seed)
        self.prefix = f"{parts.scheme}://{parts.netloc}/"
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.seen = {seed}
        self.queue.put_nowait(seed)
        self.fetched: list[tuple[str, int]] = []
        self.link_rows = 0
        self.errors: list[str] = []

    def links(self, url: str, body: bytes) -> None:
        tree = LexborHTMLParser(body)
        rows: set[tuple[str, str]] = set()
        for node in tree.css(SELECTOR):
            tag = node.tag or ""
            value = node.attributes.get(ATTRIBUTE.get(tag, "href"))
            if value:
                rows.add((urldefrag(urljoin(url, value.strip()))[0], tag))
        self.link_rows += len(rows)
        seen, prefix, queue = self.seen, self.prefix, self.queue
        for target, tag in rows:
            if tag == "a" and target not in seen and target.startswith(prefix):
                seen.add(target)
                queue.put_nowait(target)

    async def worker(self, session: aiohttp.ClientSession) -> None:
        queue = self.queue
        while True:
            url = await queue.get()
            try:
                async with session.get(url, allow_redirects=False) as answer:
                    body = await answer.read()
                    status = answer.status
                    html = answer.content_type == "text/html"
                self.fetched.append((url, status))
                if status == 200 and html:
                    self.links(url, body)
            except Exception as error:  # recorded, the crawl goes on
                self.errors.append(f"{url}: {error!r}")
            finally:
                queue.task_done()

    async def run(self, workers: int) -> None:
        connector = aiohttp.TCPConnector(limit=workers, limit_per_host=workers)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks = [asyncio.create_task(self.worker(session)) for _ in range(workers)]
            await self.queue.join()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/limit.py", description=__doc__)
    parser.add_argument("seed", help="URL to start from")
    parser.add_argument("--workers", type=int, default=32, help="fetch tasks and connections")
    parser.add_argument("--out", required=True, help="JSON file written at the end")
    args = parser.parse_args(argv)
    limit = Limit(args.seed)
    start = time.perf_counter()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(limit.run(args.workers))
    seconds = time.perf_counter() - start
    with open(args.out, "w") as out:
        json.dump(
            {
                "seconds": seconds,
                "requests": len(limit.fetched) + len(limit.errors),
                "pages": limit.fetched,
                "link_rows": limit.link_rows,
                "errors": limit.errors,
            },
            out,
        )
    return 1 if limit.errors else 0


if __name__ == "__main__":
    sys.exit(main())
