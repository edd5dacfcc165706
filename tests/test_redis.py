"""Many crawler processes share one Redis frontier: real `python -m crawler` workers, a real
redis-server of the test's own, a local site that logs every request."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from crawler.config import Config
from crawler.frontier import Task
from crawler.redisfrontier import RedisFrontier, default_worker_id, pack_entry, unpack_entry
from crawler.robots import RobotsCache
from crawler.urls import fingerprint
from tests.conftest import RedisServer
from tests.site import Reply, Site, page_html, unused_port
from tests.test_cli import run_cli, write
from tests.test_resume import wait_for_requests

PAGES = 80
# Slots are granted on Redis' clock; a request reaches the server after its worker's own
# latency, which varies by a few ms (tens on a loaded machine) between workers.
SCHEDULING_SLACK = 0.05


def add_tree(site: Site, pages: int = PAGES, delay: float = 0.03) -> list[str]:
    """/p/i links to its children 3i+1..3i+3 and to the root; every page answers after delay."""
    for i in range(pages):
        links = [f"/p/{c}" for c in (3 * i + 1, 3 * i + 2, 3 * i + 3) if c < pages]
        site.add_slow(f"/p/{i}", delay, links=[*links, "/p/0"])
    return [f"/p/{i}" for i in range(pages)]


async def start_worker(
    cwd: Path, redis: RedisServer, db: str, *args: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", "seed.txt", "--frontier", redis.url(), "--db", db,
        "--workers", "0", "--lease-timeout", "2", *args,
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process, seconds: float = 90) -> tuple[int, str]:
    _, err = await asyncio.wait_for(proc.communicate(), seconds)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def pages_of(db: Path) -> dict[str, int | None]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT url, status FROM pages"))


def tables_of(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def page_requests(site: Site) -> Counter[str]:
    return Counter(r.path for r in site.requests if r.path.startswith("/p/"))


async def crawl_with_workers(
    site: Site, redis: RedisServer, tmp_path: Path, workers: int, *args: str, seed: str = "/p/0"
) -> list[Path]:
    write(tmp_path / "seed.txt", site.url(seed))
    procs = [
        await start_worker(tmp_path, redis, f"w{i}.db", "--quiet", *args) for i in range(workers)
    ]
    for proc in procs:
        code, err = await finish(proc)
        assert code == 0, err
        assert err == ""
    return [tmp_path / f"w{i}.db" for i in range(workers)]


def hold_until_workers_joined(site: Site, redis: RedisServer, workers: int) -> None:
    """The seed page (as add_tree makes it) answers once ``workers`` workers have joined."""
    body = page_html("/p/0", ["/p/1", "/p/2", "/p/3", "/p/0"])

    async def held(request: web.Request) -> web.StreamResponse:
        client = aioredis.Redis.from_url(redis.url())
        try:
            for _ in range(3000):
                if await client.zcard("crawler:crawl:workers") >= workers:
                    break
                await asyncio.sleep(0.01)
        finally:
            await client.aclose()
        return web.Response(text=body, content_type="text/html")

    site.add_handler("/p/0", held)


@pytest.mark.parametrize("workers", [2, 4])
async def test_workers_fetch_every_page_exactly_once(
    site: Site, redis_server: RedisServer, tmp_path: Path, workers: int
) -> None:
    paths = add_tree(site, delay=0.05)
    hold_until_workers_joined(site, redis_server, workers)
    # per_host 8 for the crawl, at most 2 in flight per worker: a free slot for every worker.
    # (A worker that frees a slot usually takes it again in the same round trip, so with
    # per_host below the workers' total concurrency some could get little of a host's work.)
    dbs = await crawl_with_workers(
        site, redis_server, tmp_path, workers, "--per-host", "8", "--concurrency", "2"
    )
    assert page_requests(site) == Counter({path: 1 for path in paths})
    assert site.count("/robots.txt") == 1  # fetched by one worker, shared with the others
    saved = [pages_of(db) for db in dbs]
    assert sum(len(pages) for pages in saved) == PAGES  # no page in two databases
    union = {url: status for pages in saved for url, status in pages.items()}
    assert union == {site.url(path): 200 for path in paths}
    assert all(saved), [len(pages) for pages in saved]  # every worker did some of the work
    for db in dbs:
        assert {"pages", "links", "redirects", "images", "audit", "frontier"} <= tables_of(db)
    run = await run_cli(tmp_path, "status", redis_server.url(), "--json")
    status = json.loads(run.stdout)
    assert status["state"] == "finished"
    assert (status["done"], status["queued"], status["leased"]) == (PAGES, 0, 0)
    assert sum(w["pages"] for w in status["workers"]) == PAGES
    assert {w["state"] for w in status["workers"]} == {"done"}


async def test_per_host_limit_holds_across_four_workers(
    site: Site, redis_server: RedisServer, tmp_path: Path
) -> None:
    paths = add_tree(site, delay=0.05)
    await crawl_with_workers(site, redis_server, tmp_path, 4, "--per-host", "2")
    assert page_requests(site) == Counter({path: 1 for path in paths})
    assert site.max_in_flight == 2  # 4 workers x concurrency 32, yet never 3 at the server


async def test_delay_holds_across_four_workers(
    site: Site, redis_server: RedisServer, tmp_path: Path
) -> None:
    paths = add_tree(site, pages=14, delay=0.0)
    await crawl_with_workers(site, redis_server, tmp_path, 4, "--delay", "0.2")
    assert page_requests(site) == Counter({path: 1 for path in paths})
    gaps = site.gaps()  # between request arrivals at the server, robots.txt included
    assert len(gaps) == 14
    assert min(gaps) >= 0.2 - SCHEDULING_SLACK, gaps


async def test_crawl_delay_of_robots_txt_holds_across_workers(
    site: Site, redis_server: RedisServer, tmp_path: Path
) -> None:
    site.add_robots("User-agent: *\nCrawl-delay: 0.3\nDisallow: /p/5\n")
    add_tree(site, pages=8, delay=0.0)
    dbs = await crawl_with_workers(site, redis_server, tmp_path, 3)
    assert site.count("/robots.txt") == 1
    assert site.count("/p/5") == 0
    assert min(site.gaps()) >= 0.3 - SCHEDULING_SLACK, site.gaps()
    union = {url for db in dbs for url in pages_of(db)}
    assert union == {site.url(f"/p/{i}") for i in range(8) if i != 5}


async def test_kill_9_of_a_worker_loses_nothing(
    site: Site, redis_server: RedisServer, tmp_path: Path
) -> None:
    paths = add_tree(site, pages=120, delay=0.1)
    write(tmp_path / "seed.txt", site.url("/p/0"))
    args = ("--quiet", "--per-host", "12", "--concurrency", "4")
    procs = [await start_worker(tmp_path, redis_server, f"w{i}.db", *args) for i in range(3)]
    await wait_for_requests(site, 30, procs[0])
    client = aioredis.Redis.from_url(redis_server.url(), decode_responses=True)
    victim_leases = f"crawler:crawl:wl:{default_worker_id(tmp_path / 'w0.db')}"
    for _ in range(1000):  # until the victim holds some URLs (it may have started late)
        if any(field.startswith("L") for field in await client.hkeys(victim_leases)):
            break
        await asyncio.sleep(0.005)
    victim = procs[0]
    victim.send_signal(signal.SIGKILL)
    await victim.communicate()
    # What the dead worker held (in flight, or fetched and not committed), read before the
    # others take it back (its lease runs 2 s past its last heartbeat).
    held = await client.hkeys(victim_leases)
    await client.aclose()
    leased = {unpack_entry(*field[1:].split("\t", 1))[0] for field in held if field[0] == "L"}
    assert leased, held
    for proc in procs[1:]:
        code, err = await finish(proc)
        assert code == 0, err
    fetched = page_requests(site)
    assert set(fetched) == set(paths)  # the dead worker's URLs were fetched by the others
    twice = {site.url(path) for path, n in fetched.items() if n > 1}
    assert twice <= leased, twice - leased  # only what it held can be fetched again
    assert max(fetched.values()) <= 2
    union = {url for i in range(3) for url in pages_of(tmp_path / f"w{i}.db")}
    assert union == {site.url(path) for path in paths}


async def test_redis_unreachable_at_start_exits_2_naming_the_url(
    site: Site, tmp_path: Path
) -> None:
    site.add_page("/")
    write(tmp_path / "seed.txt", site.url())
    url = f"redis://127.0.0.1:{unused_port()}/0"
    run = await run_cli(tmp_path, "seed.txt", "--frontier", url)
    assert run.code == 2, run.stderr
    assert f"cannot reach Redis at {url}" in run.stderr
    assert not (tmp_path / "crawl.db").exists()
    assert site.requests == []
    run = await run_cli(tmp_path, "status", url)
    assert run.code == 2 and url in run.stderr


async def test_redis_outage_mid_crawl_stops_cleanly_and_a_restart_continues(
    site: Site, redis_server: RedisServer, tmp_path: Path
) -> None:
    paths = add_tree(site, pages=60, delay=0.1)
    write(tmp_path / "seed.txt", site.url("/p/0"))
    args = ("--per-host", "4", "--concurrency", "4", "--redis-wait", "1")
    proc = await start_worker(tmp_path, redis_server, "w.db", *args)
    await wait_for_requests(site, 15, proc)
    redis_server.pause()
    try:
        start = time.monotonic()
        code, err = await finish(proc, 30)
        assert code == 4, err
        assert time.monotonic() - start < 10
        assert "unreachable" in err and redis_server.url() in err and "--resume" in err
    finally:
        redis_server.resume()
    first = pages_of(tmp_path / "w.db")
    assert 0 < len(first) < 60
    with contextlib.closing(sqlite3.connect(tmp_path / "w.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    proc = await start_worker(tmp_path, redis_server, "w.db", *args, "--resume")
    code, err = await finish(proc)
    assert code == 0, err
    assert "leases of a previous run taken back" in err
    assert set(pages_of(tmp_path / "w.db")) == {site.url(path) for path in paths}
    fetched = page_requests(site)
    assert set(fetched) == set(paths)
    assert sum(n - 1 for n in fetched.values()) <= 4  # the requests in flight at the outage


async def test_max_pages_is_global(site: Site, redis_server: RedisServer, tmp_path: Path) -> None:
    add_tree(site, delay=0.02)
    dbs = await crawl_with_workers(site, redis_server, tmp_path, 3, "--max-pages", "25")
    assert sum(page_requests(site).values()) == 25
    assert sum(len(pages_of(db)) for db in dbs) == 25


async def test_different_settings_are_refused(
    site: Site, redis_server: RedisServer, tmp_path: Path
) -> None:
    add_tree(site, pages=3)
    await crawl_with_workers(site, redis_server, tmp_path, 1, "--per-host", "3")
    run = await run_cli(
        tmp_path, "seed.txt", "--frontier", redis_server.url(), "--per-host", "5", "--db", "x.db"
    )
    assert run.code == 2 and "--per-host 3" in run.stderr and "--name" in run.stderr
    # Another name is another crawl in the same Redis.
    site.requests.clear()
    run = await run_cli(
        tmp_path, "seed.txt", "--frontier", redis_server.url(), "--name", "second",
        "--per-host", "5", "--db", "second.db", "--quiet", "--workers", "0",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert len(pages_of(tmp_path / "second.db")) == 3


async def test_status_table_and_unknown_name(
    site: Site, redis_server: RedisServer, tmp_path: Path
) -> None:
    add_tree(site, pages=5)
    await crawl_with_workers(site, redis_server, tmp_path, 2)
    run = await run_cli(tmp_path, "status", redis_server.url(), "--memory")
    assert run.code == 0, run.stderr
    assert "finished" in run.stdout and "pages done" in run.stdout
    assert "w0.db" in run.stdout and "w1.db" in run.stdout and "B/URL" in run.stdout
    run = await run_cli(tmp_path, "status", redis_server.url(), "--name", "nope")
    assert run.code == 2 and "no crawl named 'nope'" in run.stderr and "crawl" in run.stderr


# --------------------------------------------------------------------------- in-process


def test_entries_pack_the_path_only() -> None:
    for url, host in [
        ("http://a.test/x?y=1", "http://a.test"),
        ("https://b.test:8443/", "https://b.test:8443"),
        ("http://u@c.test/p", "http://c.test"),
    ]:
        for kind in ("page", "asset"):
            entry = pack_entry(url, host, 7, kind)  # type: ignore[arg-type]
            assert unpack_entry(host, entry) == (url, 7, kind, None)
        entry = pack_entry(url, host, 2, "asset", "images")
        assert unpack_entry(host, entry) == (url, 2, "asset", "images")
    assert pack_entry("http://a.test/x", "http://a.test", 3, "page") == "3p/x"


class NoStorage:
    """A worker database that saved nothing."""

    def queue_url(self, url: str, depth: int, host: str, seq: int, kind: str = "page") -> None:
        pass

    async def done_among(self, fingerprints: object) -> set[int]:
        return set()

    async def queued_urls(self) -> list[tuple[str, int, str]]:
        return []


async def frontier(redis: RedisServer, worker: str, **settings: object) -> RedisFrontier:
    config = Config(
        frontier=redis.url(), lease_timeout=1.0, per_host=2, respect_robots=False, **settings
    )  # type: ignore[arg-type]
    shared = await RedisFrontier.connect(config, worker=worker)
    await shared.join(NoStorage())
    return shared.attach(RobotsCache("crawler", enabled=False), lambda task: None)


async def next_task(shared: RedisFrontier) -> Task:
    task = await asyncio.wait_for(shared.next_ready(), 5)
    assert task is not None
    return task


async def test_seen_set_and_slots_are_shared(redis_server: RedisServer) -> None:
    one = await frontier(redis_server, "one")
    two = await frontier(redis_server, "two")
    try:
        assert one.add("http://a.test/1", 0) and one.add("http://a.test/2", 0)
        assert one.add("http://a.test/3", 0)
        assert two.add("http://a.test/1", 0)  # new to this worker; Redis drops it
        first = await next_task(one)
        second = await next_task(one)  # one round trip took both slots of the host
        assert {first.url, second.url} == {"http://a.test/1", "http://a.test/2"}
        # per_host = 2 and both slots are taken: the other worker gets nothing...
        waiting = asyncio.create_task(two.next_ready())
        await asyncio.sleep(0.2)
        assert not waiting.done()
        one.release(second, 200)  # ...until a slot is freed, by the first worker
        third = await asyncio.wait_for(waiting, 5)
        assert third is not None and third.url == "http://a.test/3"
        counters = await one.counters()
        assert (counters["seen"], counters["queued"], counters["leased"]) == (3, 0, 3)
        one.committed([fingerprint(first.url)])  # saved: acked, counted done
        two.committed([])  # nothing saved: the lease stays...
        await two.close()  # ...and goes back to the queue when the worker leaves
        await one._sync()
        counters = await one.counters()
        assert (counters["done"], counters["queued"], counters["leased"]) == (1, 1, 1)
    finally:
        await one.close()


async def test_leases_of_a_silent_worker_go_back(redis_server: RedisServer) -> None:
    dead = await frontier(redis_server, "dead")
    alive = await frontier(redis_server, "alive")
    try:
        dead.add("http://a.test/x", 0)
        task = await next_task(dead)
        for job in dead._tasks:  # the process dies: no heartbeat, no goodbye
            job.cancel()
        again = await asyncio.wait_for(alive.next_ready(), 10)
        assert again is not None and again.url == task.url
        client = aioredis.Redis.from_url(redis_server.url(), decode_responses=True)
        assert await client.hget("crawler:crawl:wi:dead", "state") == "dead"
        await client.aclose()
    finally:
        await alive.close()
        await dead.client.aclose()


async def test_redirects_retries_and_robots_match_a_single_process_crawl(
    site: Site, redis_server: RedisServer, tmp_path: Path
) -> None:
    site.add_robots("User-agent: *\nDisallow: /private\n")
    site.add_page("/", links=["/a", "/moved", "/flaky", "/private/x", "/gone", "/loop1"])
    site.add_page("/a", links=["/b", "/moved"])
    site.add_page("/b", title="B")
    site.add_redirect("/moved", "/hop")
    site.add_redirect("/hop", "/b2")
    site.add_page("/b2", title="B2")
    site.add_sequence("/flaky", [Reply(503, headers={"Retry-After": "0"}), Reply(200, "<p>ok")])
    site.add_status("/gone", 404)
    site.add_redirect("/loop1", "/loop2")
    site.add_redirect("/loop2", "/loop1")

    def tables(
        dbs: list[Path],
    ) -> tuple[dict[str, tuple[object, ...]], Counter[tuple[object, ...]]]:
        pages: dict[str, tuple[object, ...]] = {}
        redirects: Counter[tuple[object, ...]] = Counter()
        for db in dbs:
            with contextlib.closing(sqlite3.connect(db)) as conn:
                for url, *rest in conn.execute(
                    "SELECT url, status, final_url, error_kind, attempts FROM pages"
                ):
                    assert url not in pages, url
                    pages[url] = tuple(rest)
                redirects.update(conn.execute("SELECT url, hop, status, location FROM redirects"))
        return pages, redirects

    write(tmp_path / "seed.txt", site.url())
    local = await run_cli(tmp_path, "seed.txt", "--quiet", "--workers", "0", "--db", "local.db")
    assert local.code == 0, local.stderr
    expected = tables([tmp_path / "local.db"])
    site.requests.clear()
    site.add_sequence("/flaky", [Reply(503, headers={"Retry-After": "0"}), Reply(200, "<p>ok")])
    dbs = await crawl_with_workers(site, redis_server, tmp_path, 2, seed="/")
    assert tables(dbs) == expected
    assert site.count("/private/x") == 0 and site.count("/robots.txt") == 1
    assert site.count("/flaky") == 2  # the 503, then the retry


async def test_merged_worker_databases_equal_a_single_process_crawl(
    site: Site, redis_server: RedisServer, tmp_path: Path
) -> None:
    from PIL import Image

    add_tree(site, pages=30, delay=0.02)
    for i in range(0, 30, 3):  # every third page shows an image, /img/0 to /img/4 in turn
        links = [f"/p/{c}" for c in (3 * i + 1, 3 * i + 2, 3 * i + 3) if c < 30] + ["/p/0"]
        body = page_html(f"/p/{i}", links).replace("</h1>", f'</h1><img src="/img/{i % 5}">')
        site.add_page(f"/p/{i}", body)
    for k in range(5):
        out = io.BytesIO()
        Image.new("RGB", (20 + k, 10), (k * 40, 0, 0)).save(out, "PNG")
        site.add_page(f"/img/{k}", body=out.getvalue(), content_type="image/png")
    write(tmp_path / "seed.txt", site.url("/p/0"))
    args = ("--quiet", "--workers", "0", "--plugin", "images")
    local = await run_cli(tmp_path, "seed.txt", *args, "--db", "local.db")
    assert local.code == 0, local.stderr
    site.requests.clear()
    dbs = await crawl_with_workers(site, redis_server, tmp_path, 2, "--plugin", "images")
    assert Counter(site.paths)["/img/0"] == 1
    run = await run_cli(tmp_path, "merge", "out.db", *map(str, dbs), "--quiet")
    assert run.code == 0, run.stderr

    def tables(db: Path) -> tuple[object, ...]:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return (
                sorted(conn.execute("SELECT url, status, depth, content_hash FROM pages")),
                sorted(conn.execute("SELECT src_url, dst_url, tag FROM links")),
                sorted(conn.execute("SELECT url, sha256, width, height FROM images")),
            )

    assert tables(tmp_path / "out.db") == tables(tmp_path / "local.db")
