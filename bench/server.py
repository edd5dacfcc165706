"""Serve the generated benchmark site from memory: ``python -m bench.server --pages N --port 0``.

It runs in its own process (so it never shares the crawler's event loop), on uvloop, with
aiohttp's low-level server (no router, no middlewares, no access log) and HTTP keep-alive. It
binds 127.0.0.1 only. The first stdout line is the port, printed once the site is rendered and
the socket is accepting; the server runs until SIGTERM or SIGINT (or, with ``--parent-stdin``,
until its stdin reaches end of file: the parent went away).

With ``--fanout K`` it serves instead the endless site of :mod:`bench.treesite` (for the memory
benchmark): pages ``/n/<i>`` of 2-3 KB linking to their K children and their parent, rendered
on request (``--pages`` is then ignored).

Bodies are sent uncompressed: on a loopback interface compression would only cost CPU on both
sides. Unknown targets answer 404. Two private targets, never linked from the site, let the
benchmark see what the crawler asked for:

- ``GET /__bench/stats``: JSON with the requests since the last reset (total, by status, the
  targets asked more than once, the ones that 404ed, the wall-clock times of the first and the
  last) and the server's CPU seconds so far;
- ``GET /__bench/reset``: clears the request counters.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence

import uvloop
from aiohttp import web

from bench.sitegen import DEFAULT_PAGES, DEFAULT_SEED, content_type, plan_site, render_site
from bench.treesite import ROBOTS_TXT, TreeSite, node_of

__all__ = ["SiteServer", "TreeServer", "main"]

STATS_TARGET = "/__bench/stats"
RESET_TARGET = "/__bench/reset"


class SiteServer:
    """Answers requests from a ``{request target: body}`` dict, counting what was asked."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.types = {target: content_type(target) for target in files}
        self.requests: Counter[str] = Counter()
        self.not_found: Counter[str] = Counter()
        self.first_request_at: float | None = None  # time.time() of the first request counted
        self.last_request_at: float | None = None

    def lookup(self, target: str) -> tuple[bytes, str] | None:
        """(body, Content-Type) of a request target, or None when the site does not have it."""
        body = self.files.get(target)
        return None if body is None else (body, self.types[target])

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        target = request.raw_path  # path and query, as sent
        found = self.lookup(target)
        if found is not None:
            self._count()
            self.requests[target] += 1
            body, kind = found
            return web.Response(body=body, headers={"Content-Type": kind})
        if target == STATS_TARGET:
            return web.json_response(self.stats())
        if target == RESET_TARGET:
            self.requests.clear()
            self.not_found.clear()
            self.first_request_at = self.last_request_at = None
            return web.json_response({"reset": True})
        self._count()
        self.not_found[target] += 1
        return web.Response(status=404, text="not found\n")

    def _count(self) -> None:
        self.last_request_at = time.time()
        if self.first_request_at is None:
            self.first_request_at = self.last_request_at

    def stats(self) -> dict[str, object]:
        repeated = {t: n for t, n in self.requests.items() if n > 1}
        return {
            "requests": self.requests.total() + self.not_found.total(),
            "ok": self.requests.total(),
            "distinct": len(self.requests),
            "not_found": self.not_found.total(),
            "not_found_targets": sorted(self.not_found)[:50],
            "repeated": len(repeated),
            "repeated_targets": dict(sorted(repeated.items())[:50]),
            "first_request_at": self.first_request_at,
            "last_request_at": self.last_request_at,
            "cpu_seconds": time.process_time(),
        }

    def __repr__(self) -> str:
        return (
            f"<SiteServer files={len(self.files)} requests={self.requests.total()} "
            f"not_found={self.not_found.total()}>"
        )


class TreeServer(SiteServer):
    """Serves the endless tree site of :mod:`bench.treesite`, rendering pages on request."""

    HTML = content_type("/n/0")

    def __init__(self, site: TreeSite) -> None:
        super().__init__({"/robots.txt": ROBOTS_TXT})
        self.site = site

    def lookup(self, target: str) -> tuple[bytes, str] | None:
        index = node_of(target)
        if index is None:
            return super().lookup(target)
        return self.site.page(index), self.HTML

    def __repr__(self) -> str:
        return (
            f"<TreeServer fanout={self.site.fanout} requests={self.requests.total()} "
            f"not_found={self.not_found.total()}>"
        )


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(
    sock: socket.socket,
    pages: int,
    seed: int,
    *,
    watch_stdin: bool = False,
    fanout: int | None = None,
) -> None:
    port = sock.getsockname()[1]
    if fanout is None:
        site = SiteServer(render_site(plan_site(pages, port, seed)))
    else:
        site = TreeServer(TreeSite(fanout, seed))
    server = web.Server(site.handle, access_log=None)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=1024).start()

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    stdin = sys.stdin.fileno()
    if watch_stdin:
        loop.add_reader(stdin, lambda: done.set() if not os.read(stdin, 4096) else None)
    print(port, flush=True)
    try:
        await done.wait()
    finally:
        if watch_stdin:
            loop.remove_reader(stdin)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__)
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES, help="pages in the site")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="site generator seed")
    parser.add_argument(
        "--fanout",
        type=int,
        default=None,
        metavar="K",
        help="serve the endless tree site of bench.treesite, K new links per page, instead",
    )
    parser.add_argument(
        "--parent-stdin",
        action="store_true",
        help="also stop when stdin reaches end of file (the parent's pipe closed)",
    )
    args = parser.parse_args(argv)
    if args.fanout is not None and args.fanout < 1:
        parser.error("--fanout must be at least 1")
    sock = bind(args.port)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(
            serve(sock, args.pages, args.seed, watch_stdin=args.parent_stdin, fanout=args.fanout)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
