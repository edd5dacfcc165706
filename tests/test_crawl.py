"""End-to-end crawls against real local sites: what is fetched, and what lands in the database."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiohttp import web

import crawler.frontier as frontier_module
from tests.conftest import RunCrawl
from tests.site import Reply, Site, SiteFactory, page_html, unused_port


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


async def test_crawls_a_small_site_into_the_database(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/a", "/b", "http://example.invalid/x"], title="Home")
    site.add_page("/a", links=["/", "/b"], title="A")
    site.add_page("/b", links=["/c"], title="B")
    site.add_page("/c", title="C")
    result = await run_crawl([site.url()])
    pages = result.pages()
    assert set(pages) == {site.url(p) for p in ("/", "/a", "/b", "/c")}
    assert pages[site.url("/")]["title"] == "Home"
    assert pages[site.url("/c")]["depth"] == 2
    assert pages[site.url("/a")]["status"] == 200
    assert pages[site.url("/a")]["final_url"] == site.url("/a")
    assert pages[site.url("/a")]["content_type"] == "text/html"
    assert len(pages[site.url("/a")]["content_hash"]) == 64
    for path in ("/", "/a", "/b", "/c", "/robots.txt"):
        assert site.count(path) == 1, path
    assert site.paths[0] == "/robots.txt"
    assert (site.url("/"), "http://example.invalid/x", "a", 0) in result.links(site.url("/"))
    assert result.stats.pages == 4


def add_calendar(site: Site) -> None:
    """An endless calendar: /cal?n=N links to /cal?n=N+1 (and back to N-1)."""

    async def calendar(request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("n", "0"))
        html = page_html(f"day {n}", [f"/cal?n={n + 1}", f"/cal?n={max(0, n - 1)}"])
        return web.Response(text=html, content_type="text/html")

    site.add_handler("/cal", calendar)


async def test_normalization_variants_are_one_url(site: Site, run_crawl: RunCrawl) -> None:
    port = site.port
    site.add_page(
        "/",
        "<html><body>"
        f'<a href="/a#top">1</a> <a href="HTTP://127.0.0.1:{port}/a">2</a>'
        '<a href="./x/../a">3</a> <a href="  /a  ">4</a>'
        '<a href="/q?x=1&amp;y=2">5</a> <a href="/q?x=1&y=2#f">6</a>'
        '<a href="//127.0.0.1:%d/a">7</a> <a href="/b//c">8</a> <a href="/B">9</a>'
        '<a href="mailto:me@example.com">m</a> <a href="javascript:void(0)">j</a>'
        "</body></html>" % port,
    )
    site.add_page("/a", title="A")
    site.add_page("/q", title="Q")
    site.add_page("/b//c", title="double slash kept")
    site.add_page("/B", title="case kept")
    result = await run_crawl([site.url()])
    assert site.count("/a") == 1
    assert site.count("/q?x=1&y=2") == 1
    assert site.count("/b//c") == 1
    assert site.count("/B") == 1
    assert set(result.pages()) == {
        site.url("/"),
        site.url("/a"),
        site.url("/q?x=1&y=2"),
        site.url("/b//c"),
        site.url("/B"),
    }
    dsts = {dst for _, dst, _, _ in result.links(site.url("/"))}
    assert not any(d.startswith(("mailto:", "javascript:")) for d in dsts)


async def test_host_scope_never_contacts_other_hosts(
    site: Site, make_site: SiteFactory, run_crawl: RunCrawl
) -> None:
    other = await make_site()
    other.add_page("/", title="other")
    site.add_page("/", links=[other.url("/"), "/a"])
    site.add_page("/a")
    result = await run_crawl([site.url()], scope="host")
    assert other.requests == []
    assert (site.url("/"), other.url("/"), "a", 0) in result.links()
    assert site.url("/a") in result.pages()


async def test_domain_and_any_scope_follow_other_hosts(
    site: Site, make_site: SiteFactory, run_crawl: RunCrawl
) -> None:
    other = await make_site()  # same registrable "domain" (127.0.0.1), another port
    other.add_page("/", title="other")
    site.add_page("/", links=[other.url("/")])
    for scope in ("domain", "any"):
        result = await run_crawl([site.url()], scope=scope)
        assert result.page(other.url("/"))["title"] == "other"
    assert other.count("/robots.txt") == 2  # once per crawl


async def test_max_depth_on_an_endless_calendar(site: Site, run_crawl: RunCrawl) -> None:
    add_calendar(site)
    result = await run_crawl([site.url("/cal?n=0")], max_depth=3)
    assert sorted(r["depth"] for r in result.pages().values()) == [0, 1, 2, 3]
    assert site.count("/cal?n=4") == 0
    assert (site.url("/cal?n=3"), site.url("/cal?n=4"), "a", 0) in result.links()


async def test_max_pages_stops_handing_out_work(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=[f"/{i}" for i in range(3000)])
    result = await run_crawl([site.url()], max_pages=5, per_host=2)
    assert len(result.pages()) == 5
    assert result.stats.over_budget <= 2  # not one dispatch per queued URL
    queued = result.rows("SELECT count(*) FROM frontier WHERE state = 0")[0][0]
    assert queued == 3001 - 5  # kept for a --resume with a higher limit


async def test_max_pages_caps_rows_and_requests(site: Site, run_crawl: RunCrawl) -> None:
    add_calendar(site)
    result = await run_crawl([site.url("/cal?n=0")], max_pages=5)
    assert len(result.pages()) == 5
    assert site.count("/cal") == 5
    assert site.count("/robots.txt") == 1


async def test_robots_rules_for_our_group(site: Site, run_crawl: RunCrawl) -> None:
    site.add_robots(
        "User-agent: otherbot\nDisallow: /\n\n"
        "User-agent: crawler\nDisallow: /private\nAllow: /private/ok\n\n"
        "User-agent: *\nDisallow: /public\n"
    )
    site.add_page("/", links=["/private/x", "/privateer", "/private/ok", "/public"])
    for path in ("/private/x", "/privateer", "/private/ok", "/public"):
        site.add_page(path)
    result = await run_crawl([site.url()])
    assert site.count("/private/x") == 0
    assert site.count("/privateer") == 0  # a prefix rule
    assert site.count("/private/ok") == 1  # Allow wins (longer match)
    assert site.count("/public") == 1  # the * group is not ours
    assert site.count("/robots.txt") == 1
    assert result.stats.robots_blocked == 2
    robots = result.rows("SELECT * FROM robots")
    assert robots[0]["status"] == 200 and robots[0]["verdict"] == "rules"


async def test_robots_star_group_and_missing_robots(
    site: Site, make_site: SiteFactory, run_crawl: RunCrawl
) -> None:
    site.add_robots("User-agent: *\nDisallow: /no\n")
    site.add_page("/", links=["/no", "/yes"])
    site.add_page("/no")
    site.add_page("/yes")
    await run_crawl([site.url()])
    assert site.count("/no") == 0 and site.count("/yes") == 1
    bare = await make_site()  # no robots.txt: 404 means allow all
    bare.add_page("/", links=["/no"])
    bare.add_page("/no")
    await run_crawl([bare.url()])
    assert bare.count("/no") == 1


async def test_robots_server_error_disallows_the_host(site: Site, run_crawl: RunCrawl) -> None:
    site.add_status("/robots.txt", 500)
    site.add_page("/")
    result = await run_crawl([site.url()])
    assert site.count("/") == 0
    assert result.rows("SELECT verdict FROM robots")[0]["verdict"] == "disallow all"


async def test_crawl_delay_is_obeyed(site: Site, run_crawl: RunCrawl) -> None:
    site.add_robots("User-agent: *\nCrawl-delay: 0.3\n")
    site.add_page("/", links=["/1", "/2", "/3"])
    for i in (1, 2, 3):
        site.add_page(f"/{i}")
    await run_crawl([site.url()], per_host=4)
    gaps = site.gaps()
    assert len(gaps) == 4
    assert min(gaps) >= 0.28, gaps


async def test_delay_option_spaces_requests(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/1", "/2"])
    site.add_page("/1")
    site.add_page("/2")
    await run_crawl([site.url()], per_host=4, delay=0.25, respect_robots=False)
    assert site.count("/robots.txt") == 0
    assert min(site.gaps()) >= 0.23, site.gaps()


async def test_per_host_limit_measured_at_the_server(site: Site, run_crawl: RunCrawl) -> None:
    paths = [f"/slow{i}" for i in range(8)]
    site.add_page("/", links=paths)
    for path in paths:
        site.add_slow(path, 0.2)
    await run_crawl([site.url()], per_host=2, concurrency=10)
    assert site.max_in_flight == 2


async def test_global_concurrency_measured_across_hosts(
    make_site: SiteFactory, run_crawl: RunCrawl
) -> None:
    in_flight = {"now": 0, "max": 0}

    async def slow(request: web.Request) -> web.StreamResponse:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        try:
            await asyncio.sleep(0.15)
            return web.Response(text="<title>x</title>", content_type="text/html")
        finally:
            in_flight["now"] -= 1

    sites = [await make_site() for _ in range(4)]
    seeds = []
    for s in sites:
        s.add_page("/", links=[f"/p{i}" for i in range(4)])
        for i in range(4):
            s.add_handler(f"/p{i}", slow)
        seeds.append(s.url())
    result = await run_crawl(seeds, concurrency=3, per_host=3)
    assert in_flight["max"] == 3
    assert len(result.pages()) == 20


async def test_slow_host_does_not_stall_the_others(
    site: Site, make_site: SiteFactory, run_crawl: RunCrawl
) -> None:
    slow = await make_site()
    slow.add_robots("User-agent: *\nCrawl-delay: 1\n")
    slow.add_page("/", links=["/1", "/2"])
    slow.add_page("/1")
    slow.add_page("/2")
    site.add_page("/", links=[f"/{i}" for i in range(20)])
    for i in range(20):
        site.add_page(f"/{i}")
    await run_crawl([slow.url(), site.url()], concurrency=2, per_host=2)
    fast_done = max(site.starts())
    assert fast_done < slow.starts()[-1] - 0.5  # the fast host finished long before


async def test_redirect_chain_each_hop_recorded(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/r1"])
    site.add_redirect("/r1", "/r2", 301)
    site.add_redirect("/r2", "/r3", 302)
    site.add_redirect("/r3", "/r4", 307)
    site.add_redirect("/r4", "/end", 308)
    site.add_page("/end", title="End")
    result = await run_crawl([site.url()])
    hops = result.rows("SELECT url, hop, status, location FROM redirects ORDER BY hop")
    assert [tuple(h) for h in hops] == [
        (site.url("/r1"), 1, 301, site.url("/r2")),
        (site.url("/r1"), 2, 302, site.url("/r3")),
        (site.url("/r1"), 3, 307, site.url("/r4")),
        (site.url("/r1"), 4, 308, site.url("/end")),
    ]
    start = result.page(site.url("/r1"))
    assert start["status"] == 301 and start["final_url"] == site.url("/end")
    assert start["error"] is None
    assert result.page(site.url("/end"))["title"] == "End"
    for path in ("/r1", "/r2", "/r3", "/r4", "/end"):
        assert site.count(path) == 1


async def test_redirect_loop_is_an_error_row(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/x"])
    site.add_redirect("/x", "/y")
    site.add_redirect("/y", "/x")
    result = await run_crawl([site.url()])
    row = result.page(site.url("/x"))
    assert row["status"] is None and "redirect loop" in row["error"]
    assert site.count("/x") == 1 and site.count("/y") == 1


async def test_too_many_redirects_is_an_error_row(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/hop0"])
    for i in range(12):
        site.add_redirect(f"/hop{i}", f"/hop{i + 1}")
    site.add_page("/hop12")
    result = await run_crawl([site.url()], max_redirects=3)
    row = result.page(site.url("/hop0"))
    assert row["status"] is None and "too many redirects" in row["error"]
    assert site.count("/hop4") == 0
    assert len(result.rows("SELECT * FROM redirects WHERE url = ?", site.url("/hop0"))) == 4


async def test_off_host_redirect_recorded_not_followed(
    site: Site, make_site: SiteFactory, run_crawl: RunCrawl
) -> None:
    other = await make_site()
    other.add_page("/landing")
    site.add_page("/", links=["/out"])
    site.add_redirect("/out", other.url("/landing"), 302)
    result = await run_crawl([site.url()])
    assert other.requests == []
    row = result.page(site.url("/out"))
    assert row["status"] == 302 and row["final_url"] == other.url("/landing")
    assert result.rows("SELECT location FROM redirects")[0]["location"] == other.url("/landing")


async def test_redirect_to_a_seen_page_does_not_refetch(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/a", "/old"])
    site.add_page("/a", title="A")
    site.add_redirect("/old", "/a")
    result = await run_crawl([site.url()], per_host=1)
    assert site.count("/a") == 1
    assert result.page(site.url("/old"))["final_url"] == site.url("/a")


async def test_retry_after_then_success(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/flaky"])
    site.add_sequence(
        "/flaky", [Reply(503, "busy", {"Retry-After": "1"}), Reply(200, page_html("ok"))]
    )
    result = await run_crawl([site.url()])
    row = result.page(site.url("/flaky"))
    assert row["status"] == 200 and row["attempts"] == 2 and row["title"] == "ok"
    assert site.gaps("/flaky")[0] >= 0.95


async def test_server_errors_retried_up_to_the_limit(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/down", "/missing", "/gone"])
    site.add_status("/down", 500)
    site.add_status("/gone", 410)
    result = await run_crawl([site.url()], retries=3)
    assert site.count("/down") == 3
    assert result.page(site.url("/down"))["status"] == 500
    assert site.count("/missing") == 1  # 404 is never retried
    assert result.page(site.url("/missing"))["status"] == 404
    assert site.count("/gone") == 1


async def test_429_slows_the_host_down(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/busy", "/a", "/b"])
    site.add_sequence("/busy", [Reply(429, "", {"Retry-After": "1"}), Reply(200, page_html("x"))])
    site.add_page("/a")
    site.add_page("/b")
    await run_crawl([site.url()], per_host=1)
    first_429 = site.starts("/busy")[0]
    later = [t for t in site.starts() if t > first_429]
    assert later and min(later) - first_429 >= 0.95  # the whole host waited


async def test_hostile_servers_become_error_rows(site: Site, run_crawl: RunCrawl) -> None:
    hostile = ["/trickle", "/hang", "/big", "/bigchunked", "/bomb", "/reset", "/early"]
    site.add_page("/", links=[*hostile, "/fine"])
    site.add_trickle("/trickle", bytes_per_second=10, total=10_000)
    site.add_hang("/hang")
    site.add_big("/big", 100 * 1024 * 1024)
    site.add_big("/bigchunked", 100 * 1024 * 1024, chunked=True)
    site.add_gzip_bomb("/bomb", 1024 * 1024 * 1024)
    site.add_reset("/reset", 5000, declared=100_000)
    site.add_early_close("/early", declared=10_000, sent=5_000)
    site.add_page("/fine", title="fine")
    result = await run_crawl([site.url()], timeout=1.0, retries=1)
    kinds = {path: result.page(site.url(path))["error_kind"] for path in hostile}
    assert kinds == {
        "/trickle": "timeout",
        "/hang": "timeout",
        "/big": "too_large",
        "/bigchunked": "too_large",
        "/bomb": "too_large",
        "/reset": "connection",
        "/early": "connection",
    }
    for path in hostile:
        assert result.page(site.url(path))["status"] is None
    assert result.page(site.url("/fine"))["title"] == "fine"
    assert peak_rss_mb() < 300


async def test_connection_refused_is_an_error_row(run_crawl: RunCrawl) -> None:
    url = f"http://127.0.0.1:{unused_port()}/"
    result = await run_crawl([url], retries=2, respect_robots=False)
    row = result.page(url)
    assert row["status"] is None and row["error_kind"] == "connection"
    assert row["attempts"] == 2


async def test_links_in_comments_scripts_styles_are_not_links(
    site: Site, run_crawl: RunCrawl
) -> None:
    site.add_page(
        "/",
        "<html><head><style>a{background:url(/style.png)} /* <a href='/in-style'> */</style>"
        "<script>var s = '<a href=\"/in-script\">x</a>';</script></head>"
        "<body><!-- <a href='/in-comment'>c</a> --><a href='/real'>r</a></body></html>",
    )
    site.add_page("/real")
    result = await run_crawl([site.url()])
    assert [p for p in site.paths if p.startswith("/in")] == []
    dsts = {dst for _, dst, _, _ in result.links()}
    assert dsts == {site.url("/real")}


async def test_meta_robots_and_rel_nofollow(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page(
        "/",
        "<html><body><a href='/nf' rel='nofollow'>n</a><a href='/ni'>i</a>"
        "<a href='/mnf'>m</a></body></html>",
    )
    site.add_page("/nf")
    site.add_page(
        "/ni",
        "<html><head><meta name='robots' content='noindex'></head>"
        "<body><a href='/from-noindex'>x</a></body></html>",
    )
    site.add_page("/from-noindex")
    site.add_page(
        "/mnf",
        "<html><head><meta name='robots' content='nofollow'></head>"
        "<body><a href='/from-nofollow'>x</a></body></html>",
    )
    result = await run_crawl([site.url()])
    assert site.count("/nf") == 0
    assert (site.url("/"), site.url("/nf"), "a", 1) in result.links()
    assert result.page(site.url("/ni"))["noindex"] == 1
    assert result.page(site.url("/"))["noindex"] == 0
    assert site.count("/from-noindex") == 1
    assert site.count("/from-nofollow") == 0
    assert (site.url("/mnf"), site.url("/from-nofollow"), "a", 1) in result.links()


async def test_non_html_is_recorded_not_parsed(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/doc.pdf", "/data.json"])
    site.add_page("/doc.pdf", body=b"%PDF-1.4 <a href='/from-pdf'>", content_type="application/pdf")
    site.add_page(
        "/data.json", body=b'{"a": "<a href=/from-json>"}', content_type="application/json"
    )
    result = await run_crawl([site.url()])
    pdf = result.page(site.url("/doc.pdf"))
    assert pdf["content_type"] == "application/pdf" and pdf["bytes"] == 29
    assert pdf["title"] is None
    assert site.count("/from-pdf") == 0 and site.count("/from-json") == 0
    assert result.links(site.url("/doc.pdf")) == []


async def test_malformed_html_and_charsets(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page(
        "/",
        body=b"<html><title>broken</title><body><a href='/ok'>ok<a href=/also><div></span>\x00\xff",
        content_type="text/html",
    )
    site.add_page("/ok", links=["/cp1251"])
    site.add_page(
        "/also",
        body="<html><head><meta charset='windows-1251'><title>Привет</title></head></html>".encode(
            "cp1251"
        ),
        content_type="text/html",
    )
    site.add_page(
        "/cp1251",
        body="<title>Ünïcödé</title>".encode("latin-1"),
        content_type="text/html; charset=iso-8859-1",
    )
    result = await run_crawl([site.url()])
    assert result.page(site.url("/"))["title"] == "broken"
    assert result.page(site.url("/also"))["title"] == "Привет"
    assert result.page(site.url("/cp1251"))["title"] == "Ünïcödé"


async def test_parsing_in_worker_processes(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=[f"/{i}" for i in range(30)], title="root")
    for i in range(30):
        site.add_page(f"/{i}", links=[f"/{(i + 1) % 30}"], title=f"page {i}")
    result = await run_crawl([site.url()], workers=2)
    pages = result.pages()
    assert len(pages) == 31
    assert pages[site.url("/7")]["title"] == "page 7"
    assert len(result.links()) == 60


async def test_queue_spills_to_disk_and_comes_back(
    site: Site, make_site: SiteFactory, run_crawl: RunCrawl, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await make_site()
    for s in (site, other):
        s.add_page("/", links=[f"/s{i}" for i in range(40)] + [other.url("/")])
        for i in range(40):
            s.add_page(f"/s{i}", links=[f"/s{i}/{j}" for j in range(5)])
            for j in range(5):
                s.add_page(f"/s{i}/{j}", links=["/", f"/s{(i + 1) % 40}"])
    expected = await run_crawl([site.url()], scope="any")
    site.requests.clear()
    other.requests.clear()
    monkeypatch.setattr(frontier_module, "HOST_MEMORY_QUEUE", 3)
    monkeypatch.setattr(frontier_module, "MEMORY_QUEUE", 5)
    spilled = await run_crawl([site.url()], scope="any")
    assert len(expected.pages()) == 2 * 241
    assert set(spilled.pages()) == set(expected.pages())
    assert expected.stats.spilled_urls == 0 and spilled.stats.spilled_urls > 300
    assert spilled.rows("SELECT count(*) FROM frontier WHERE state = 0")[0][0] == 0
    for s in (site, other):
        assert all(n == 1 for n in Counter(s.paths).values())


@pytest.mark.parametrize("seen_in_memory", [7, 1_000_000])
async def test_seen_set_beyond_memory_is_the_frontier_table(
    site: Site, run_crawl: RunCrawl, monkeypatch: pytest.MonkeyPatch, seen_in_memory: int
) -> None:
    """With room for only 7 fingerprints in RAM, SQLite dedupes: same pages, each fetched once."""
    site.add_page("/", links=[f"/s{i}" for i in range(30)] + ["/r0", "/r0", "/"])
    for i in range(30):
        site.add_page(f"/s{i}", links=["/", f"/s{(i + 7) % 30}", f"/r{i % 5}", f"/t{i}"])
        site.add_page(f"/t{i}", links=[f"/s{(i * 11) % 30}", "/end"])
    for i in range(5):
        site.add_redirect(f"/r{i}", f"/r{i + 1}" if i < 4 else "/end")
    site.add_page("/end", links=["/", "/r2"])
    monkeypatch.setattr(frontier_module, "SEEN_IN_MEMORY", seen_in_memory)
    result = await run_crawl([site.url()], per_host=3)
    pages = result.pages()
    assert len(pages) == 1 + 30 + 30 + 5 + 1
    counts = Counter(site.paths)
    assert all(n == 1 for n in counts.values()), [p for p, n in counts.items() if n > 1]
    assert result.rows("SELECT count(*) FROM frontier WHERE state != 1")[0][0] == 0
    if seen_in_memory == 7:
        assert result.stats.spilled_urls > 30  # the table, not RAM, told new from seen
