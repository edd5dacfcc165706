"""``report --format html``: one self-contained HTML file a person reads in a browser.

Summary cards, the issues by rule with each rule's help, four charts of the crawl (inline SVG
laid out by :mod:`plugins.auditcharts`), and every finding in a table that a small inline
script sorts and filters. Nothing is loaded from the network: the CSS and the script are
inlined, and a Content-Security-Policy (``default-src 'none'``, the style and the script
allowed by their hashes) keeps it that way, so a page title or URL from a hostile site can
neither run script nor fetch anything even if it got past the template's autoescaping.

The templates (``plugins/templates``) are package data; :func:`render_html` is pure.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Final
from urllib.parse import urlsplit

import jinja2

from plugins.auditcharts import BarChart, bar_chart
from plugins.auditreport import AuditData, rule_of
from plugins.auditrules import RULES, SEVERITIES
from plugins.auditstats import (
    DEPTH_BARS,
    PAGE_BYTES_EDGES,
    RESPONSE_MS_EDGES,
    STATUS_CLASSES,
    CrawlStats,
)

__all__ = ["HTML_FINDINGS_LIMIT", "Card", "RuleRow", "format_ms", "render_html"]

# Rows of the findings table, worst first. Past this a browser gets slow and the file huge;
# the cards and the rule table still count every finding, and csv/json list them all.
HTML_FINDINGS_LIMIT: Final = 20_000
DASH: Final = "\N{EN DASH}"  # ranges in chart labels; a value that is not there
_STATUS_TONES: Final = {
    "2xx": "ok",
    "3xx": "redirect",
    "4xx": "client",
    "5xx": "server",
    "other": "none",
    "no response": "none",
}


@dataclass(frozen=True, slots=True)
class Card:
    key: str
    label: str
    value: str
    raw: float | int | str | None = None  # the number behind ``value``, for tools and tests
    note: str = ""
    tone: str = "plain"


@dataclass(frozen=True, slots=True)
class RuleRow:
    id: str
    title: str
    severity: str
    count: int
    help: str


def format_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def _format_time(iso: str | None) -> tuple[str, str]:
    """(date, time) of a stored ISO 8601 timestamp, as written; ("", "") when unreadable."""
    if not iso:
        return "", ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso, ""
    offset = moment.utcoffset()
    zone = "" if offset is None else "UTC" if not offset else f"{moment:%z}"
    return moment.strftime("%Y-%m-%d"), f"{moment:%H:%M:%S} {zone}".strip()


def _duration(first: str | None, last: str | None) -> str:
    try:
        seconds = datetime.fromisoformat(last or "") - datetime.fromisoformat(first or "")
    except (ValueError, TypeError):  # missing, unreadable, or naive against aware
        return ""
    total = seconds.total_seconds()
    if total < 60:
        return f"{total:.1f} s"
    minutes, secs = divmod(round(total), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _cards(data: AuditData, stats: CrawlStats) -> list[Card]:
    ok = stats.status_classes.get("2xx", 0)
    cards = [
        Card(
            "pages",
            "Pages crawled",
            f"{stats.urls:,}",
            stats.urls,
            f"{ok:,} answered 2xx, {_plural(stats.html_pages, 'HTML page')}",
        )
    ]
    if data.audited:
        counts = data.counts()
        for severity in SEVERITIES:
            count = counts.get(severity, 0)
            rules = len({f.rule for f in data.findings if f.severity == severity})
            note = f"from {_plural(rules, 'rule')}" if count else "none found"
            cards.append(
                Card(severity, severity.title() + "s", f"{count:,}", count, note, severity)
            )
        broken = [f for f in data.findings if f.rule == "broken_link"]
        targets = len({f.url for f in broken})
        cards.append(
            Card(
                "broken-links",
                "Broken links",
                f"{len(broken):,}",
                len(broken),
                f"to {_plural(targets, 'URL')}" if broken else "none found",
                "error" if broken else "plain",
            )
        )
    responses = f"over {_plural(stats.responses, 'response')}"
    for key, label, value in (
        ("mean-ms", "Average response", stats.mean_ms),
        ("median-ms", "Median response", stats.median_ms),
    ):
        shown = format_ms(value) if value is not None else DASH
        note = responses if value is not None else "no answer"
        cards.append(Card(key, label, shown, value, note))
    date, start = _format_time(stats.first_fetch)
    took = _duration(stats.first_fetch, stats.last_fetch)
    cards.append(
        Card(
            "date",
            "Crawl date",
            date or DASH,
            stats.first_fetch,
            f"started {start}, took {took}" if start and took else start,
            "text",
        )
    )
    if stats.seeds:
        more = len(stats.seeds) - 1
        note = f"and {_plural(more, 'more seed')}" if more else ""
        if stats.scope:
            note = f"{note}, scope {stats.scope}" if note else f"scope {stats.scope}"
        cards.append(Card("seeds", "Seeds", stats.seeds[0], len(stats.seeds), note, "text wide"))
    return cards


def _rule_rows(data: AuditData) -> tuple[list[RuleRow], list[RuleRow]]:
    """(rules with findings, worst and most frequent first; rules that found nothing)."""
    counts = Counter(f.rule for f in data.findings)
    severity_of = {f.rule: f.severity for f in data.findings}
    rank: dict[str, int] = {severity: i for i, severity in enumerate(SEVERITIES)}
    found: list[RuleRow] = []
    passed: list[RuleRow] = []
    for rule_id in sorted(set(RULES) | set(counts)):
        rule = rule_of(rule_id)
        row = RuleRow(
            rule_id, rule.title, severity_of.get(rule_id, rule.severity), counts[rule_id], rule.help
        )
        (found if row.count else passed).append(row)
    found.sort(key=lambda r: (rank.get(r.severity, 99), -r.count, r.id))
    return found, passed


def _charts(stats: CrawlStats) -> list[BarChart]:
    def edge_labels(edges: Sequence[float], unit: float, big: str) -> list[str]:
        def short(value: float) -> str:
            value /= unit
            return f"{value / 1000:g}{big}" if value >= 1000 else f"{value:g}"

        labels = [f"<{short(edges[1])}"]
        labels += [f"{short(lo)}{DASH}{short(hi)}" for lo, hi in itertools.pairwise(edges[1:])]
        return [*labels, f"≥{short(edges[-1])}"]

    # "other" (1xx, or a status outside 100-599) only when a server sent one.
    classes = [k for k in STATUS_CLASSES if k != "other" or stats.status_classes.get(k)]
    statuses = bar_chart(
        "chart-status",
        "Responses by status class",
        classes,
        [stats.status_classes.get(k, 0) for k in classes],
        x_title="Status class",
        y_title="URLs",
        tones=[_STATUS_TONES[k] for k in classes],
    )
    times = bar_chart(
        "chart-response-time",
        "Response times",
        edge_labels(RESPONSE_MS_EDGES, 1, "k"),
        list(stats.response_ms_bins),
        x_title="Response time (ms)",
        y_title="Responses",
    )
    depth_labels = [str(depth) for depth in range(len(stats.depths))]
    if len(stats.depths) == DEPTH_BARS:
        depth_labels[-1] = f"{DEPTH_BARS - 1}+"
    depths = bar_chart(
        "chart-depth",
        "URLs by depth",
        depth_labels,
        list(stats.depths),
        x_title="Depth (links from a seed)",
        y_title="URLs",
    )
    sizes = bar_chart(
        "chart-page-size",
        "HTML page sizes",
        edge_labels(PAGE_BYTES_EDGES, 1000, "k"),
        list(stats.page_bytes_bins),
        x_title="Page size (kB)",
        y_title="Pages",
    )
    return [statuses, times, depths, sizes]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _home_origin(seeds: Sequence[str]) -> str | None:
    """The one origin (scheme://host:port) of every seed, if they share one."""
    origins = {_origin(seed) for seed in seeds}
    return origins.pop() if len(origins) == 1 else None


def _shown_url(url: str, home: str | None) -> str:
    """``url`` as the findings table shows it: the path alone on the crawl's own origin."""
    if home and url.startswith(home + "/"):
        return url[len(home) :]
    return url


def _http_href(url: str | None) -> str | None:
    """``url`` when a browser may follow it (http or https), else None: never javascript:."""
    if url and urlsplit(url.strip()).scheme.lower() in ("http", "https"):
        return url
    return None


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("plugins", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["http_href"] = _http_href
    env.filters["host"] = _host
    env.filters["shown_url"] = _shown_url
    return env


def _asset(name: str) -> str:
    env = _environment()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    return source


def render_html(data: AuditData, stats: CrawlStats, limit: int = HTML_FINDINGS_LIMIT) -> str:
    """The report as one HTML document (pure: the same data gives the same bytes)."""
    css, script = _asset("report.css"), _asset("report.js")
    csp = (
        f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(script)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    found, passed = _rule_rows(data)
    rank: dict[str, int] = {severity: i for i, severity in enumerate(SEVERITIES)}
    worst_first = sorted(data.findings, key=lambda f: rank.get(f.severity, len(rank)))
    hosts = list(dict.fromkeys(_host(seed) for seed in stats.seeds))
    crawl_date, _ = _format_time(stats.first_fetch)
    template = _environment().get_template("report.html.j2")
    return template.render(
        csp=csp,
        css=css,
        script=script,
        database=data.db.name,
        hosts=hosts,
        home=_home_origin(stats.seeds),
        crawl_date=crawl_date,
        stats=stats,
        audited=data.audited,
        cards=_cards(data, stats),
        rules_found=found,
        rules_passed=passed,
        charts=_charts(stats),
        findings=worst_first[:limit],
        total_findings=len(data.findings),
        rank=rank,
        severities=SEVERITIES,
    )
