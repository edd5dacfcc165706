"""The frontier and politeness slots, without a network: scheduling order and accounting."""

from __future__ import annotations

import asyncio
import itertools
import time

from crawler.frontier import MemoryFrontier, Task
from crawler.politeness import HostSlot, ReadyHeap
from crawler.robots import RobotsCache, rules_from_answer


def make_frontier(per_host: int = 1, delay: float = 0.0, robots: bool = False) -> MemoryFrontier:
    return MemoryFrontier(
        per_host=per_host, delay=delay, robots=RobotsCache("crawler", enabled=robots)
    )


async def drain(frontier: MemoryFrontier, n: int) -> list[Task]:
    out = []
    for _ in range(n):
        task = await asyncio.wait_for(frontier.next_ready(), 5)
        assert task is not None
        out.append(task)
    return out


def test_host_slot_spacing_and_backoff() -> None:
    slot = HostSlot("http://a", per_host=2, delay=1.0)
    slot.start(100.0)
    assert slot.next_allowed_at == 101.0 and slot.in_flight == 1
    assert slot.has_capacity()
    slot.start(100.5)
    assert slot.next_allowed_at == 102.0 and not slot.has_capacity()
    slot.finish(100.6, 429, retry_after=5.0)
    assert slot.backoff == 1.0 and slot.next_allowed_at == 105.6 and slot.interval == 2.0
    slot.finish(106.0, 503)
    assert slot.backoff == 2.0 and slot.in_flight == 0
    slot.finish(107.0, 200)
    assert slot.backoff == 1.0
    slot.crawl_delay = 3.0
    assert slot.interval == 4.0


def test_ready_heap_is_lazy_and_ordered() -> None:
    heap = ReadyHeap()
    heap.push("b", 2.0)
    heap.push("a", 1.0)
    heap.push("a", 3.0)  # supersedes a@1
    heap.discard("b")
    heap.push("c", 2.5)
    assert heap.pop() == (2.5, "c")
    assert heap.pop() == (3.0, "a")
    assert heap.pop() is None


async def test_seen_set_dedupes_and_claims() -> None:
    frontier = make_frontier()
    assert frontier.add("http://a/1", 0)
    assert not frontier.add("http://a/1", 3)
    assert not await frontier.claim("http://a/1", 0)
    assert await frontier.claim("http://a/2", 0)
    assert not frontier.add("http://a/2", 0)
    assert frontier.queued == 1 and frontier.seen_count == 2


async def test_slow_host_does_not_block_other_hosts() -> None:
    frontier = make_frontier(per_host=1, delay=30.0)
    for i in range(3):
        frontier.add(f"http://slow/{i}", 0)
    for i in range(3):
        frontier.add(f"http://fast{i}/", 0)
    start = time.monotonic()
    tasks = await drain(frontier, 4)
    assert time.monotonic() - start < 1.0
    hosts = [t.host for t in tasks]
    assert hosts.count("http://slow") == 1
    assert {"http://fast0", "http://fast1", "http://fast2"} <= set(hosts)


async def test_per_host_limit_holds_until_release() -> None:
    frontier = make_frontier(per_host=2)
    for i in range(4):
        frontier.add(f"http://a/{i}", 0)
    first = await drain(frontier, 2)
    waiting = asyncio.create_task(frontier.next_ready())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    frontier.release(first[0], 200)
    third = await asyncio.wait_for(waiting, 1)
    assert third is not None and third.url == "http://a/2"


async def test_delay_spaces_request_starts() -> None:
    frontier = make_frontier(per_host=5, delay=0.2)
    for i in range(3):
        frontier.add(f"http://a/{i}", 0)
    times = []
    for _ in range(3):
        task = await frontier.next_ready()
        assert task is not None
        times.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.19 for gap in gaps), gaps


async def test_finishes_when_all_tasks_done() -> None:
    frontier = make_frontier()
    frontier.add("http://a/", 0)
    task = await frontier.next_ready()
    assert task is not None
    waiting = asyncio.create_task(frontier.next_ready())
    await asyncio.sleep(0.02)
    assert not waiting.done()
    frontier.release(task, 200)
    frontier.task_done(task)
    assert await asyncio.wait_for(waiting, 1) is None


async def test_retry_waits_its_delay() -> None:
    frontier = make_frontier()
    frontier.add("http://a/", 0)
    task = await frontier.next_ready()
    assert task is not None
    frontier.release(task, 500)
    frontier.retry(task, 0.3)
    frontier.task_done(task)
    start = time.monotonic()
    again = await asyncio.wait_for(frontier.next_ready(), 2)
    assert again is not None and again.attempt == 2 and again.url == "http://a/"
    assert time.monotonic() - start >= 0.29


async def test_robots_first_then_allowed_pages_only() -> None:
    blocked: list[Task] = []
    robots = RobotsCache("crawler")
    frontier = MemoryFrontier(per_host=4, delay=0.0, robots=robots, on_blocked=blocked.append)
    frontier.add("http://a/private/x", 0)
    frontier.add("http://a/public", 0)
    first = await frontier.next_ready()
    assert first is not None and first.kind == "robots" and first.url == "http://a/robots.txt"
    # while robots.txt is loading, the host hands out nothing
    waiting = asyncio.create_task(frontier.next_ready())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    robots.store(rules_from_answer("http://a", 200, b"User-agent: *\nDisallow: /private\n"))
    frontier.release(first, 200)
    frontier.robots_loaded("http://a")
    frontier.task_done(first)
    page = await asyncio.wait_for(waiting, 1)
    assert page is not None and page.url == "http://a/public"
    assert [t.url for t in blocked] == ["http://a/private/x"]


def test_reprs_are_informative() -> None:
    frontier = make_frontier()
    frontier.add("http://a/", 0)
    assert "seen=1" in repr(frontier) and "queued=1" in repr(frontier)
    assert "http://a" in repr(frontier.slot("http://a"))
    assert repr(Task("http://a/", 0, "http://a")) == "<Task page http://a/ depth=0>"


async def test_asset_owner_is_kept_on_disk_and_back() -> None:
    """A plugin's asset keeps its owner when it waits in the frontier table (and on resume)."""
    table: list[tuple[str, int, int, str]] = []

    def on_queue(url: str, depth: int, host: str, seq: int, kind: str) -> None:
        table.append((url, depth, seq, kind))

    async def loader(host: str, from_seq: int, limit: int) -> list[tuple[str, int, int, str]]:
        return [row for row in table if row[2] >= from_seq][:limit]

    frontier = MemoryFrontier(
        per_host=1,
        delay=0.0,
        robots=RobotsCache("crawler", enabled=False),
        on_queue=on_queue,
        loader=loader,
        memory_queue=1,  # everything after the first URL waits on disk
    )
    assert frontier.add("http://a/page", 0)
    assert frontier.add("http://a/img.png", 1, kind="asset", owner="images")
    assert frontier.add("http://a/sitemap.xml", 0, kind="asset", owner="audit")
    assert frontier.add("http://a/old-asset", 1, kind="asset")
    assert [row[3] for row in table] == ["page", "asset:images", "asset:audit", "asset"]
    tasks = []
    while (task := await asyncio.wait_for(frontier.next_ready(), 5)) is not None:
        tasks.append(task)
        frontier.release(task, 200)
        frontier.task_done(task)
    assert [(t.url, t.kind, t.owner) for t in tasks] == [
        ("http://a/page", "page", None),
        ("http://a/img.png", "asset", "images"),
        ("http://a/sitemap.xml", "asset", "audit"),
        ("http://a/old-asset", "asset", None),
    ]
    assert frontier.refills >= 1  # they did come back from the table
    assert "owner=audit" in repr(tasks[2])
