"""``python -m crawler status redis://HOST:PORT/DB [--name NAME] [--json] [--memory]``.

The progress of a shared crawl as a whole, read from Redis: pages done, URLs queued, URLs leased
(in flight, or fetched and waiting for their worker's commit), and each worker's numbers, which
workers write with every heartbeat. A table for people, ``--json`` for programs. ``--memory``
adds what the seen set and the queues take in Redis (``MEMORY USAGE``), per URL.

Exit codes: 0 shown; 2 usage error, Redis unreachable, or no crawl of that name there (the
message lists the crawls it holds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis

from crawler.config import Config
from crawler.errors import ConfigError, FrontierError
from crawler.redisfrontier import UNREACHABLE, key_prefix, open_client, redacted, unreachable

__all__ = ["CrawlStatus", "WorkerStatus", "read_status", "status_main"]


@dataclass(slots=True)
class WorkerStatus:
    """One worker as it last reported itself."""

    worker: str
    state: str  # running, dead (taken for dead, leases given back), done, interrupted, stopped
    pages: int
    rate: float  # pages/s over its last 10 s
    requests: int
    in_flight: int
    leases: int
    pid: str
    machine: str
    db: str
    seconds_since_heartbeat: float


@dataclass(slots=True)
class CrawlStatus:
    """A shared crawl in Redis, at one moment."""

    name: str
    frontier: str
    state: str  # running, finished, stopped (work left, no live worker), empty
    done: int
    queued: int
    leased: int
    seen: int
    started: int
    hosts: int
    settings: dict[str, str]
    workers: list[WorkerStatus] = field(default_factory=list)
    memory: dict[str, float] | None = None

    @property
    def live_workers(self) -> list[WorkerStatus]:
        return [w for w in self.workers if w.state == "running"]

    @property
    def rate(self) -> float:
        return sum(w.rate for w in self.live_workers)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = round(self.rate, 2)
        return data


async def crawl_names(client: aioredis.Redis) -> list[str]:
    names = []
    async for key in client.scan_iter(match="crawler:*:meta", count=1000):
        names.append(str(key).removeprefix("crawler:").removesuffix(":meta"))
    return sorted(names)


async def read_status(url: str, name: str, *, memory: bool = False) -> CrawlStatus:
    """Everything ``status`` shows. Raises FrontierError when Redis cannot be reached or has
    no crawl called ``name``."""
    client = open_client(url)
    try:
        return await _read(client, url, name, memory)
    except UNREACHABLE as exc:
        raise FrontierError(unreachable(url, exc).replace("(--frontier)", "")) from None
    finally:
        await client.aclose()


async def _read(client: aioredis.Redis, url: str, name: str, memory: bool) -> CrawlStatus:
    prefix = key_prefix(name)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(prefix + "meta")
    pipe.hgetall(prefix + "n")
    pipe.scard(prefix + "hosts")
    pipe.smembers(prefix + "wids")
    pipe.zrange(prefix + "workers", 0, -1, withscores=True)
    pipe.time()
    meta, counters, hosts, wids, alive, (sec, usec) = await pipe.execute()
    if not meta:
        names = await crawl_names(client)
        known = f"crawls there: {', '.join(names)}" if names else "it holds no crawl"
        raise FrontierError(f"no crawl named {name!r} at {redacted(url)} ({known})")
    now_ms = int(sec) * 1000 + int(usec) // 1000
    numbers = {str(k): int(v) for k, v in counters.items()}
    expiry = {str(w): float(score) for w, score in alive}
    workers = await _workers(client, prefix, sorted(map(str, wids)), expiry, now_ms)
    done, queued, leased = (numbers.get(k, 0) for k in ("done", "queued", "leased"))
    if any(w.state == "running" for w in workers):
        state = "running"
    elif queued == 0 and leased == 0:
        state = "finished" if done else "empty"
    else:
        state = "stopped"
    status = CrawlStatus(
        name=name,
        frontier=redacted(url),
        state=state,
        done=done,
        queued=queued,
        leased=leased,
        seen=numbers.get("seen", 0),
        started=numbers.get("started", 0),
        hosts=int(hosts),
        settings={str(k): str(v) for k, v in meta.items()},
        workers=workers,
    )
    if memory:
        status.memory = await memory_usage(client, prefix, status.seen, queued)
    return status


async def _workers(
    client: aioredis.Redis, prefix: str, ids: list[str], expiry: dict[str, float], now_ms: int
) -> list[WorkerStatus]:
    pipe = client.pipeline(transaction=False)
    for worker in ids:
        pipe.hgetall(prefix + "wi:" + worker)
    workers = []
    for worker, info in zip(ids, await pipe.execute(), strict=True):
        state = str(info.get("state", "?"))
        if worker not in expiry and state == "running":
            state = "dead"  # lease expired, not reaped yet
        workers.append(
            WorkerStatus(
                worker=worker,
                state=state,
                pages=int(info.get("pages", 0)),
                rate=float(info.get("rate", 0.0)) if state == "running" else 0.0,
                requests=int(info.get("requests", 0)),
                in_flight=int(info.get("in_flight", 0)),
                leases=int(info.get("leases", 0)),
                pid=str(info.get("pid", "")),
                machine=str(info.get("machine", "")),
                db=str(info.get("db", "")),
                seconds_since_heartbeat=max(0.0, (now_ms - int(info.get("seen", now_ms))) / 1000),
            )
        )
    return workers


async def memory_usage(
    client: aioredis.Redis, prefix: str, seen: int, queued: int
) -> dict[str, float]:
    """Bytes Redis uses for the seen set and the queues (``MEMORY USAGE``, exact), per URL."""
    totals = {"seen": 0, "queues": 0}
    for kind, pattern in (("seen", "seen:*"), ("queues", "q:*")):
        keys = [key async for key in client.scan_iter(match=prefix + pattern, count=2000)]
        for i in range(0, len(keys), 1000):
            pipe = client.pipeline(transaction=False)
            for key in keys[i : i + 1000]:
                pipe.memory_usage(key, samples=0)
            totals[kind] += sum(int(n or 0) for n in await pipe.execute())
    return {
        "seen_bytes": totals["seen"],
        "seen_bytes_per_url": totals["seen"] / seen if seen else 0.0,
        "queue_bytes": totals["queues"],
        "queue_bytes_per_url": totals["queues"] / queued if queued else 0.0,
    }


def format_status(status: CrawlStatus) -> str:
    settings = status.settings
    robots = "obeyed" if settings.get("robots", "1") == "1" else "ignored"
    delay = int(settings.get("delay_ms", "0")) / 1000
    live = len(status.live_workers)
    rows = [
        ("pages done", str(status.done)),
        ("queued", str(status.queued)),
        ("leased", f"{status.leased} (in flight, or fetched and not yet committed)"),
        ("seen URLs", str(status.seen)),
        ("hosts", str(status.hosts)),
        ("pages started", f"{status.started} (counted against max_pages)"),
        ("rate", f"{status.rate:.1f} pages/s ({live} live worker{'s' if live != 1 else ''})"),
        (
            "settings",
            f"per_host {settings.get('per_host')}, delay {delay:g} s, "
            f"scope {settings.get('scope')}, robots.txt {robots}",
        ),
    ]
    if status.memory is not None:
        memory = status.memory
        rows.append(
            (
                "Redis memory",
                f"seen set {memory['seen_bytes'] / 1e6:.2f} MB "
                f"({memory['seen_bytes_per_url']:.1f} B/URL), queues "
                f"{memory['queue_bytes'] / 1e6:.2f} MB "
                f"({memory['queue_bytes_per_url']:.1f} B/queued URL)",
            )
        )
    width = max(len(label) for label, _ in rows)
    lines = [f"crawl {status.name!r} at {status.frontier}: {status.state}"]
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    if status.workers:
        table = [
            ["worker", "state", "pages", "pages/s", "requests", "in flight", "leases", "heartbeat"]
        ]
        for w in status.workers:
            table.append(
                [
                    w.worker,
                    w.state,
                    str(w.pages),
                    f"{w.rate:.1f}",
                    str(w.requests),
                    str(w.in_flight),
                    str(w.leases),
                    f"{w.seconds_since_heartbeat:.1f} s ago",
                ]
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines.append("workers")
        for row in table:
            cells = [
                cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            ]
            lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m crawler status",
        description="Show the progress of a crawl shared through Redis (--frontier).",
    )
    parser.add_argument("frontier", metavar="URL", help="redis://HOST:PORT/DB")
    parser.add_argument("--name", default=Config().name, help="the crawl's name (--name)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--memory", action="store_true", help="also measure the seen set's and queues' memory"
    )
    args = parser.parse_args(list(argv))
    Config(frontier=args.frontier, name=args.name)  # the same checks as for a crawl
    return args


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise ConfigError(message)


def status_main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
        status = asyncio.run(read_status(args.frontier, args.name, memory=args.memory))
    except (ConfigError, FrontierError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(status.as_json(), indent=2))
    else:
        print(format_status(status))
    return 0
