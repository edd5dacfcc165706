"""The audit plugin against a real local site: one page designed for each rule, clean pages
beside them, and every finding checked to hit exactly its designed pages."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import os
import random
import sqlite3
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

from crawler.__main__ import main
from crawler.config import Config
from crawler.errors import PluginError
from crawler.parse import parse_page
from crawler.storage import PageRow
from plugins.audit import page_findings
from plugins.auditrules import RULES, AuditSettings
from plugins.audittext import hamming, simhash, text_facts
from tests.conftest import CrawlResult, RunCrawl
from tests.site import Site
from tests.test_cli import run_cli
from tests.test_config import uncommented_repo_config

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "da", "zu", "gri", "bo")


def words(seed: str, count: int) -> list[str]:
    """``count`` made-up words, different for every seed."""
    rng = random.Random(seed)
    return ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(count)]


def audit_page(
    name: str,
    *,
    title: str | None = "",
    description: str | None = "",
    h1s: int = 1,
    text: Sequence[str] | None = None,
    links: Sequence[tuple[str, str]] = (),
    head: str = "",
    body: str = "",
) -> str:
    """A page no rule objects to, unless an argument says otherwise. ``""`` means a good
    default (title and description unique to ``name``), ``None`` leaves the element out."""
    if title == "":
        title = f"{name.strip('/').replace('/', ' ') or 'home'}: a page about many things here"
    if description == "":
        description = f"What the {name} page is about, in one sentence."
    parts = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">']
    if title is not None:
        parts.append(f"<title>{html.escape(title)}</title>")
    if description is not None:
        parts.append(f'<meta name="description" content="{html.escape(description)}">')
    parts.append(head + "</head><body>")
    parts += [f"<h1>Heading {i} of {html.escape(name)}</h1>" for i in range(h1s)]
    body_words = words(name, 240) if text is None else text
    parts.append(f"<p>{' '.join(body_words)}</p>")
    parts += [f'<a href="{html.escape(href)}">{html.escape(anchor)}</a>' for href, anchor in links]
    parts.append(body + "</body></html>")
    return "\n".join(parts)


def png(size: tuple[int, int], seed: int) -> bytes:
    """A PNG of noise: it does not compress, so its size follows its dimensions."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


NEAR_TEXT = words("near", 300)
SETTINGS = {"slow_response_seconds": 0.4, "max_depth": 3, "large_image_bytes": 300_000}


def build_audit_site(site: Site) -> dict[tuple[str, str], set[tuple[str | None, str | None]]]:
    """The audit site. Returns the expected findings: (rule, url) -> {(src_url, anchor)}."""
    u = site.url
    designed: list[str] = []

    def page(path: str, **kwargs: Any) -> None:
        site.add_page(path, audit_page(path, **kwargs))
        designed.append(path)

    site.add_robots(f"User-agent: *\nDisallow: /secret\nSitemap: {u('/sitemap-index.xml')}\n")
    # clean pages, and clean things that look a bit like faults
    page(
        "/clean-a",
        body='<h2 id="exists">A section</h2>',
        head=f'<link rel="canonical" href="{u("/clean-a")}">',
    )
    page("/clean-b", links=[("#", "top"), ("#top", "top")])
    site.add_page("/doc.pdf", body=b"%PDF-1.4\n" + bytes(400_000), content_type="application/pdf")
    site.add_page("/small.png", body=png((20, 20), 1), content_type="image/png")
    site.add_page("/big.png", body=png((400, 300), 2), content_type="image/png")
    # per-page faults
    page("/no-title", title=None)
    page("/empty-title", title="  ")
    page("/long-title", title="A title that goes on and on, " * 3)
    page("/short-title", title="Short")
    page("/no-description", description=None)
    page("/no-h1", h1s=0)
    page("/two-h1", h1s=2)
    alternate = '<link rel="alternate" hreflang="{}" href="{}">'.format
    page(
        "/hreflang-en",
        head=alternate("en", "/hreflang-en")
        + alternate("de", "/hreflang-de")
        + alternate("it", "/hreflang-it")  # /hreflang-it does not link back
        + alternate("english", "/hreflang-de"),  # not a language code
    )
    page("/hreflang-de", head=alternate("de", "/hreflang-de") + alternate("en", "/hreflang-en"))
    page("/hreflang-it")
    page(
        "/no-alt",
        body='<img src="/small.png"><img src="/small.png" alt=""><img src="/big.png" alt="big">',
    )
    page("/thin", text=words("thin", 30))
    page("/noindex", head='<meta name="robots" content="noindex">')
    site.add_slow("/slow", 0.6, audit_page("/slow"))
    designed.append("/slow")
    page("/d1", links=[("/d2", "deeper")])
    page("/d2", links=[("/d3", "deeper")])
    page("/d3", links=[("/d4", "deeper")])
    page("/d4")
    # duplicates
    page("/same-title-1", title="The same title on two different pages")
    page("/same-title-2", title="The same title on two different pages")
    page("/same-description-1", description="One description for two pages.")
    page("/same-description-2", description="One description for two pages.")
    copy = audit_page("/copy")
    site.add_page("/copy-1", copy)
    site.add_page("/copy-2", copy)
    designed += ["/copy-1", "/copy-2"]
    near = list(NEAR_TEXT)
    near[150] = "different"
    page("/near-1", text=NEAR_TEXT)
    page("/near-2", text=near)
    # canonicals
    page("/canonical-other", head=f'<link rel="canonical" href="{u("/clean-b")}">')
    page("/canonical-broken", head=f'<link rel="canonical" href="{u("/missing")}">')
    # images
    page(
        "/images",
        body='<img src="/small.png" alt="small"><img src="/big.png" alt="big">'
        '<img src="/no-such.png" alt="gone">',
    )
    # link targets
    site.add_status("/missing", 404)
    site.add_status("/server-error", 500)
    site.add_status("/private", 403)
    site.add_redirect("/old", "/clean-a")
    site.add_redirect("/chain-1", "/chain-2")
    site.add_redirect("/chain-2", "/clean-b")
    site.add_redirect("/loop-1", "/loop-2")
    site.add_redirect("/loop-2", "/loop-1")
    site.add_redirect("/moved-away", "/missing-too")
    site.add_status("/missing-too", 410)
    page(
        "/links",
        links=[
            ("/missing", "Missing page"),
            ("/server-error", "Server error"),
            ("/private", "Private area"),
            ("/secret/plans", "Secret plans"),
            ("/old", "Old address"),
            ("/chain-1", "Chained"),
            ("/loop-1", "Loop"),
            ("/moved-away", "Moved away"),
            ("/clean-a#exists", "Existing section"),
            ("/clean-a#nowhere", "Missing section"),
            ("/doc.pdf", "The PDF"),
        ],
    )
    page("/more-links", links=[("/missing", "Missing again")])
    # an http page may load http resources: no mixed_content
    page(
        "/http-resources",
        head='<link rel="stylesheet" href="http://cdn.test/style.css">',
        body='<script src="http://cdn.test/app.js"></script>',
    )
    # sitemaps: robots.txt names an index of two sitemaps, one of them gone (there is no
    # /sitemap.xml, the guess, and that is no fault); the other lists pages of every kind
    site.add_sitemap("/sitemap-index.xml", ["/sitemap-pages.xml", "/sitemap-gone.xml"], index=True)
    site.add_status("/sitemap-gone.xml", 404)
    site.add_sitemap(
        "/sitemap-pages.xml",
        [
            "/",
            "/clean-a",
            "/orphan",  # linked from nowhere: crawled through the sitemap, and audited
            "/missing",  # 404
            "/old",  # redirects
            "/secret/listed",  # robots.txt disallows it
            "http://elsewhere.test/page",  # another site
        ],
        gzipped=True,
    )
    page("/orphan", title="Orphan")
    page(
        "/",
        links=[
            (path, path)
            for path in designed
            if path != "/" and not path.startswith(("/d2", "/d3", "/d4", "/orphan"))
        ],
    )

    def at(
        rule: str, path: str, *sources: tuple[str, str | None]
    ) -> tuple[tuple[str, str], set[tuple[str | None, str | None]]]:
        return (rule, u(path)), {(u(src), anchor) for src, anchor in sources} or {(None, None)}

    links = "/links"
    pages_map = ("/sitemap-pages.xml", None)
    return dict(
        [
            at("sitemap_error", "/sitemap-gone.xml", ("/sitemap-index.xml", None)),
            at("sitemap_error", "/missing", pages_map),
            at("sitemap_error", "/old", pages_map),
            at("sitemap_error", "/secret/listed", pages_map),
            (("sitemap_error", "http://elsewhere.test/page"), {(u("/sitemap-pages.xml"), None)}),
            at("orphan_page", "/orphan", pages_map),
            at("title_too_short", "/orphan"),
            at("missing_title", "/no-title"),
            at("missing_title", "/empty-title"),
            at("title_too_long", "/long-title"),
            at("title_too_short", "/short-title"),
            at("missing_meta_description", "/no-description"),
            at("missing_h1", "/no-h1"),
            at("missing_alt", "/small.png", ("/no-alt", None)),
            at("hreflang_error", "/hreflang-de", ("/hreflang-en", None)),
            at("hreflang_error", "/hreflang-it", ("/hreflang-en", None)),
            at("multiple_h1", "/two-h1"),
            at("thin_content", "/thin"),
            at("noindex", "/noindex"),
            at("slow_response", "/slow"),
            at("deep_page", "/d4"),
            at("large_image", "/big.png"),
            at("duplicate_title", "/same-title-1"),
            at("duplicate_title", "/same-title-2"),
            at("duplicate_meta_description", "/same-description-1"),
            at("duplicate_meta_description", "/same-description-2"),
            at("duplicate_content", "/copy-1"),
            at("duplicate_content", "/copy-2"),
            # Identical pages share their title and description too.
            at("duplicate_title", "/copy-1"),
            at("duplicate_title", "/copy-2"),
            at("duplicate_meta_description", "/copy-1"),
            at("duplicate_meta_description", "/copy-2"),
            at("near_duplicate_content", "/near-1"),
            at("near_duplicate_content", "/near-2"),
            at("canonical_mismatch", "/canonical-other"),
            at("canonical_error", "/canonical-broken"),
            at("broken_image", "/no-such.png", ("/images", "gone")),
            at(
                "broken_link", "/missing", (links, "Missing page"), ("/more-links", "Missing again")
            ),
            at("broken_link", "/server-error", (links, "Server error")),
            at("server_error", "/server-error"),
            at("broken_link", "/moved-away", (links, "Moved away")),
            at("redirected_link", "/moved-away", (links, "Moved away")),
            at("blocked_link", "/private", (links, "Private area")),
            at("blocked_link", "/secret/plans", (links, "Secret plans")),
            at("redirected_link", "/old", (links, "Old address")),
            at("redirected_link", "/chain-1", (links, "Chained")),
            at("redirect_chain", "/chain-1"),
            at("broken_link", "/loop-1", (links, "Loop")),
            at("redirect_loop", "/loop-1"),
            at("broken_fragment", "/clean-a#nowhere", (links, "Missing section")),
        ]
    )


async def crawl_audit_site(site: Site, run_crawl: RunCrawl, **overrides: Any) -> CrawlResult:
    settings: dict[str, Any] = {
        "plugins": ("images", "audit"),
        "plugin_settings": {"audit": SETTINGS},
        "retries": 1,
    }
    settings.update(overrides)
    return await run_crawl([site.url("/")], **settings)


def findings(result: CrawlResult) -> dict[tuple[str, str], set[tuple[str | None, str | None]]]:
    found: dict[tuple[str, str], set[tuple[str | None, str | None]]] = {}
    for row in result.rows("SELECT url, rule, src_url, anchor FROM audit"):
        found.setdefault((row["rule"], row["url"]), set()).add((row["src_url"], row["anchor"]))
    return found


async def test_each_rule_hits_exactly_its_designed_pages(site: Site, run_crawl: RunCrawl) -> None:
    expected = build_audit_site(site)
    result = await crawl_audit_site(site, run_crawl)
    found = findings(result)
    assert set(found) - set(expected) == set(), "findings on pages without that problem"
    assert set(expected) - set(found) == set(), "problems the audit missed"
    assert found == expected  # each link finding names every source page and its anchor text
    rows = result.rows("SELECT rule, severity, detail FROM audit")
    for row in rows:
        assert row["severity"] == RULES[row["rule"]].severity
        assert row["detail"]
    # The PDF and the clean images are fetched, and nothing fires on them.
    assert result.page(site.url("/doc.pdf"))["status"] == 200
    assert result.page(site.url("/small.png"))["status"] == 200
    # The sitemaps are read once each, and the images plugin takes none for an image.
    for path in ("/sitemap.xml", "/sitemap-index.xml", "/sitemap-pages.xml", "/sitemap-gone.xml"):
        assert site.count(path) == 1, path
    assert not result.rows("SELECT url FROM images WHERE url LIKE '%sitemap%'")
    assert site.count("/secret/listed") == 0


async def test_details_say_what_to_fix(site: Site, run_crawl: RunCrawl) -> None:
    build_audit_site(site)
    result = await crawl_audit_site(site, run_crawl)
    detail = {
        (row["rule"], row["url"], row["src_url"]): row["detail"]
        for row in result.rows("SELECT * FROM audit")
    }
    u = site.url
    assert detail[("broken_link", u("/missing"), u("/more-links"))] == (
        f"HTTP 404: fix or remove the link on {u('/more-links')}"
    )
    assert detail[("redirect_chain", u("/chain-1"), None)].startswith(
        f"2 hops: {u('/chain-1')} -> {u('/chain-2')} -> {u('/clean-b')}"
    )
    assert "redirect loop" in detail[("redirect_loop", u("/loop-1"), None)]
    assert detail[("title_too_short", u("/short-title"), None)].startswith(
        "title has 5 characters (at least 30)"
    )
    assert u("/copy-2") in detail[("duplicate_content", u("/copy-1"), None)]
    assert "nowhere" in detail[("broken_fragment", u("/clean-a#nowhere"), u("/links"))]
    assert "answers HTTP 404" in detail[("canonical_error", u("/canonical-broken"), None)]
    pages_map = u("/sitemap-pages.xml")
    assert detail[("sitemap_error", u("/sitemap-gone.xml"), u("/sitemap-index.xml"))] == (
        f"sitemap (named in {u('/sitemap-index.xml')}): HTTP 404; fix it so that it answers "
        "200 with a valid sitemap"
    )
    assert detail[("sitemap_error", u("/missing"), pages_map)] == (
        f"listed in {pages_map} but answers HTTP 404: take it out, or restore the page"
    )
    assert detail[("sitemap_error", u("/old"), pages_map)].startswith(
        f"listed in {pages_map} but redirects to {u('/clean-a')} (HTTP 200): list the final URL"
    )
    assert "robots.txt disallows it" in detail[("sitemap_error", u("/secret/listed"), pages_map)]
    assert (
        "on another site (http://elsewhere.test)"
        in (detail[("sitemap_error", "http://elsewhere.test/page", pages_map)])
    )
    assert detail[("orphan_page", u("/orphan"), pages_map)].startswith(
        f"listed in {pages_map}, but no crawled page links to it"
    )


async def test_thresholds_come_from_the_audit_table(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", audit_page("/", links=[("/a", "a")]))
    site.add_page("/a", audit_page("/a", title="Fifteen chars!!"))
    strict = await run_crawl(
        [site.url("/")], plugins=("audit",), plugin_settings={"audit": {"title_min_chars": 16}}
    )
    lenient = await run_crawl(
        [site.url("/")], plugins=("audit",), plugin_settings={"audit": {"title_min_chars": 15}}
    )
    assert [tuple(r) for r in strict.rows("SELECT rule, url FROM audit")] == [
        ("title_too_short", site.url("/a"))
    ]
    assert lenient.rows("SELECT * FROM audit") == []


async def test_without_the_plugin_nothing_is_audited(site: Site, run_crawl: RunCrawl) -> None:
    build_audit_site(site)
    result = await run_crawl([site.url("/")], retries=1)
    assert result.rows("SELECT * FROM audit") == []


# One http:// sub-resource of each kind a browser loads, and what is no load at all.
MIXED_RESOURCES = {
    "img": '<img src="http://cdn.test/img.png" alt="a">',
    "img srcset": '<img srcset="http://cdn.test/srcset.png 2x" alt="b">',
    "picture source": '<picture><source srcset="http://cdn.test/pic.webp"></picture>',
    "script": '<script src="http://cdn.test/app.js"></script>',
    "stylesheet": '<link rel="stylesheet" href="http://cdn.test/style.css">',
    "preload": '<link rel="preload" as="font" href="http://cdn.test/font.woff2">',
    "icon": '<link rel="icon" href="http://cdn.test/favicon.ico">',
    "iframe": '<iframe src="http://cdn.test/frame.html"></iframe>',
    "video": '<video src="http://cdn.test/movie.mp4" poster="http://cdn.test/poster.jpg">'
    '<source src="http://cdn.test/movie.webm"></video>',
    "audio": '<audio src="http://cdn.test/sound.mp3"></audio>',
    "object": '<object data="http://cdn.test/doc.swf"></object>',
    "embed": '<embed src="http://cdn.test/embed.swf">',
    "input image": '<input type="image" src="http://cdn.test/go.png">',
    "svg image": '<svg><image href="http://cdn.test/svg.png"></image></svg>',
    "inline style": '<div style="background: url(http://cdn.test/bg.png)"></div>',
    "background": '<table background="http://cdn.test/table.png"></table>',
    "form": '<form action="http://cdn.test/post" method="post"></form>',
}
MIXED_URLS = {
    "http://cdn.test/img.png",
    "http://cdn.test/srcset.png",
    "http://cdn.test/pic.webp",
    "http://cdn.test/app.js",
    "http://cdn.test/style.css",
    "http://cdn.test/font.woff2",
    "http://cdn.test/favicon.ico",
    "http://cdn.test/frame.html",
    "http://cdn.test/movie.mp4",
    "http://cdn.test/poster.jpg",
    "http://cdn.test/movie.webm",
    "http://cdn.test/sound.mp3",
    "http://cdn.test/doc.swf",
    "http://cdn.test/embed.swf",
    "http://cdn.test/go.png",
    "http://cdn.test/svg.png",
    "http://cdn.test/bg.png",
    "http://cdn.test/table.png",
    "http://cdn.test/post",
}
NOT_MIXED = (
    '<a href="http://example.org/">plain link</a><area href="http://example.org/area" alt="x">'
    '<link rel="canonical" href="http://example.org/canonical">'
    '<link rel="alternate" hreflang="de" href="http://example.org/de">'
    '<link rel="preconnect" href="http://cdn.test/">'
    '<meta property="og:image" content="http://cdn.test/og.png">'
    '<img src="https://cdn.test/secure.png" alt="s"><script src="//cdn.test/relative.js"></script>'
)


def test_mixed_content_for_each_resource_kind_on_https_pages_only() -> None:
    settings = AuditSettings()
    headers = {"content-type": "text/html; charset=utf-8"}

    def rules_on(url: str, body_html: str) -> list[tuple[str, str]]:
        body = audit_page("/mixed", head="", body=body_html).encode()
        page = parse_page(body, url, headers)
        assert page is not None
        row = PageRow(url, url, 200, "text/html", 0, page.title, len(body), 5.0, "", None, "")
        return [(f.rule, f.url) for f in page_findings(row, page, settings)]

    for kind, markup in MIXED_RESOURCES.items():
        found = rules_on("https://example.com/mixed", markup)
        assert found, f"no mixed_content for {kind}"
        assert {rule for rule, _ in found} == {"mixed_content"}, kind
    everything = "".join(MIXED_RESOURCES.values()) + NOT_MIXED
    found = rules_on("https://example.com/mixed", everything)
    assert sorted(url for _, url in found) == sorted(MIXED_URLS)  # one finding per URL
    assert rules_on("https://example.com/mixed", NOT_MIXED) == []
    assert rules_on("http://example.com/mixed", everything) == []


async def test_mixed_content_on_a_real_https_site(
    https_site: Site, ca_file: Path, tmp_path: Path
) -> None:
    """The crawler fetches https pages (trusting the test CA) and reports their http loads."""
    everything = "".join(MIXED_RESOURCES.values()) + NOT_MIXED
    https_site.add_page("/", audit_page("/", body=everything, links=[("/clean", "clean")]))
    https_site.add_page("/clean", audit_page("/clean", body='<img src="/ok.png" alt="ok">'))
    (tmp_path / "seed.txt").write_text(https_site.url("/") + "\n")
    env = {**os.environ, "SSL_CERT_FILE": str(ca_file)}
    run = await run_cli(
        tmp_path, "seed.txt", "--plugin", "audit", "--quiet", "--retries", "1", env=env
    )
    assert run.code == 0, run.stderr
    with sqlite3.connect(tmp_path / "crawl.db") as db:
        statuses = dict(db.execute("SELECT url, status FROM pages"))
        mixed = db.execute("SELECT url, src_url FROM audit WHERE rule = 'mixed_content'").fetchall()
    db.close()
    assert statuses[https_site.url("/")] == 200 and statuses[https_site.url("/clean")] == 200
    assert sorted(url for url, _ in mixed) == sorted(MIXED_URLS)
    assert {src for _, src in mixed} == {https_site.url("/")}


def test_simhash_separates_near_and_different_texts() -> None:
    near = list(NEAR_TEXT)
    near[150] = "different"
    # One word of 300 changed: 3 of 298 shingles differ.
    assert hamming(simhash(NEAR_TEXT), simhash(near)) <= AuditSettings().near_duplicate_bits
    assert hamming(simhash(NEAR_TEXT), simhash(words("other", 300))) > 16
    facts = text_facts(
        b'<base href="/dir/"><a href="#x">here</a> <a href="page#y%20z">there</a>',
        "http://h.test/a",
        {},
    )
    assert [(f.dst_url, f.fragment, f.anchor) for f in facts.fragments] == [
        ("http://h.test/dir/", "x", "here"),
        ("http://h.test/dir/page", "y z", "there"),
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"slow_seconds": 1},
            "unknown setting 'slow_seconds' (did you mean 'slow_response_seconds'?)",
        ),
        ({"max_depth": -1}, "max_depth must be an integer >= 0, got -1"),
        ({"large_image_bytes": "big"}, "large_image_bytes must be an integer >= 0, got 'big'"),
        ({"slow_response_seconds": 0}, "slow_response_seconds must be a number > 0, got 0"),
        ({"near_duplicate_bits": 17}, "near_duplicate_bits must be between 0 and 16, got 17"),
        (
            {"title_min_chars": 70},
            "title_min_chars (70) must not exceed title_max_chars (60)",
        ),
    ],
)
def test_bad_settings_are_refused_by_name(table: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError) as caught:
        AuditSettings.from_table(table, Config())
    assert str(caught.value) == f"[audit] {message}"


def test_audit_columns_are_added_to_an_older_database(tmp_path: Path) -> None:
    from plugins.audit import add_audit_columns

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE audit(url TEXT, rule TEXT, severity TEXT, detail TEXT)")
    db.close()
    add_audit_columns(str(path))
    add_audit_columns(str(path))  # twice: nothing more to add
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(audit)")]
    db.close()
    assert columns == ["url", "rule", "severity", "detail", "src_url", "anchor"]


# --------------------------------------------------------------------------- reports


def audit_rows(result: CrawlResult) -> list[tuple[str, str, str, str, str | None, str | None]]:
    rows = result.rows("SELECT url, rule, severity, detail, src_url, anchor FROM audit")
    return sorted(tuple(row) for row in rows)


def report(db: Path, *args: str) -> tuple[int, str]:
    out = db.parent / "report.out"
    code = main(["report", str(db), "-o", str(out), *args])
    return code, out.read_text(encoding="utf-8") if out.exists() else ""


async def test_json_and_csv_reports_hold_every_finding(site: Site, run_crawl: RunCrawl) -> None:
    build_audit_site(site)
    result = await crawl_audit_site(site, run_crawl)
    expected = audit_rows(result)
    code, text = report(result.path, "--format", "json")
    assert code == 0
    document = json.loads(text)
    assert sorted(tuple(f.values()) for f in document["findings"]) == expected
    assert document["summary"] == {
        s: sum(row[2] == s for row in expected) for s in ("error", "warning", "notice")
    }
    assert document["pages"] == len(result.pages())
    assert document["rules"]["broken_link"]["severity"] == "error"
    code, text = report(result.path, "--format", "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["severity", "rule", "url", "src_url", "anchor", "detail"]
    assert sorted((r[2], r[1], r[0], r[5], r[3] or None, r[4] or None) for r in rows[1:]) == (
        expected
    )
    # Worst first: errors, then warnings, then notices.
    severities = [r[0] for r in rows[1:]]
    assert severities == sorted(severities, key=("error", "warning", "notice").index)


# The official SARIF 2.1.0 schema (OASIS Standard with Errata 01, JSON Schema draft-04), as
# published by the OASIS SARIF TC in github.com/oasis-tcs/sarif-spec,
# sarif-2.1/schema/sarif-schema-2.1.0.json at commit e0583813964ec43cea53b6b531b402866095ed1f;
# its id is https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json.
# Copyright OASIS Open, under the OASIS IPR Policy (see that repository's LICENSE.md).
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


def sarif_errors(document: Any) -> list[str]:
    """Where ``document`` breaks the SARIF 2.1.0 schema, one line per violation."""
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


async def test_sarif_report(site: Site, run_crawl: RunCrawl) -> None:
    build_audit_site(site)
    result = await crawl_audit_site(site, run_crawl)
    code, text = report(result.path, "--format", "sarif")
    assert code == 0
    sarif = json.loads(text)
    assert sarif_errors(sarif) == []
    # The check has teeth: "notice" is our severity, not a SARIF level.
    broken = json.loads(text)
    broken["runs"][0]["results"][0]["level"] = "notice"
    assert sarif_errors(broken) == [
        "$.runs[0].results[0].level: 'notice' is not one of ['none', 'note', 'warning', 'error']"
    ]
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].endswith("sarif-2.1.0.json")
    (run,) = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert {rule["id"] for rule in rules} == set(RULES)
    for rule in rules:
        assert rule["help"]["text"] == RULES[rule["id"]].help
        assert rule["fullDescription"]["text"] == RULES[rule["id"]].help
        assert rule["shortDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert len(run["results"]) == len(audit_rows(result))
    fingerprints = set()
    for item in run["results"]:
        assert rules[item["ruleIndex"]]["id"] == item["ruleId"]
        assert item["level"] == rules[item["ruleIndex"]]["defaultConfiguration"]["level"]
        assert item["message"]["text"]
        fingerprints.add(item["partialFingerprints"]["auditFinding/v1"])
    assert len(fingerprints) == len(run["results"])

    def target(result: dict[str, Any]) -> str | None:
        related = result.get("relatedLocations")
        return str(related[0]["physicalLocation"]["artifactLocation"]["uri"]) if related else None

    broken = [
        r
        for r in run["results"]
        if r["ruleId"] == "broken_link" and target(r) == site.url("/missing")
    ]
    # A link finding is located on the page that has the link, the target is related.
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in broken} == {
        site.url("/links"),
        site.url("/more-links"),
    }


async def test_junit_report_has_a_test_case_per_page(site: Site, run_crawl: RunCrawl) -> None:
    build_audit_site(site)
    result = await crawl_audit_site(site, run_crawl)
    code, text = report(result.path, "--format", "junit")
    assert code == 0
    root = ET.fromstring(text)
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert set(result.pages()) <= set(cases)
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    errors = result.rows("SELECT coalesce(src_url, url) FROM audit WHERE severity = 'error'")
    assert failed == {row[0] for row in errors}
    u = site.url
    assert {u("/links"), u("/no-title"), u("/server-error"), u("/loop-1")} <= failed
    assert u("/clean-a") not in failed and u("/doc.pdf") not in failed
    failure = cases[u("/more-links")].find("failure")
    assert failure is not None and failure.get("type") == "broken_link"
    assert f"-> {u('/missing')} ('Missing again')" in (failure.text or "")
    # Warnings and notices do not fail the test case; they are printed with it.
    assert "title_too_short" in (cases[u("/short-title")].findtext("system-out") or "")
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == str(len(failed))
    assert suite.get("tests") == str(len(cases))


async def test_markdown_report(site: Site, run_crawl: RunCrawl) -> None:
    build_audit_site(site)
    result = await crawl_audit_site(site, run_crawl)
    code, text = report(result.path, "--format", "md")
    assert code == 0
    counts = {
        s: len(result.rows("SELECT 1 FROM audit WHERE severity = ?", s))
        for s in ("error", "warning", "notice")
    }
    assert text.startswith("## Site audit\n")
    assert (
        f"**{counts['error']}** errors, **{counts['warning']}** warnings, "
        f"**{counts['notice']}** notices" in text
    )
    assert "| error | `broken_link` | 5 |" in text
    # Help and details mention HTML elements: escaped, or GitHub would swallow them as tags.
    assert "<meta" not in text and '&lt;meta name="description"' in text
    assert f"| {site.url('/missing')} | {site.url('/links')} (Missing page) | HTTP 404" in text


async def test_fail_on_exit_codes(site: Site, make_site: Any, run_crawl: RunCrawl) -> None:
    build_audit_site(site)
    faulty = await crawl_audit_site(site, run_crawl)
    clean_site = await make_site()
    clean_site.add_page("/", audit_page("/", links=[("/a", "a")]))
    clean_site.add_page("/a", audit_page("/a", title="Short"))  # one warning
    warned = await run_crawl([clean_site.url("/")], plugins=("audit",))
    assert report(faulty.path, "--fail-on", "error")[0] == 3
    assert report(faulty.path, "--fail-on", "warning")[0] == 3
    assert report(warned.path, "--fail-on", "error")[0] == 0
    assert report(warned.path, "--fail-on", "warning")[0] == 3
    assert report(warned.path)[0] == 0
    # The report is written even when the exit code fails the build.
    code, text = report(warned.path, "--fail-on", "warning", "--format", "csv")
    assert code == 3 and "title_too_short" in text


async def test_report_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope.db")]) == 2
    assert f"error: {tmp_path / 'nope.db'} does not exist" in capsys.readouterr().err
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    assert main(["report", str(tmp_path / "junk.db")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE t(x)")
    db.close()
    assert main(["report", str(tmp_path / "other.db")]) == 2
    assert "not a crawl database" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "other.db"), "--format", "pdf"]) == 2
    assert "invalid choice: 'pdf'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "other.db"), "--fail-on", "notice"]) == 2


async def test_command_line_crawl_then_report(site: Site, tmp_path: Path) -> None:
    """The whole path a CI job takes: crawl with --plugin audit, then report --fail-on."""
    site.add_page("/", audit_page("/", links=[("/gone", "Gone")]))
    site.add_status("/gone", 404)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(site.url("/") + "\n")
    crawled = await run_cli(tmp_path, str(seeds), "--plugin", "audit", "--quiet", "--retries", "1")
    assert crawled.code == 0, crawled.stderr
    run = await run_cli(
        tmp_path, "report", "crawl.db", "--format", "sarif", "-o", "a.sarif", "--fail-on", "error"
    )
    assert run.code == 3
    assert "1 error(s); failing on error" in run.stderr
    sarif = json.loads((tmp_path / "a.sarif").read_text())
    assert sarif_errors(sarif) == []
    results = sarif["runs"][0]["results"]
    assert [
        (r["ruleId"], r["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"])
        for r in results
    ] == [("broken_link", site.url("/gone"))]


# --------------------------------------------------------------------------- diff


async def test_diff_of_two_crawls(site: Site, run_crawl: RunCrawl, tmp_path: Path) -> None:
    site.add_page("/", audit_page("/", links=[("/a", "a"), ("/b", "b"), ("/c", "c")]))
    site.add_page("/a", audit_page("/a", title="Short"))
    site.add_page("/b", audit_page("/b"))
    site.add_status("/c", 404)
    before = await run_crawl([site.url("/")], plugins=("audit",), retries=1)
    site.add_page("/a", audit_page("/a"))  # fixed
    site.add_page("/b", audit_page("/b", h1s=0))  # new
    site.add_status("/c", 410)  # changed
    after = await run_crawl([site.url("/")], plugins=("audit",), retries=1)
    out = tmp_path / "diff.json"
    code = main(["diff", str(before.path), str(after.path), "--format", "json", "-o", str(out)])
    assert code == 0
    diff = json.loads(out.read_text())
    assert [(f["rule"], f["url"]) for f in diff["new"]] == [("missing_h1", site.url("/b"))]
    assert [(f["rule"], f["url"]) for f in diff["fixed"]] == [("title_too_short", site.url("/a"))]
    assert [(c["old"]["detail"][:8], c["new"]["detail"][:8]) for c in diff["changed"]] == [
        ("HTTP 404", "HTTP 410")
    ]
    text_out = tmp_path / "diff.txt"
    main(["diff", str(before.path), str(after.path), "-o", str(text_out)])
    text = text_out.read_text()
    assert text.startswith("1 new, 1 fixed, 1 changed\n")
    assert f"  [warning] missing_h1 {site.url('/b')}: " in text
    assert f"- [error] broken_link {site.url('/c')} (linked from {site.url('/')}): HTTP 404" in text
    # New or changed errors fail CI; the same crawl twice does not.
    assert (
        main(["diff", str(before.path), str(after.path), "--fail-on", "error", "-o", str(text_out)])
        == 3
    )
    assert (
        main(
            ["diff", str(after.path), str(after.path), "--fail-on", "warning", "-o", str(text_out)]
        )
        == 0
    )
    assert text_out.read_text() == "0 new, 0 fixed, 0 changed\n"


def test_repo_config_documents_every_audit_setting_with_its_default() -> None:
    table = tomllib.loads(uncommented_repo_config())["audit"]
    assert set(table) == {field.name for field in dataclasses.fields(AuditSettings)}
    assert AuditSettings.from_table(table, Config()) == AuditSettings()
