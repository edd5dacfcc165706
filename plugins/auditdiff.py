"""``python -m crawler diff OLD_DB NEW_DB``: what changed in the audit between two crawls.

A finding is identified by its rule, its URL and (for link rules) the page with the link:

- new: in the new crawl only;
- fixed: in the old crawl only;
- changed: in both, with another severity or detail (a 404 that became a 500, say).

Exit codes as for ``report``: 0, 2 (usage, unreadable database), 3 with ``--fail-on`` when new
or changed findings of that severity or worse exist.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from plugins.auditreport import (
    EXIT_USAGE,
    ArgumentParser,
    AuditData,
    ReportError,
    add_fail_on,
    fail_exit,
    load_audit,
    write_output,
)
from plugins.auditrules import Finding

__all__ = ["AuditDiff", "diff_audits", "diff_main", "render_diff"]

Key = tuple[str, str, str]
DIFF_FORMATS: Final = ("text", "json")


def _key(finding: Finding) -> Key:
    return (finding.rule, finding.url, finding.src_url or "")


@dataclass(frozen=True, slots=True)
class AuditDiff:
    new: tuple[Finding, ...]
    fixed: tuple[Finding, ...]
    changed: tuple[tuple[Finding, Finding], ...]  # (old, new)


def diff_audits(old: AuditData, new: AuditData) -> AuditDiff:
    before = {_key(f): f for f in old.findings}
    after = {_key(f): f for f in new.findings}
    changed = tuple(
        (before[key], finding)
        for key, finding in after.items()
        if key in before
        and (before[key].severity, before[key].detail) != (finding.severity, finding.detail)
    )
    return AuditDiff(
        new=tuple(f for key, f in after.items() if key not in before),
        fixed=tuple(f for key, f in before.items() if key not in after),
        changed=changed,
    )


def _line(f: Finding) -> str:
    source = f" (linked from {f.src_url})" if f.src_url else ""
    return f"  [{f.severity}] {f.rule} {f.url}{source}: {f.detail}"


def render_diff(diff: AuditDiff, fmt: str) -> str:
    if fmt == "json":
        document = {
            "new": [f._asdict() for f in diff.new],
            "fixed": [f._asdict() for f in diff.fixed],
            "changed": [{"old": o._asdict(), "new": n._asdict()} for o, n in diff.changed],
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    lines = [f"{len(diff.new)} new, {len(diff.fixed)} fixed, {len(diff.changed)} changed"]
    for title, found in (("new", diff.new), ("fixed", diff.fixed)):
        if found:
            lines += ["", f"{title}:", *map(_line, found)]
    if diff.changed:
        lines += ["", "changed:"]
        for old, new in diff.changed:
            lines += [_line(old).replace("  [", "- [", 1), _line(new).replace("  [", "+ [", 1)]
    return "\n".join(lines) + "\n"


def diff_main(argv: Sequence[str]) -> int:
    """The ``diff`` command; exit 0, 2 (usage, unreadable database) or 3 (``--fail-on``)."""
    parser = ArgumentParser(
        prog="python -m crawler diff",
        description="New, fixed and changed audit findings between two crawl databases.",
    )
    parser.add_argument("old", metavar="OLD_DB", help="the earlier crawl database")
    parser.add_argument("new", metavar="NEW_DB", help="the later crawl database")
    parser.add_argument("--format", choices=DIFF_FORMATS, default="text", help="default: text")
    parser.add_argument(
        "-o", "--output", default="-", metavar="PATH", help="file to write (default: stdout)"
    )
    add_fail_on(parser, "new or changed findings")
    try:
        args = parser.parse_args(list(argv))
        old, new = load_audit(Path(args.old)), load_audit(Path(args.new))
        diff = diff_audits(old, new)
        write_output(render_diff(diff, args.format), args.output)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    worse = AuditData(new.db, diff.new + tuple(n for _, n in diff.changed), ())
    return fail_exit(worse, args.fail_on, "audit diff: new or changed")
