"""``python -m crawler report CRAWL_DB``: the audit's findings as JSON, CSV, Markdown, SARIF,
JUnit XML or HTML, for people, pull requests and CI.

A crawl made without ``--plugin audit`` has no findings, which is not the same as a clean
site: every format is still written, a note on stderr says so, and the formats made for
people (Markdown, JSON, HTML) say so too. The HTML report lives in :mod:`plugins.audithtml`.

Exit codes: 0 written; 2 a usage problem or a database that cannot be read; 3 (with
``--fail-on error|warning``) findings of that severity or worse exist. The report is written
either way, so that CI can publish it and still fail the build.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import io
import json
import sqlite3
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

from plugins.auditrules import RULES, SEVERITIES, Finding, Rule

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_USAGE",
    "FORMATS",
    "REPORT_FORMATS",
    "ArgumentParser",
    "AuditData",
    "ReportError",
    "add_fail_on",
    "fails",
    "load_audit",
    "render",
    "report_main",
    "rule_of",
    "write_output",
]

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
EXIT_FINDINGS: Final = 3  # --fail-on: findings at or above the severity exist
TOOL_NAME: Final = "crawler-audit"
TOOL_URI: Final = "https://github.com/crawler/crawler"
_RANK: Final[dict[str, int]] = {severity: rank for rank, severity in enumerate(SEVERITIES)}
_SARIF_LEVEL: Final = {"error": "error", "warning": "warning", "notice": "note"}
SARIF_SCHEMA: Final = "https://json.schemastore.org/sarif-2.1.0.json"
MARKDOWN_LIMIT: Final = 20  # findings listed per rule in Markdown (a PR comment stays short)
NOT_AUDITED: Final = "The audit plugin was not run on this crawl: no findings to report"


class ReportError(Exception):
    """The database cannot be reported on; the message says why."""


@dataclass(frozen=True, slots=True)
class AuditData:
    """What a report shows: the findings, worst first, and every URL the crawl requested.
    ``audited`` is False for a crawl made without the audit plugin."""

    db: Path
    findings: tuple[Finding, ...]
    pages: tuple[str, ...]
    audited: bool = True

    def counts(self) -> Counter[str]:
        return Counter(finding.severity for finding in self.findings)


def _sort_key(finding: Finding) -> tuple[int, str, str, str]:
    return (_RANK.get(finding.severity, 99), finding.rule, finding.url, finding.src_url or "")


def load_audit(path: Path) -> AuditData:
    """Read the audit of a crawl database (read-only). ReportError says what is wrong."""
    if not path.is_file():
        raise ReportError(f"{path} does not exist")
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "pages" not in tables:
                raise ReportError(f"{path} is not a crawl database (no pages table)")
            findings: list[Finding] = []
            if "audit" in tables:
                columns = {row[1] for row in db.execute("PRAGMA table_info(audit)")}
                extra = "src_url, anchor" if {"src_url", "anchor"} <= columns else "NULL, NULL"
                sql = f"SELECT url, rule, severity, detail, {extra} FROM audit"
                findings = [Finding(*row) for row in db.execute(sql)]
            # The crawl always creates ``audit``; the plugin adds its own tables.
            audited = bool(findings) or any(name.startswith("audit_") for name in tables)
            pages = tuple(row[0] for row in db.execute("SELECT url FROM pages ORDER BY url"))
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc
    return AuditData(path, tuple(sorted(findings, key=_sort_key)), pages, audited)


def fails(data: AuditData, fail_on: str | None) -> bool:
    """True when a finding is at least as severe as ``fail_on`` (error < warning < notice)."""
    if fail_on is None:
        return False
    return any(_RANK.get(f.severity, 99) <= _RANK[fail_on] for f in data.findings)


def fail_exit(data: AuditData, fail_on: str | None, what: str) -> int:
    """EXIT_FINDINGS (saying why on stderr) when ``data`` fails ``--fail-on``, else EXIT_OK."""
    if not fails(data, fail_on):
        return EXIT_OK
    counts = data.counts()
    shown = ", ".join(f"{counts[s]} {s}(s)" for s in SEVERITIES if counts.get(s))
    print(f"{what}: {shown}; failing on {fail_on}", file=sys.stderr)
    return EXIT_FINDINGS


def rule_of(rule_id: str) -> Rule:
    """The rule of that id; a rule this version does not know (an older or newer crawl's)
    gets a notice with its id for title and help."""
    return RULES.get(rule_id) or Rule(rule_id, "notice", rule_id, rule_id)


def _where(finding: Finding) -> str:
    """The page to fix: the source of a link finding, else the URL itself."""
    return finding.src_url or finding.url


def _fingerprint(finding: Finding) -> str:
    key = "\0".join((finding.rule, finding.url, finding.src_url or ""))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- formats


def render_json(data: AuditData) -> str:
    counts = data.counts()
    document = {
        "database": str(data.db),
        "audited": data.audited,
        "pages": len(data.pages),
        "summary": {severity: counts.get(severity, 0) for severity in SEVERITIES},
        "rules": {
            rule.id: {"severity": rule.severity, "title": rule.title, "help": rule.help}
            for rule in RULES.values()
        },
        "findings": [finding._asdict() for finding in data.findings],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_csv(data: AuditData) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["severity", "rule", "url", "src_url", "anchor", "detail"])
    for f in data.findings:
        writer.writerow([f.severity, f.rule, f.url, f.src_url or "", f.anchor or "", f.detail])
    return out.getvalue()


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell (no HTML tags, no column breaks)."""
    text = html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\n", " ")


def render_markdown(data: AuditData) -> str:
    counts = data.counts()
    lines = [
        "## Site audit",
        "",
        f"{len(data.pages):,} URLs crawled: "
        + ", ".join(f"**{counts.get(s, 0):,}** {s}s" for s in SEVERITIES)
        + ".",
        "",
    ]
    if not data.audited:
        return "\n".join([*lines, NOT_AUDITED + " (`--plugin audit`).", ""])
    if not data.findings:
        return "\n".join([*lines, "No findings.", ""])
    by_rule: dict[str, list[Finding]] = {}
    for finding in data.findings:
        by_rule.setdefault(finding.rule, []).append(finding)
    lines += ["| severity | rule | findings | what to do |", "|---|---|---:|---|"]
    for rule_id, found in by_rule.items():
        rule = rule_of(rule_id)
        lines.append(f"| {found[0].severity} | `{rule_id}` | {len(found)} | {_md(rule.help)} |")
    for rule_id, found in by_rule.items():
        lines += ["", f"<details><summary><code>{rule_id}</code>: {len(found)}</summary>", ""]
        lines += ["| URL | linked from | detail |", "|---|---|---|"]
        for f in found[:MARKDOWN_LIMIT]:
            source = _md(f.src_url or "")
            if f.anchor:
                source += f" ({_md(f.anchor)})"
            lines.append(f"| {_md(f.url)} | {source} | {_md(f.detail)} |")
        if len(found) > MARKDOWN_LIMIT:
            lines.append(f"| ... {len(found) - MARKDOWN_LIMIT} more | | |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def render_sarif(data: AuditData) -> str:
    used = sorted({f.rule for f in data.findings} | set(RULES))
    index = {rule_id: i for i, rule_id in enumerate(used)}
    rules = []
    for rule_id in used:
        rule = rule_of(rule_id)
        rules.append(
            {
                "id": rule_id,
                "name": rule_id,
                "shortDescription": {"text": rule.title},
                "fullDescription": {"text": rule.help},
                "help": {"text": rule.help, "markdown": f"**{rule.title}**\n\n{rule.help}"},
                "defaultConfiguration": {"level": _SARIF_LEVEL.get(rule.severity, "note")},
                "properties": {"tags": ["site-audit"]},
            }
        )
    results: list[dict[str, Any]] = []
    for f in data.findings:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": _SARIF_LEVEL.get(f.severity, "note"),
            "message": {"text": f"{f.url}: {f.detail}" if f.src_url else f.detail},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _where(f)}}}],
            "partialFingerprints": {"auditFinding/v1": _fingerprint(f)},
        }
        if f.src_url:
            result["relatedLocations"] = [
                {
                    "id": 1,
                    "physicalLocation": {"artifactLocation": {"uri": f.url}},
                    "message": {"text": f.anchor or "link target"},
                }
            ]
        results.append(result)
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "informationUri": TOOL_URI,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_junit(data: AuditData) -> str:
    """One test case per URL (link findings on the page with the link); errors fail it."""
    by_page: dict[str, list[Finding]] = {url: [] for url in data.pages}
    for finding in data.findings:
        by_page.setdefault(_where(finding), []).append(finding)
    failures = sum(any(f.severity == "error" for f in found) for found in by_page.values())
    suites = ET.Element("testsuites", name="site audit", tests=str(len(by_page)))
    suites.set("failures", str(failures))
    suite = ET.SubElement(suites, "testsuite", name="site audit", tests=str(len(by_page)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    for url in sorted(by_page):
        found = by_page[url]
        case = ET.SubElement(suite, "testcase", classname="site audit", name=url)
        errors = [f for f in found if f.severity == "error"]
        if errors:
            failure = ET.SubElement(
                case,
                "failure",
                type=",".join(sorted({f.rule for f in errors})),
                message=f"{len(errors)} error(s): " + "; ".join(f.rule for f in errors),
            )
            failure.text = "\n".join(_line(f) for f in errors)
        others = [f for f in found if f.severity != "error"]
        if others:
            ET.SubElement(case, "system-out").text = "\n".join(_line(f) for f in others)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _line(f: Finding) -> str:
    target = f" -> {f.url}" if f.src_url else ""
    anchor = f" ({f.anchor!r})" if f.anchor else ""
    return f"[{f.severity}] {f.rule}{target}{anchor}: {f.detail}"


FORMATS: Final[dict[str, Callable[[AuditData], str]]] = {
    "json": render_json,
    "csv": render_csv,
    "md": render_markdown,
    "sarif": render_sarif,
    "junit": render_junit,
}


# Every --format: those above, made from the findings alone, and html, which also charts the crawl.
REPORT_FORMATS: Final = tuple(sorted([*FORMATS, "html"]))


def render(data: AuditData, fmt: str) -> str:
    """The report in ``fmt`` (one of REPORT_FORMATS); ``html`` also reads the crawl's
    statistics from ``data.db``."""
    if fmt != "html":
        return FORMATS[fmt](data)
    # Imported here: plugins.audithtml imports this module, and only html needs Jinja2.
    from plugins.audithtml import render_html
    from plugins.auditstats import load_crawl_stats

    try:
        stats = load_crawl_stats(data.db)
    except sqlite3.Error as exc:
        raise ReportError(f"cannot read {data.db}: {exc}") from exc
    return render_html(data, stats)


# --------------------------------------------------------------------------- command


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises ReportError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise ReportError(message)


def write_output(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write {output}: {exc.strerror or exc}") from exc


def add_fail_on(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning"),
        default=None,
        help=f"exit {EXIT_FINDINGS} when {what} of this severity or worse exist",
    )


def report_main(argv: Sequence[str]) -> int:
    """The ``report`` command; exit 0, 2 (usage, unreadable database) or 3 (``--fail-on``)."""
    parser = ArgumentParser(
        prog="python -m crawler report",
        description="Write the audit findings of a crawl database (made with --plugin audit).",
    )
    parser.add_argument("db", metavar="CRAWL_DB", help="the crawl database")
    parser.add_argument("--format", choices=REPORT_FORMATS, default="md", help="default: md")
    parser.add_argument(
        "-o", "--output", default="-", metavar="PATH", help="file to write (default: stdout)"
    )
    add_fail_on(parser, "findings")
    try:
        args = parser.parse_args(list(argv))
        data = load_audit(Path(args.db))
        if not data.audited:
            print(
                f"note: {args.db}: the audit plugin was not run on this crawl, so there are no "
                "findings (crawl with --plugin audit)",
                file=sys.stderr,
            )
        write_output(render(data, args.format), args.output)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return fail_exit(data, args.fail_on, "audit")
