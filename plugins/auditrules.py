"""The audit's rules: stable ids, severities, what each one means and how to fix it.

Every finding the audit plugin writes names one of these rules. The ids are stable: reports,
``--fail-on`` and ``diff`` rely on them. ``help`` is the text a report shows next to a rule
(SARIF ``help``, the Markdown table); a finding's own ``detail`` says what to fix on that page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from crawler.errors import PluginError
from crawler.plugins import check_setting_keys
from crawler.urls import normalize_url

if TYPE_CHECKING:
    from crawler.config import Config

__all__ = [
    "AUTO_SITEMAPS",
    "RULES",
    "SEVERITIES",
    "AuditSettings",
    "Finding",
    "Rule",
    "Severity",
    "finding",
]

Severity = Literal["error", "warning", "notice"]
SEVERITIES: Final[tuple[Severity, ...]] = ("error", "warning", "notice")


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    title: str
    help: str


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {rule.id: rule for rule in rules}


RULES: Final = _rules(
    # links
    Rule(
        "broken_link",
        "error",
        "Link to a page that is broken",
        "A link points at a URL that answers 4xx or 5xx, or does not answer at all. Fix the "
        "link's href on each source page, or restore the target (or redirect it).",
    ),
    Rule(
        "broken_image",
        "error",
        "Image that cannot be loaded",
        "An image URL answers 4xx or 5xx, or does not answer. Fix the src on each page that "
        "shows it, or restore the file.",
    ),
    Rule(
        "blocked_link",
        "warning",
        "Link to a page the crawler was not allowed to read",
        "The target answered 401, 403 or 429, or robots.txt disallows it. It may work in a "
        "browser: check that visitors and search engines are meant to be kept out.",
    ),
    Rule(
        "broken_fragment",
        "warning",
        "Link to a #fragment that does not exist",
        "The target page has no element with that id (or <a name>). Fix the fragment in the "
        "link, or add the id to the target page.",
    ),
    Rule(
        "redirected_link",
        "notice",
        "Link to a URL that redirects",
        "Every visit pays an extra round trip. Point the link at the final URL.",
    ),
    Rule(
        "redirect_chain",
        "warning",
        "Redirect chain of more than one hop",
        "Each hop costs a round trip and search engines may stop following. Redirect the first "
        "URL straight to the final one.",
    ),
    Rule(
        "redirect_loop",
        "error",
        "Redirect loop",
        "The URL redirects back to a URL of its own chain and never reaches a page. Fix the "
        "redirect rules so that the chain ends at a 200 page.",
    ),
    Rule(
        "server_error",
        "error",
        "Server error (5xx)",
        "The server failed to answer this URL. Check the server's logs for this URL.",
    ),
    # content
    Rule(
        "missing_title",
        "error",
        "Page without a title",
        "Add a <title> that describes the page: it is the headline in search results and tabs.",
    ),
    Rule(
        "duplicate_title",
        "warning",
        "Title shared with other pages",
        "Give every page its own title, so that search results tell them apart.",
    ),
    Rule(
        "title_too_long",
        "warning",
        "Title too long",
        "Search results cut long titles. Shorten the title (see [audit] title_max_chars).",
    ),
    Rule(
        "title_too_short",
        "warning",
        "Title too short",
        "A very short title says little. Describe the page (see [audit] title_min_chars).",
    ),
    Rule(
        "missing_meta_description",
        "warning",
        "Page without a meta description",
        'Add <meta name="description" content="...">: search results show it under the title.',
    ),
    Rule(
        "duplicate_meta_description",
        "warning",
        "Meta description shared with other pages",
        "Write a description for each page of its own.",
    ),
    Rule(
        "missing_h1",
        "warning",
        "Page without an <h1>",
        "Add one <h1> heading that says what the page is about.",
    ),
    Rule(
        "hreflang_error",
        "warning",
        "Broken hreflang annotation",
        "Use a valid language code (en, en-GB, x-default), point it at a page that answers 200, "
        "and make that page link back with its own hreflang annotations.",
    ),
    Rule(
        "missing_alt",
        "warning",
        "Image without an alt attribute",
        'Give every <img> an alt text that says what it shows, or alt="" if it is decoration.',
    ),
    Rule(
        "multiple_h1",
        "notice",
        "Page with several <h1>",
        "Keep one <h1> per page and make the others <h2> or lower.",
    ),
    Rule(
        "thin_content",
        "warning",
        "Page with little text",
        "The page has fewer words than [audit] thin_content_words. Add content, merge it into "
        "another page, or mark it noindex.",
    ),
    Rule(
        "duplicate_content",
        "warning",
        "Page identical to other pages",
        "The bytes of these pages are the same. Keep one URL and redirect the others to it, or "
        'declare it with <link rel="canonical">.',
    ),
    Rule(
        "near_duplicate_content",
        "notice",
        "Page almost identical to other pages",
        "The text of these pages differs in a few words only (SimHash). Merge them, or make "
        "each one worth its own URL, or declare a canonical.",
    ),
    # indexing
    Rule(
        "noindex",
        "notice",
        "Page excluded from search engines",
        "The page has a noindex directive (meta robots or X-Robots-Tag). Remove it if the page "
        "should be found in search engines.",
    ),
    Rule(
        "canonical_mismatch",
        "notice",
        "Canonical URL points at another page",
        "Search engines will index the canonical URL instead of this one. Check that this is "
        "meant; otherwise point the canonical at the page itself.",
    ),
    Rule(
        "canonical_error",
        "error",
        "Canonical URL that is not a working page",
        "The canonical URL redirects, is broken, or does not answer. Point it at a URL that "
        "answers 200.",
    ),
    Rule(
        "sitemap_error",
        "warning",
        "Sitemap that cannot be read, or that lists what it should not",
        "A sitemap (named in robots.txt, in [audit] sitemaps or in a sitemap index, or the "
        "site's /sitemap.xml) does not answer 200, is not a sitemap (malformed XML, another "
        "root element, too large), or lists URLs that are invalid, on another site, disallowed "
        "by robots.txt, redirected or broken. Fix the sitemap, or where it is declared, so that "
        "it lists the site's working pages only.",
    ),
    Rule(
        "orphan_page",
        "warning",
        "Page in a sitemap that no page links to",
        "A sitemap lists the page, but no crawled page links to it: visitors and crawlers that "
        "follow links never get there. Link it from a relevant page or the navigation, or take "
        "it out of the sitemap if it is obsolete.",
    ),
    Rule(
        "deep_page",
        "notice",
        "Page many clicks away from the start",
        "The page is deeper than [audit] max_depth links from the seed. Link it from a page "
        "closer to the start, a hub page or the navigation.",
    ),
    # speed
    Rule(
        "slow_response",
        "warning",
        "Slow response",
        "The server took longer than [audit] slow_response_seconds to answer. Cache the page, "
        "or speed up whatever renders it.",
    ),
    Rule(
        "large_image",
        "warning",
        "Large image file",
        "The image is larger than [audit] large_image_bytes. Resize it to the size it is shown "
        "at, and compress it (WebP or AVIF).",
    ),
    Rule(
        "mixed_content",
        "warning",
        "http:// resource on an https:// page",
        "Browsers block or warn about insecure resources on secure pages. Load the resource "
        "over https.",
    ),
)


class Finding(NamedTuple):
    """One row of the audit table: the contract's columns, then the link's source and text."""

    url: str
    rule: str
    severity: str
    detail: str
    src_url: str | None = None
    anchor: str | None = None


def finding(
    url: str, rule: str, detail: str, src_url: str | None = None, anchor: str | None = None
) -> Finding:
    return Finding(url, rule, RULES[rule].severity, detail, src_url, anchor)


_INT_SETTINGS: Final = {
    "title_min_chars": 30,
    "title_max_chars": 60,
    "thin_content_words": 200,
    "max_depth": 3,
    "large_image_bytes": 500_000,
    "near_duplicate_bits": 4,
}


AUTO_SITEMAPS: Final = "auto"


def _sitemaps(value: object, where: str) -> tuple[str, ...]:
    """``sitemaps``: "auto" and absolute http(s) sitemap URLs (normalized), deduplicated."""
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise PluginError(
            f'{where} sitemaps must be a list of "auto" and sitemap URLs, got {value!r}'
        )
    found: dict[str, None] = {}
    for item in value:
        if item.strip() == AUTO_SITEMAPS:
            found[AUTO_SITEMAPS] = None
            continue
        url = (
            normalize_url(item)
            if item.strip().lower().startswith(("http://", "https://"))
            else None
        )
        if url is None:
            raise PluginError(
                f'{where} sitemaps: {item!r} is neither "auto" nor an absolute http(s) URL'
            )
        found[url] = None
    return tuple(found)


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The ``[audit]`` table, checked.

    ``sitemaps``: ``"auto"`` reads the sitemaps named in the robots.txt of each crawled host
    and the ``/sitemap.xml`` of each seed host; URLs name sitemaps to read as well; empty
    reads none.
    """

    slow_response_seconds: float = 1.0
    large_image_bytes: int = 500_000
    title_min_chars: int = 30
    title_max_chars: int = 60
    thin_content_words: int = 200
    max_depth: int = 3
    near_duplicate_bits: int = 4
    sitemaps: tuple[str, ...] = (AUTO_SITEMAPS,)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], config: Config) -> AuditSettings:
        """Check the ``[audit]`` table; PluginError names the key and the value."""
        where = f"{config.config_path}: [audit]" if config.config_path else "[audit]"
        known = ("slow_response_seconds", "sitemaps", *_INT_SETTINGS)
        check_setting_keys(table, known, where)
        values: dict[str, Any] = {}
        for key, default in _INT_SETTINGS.items():
            value = table.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PluginError(f"{where} {key} must be an integer >= 0, got {value!r}")
            values[key] = value
        if values["near_duplicate_bits"] > 16:
            got = values["near_duplicate_bits"]
            raise PluginError(f"{where} near_duplicate_bits must be between 0 and 16, got {got}")
        if values["title_min_chars"] > values["title_max_chars"]:
            raise PluginError(
                f"{where} title_min_chars ({values['title_min_chars']}) must not exceed "
                f"title_max_chars ({values['title_max_chars']})"
            )
        slow = table.get("slow_response_seconds", 1.0)
        if isinstance(slow, bool) or not isinstance(slow, int | float) or slow <= 0:
            raise PluginError(f"{where} slow_response_seconds must be a number > 0, got {slow!r}")
        sitemaps = _sitemaps(table.get("sitemaps", [AUTO_SITEMAPS]), where)
        return cls(slow_response_seconds=float(slow), sitemaps=sitemaps, **values)
