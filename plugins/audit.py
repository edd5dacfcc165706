"""The audit plugin: what is broken on the site, rule by rule (``--plugin audit``).

Per-page rules run while the crawl goes, on each response and each parsed page (titles,
headings, thin content, noindex, slow responses, large images, mixed content, deep pages).
Whole-crawl rules (broken and redirected links with their source pages and anchor texts,
duplicates, canonicals, fragments, sitemaps and orphan pages) need every page, so they run at
the end over SQL (see :mod:`plugins.auditsite`). Sitemaps are found, fetched and read during
the crawl, and the pages they list queued when the link graph is done (see
:mod:`plugins.auditsitemapcrawl`). The rules, their ids and severities are in
:mod:`plugins.auditrules`; ``python -m crawler report`` and ``diff`` (:mod:`plugins.auditreport`)
read the results.

Findings go to the contract's ``audit(url, rule, severity, detail)`` table, plus two columns of
ours for link rules: ``src_url`` (the page with the link) and ``anchor`` (its text). The plugin
keeps what the whole-crawl rules need in ``audit_pages`` (one row per parsed page) and
``audit_fragments`` (links with a ``#fragment``), the anchor text of links in
``audit_anchors``, ``<link rel=alternate hreflang>`` annotations in ``audit_hreflang``, and
the sitemaps with what they list in ``audit_sitemaps`` and ``audit_sitemap_urls``.

Settings, in config.toml's ``[audit]`` table: see :class:`plugins.auditrules.AuditSettings`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from crawler.plugins import Plugin
from plugins.auditrules import AuditSettings, Finding, finding
from plugins.auditsite import SITE_RULES, site_findings
from plugins.auditsitemapcrawl import SITEMAP_TABLES, SitemapCrawl
from plugins.audittext import TextFacts, document_facts

if TYPE_CHECKING:
    from crawler.config import Config
    from crawler.engine import Crawler
    from crawler.fetcher import Response
    from crawler.frontier import Task
    from crawler.parse import Link, ParsedPage
    from crawler.storage import PageRow

__all__ = ["INSERT_FINDING", "AuditPlugin", "mixed_content", "page_findings", "response_findings"]

TABLES: Final = (
    """
CREATE TABLE IF NOT EXISTS audit_pages(
    url TEXT PRIMARY KEY, title TEXT, meta_description TEXT, canonical TEXT, h1_count INTEGER,
    word_count INTEGER, simhash INTEGER, ids TEXT
);
CREATE TABLE IF NOT EXISTS audit_anchors(src_url TEXT, dst_url TEXT, anchor TEXT);
CREATE INDEX IF NOT EXISTS audit_anchors_dst ON audit_anchors(dst_url);
CREATE TABLE IF NOT EXISTS audit_fragments(
    src_url TEXT, dst_url TEXT, fragment TEXT, anchor TEXT
);
CREATE TABLE IF NOT EXISTS audit_hreflang(src_url TEXT, lang TEXT, dst_url TEXT);
CREATE INDEX IF NOT EXISTS audit_url ON audit(url);
"""
    + SITEMAP_TABLES
)

# Our columns after the contract's; added to an audit table created without them.
AUDIT_EXTRA_COLUMNS: Final = (("src_url", "TEXT"), ("anchor", "TEXT"))
INSERT_FINDING: Final = (
    "INSERT INTO audit(url, rule, severity, detail, src_url, anchor) VALUES (?, ?, ?, ?, ?, ?)"
)
# Whole-crawl findings replace those of an earlier run over the same database (--resume).
_DELETE_SITE_FINDINGS: Final = "DELETE FROM audit WHERE rule = ? /* whole-crawl rules */"
_INSERT_SITE_FINDING: Final = INSERT_FINDING + " /* whole-crawl rules */"
_INSERT_PAGE: Final = "INSERT OR REPLACE INTO audit_pages VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_ANCHOR: Final = "INSERT INTO audit_anchors VALUES (?, ?, ?)"
_INSERT_FRAGMENT: Final = "INSERT INTO audit_fragments VALUES (?, ?, ?, ?)"
_INSERT_HREFLANG: Final = "INSERT INTO audit_hreflang VALUES (?, ?, ?)"
# Elements whose URL the browser loads as part of the page (not navigation). "style" is
# url() in a style attribute, "image" SVG's <image>; "input" is recorded for type=image only.
_RESOURCE_TAGS: Final = frozenset(
    {
        "img",
        "script",
        "iframe",
        "frame",
        "source",
        "video",
        "audio",
        "embed",
        "object",
        "input",
        "image",
        "style",
    }
)
# Never a load: navigation, and <meta> (og:image is for other sites to show, meta refresh is
# a redirect). A <link> is a load when the parser lists it (stylesheet, preload) or an image.
_NOT_RESOURCE_TAGS: Final = frozenset({"a", "area", "meta"})


def response_findings(row: PageRow, settings: AuditSettings) -> list[Finding]:
    """Rules on any fetched URL's row: a slow HTML page, a large image."""
    found: list[Finding] = []
    if row.status is None or not 200 <= row.status < 300:
        return found
    media = (row.content_type or "").partition(";")[0].strip().lower()
    if media.startswith("image/") and (row.bytes or 0) > settings.large_image_bytes:
        found.append(
            finding(
                row.url,
                "large_image",
                f"{row.bytes:,} bytes, over the {settings.large_image_bytes:,} byte limit: "
                "resize and compress it",
            )
        )
    return found


def page_findings(row: PageRow, page: ParsedPage, settings: AuditSettings) -> list[Finding]:
    """Rules on one parsed HTML page."""
    url = row.url
    found: list[Finding] = []
    title = page.title
    if not title:
        found.append(finding(url, "missing_title", "add a <title> that describes the page"))
    elif len(title) > settings.title_max_chars:
        found.append(
            finding(
                url,
                "title_too_long",
                f"title has {len(title)} characters (at most {settings.title_max_chars}): "
                f"shorten {title!r}",
            )
        )
    elif len(title) < settings.title_min_chars:
        found.append(
            finding(
                url,
                "title_too_short",
                f"title has {len(title)} characters (at least {settings.title_min_chars}): "
                f"describe the page better than {title!r}",
            )
        )
    if not (page.meta_description or "").strip():
        found.append(
            finding(
                url,
                "missing_meta_description",
                'add <meta name="description" content="..."> summing up the page',
            )
        )
    if page.h1_count == 0:
        found.append(finding(url, "missing_h1", "add an <h1> heading saying what the page is"))
    elif page.h1_count > 1:
        found.append(
            finding(
                url, "multiple_h1", f"{page.h1_count} <h1> headings: keep one, demote the others"
            )
        )
    for image in page.missing_alt:
        found.append(finding(image, "missing_alt", f"<img> on {url} has no alt attribute", url))
    if page.word_count < settings.thin_content_words:
        found.append(
            finding(
                url,
                "thin_content",
                f"{page.word_count} words (at least {settings.thin_content_words}): add "
                "content, merge the page, or mark it noindex",
            )
        )
    if row.noindex:
        found.append(
            finding(url, "noindex", "noindex: remove it if search engines should list the page")
        )
    if row.depth > settings.max_depth:
        found.append(
            finding(
                url,
                "deep_page",
                f"{row.depth} clicks from the start (at most {settings.max_depth}): link it "
                "from a page closer to the start",
            )
        )
    elapsed = (row.elapsed_ms or 0) / 1000
    if elapsed > settings.slow_response_seconds:
        found.append(
            finding(
                url,
                "slow_response",
                f"answered in {elapsed:.2f} s (limit {settings.slow_response_seconds:g} s): "
                "cache it or speed up its rendering",
            )
        )
    if url.startswith("https:"):
        found += mixed_content(url, page)
    return found


def _loads(link: Link, images: set[str], link_resources: set[str]) -> bool:
    """True when the browser loads ``link`` with the page (a sub-resource, not a link)."""
    if link.tag in _RESOURCE_TAGS:
        return True
    if link.tag == "link":
        return link.url in link_resources or link.url in images  # stylesheet, preload, icon
    # background="..." on any element (body, table, td): recorded under that element
    return link.tag not in _NOT_RESOURCE_TAGS and link.url in images


def mixed_content(url: str, page: ParsedPage) -> list[Finding]:
    """http:// sub-resources and form targets of the https page ``url``, one finding per URL."""
    images = set(page.images)
    link_resources = set(page.link_resources)
    found: list[Finding] = []
    reported: set[str] = set()
    for link in page.links:
        if (
            link.url.startswith("http:")
            and link.url not in reported
            and _loads(link, images, link_resources)
        ):
            reported.add(link.url)
            found.append(
                finding(
                    link.url,
                    "mixed_content",
                    f"<{link.tag}> loads {link.url} over http on this https page: "
                    "load it over https",
                    src_url=url,
                    anchor=link.text or None,
                )
            )
    for action in page.form_actions:
        if action.startswith("http:") and action not in reported:
            reported.add(action)
            found.append(
                finding(
                    action,
                    "mixed_content",
                    f"<form> on this https page submits to {action} over http: browsers warn "
                    "before sending it; submit over https",
                    src_url=url,
                )
            )
    return found


def _add_columns(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(audit)")}
    for name, kind in AUDIT_EXTRA_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE audit ADD COLUMN {name} {kind}")


def add_audit_columns(path: str) -> None:
    """Add our columns to the contract's audit table when it lacks them."""
    with sqlite3.connect(path, timeout=30) as db:
        _add_columns(db)
    db.close()


def read_site_findings(path: str, settings: AuditSettings) -> list[Finding]:
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=30) as db:
        found = site_findings(db, settings)
    db.close()
    return found


class AuditPlugin(Plugin):
    """Site audit: per-page rules while crawling, whole-crawl rules at the end."""

    tables = TABLES
    # SimHash and #fragment links, computed in the parse worker on the crawler's own tree.
    page_hook = document_facts

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        super().__init__(settings, config)
        self.audit = AuditSettings.from_table(settings, config)
        self.crawler: Crawler | None = None
        self.sitemaps: SitemapCrawl | None = None
        self.findings = 0
        self.site_findings = 0

    async def open(self, crawler: Crawler) -> None:
        self.crawler = crawler
        await asyncio.to_thread(add_audit_columns, str(crawler.storage.path))
        self.sitemaps = SitemapCrawl(self.name or "audit", self.audit.sitemaps, crawler)
        await self.sitemaps.open()

    def _write(self, findings: Sequence[Finding]) -> None:
        if findings and self.crawler is not None:
            self.crawler.storage.add_rows(INSERT_FINDING, findings)
            self.findings += len(findings)

    async def on_response(self, task: Task, response: Response, row: PageRow) -> None:
        assert self.crawler is not None and self.sitemaps is not None
        sitemap = self.sitemaps.sitemap_of(task)
        if sitemap is not None:
            await self.sitemaps.on_response(task, response, sitemap)
            return  # a sitemap is no page: no other rule looks at it
        if task.kind == "page":
            self.sitemaps.discover(task.host)  # before this page's links are queued
        self._write(response_findings(row, self.audit))

    async def on_page(self, row: PageRow, page: ParsedPage, data: object = None) -> None:
        assert self.crawler is not None
        storage = self.crawler.storage
        self._write(page_findings(row, page, self.audit))
        facts = data if isinstance(data, TextFacts) else None
        storage.add_rows(
            _INSERT_PAGE,
            [
                (
                    row.url,
                    page.title,
                    page.meta_description,
                    page.canonical,
                    page.h1_count,
                    page.word_count,
                    facts.simhash if facts is not None else None,
                    "\n".join(page.ids),
                )
            ],
        )
        # Anchor text of links, alt text of images: shown with link findings.
        anchors = [(row.url, link.url, link.text) for link in page.links if link.text]
        if anchors:
            storage.add_rows(_INSERT_ANCHOR, anchors)
        if page.hreflang:
            storage.add_rows(
                _INSERT_HREFLANG, [(row.url, lang, url) for lang, url in page.hreflang]
            )
        if facts is not None and facts.fragments:
            storage.add_rows(
                _INSERT_FRAGMENT,
                [(row.url, f.dst_url, f.fragment, f.anchor) for f in facts.fragments],
            )

    async def on_idle(self) -> None:
        if self.sitemaps is not None:
            await self.sitemaps.queue_listed()

    async def close(self) -> None:
        crawler = self.crawler
        if crawler is None or crawler.stats.interrupted:
            return  # an interrupted crawl is incomplete: --resume runs the whole-crawl rules
        await crawler.storage.flush()
        found = await asyncio.to_thread(read_site_findings, str(crawler.storage.path), self.audit)
        crawler.storage.add_rows(_DELETE_SITE_FINDINGS, [(rule,) for rule in SITE_RULES])
        if found:
            crawler.storage.add_rows(_INSERT_SITE_FINDING, found)
        await crawler.storage.flush()
        self.site_findings = len(found)

    def after_merge(self, db: sqlite3.Connection) -> list[tuple[str, str]]:
        """Each worker's whole-crawl findings saw part of the crawl: replace them with those of
        the merged database (the same rules and SQL as at the end of a crawl)."""
        _add_columns(db)
        found = site_findings(db, self.audit)
        db.executemany(_DELETE_SITE_FINDINGS, [(rule,) for rule in SITE_RULES])
        db.executemany(_INSERT_SITE_FINDING, found)
        self.site_findings = len(found)
        return [("audit", f"{len(found):,} whole-crawl findings, recomputed on the merged crawl")]

    def __repr__(self) -> str:
        return (
            f"<AuditPlugin {self.name!r} page_findings={self.findings} "
            f"site_findings={self.site_findings} sitemaps={self.sitemaps!r}>"
        )

    def summary(self) -> list[tuple[str, str]]:
        if self.crawler is None:
            return []
        total = self.findings + self.site_findings
        lines = [("audit findings", f"{total:,} (python -m crawler report {self.config.db})")]
        sitemaps = self.sitemaps
        if sitemaps is not None and sitemaps.refs:
            lines.append(
                (
                    "audit sitemaps",
                    f"{sitemaps.read} read, {sitemaps.listed:,} URLs listed "
                    f"({sitemaps.queued:,} not reached by links, crawled from the sitemaps)",
                )
            )
        return lines
