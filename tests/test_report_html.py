"""``report --format html``: the audit site's report loaded in headless Chromium (over the
DevTools protocol, see tests/chromium.py), checked against the crawl database; and the same
renderer on its own, with hostile text, thousands of findings, or no audit at all."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import statistics
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from selectolax.lexbor import LexborHTMLParser

from crawler.__main__ import main
from plugins.audithtml import render_html
from plugins.auditreport import AuditData
from plugins.auditrules import RULES, Finding
from plugins.auditstats import PAGE_BYTES_EDGES, RESPONSE_MS_EDGES, PageFacts, summarize
from tests.chromium import Page, open_page
from tests.conftest import CrawlResult, RunCrawl, require_program
from tests.site import Site
from tests.test_audit import SETTINGS, audit_page, build_audit_site, sarif_errors

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / ".artifacts" / "report-screenshot.png"
# Page text from a hostile site: it must show as text, never run or load anything.
HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
HOSTILE_ANCHOR = '</td><script>alert("anchor")</script>'
FILTER_STATUS = "document.getElementById('filter-status').textContent"


def write_report(db: Path, out: Path, fmt: str = "html") -> int:
    return main(["report", str(db), "--format", fmt, "-o", str(out)])


async def crawl_hostile_audit_site(site: Site, run_crawl: RunCrawl) -> CrawlResult:
    """The audit site of tests/test_audit.py, plus a second seed with hostile text."""
    build_audit_site(site)
    site.add_page(
        "/hostile", audit_page("/hostile", title=HOSTILE_TITLE, links=[("/gone", HOSTILE_ANCHOR)])
    )
    site.add_status("/gone", 404)
    return await run_crawl(
        [site.url("/"), site.url("/hostile")],
        plugins=("images", "audit"),
        plugin_settings={"audit": SETTINGS},
        retries=1,
    )


def status_classes(result: CrawlResult) -> dict[str, int]:
    classes = Counter(
        "no response" if row[0] is None else f"{row[0] // 100}xx"
        for row in result.rows("SELECT status FROM pages")
    )
    return {label: classes[label] for label in ("2xx", "3xx", "4xx", "5xx", "no response")}


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    return [sum(1 for v in values if bisect_right(edges, v) - 1 == i) for i in range(len(edges))]


def shown_ms(text: str) -> float:
    """The milliseconds a card shows ("7.4 ms", "20 ms", "1.25 s")."""
    match = re.fullmatch(r"([\d.,]+) (ms|s)", text)
    assert match, f"not a duration: {text!r}"
    value = float(match[1].replace(",", ""))
    return value * 1000 if match[2] == "s" else value


async def visible_findings(page: Page) -> list[tuple[str, str, str]]:
    """(rule, url, src_url) of each table row not hidden, in table order."""
    rows = await page.evaluate(
        "Array.from(document.querySelectorAll('#findings-table tbody tr'))"
        ".filter(r => !r.hidden)"
        ".map(r => [r.dataset.rule, r.cells[2].dataset.sort, r.cells[3].dataset.sort])"
    )
    return [tuple(row) for row in rows]


def column_keys(rows: list[list[str]]) -> list[str]:
    return [row[0] for row in rows]


async def test_html_report_in_chromium(site: Site, run_crawl: RunCrawl, tmp_path: Path) -> None:
    chromium = require_program("chromium")
    result = await crawl_hostile_audit_site(site, run_crawl)
    out = tmp_path / "report.html"
    assert write_report(result.path, out) == 0
    audit = result.rows(
        "SELECT rule, severity, url, coalesce(src_url, '') src, anchor, detail FROM audit"
    )
    assert len(audit) > 40

    async with open_page(chromium, tmp_path / "chromium") as page:
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        await page.navigate(out.as_uri())
        assert page.problems() == []  # a script blocked by the CSP would show here first
        png = await page.screenshot()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        (tmp_path / "report-screenshot.png").write_bytes(png)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(png)
        print(f"report screenshot: {SCREENSHOT}")

        # Hostile text is text: no image, no script but ours, no dialog.
        assert await page.evaluate("document.images.length") == 0
        assert await page.evaluate("document.scripts.length") == 1
        body_text = await page.evaluate("document.body.innerText")
        assert HOSTILE_TITLE in body_text
        assert HOSTILE_ANCHOR in body_text

        # Summary cards: the database's numbers.
        cards = await page.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('[data-card]')).map(c => "
            "[c.dataset.card, [c.querySelector('.card-value').textContent.trim(), "
            "c.querySelector('.card-value').dataset.value]]))"
        )
        severities = Counter(row["severity"] for row in audit)
        expected_counts = {
            "pages": len(result.pages()),
            "error": severities["error"],
            "warning": severities["warning"],
            "notice": severities["notice"],
            "broken-links": sum(row["rule"] == "broken_link" for row in audit),
        }
        assert expected_counts["broken-links"] == 6
        for key, count in expected_counts.items():
            assert cards[key][0].replace(",", "") == str(count), key
        times = [
            row[0]
            for row in result.rows(
                "SELECT elapsed_ms FROM pages WHERE status IS NOT NULL AND elapsed_ms IS NOT NULL"
            )
        ]
        for key, expected_ms in (
            ("mean-ms", statistics.fmean(times)),
            ("median-ms", statistics.median(times)),
        ):
            assert float(cards[key][1]) == pytest.approx(expected_ms)
            assert shown_ms(cards[key][0]) == pytest.approx(expected_ms, abs=0.5, rel=0.01)
        first_fetch = result.rows("SELECT min(fetched_at) FROM pages")[0][0]
        assert cards["date"][0] == first_fetch[:10]
        assert cards["seeds"] == [site.url("/"), "2"]

        # Issues by rule: each rule's count and help, as in the database.
        rule_rows = await page.evaluate(
            "Array.from(document.querySelectorAll('table.rules tbody tr')).map(r => "
            "[r.dataset.rule, r.dataset.severity, r.cells[2].textContent.trim(), "
            "r.cells[3].textContent.trim()])"
        )
        per_rule = Counter(row["rule"] for row in audit)
        assert {rule: int(count) for rule, _, count, _ in rule_rows} == per_rule
        for rule, severity, _, help_text in rule_rows:
            assert (severity, help_text) == (RULES[rule].severity, RULES[rule].help)

        # Charts: one bar per value, with the database's counts, titled for screen readers.
        charts = await page.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('svg[data-chart]')).map(s => "
            "[s.dataset.chart, {role: s.getAttribute('role'), title: s.querySelector('title')"
            ".textContent, labels: Array.from(s.querySelectorAll('rect.bar')).map(b => "
            "b.dataset.label), counts: Array.from(s.querySelectorAll('rect.bar')).map(b => "
            "Number(b.dataset.count)), shown: Array.from(s.querySelectorAll('text.count')).map("
            "t => Number(t.textContent.replace(/,/g, '')))}]))"
        )
        assert set(charts) == {
            "chart-status",
            "chart-response-time",
            "chart-depth",
            "chart-page-size",
        }
        for chart in charts.values():
            assert chart["role"] == "img" and chart["title"]
            assert chart["shown"] == chart["counts"]
        status = charts["chart-status"]
        assert dict(zip(status["labels"], status["counts"], strict=True)) == status_classes(result)
        depths = {
            row[0]: row[1]
            for row in result.rows("SELECT depth, count(*) FROM pages GROUP BY depth")
        }
        assert charts["chart-depth"]["labels"] == [str(d) for d in range(max(depths) + 1)]
        assert charts["chart-depth"]["counts"] == [depths.get(d, 0) for d in range(max(depths) + 1)]
        assert charts["chart-response-time"]["counts"] == histogram(times, RESPONSE_MS_EDGES)
        html_sizes = [
            row[0]
            for row in result.rows(
                "SELECT bytes FROM pages WHERE status BETWEEN 200 AND 299 "
                "AND content_type LIKE 'text/html%'"
            )
        ]
        assert charts["chart-page-size"]["counts"] == histogram(html_sizes, PAGE_BYTES_EDGES)

        # The findings table: every finding, linked to its pages.
        everything = sorted((row["rule"], row["url"], row["src"]) for row in audit)
        assert sorted(await visible_findings(page)) == everything
        links = await page.evaluate(
            "Array.from(document.querySelectorAll('#findings-table tbody tr')).map(r => "
            "[r.cells[2].dataset.sort, r.cells[2].querySelector('a').href, "
            "r.cells[3].querySelector('a') && r.cells[3].querySelector('a').href])"
        )
        for url, href, _ in links:
            assert href == url
        assert {src for *_, src in links} - {None} == {row["src"] for row in audit} - {""}

        # Sorting: a click on a column header orders the rows by it, a second click reverses.
        await page.click("th button[data-sort-column='2']")
        urls = [url for _, url, _ in await visible_findings(page)]
        assert urls == sorted(row["url"] for row in audit)
        await page.click("th button[data-sort-column='2']")
        urls = [url for _, url, _ in await visible_findings(page)]
        assert urls == sorted((row["url"] for row in audit), reverse=True)
        assert await page.evaluate(
            "Array.from(document.querySelectorAll('#findings-table th')).map(t => t.ariaSort)"
        ) == ["none", "none", "descending", "none", "none"]
        await page.click("th button[data-sort-column='0']")
        ranks = await page.evaluate(
            "Array.from(document.querySelectorAll('#findings-table tbody tr'))"
            ".map(r => Number(r.cells[0].dataset.sort))"
        )
        assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] == 2

        # Filtering: typing hides the rows that do not match, the selects narrow further.
        def matching(term: str, severity: str = "", rule: str = "") -> list[tuple[str, str, str]]:
            return sorted(
                (row["rule"], row["url"], row["src"])
                for row in audit
                if any(
                    term in (row[k] or "").lower()
                    for k in ("rule", "severity", "url", "src", "anchor", "detail")
                )
                and (not severity or row["severity"] == severity)
                and (not rule or row["rule"] == rule)
            )

        await page.type_text("#filter-text", "missing")
        expected = matching("missing")
        assert 0 < len(expected) < len(audit)
        await page.wait_until(f"{FILTER_STATUS}.startsWith('Showing {len(expected)} ')")
        assert sorted(await visible_findings(page)) == expected
        await page.evaluate(
            "(() => { const s = document.getElementById('filter-severity'); s.value = 'error';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        assert sorted(await visible_findings(page)) == matching("missing", "error")
        # The count of a rule in the rule table shows that rule's findings, and only them.
        await page.click("table.rules a[data-filter-rule='redirected_link']")
        assert sorted(await visible_findings(page)) == matching("", rule="redirected_link")
        assert (
            await page.evaluate("document.getElementById('filter-rule').value") == "redirected_link"
        )
        await page.type_text("#filter-text", "no-such-text-anywhere")
        await page.wait_until("!document.getElementById('filter-empty').hidden")
        assert await visible_findings(page) == []

        assert page.problems() == []
        assert [e for e in page.events if e["method"] == "Page.javascriptDialogOpening"] == []
        assert page.requested_urls() == [out.as_uri()]


# --------------------------------------------------------------------------- without a browser


def synthetic(findings: int, pages: int = 300) -> tuple[AuditData, Any]:
    """A report's data made up in memory: ``findings`` findings over every rule."""
    rules = sorted(RULES)
    found = tuple(
        Finding(
            f"https://example.com/page/{i}",
            rules[i % len(rules)],
            RULES[rules[i % len(rules)]].severity,
            f"detail {i}",
            f"https://example.com/from/{i % 7}" if i % 3 == 0 else None,
            f"anchor {i}" if i % 3 == 0 else None,
        )
        for i in range(findings)
    )
    rows = [
        PageFacts(
            200 if i % 10 else 404,
            float(i % 700),
            i % 5,
            (i * 997) % 300_000,
            "text/html; charset=utf-8",
            f"2024-05-01T10:{i % 60:02d}:00.000+00:00",
        )
        for i in range(pages)
    ]
    stats = summarize(rows, {"seeds": json.dumps(["https://example.com/"]), "scope": "host"})
    return AuditData(Path("synthetic.db"), found, tuple(f"u{i}" for i in range(pages))), stats


def test_hostile_text_is_escaped_and_cannot_run() -> None:
    data, stats = synthetic(0)
    hostile = (
        Finding(
            "javascript:alert(1)",
            "broken_link",
            "error",
            "<script>alert('detail')</script>",
            'https://example.com/"><img src=x onerror=alert(2)>',
            "</td></tr></table><iframe src=https://evil.example/>",
        ),
        Finding("https://example.com/a", "<b>rule</b>", "<i>sev</i>", "&amp; & <", None, None),
    )
    data = AuditData(data.db, hostile, data.pages)
    document = render_html(data, stats)
    tree = LexborHTMLParser(document)
    assert len(tree.css("script")) == 1 and not tree.css("img, iframe, b, i")
    # Links only to http(s): the javascript: URL is text, not a link.
    hrefs = [node.attributes.get("href") or "" for node in tree.css("a")]
    assert not [href for href in hrefs if href.lower().startswith("javascript")]
    cells = [node.text() for node in tree.css("#findings-table td")]
    assert "javascript:alert(1)" in cells
    assert "<script>alert('detail')</script>" in cells
    assert "&amp; & <" in cells
    # The policy lets in exactly the inline style and script of the report, nothing else.
    (meta,) = tree.css('meta[http-equiv="Content-Security-Policy"]')
    policy = meta.attributes["content"] or ""
    script = tree.css_first("script")
    style = tree.css_first("style")
    assert script is not None and style is not None

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert policy.startswith("default-src 'none';")
    assert f"script-src 'sha256-{digest(script.text())}'" in policy
    assert f"style-src 'sha256-{digest(style.text())}'" in policy


def test_findings_past_the_limit_are_counted_not_listed() -> None:
    data, stats = synthetic(1500)
    tree = LexborHTMLParser(render_html(data, stats, limit=1000))
    assert len(tree.css("#findings-table tbody tr")) == 1000
    note = tree.css_first("#truncated")
    assert note is not None and "first 1,000 of 1,500 findings" in note.text()
    counts = {
        row.attributes["data-rule"]: int(row.css_first("td.num").text().replace(",", ""))
        for row in tree.css("table.rules tbody tr")
    }
    assert sum(counts.values()) == 1500
    # Worst first: the rows kept are the errors before any notice.
    kept = [row.attributes["data-severity"] for row in tree.css("#findings-table tbody tr")]
    assert kept == sorted(kept, key=("error", "warning", "notice").index)
    assert LexborHTMLParser(render_html(data, stats)).css_first("#truncated") is None


async def test_thousands_of_findings_stay_responsive(tmp_path: Path) -> None:
    chromium = require_program("chromium")
    data, stats = synthetic(5000)
    out = tmp_path / "big.html"
    out.write_text(render_html(data, stats), encoding="utf-8")
    async with open_page(chromium, tmp_path / "chromium") as page:
        await page.navigate(out.as_uri())
        assert (
            await page.evaluate("document.querySelectorAll('#findings-table tbody tr').length")
            == 5000
        )
        # The work done on a click or a change, timed in the page (layout aside).
        sort_ms = await page.evaluate(
            "(() => { const t = performance.now();"
            " document.querySelector('th button[data-sort-column=\"2\"]').click();"
            " return performance.now() - t; })()"
        )
        filter_ms = await page.evaluate(
            "(() => { const s = document.getElementById('filter-severity'); s.value = 'notice';"
            " const t = performance.now(); s.dispatchEvent(new Event('change'));"
            " return performance.now() - t; })()"
        )
        notices = sum(f.severity == "notice" for f in data.findings)
        assert len(await visible_findings(page)) == notices
        await page.type_text("#filter-text", "page/42")
        await page.wait_until(
            f"{FILTER_STATUS}.startsWith('Showing ') && {FILTER_STATUS} !== "
            f"'Showing {notices:,} findings of 5,000'"
        )
        assert sorted(await visible_findings(page)) == sorted(
            (f.rule, f.url, f.src_url or "")
            for f in data.findings
            if f.severity == "notice" and "page/42" in f.url
        )
        assert page.problems() == []
    print(f"5,000 findings: sort {sort_ms:.0f} ms, filter {filter_ms:.0f} ms")
    assert sort_ms < 3000 and filter_ms < 3000


async def test_reports_of_a_crawl_without_the_audit_plugin(
    site: Site, run_crawl: RunCrawl, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_audit_site(site)
    result = await run_crawl([site.url("/")], retries=1)
    out = tmp_path / "plain.html"
    assert write_report(result.path, out) == 0
    assert "the audit plugin was not run on this crawl" in capsys.readouterr().err.lower()
    tree = LexborHTMLParser(out.read_text(encoding="utf-8"))
    notice = tree.css_first("#audit-not-run")
    assert notice is not None and "--plugin audit" in notice.text()
    assert tree.css_first("#findings-table") is None and tree.css_first("table.rules") is None
    cards = {node.attributes["data-card"] for node in tree.css("[data-card]")}
    assert cards == {"pages", "mean-ms", "median-ms", "date", "seeds"}
    pages_card = tree.css_first("[data-card=pages] .card-value")
    assert pages_card is not None and pages_card.text() == str(len(result.pages()))
    # The crawl is still charted.
    status = [
        (bar.attributes["data-label"], int(bar.attributes["data-count"] or ""))
        for bar in tree.css("svg[data-chart=chart-status] rect.bar")
    ]
    assert dict(status) == status_classes(result)
    assert len(tree.css("svg[data-chart]")) == 4
    # The other formats say so too, rather than "no findings".
    assert write_report(result.path, tmp_path / "plain.md", "md") == 0
    assert "audit plugin was not run" in (tmp_path / "plain.md").read_text()
    assert write_report(result.path, tmp_path / "plain.json", "json") == 0
    assert json.loads((tmp_path / "plain.json").read_text())["audited"] is False
    assert write_report(result.path, tmp_path / "plain.sarif", "sarif") == 0
    sarif = json.loads((tmp_path / "plain.sarif").read_text())
    assert sarif["runs"][0]["results"] == [] and sarif_errors(sarif) == []


async def test_a_clean_audit_says_every_rule_passed(
    site: Site, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    site.add_page("/", audit_page("/", links=[("/a", "a")]))
    site.add_page("/a", audit_page("/a"))
    result = await run_crawl([site.url("/")], plugins=("audit",))
    out = tmp_path / "clean.html"
    assert write_report(result.path, out) == 0
    tree = LexborHTMLParser(out.read_text(encoding="utf-8"))
    clean = tree.css_first("#no-findings")
    # /, /a and /sitemap.xml, which the audit asks for (a 404 there is no fault)
    assert clean is not None and "every rule passed on 3 URLs" in clean.text()
    assert tree.css_first("#findings-table") is None
    errors = tree.css_first("[data-card=error] .card-value")
    assert errors is not None and errors.text() == "0"


async def test_report_to_a_path_that_cannot_be_written(
    site: Site, run_crawl: RunCrawl, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add_page("/", audit_page("/"))
    result = await run_crawl([site.url("/")], plugins=("audit",))
    for target in (tmp_path / "no-such-dir" / "r.html", tmp_path):
        assert write_report(result.path, target) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: cannot write {target}: "), err
