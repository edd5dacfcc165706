"""The audit plugin's sitemaps against real local sites: found, fetched, read, reported."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crawler.config import Config
from crawler.errors import PluginError
from plugins.auditrules import AuditSettings
from tests.conftest import CrawlResult, RunCrawl
from tests.site import Site, SiteFactory, compressed_zeros, encode, sitemap_xml
from tests.test_audit import audit_page
from tests.test_cli import run_cli

MIB = 1024 * 1024


def clean_site(site: Site, *orphans: str) -> None:
    """A home page linking to /a, and pages that nothing links to."""
    site.add_page("/", audit_page("/", links=[("/a", "A page")]))
    site.add_page("/a", audit_page("/a"))
    for path in orphans:
        site.add_page(path, audit_page(path))


async def audit(site: Site, run_crawl: RunCrawl, **overrides: Any) -> CrawlResult:
    settings: dict[str, Any] = {"plugins": ("audit",), "retries": 1}
    settings.update(overrides)
    return await run_crawl([site.url("/")], **settings)


def findings(result: CrawlResult, *rules: str) -> set[tuple[str, str, str | None]]:
    """(rule, url, src_url) of the findings of ``rules`` (all rules when none is named)."""
    rows = result.rows("SELECT rule, url, src_url FROM audit")
    return {(r["rule"], r["url"], r["src_url"]) for r in rows if not rules or r["rule"] in rules}


def details(result: CrawlResult, rule: str) -> list[str]:
    return [row[0] for row in result.rows("SELECT detail FROM audit WHERE rule = ?", rule)]


def listed(result: CrawlResult) -> set[tuple[str, str]]:
    rows = result.rows("SELECT sitemap_url, url FROM audit_sitemap_urls WHERE problem IS NULL")
    return {(row[0], row[1]) for row in rows}


async def test_sitemap_named_in_robots_txt(site: Site, run_crawl: RunCrawl) -> None:
    clean_site(site, "/orphan")
    site.add_robots(f"User-agent: *\nAllow: /\nSitemap: {site.url('/maps/pages.xml')}\n")
    site.add_sitemap("/maps/pages.xml", ["/", "/a", "/orphan"])
    result = await audit(site, run_crawl)
    assert findings(result) == {("orphan_page", site.url("/orphan"), site.url("/maps/pages.xml"))}
    assert site.count("/maps/pages.xml") == 1
    assert site.count("/orphan") == 1
    assert listed(result) == {
        (site.url("/maps/pages.xml"), site.url(path)) for path in ("/", "/a", "/orphan")
    }
    (row,) = result.rows("SELECT * FROM audit_sitemaps WHERE url = ?", site.url("/maps/pages.xml"))
    assert (row["source"], row["found_in"], row["kind"], row["entries"], row["error"]) == (
        "robots",
        site.url("/robots.txt"),
        "urlset",
        3,
        None,
    )
    # The sitemap is an asset of the audit plugin, read after robots.txt, never parsed.
    assert result.page(site.url("/maps/pages.xml"))["content_type"] == "application/xml"
    assert site.paths.index("/robots.txt") < site.paths.index("/maps/pages.xml")
    assert result.rows("SELECT * FROM links WHERE src_url LIKE '%pages.xml'") == []


async def test_orphan_pages_are_crawled_after_the_link_graph_and_audited(
    site: Site, run_crawl: RunCrawl
) -> None:
    clean_site(site)
    site.add_page("/orphan", audit_page("/orphan", h1s=0, links=[("/behind", "behind")]))
    site.add_page("/behind", audit_page("/behind"))
    site.add_sitemap("/sitemap.xml", ["/", "/a", "/orphan"])  # the guess, no robots.txt
    result = await audit(site, run_crawl)
    assert findings(result) == {
        ("orphan_page", site.url("/orphan"), site.url("/sitemap.xml")),
        ("missing_h1", site.url("/orphan"), None),  # audited like any page
    }
    assert site.paths.index("/a") < site.paths.index("/orphan")  # links first
    depths = {url: row["depth"] for url, row in result.pages().items()}
    assert depths[site.url("/orphan")] == 1 and depths[site.url("/behind")] == 2
    assert (
        "audit sitemaps",
        "1 read, 3 URLs listed (1 not reached by links, crawled from the sitemaps)",
    ) in result.stats.plugin_summary


async def test_a_page_linked_through_a_redirect_is_no_orphan(
    site: Site, run_crawl: RunCrawl
) -> None:
    site.add_page("/", audit_page("/", links=[("/old", "Old")]))
    site.add_redirect("/old", "/new")
    site.add_page("/new", audit_page("/new"))
    site.add_sitemap("/sitemap.xml", ["/new"])
    result = await audit(site, run_crawl)
    assert findings(result, "orphan_page", "sitemap_error") == set()


async def test_sitemap_index_with_gzipped_sitemaps(site: Site, run_crawl: RunCrawl) -> None:
    clean_site(site, "/o1", "/o2", "/o3")
    site.add_robots(f"Sitemap: {site.url('/index.xml')}\n")
    site.add_sitemap("/index.xml", ["/s1.xml.gz", "/s2.xml", "/s3.txt"], index=True)
    site.add_sitemap("/s1.xml.gz", ["/o1"], gzipped=True)  # a .gz file, served as such
    site.add_encoded("/s2.xml", sitemap_xml([site.url("/o2")]), "gzip", content_type="text/xml")
    site.add_page("/s3.txt", body=f"{site.url('/o3')}\n".encode(), content_type="text/plain")
    result = await audit(site, run_crawl)
    assert findings(result) == {
        ("orphan_page", site.url(path), site.url(sitemap))
        for path, sitemap in (("/o1", "/s1.xml.gz"), ("/o2", "/s2.xml"), ("/o3", "/s3.txt"))
    }
    kinds = {row[0]: row[1] for row in result.rows("SELECT url, kind FROM audit_sitemaps")}
    assert kinds == {
        site.url("/sitemap.xml"): None,  # the guess: 404, no fault
        site.url("/index.xml"): "sitemapindex",
        site.url("/s1.xml.gz"): "urlset",
        site.url("/s2.xml"): "urlset",
        site.url("/s3.txt"): "text",
    }


async def test_broken_sitemaps_are_sitemap_errors(site: Site, run_crawl: RunCrawl) -> None:
    clean_site(site)
    broken = {
        "/gone.xml": "HTTP 404",
        "/down.xml": "HTTP 500",
        "/malformed.xml": "malformed XML: mismatched tag: line 1",
        "/feed.xml": "not a sitemap: the root element is <rss>",
        "/page.xml": "an HTML page, not a sitemap",
        "/loop.xml": "no answer (redirect loop: ",
        "/laughs.xml": "declares a DTD",
        "/partial.xml": "malformed XML: unclosed token",
    }
    robots = "".join(f"Sitemap: {site.url(path)}\n" for path in broken)
    site.add_robots(robots)
    site.add_status("/down.xml", 500)
    site.add_page("/malformed.xml", body=b"<urlset><url></urlset>", content_type="text/xml")
    site.add_page("/feed.xml", body=b"<rss><channel/></rss>", content_type="application/rss+xml")
    site.add_page("/page.xml", audit_page("/page.xml"))
    site.add_redirect("/loop.xml", "/loop2.xml")
    site.add_redirect("/loop2.xml", "/loop.xml")
    site.add_page(
        "/laughs.xml",
        body=b'<!DOCTYPE u [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><urlset>&b;'
        b"</urlset>",
        content_type="application/xml",
    )
    site.add_page(
        "/partial.xml",
        body=sitemap_xml([site.url("/a")]).encode()[:-12],
        content_type="application/xml",
    )
    result = await audit(site, run_crawl)
    errors = {
        row[0]: row[1]
        for row in result.rows("SELECT url, detail FROM audit WHERE rule = ?", "sitemap_error")
    }
    assert set(errors) == {site.url(path) for path in broken}
    for path, why in broken.items():
        detail = errors[site.url(path)]
        assert detail.startswith(f"sitemap (named in {site.url('/robots.txt')}): {why}"), detail
    assert findings(result, "sitemap_error") == {
        ("sitemap_error", site.url(path), site.url("/robots.txt")) for path in broken
    }
    assert listed(result) == {(site.url("/partial.xml"), site.url("/a"))}  # read up to the fault
    assert site.count("/down.xml") == 1  # retries=1


async def test_guessed_sitemap_answering_not_found_or_html_is_no_fault(
    make_site: SiteFactory, run_crawl: RunCrawl
) -> None:
    missing, html_page = await make_site(), await make_site()
    clean_site(missing)
    clean_site(html_page)
    html_page.add_page("/sitemap.xml", audit_page("/soft-404"))  # a "not found" page with 200
    for site in (missing, html_page):
        result = await audit(site, run_crawl)
        assert site.count("/sitemap.xml") == 1
        assert findings(result) == set()


async def test_sitemap_bombs_are_bounded(site: Site, run_crawl: RunCrawl) -> None:
    clean_site(site)
    bombs = {
        # a .xml.gz file inflating to 1 GiB: inflation stops at max_bytes
        "/bomb.xml.gz": "inflates to more than 2,097,152 bytes (max_bytes)",
        # Content-Encoding: gzip inflating to 1 GiB: the fetcher stops at max_bytes
        "/encoded.xml": "no answer (",
        # a plain body larger than max_bytes
        "/huge.xml": "no answer (",
    }
    site.add_robots("".join(f"Sitemap: {site.url(path)}\n" for path in bombs))
    site.add_page(
        "/bomb.xml.gz", body=compressed_zeros(1024 * MIB, "gzip"), content_type="application/gzip"
    )
    site.add_gzip_bomb("/encoded.xml", 1024 * MIB, content_type="application/xml")
    site.add_big("/huge.xml", 8 * MIB, content_type="application/xml")
    result = await audit(site, run_crawl, max_bytes=2 * MIB)
    errors = {
        row[0]: row[1]
        for row in result.rows("SELECT url, detail FROM audit WHERE rule = ?", "sitemap_error")
    }
    assert set(errors) == {site.url(path) for path in bombs}
    for path, why in bombs.items():
        assert why in errors[site.url(path)], errors[site.url(path)]
    assert result.page(site.url("/encoded.xml"))["error_kind"] == "too_large"
    assert result.stats.elapsed < 30


async def test_listed_urls_that_are_not_pages_of_the_site(
    site: Site, make_site: SiteFactory, run_crawl: RunCrawl
) -> None:
    other = await make_site()
    other.add_page("/page", audit_page("/page"))
    clean_site(site)
    site.add_robots("User-agent: *\nDisallow: /private\n")
    site.add_sitemap(
        "/sitemap.xml",
        ["/a", "/private/page", other.url("/page"), "/relative-but-not-written-in-full", ""],
    )
    result = await audit(site, run_crawl)
    sitemap = site.url("/sitemap.xml")
    assert findings(result) == {
        ("sitemap_error", site.url("/private/page"), sitemap),
        ("sitemap_error", other.url("/page"), sitemap),
        ("sitemap_error", site.url("/relative-but-not-written-in-full"), sitemap),
        ("sitemap_error", "", sitemap),
    }
    assert other.requests == []  # another site: never contacted
    assert site.count("/private/page") == 0


async def test_sitemap_disallowed_by_robots_txt(site: Site, run_crawl: RunCrawl) -> None:
    clean_site(site)
    site.add_robots(f"User-agent: *\nDisallow: /private/\nSitemap: {site.url('/private/s.xml')}\n")
    site.add_sitemap("/private/s.xml", ["/a"])
    result = await audit(site, run_crawl)
    assert site.count("/private/s.xml") == 0
    assert findings(result) == {
        ("sitemap_error", site.url("/private/s.xml"), site.url("/robots.txt"))
    }
    assert "robots.txt disallows this sitemap" in details(result, "sitemap_error")[0]


async def test_sitemap_on_another_host_is_not_fetched_with_scope_host(
    site: Site, make_site: SiteFactory, run_crawl: RunCrawl
) -> None:
    other = await make_site()
    other.add_sitemap("/s.xml", [site.url("/a")])
    clean_site(site)
    site.add_robots(f"Sitemap: {other.url('/s.xml')}\n")
    result = await audit(site, run_crawl)
    assert other.requests == []
    assert findings(result) == set()
    # With --scope any it is read: robots.txt may name a sitemap elsewhere, for this site.
    site.add_page("/b", audit_page("/b"))
    other.add_sitemap("/s.xml", [site.url("/a"), site.url("/b")])
    result = await audit(site, run_crawl, scope="any")
    assert other.count("/s.xml") == 1
    assert findings(result) == {("orphan_page", site.url("/b"), other.url("/s.xml"))}


async def test_sitemaps_setting(site: Site, run_crawl: RunCrawl) -> None:
    clean_site(site, "/orphan")
    site.add_robots(f"Sitemap: {site.url('/robots-map.xml')}\n")
    site.add_sitemap("/robots-map.xml", ["/orphan"])
    site.add_sitemap("/sitemap.xml", ["/orphan"])
    site.add_sitemap("/custom.xml", ["/orphan"])
    off = await audit(site, run_crawl, plugin_settings={"audit": {"sitemaps": []}})
    assert findings(off) == set()
    assert site.count("/sitemap.xml") == site.count("/robots-map.xml") == 0
    assert site.count("/orphan") == 0
    custom = await audit(
        site, run_crawl, plugin_settings={"audit": {"sitemaps": [site.url("/custom.xml")]}}
    )
    assert findings(custom) == {("orphan_page", site.url("/orphan"), site.url("/custom.xml"))}
    assert site.count("/sitemap.xml") == site.count("/robots-map.xml") == 0
    assert site.count("/custom.xml") == 1


async def test_no_sitemap_is_requested_without_the_audit_plugin(
    site: Site, run_crawl: RunCrawl
) -> None:
    clean_site(site, "/orphan")
    site.add_robots(f"Sitemap: {site.url('/robots-map.xml')}\n")
    site.add_sitemap("/robots-map.xml", ["/orphan"])
    site.add_sitemap("/sitemap.xml", ["/orphan"])
    await run_crawl([site.url("/")], plugins=("images",))
    assert site.paths == ["/robots.txt", "/", "/a"]


async def test_images_and_audit_keep_their_own_assets(site: Site, run_crawl: RunCrawl) -> None:
    """Sitemaps are no images, images are no sitemaps, whichever plugin asked first."""
    site.add_page("/", audit_page("/", body='<img src="/logo.png" alt="logo">'))
    site.add_page("/logo.png", body=b"\x89PNG\r\n\x1a\n" + bytes(100), content_type="image/png")
    site.add_sitemap("/sitemap.xml", ["/"])
    site.add_robots(f"Sitemap: {site.url('/sitemap.xml')}\nSitemap: {site.url('/logo.png')}\n")
    for plugins in (("images", "audit"), ("audit", "images")):
        result = await audit(site, run_crawl, plugins=plugins)
        images = [row[0] for row in result.rows("SELECT url FROM images")]
        assert images == [site.url("/logo.png")]
        sitemaps = {row[0]: row[1] for row in result.rows("SELECT url, kind FROM audit_sitemaps")}
        assert sitemaps == {site.url("/sitemap.xml"): "urlset", site.url("/logo.png"): None}
        # robots.txt names the image as a sitemap: fetched once, an image all the same, and
        # no sitemap
        assert findings(result) == {
            ("sitemap_error", site.url("/logo.png"), site.url("/robots.txt"))
        }
        assert "not a sitemap" in details(result, "sitemap_error")[0]
    assert site.count("/sitemap.xml") == 2 and site.count("/logo.png") == 2  # once per crawl


async def test_listed_pages_respect_max_depth(site: Site, run_crawl: RunCrawl) -> None:
    clean_site(site, "/orphan")
    site.add_sitemap("/sitemap.xml", ["/orphan"])
    result = await audit(site, run_crawl, max_depth=0)
    assert site.count("/orphan") == 0
    assert findings(result) == set()


async def test_resume_reads_the_sitemaps_once(site: Site, tmp_path: Path) -> None:
    """A crawl stopped by --max-pages and resumed: the sitemap is read once, its orphan
    crawled once, and the whole-crawl rules see both runs."""
    clean_site(site, "/orphan")
    site.add_sitemap("/sitemap.xml", ["/", "/a", "/orphan"])
    (tmp_path / "seed.txt").write_text(site.url("/") + "\n")
    args = ("seed.txt", "--plugin", "audit", "--quiet", "--retries", "1")
    first = await run_cli(tmp_path, *args, "--max-pages", "2")
    assert first.code == 0, first.stderr
    second = await run_cli(tmp_path, *args, "--resume")
    assert second.code == 0, second.stderr
    assert site.count("/sitemap.xml") == 1 and site.count("/orphan") == 1
    with sqlite3.connect(tmp_path / "crawl.db") as db:
        rows = db.execute("SELECT rule, url FROM audit").fetchall()
    db.close()
    assert rows == [("orphan_page", site.url("/orphan"))]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("auto", "sitemaps must be a list of \"auto\" and sitemap URLs, got 'auto'"),
        (["auto", 3], "sitemaps must be a list of \"auto\" and sitemap URLs, got ['auto', 3]"),
        (["/sitemap.xml"], "sitemaps: '/sitemap.xml' is neither \"auto\" nor an absolute"),
        (["ftp://x.test/s.xml"], "sitemaps: 'ftp://x.test/s.xml' is neither"),
    ],
)
def test_bad_sitemaps_settings_are_refused(value: object, message: str) -> None:
    with pytest.raises(PluginError) as caught:
        AuditSettings.from_table({"sitemaps": value}, Config())
    assert str(caught.value).startswith(f"[audit] {message}")


def test_sitemaps_setting_is_normalized() -> None:
    settings = AuditSettings.from_table(
        {"sitemaps": ["auto", "HTTPS://Example.com/s.xml#x", "https://example.com/s.xml", "auto"]},
        Config(),
    )
    assert settings.sitemaps == ("auto", "https://example.com/s.xml")
    assert AuditSettings.from_table({"sitemaps": []}, Config()).sitemaps == ()


def test_sitemap_helper_serves_what_the_reader_reads() -> None:
    body = sitemap_xml(["https://example.com/a&b"]).encode()
    assert b"<loc>https://example.com/a&amp;b</loc>" in body
    assert encode(body, "gzip")[:2] == b"\x1f\x8b"
