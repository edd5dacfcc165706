"""The audit's whole-crawl rules: they need every page, so they run at the end, over SQL.

Links (broken, blocked, redirected, to a missing ``#fragment``), redirects (chains, loops),
server errors, duplicates (titles, descriptions, identical bytes, near-identical text by
SimHash), canonicals, and sitemaps (what they answered, what they list, orphan pages). Pure
functions of an open database: :func:`site_findings`.

Which pages count as duplicates: indexable HTML pages only (2xx, no noindex, no canonical
pointing elsewhere), since a noindex page or one that names another as canonical is meant to
stand aside.
"""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from typing import Final

from crawler.parse import FOLLOW_TAGS, MAX_IDS
from crawler.storage import DONE
from crawler.urls import fingerprint
from plugins.auditrules import AuditSettings, Finding, finding
from plugins.audittext import hamming

__all__ = ["SITE_RULES", "site_findings"]

SITE_RULES: Final = (
    "broken_link",
    "broken_image",
    "blocked_link",
    "broken_fragment",
    "redirected_link",
    "redirect_chain",
    "redirect_loop",
    "server_error",
    "duplicate_title",
    "duplicate_meta_description",
    "duplicate_content",
    "near_duplicate_content",
    "canonical_mismatch",
    "canonical_error",
    "hreflang_error",
    "sitemap_error",
    "orphan_page",
)
BLOCKED_STATUSES: Final = (401, 403, 429)
NEAR_DUPLICATE_MIN_WORDS: Final = 50  # fewer words: thin_content says enough
_SHOWN: Final = 3  # other URLs named in a duplicate finding

# Each link to a URL that did not answer 2xx, with the answer at the end of its redirects.
_LINK_TARGETS_SQL: Final = """
SELECT l.src_url, l.dst_url, l.tag, a.anchor, p.status, p.error, p.error_kind, p.final_url,
       f.status, f.error, f.error_kind, i.url IS NOT NULL
FROM links AS l
JOIN pages AS p ON p.url = l.dst_url
LEFT JOIN pages AS f ON p.status BETWEEN 300 AND 399 AND f.url = p.final_url
LEFT JOIN images AS i ON i.url = l.dst_url
LEFT JOIN audit_anchors AS a ON a.dst_url = l.dst_url AND a.src_url = l.src_url
WHERE p.status IS NULL OR p.status NOT BETWEEN 200 AND 299
"""
# Links to URLs that robots.txt kept the crawler from: done in the frontier, no pages row.
_ROBOTS_BLOCKED_SQL: Final = """
SELECT l.src_url, l.dst_url, a.anchor
FROM frontier AS fr
JOIN links AS l ON l.dst_url = fr.url
LEFT JOIN audit_anchors AS a ON a.dst_url = l.dst_url AND a.src_url = l.src_url
WHERE fr.state = 1 AND NOT EXISTS (SELECT 1 FROM pages AS p WHERE p.url = fr.url)
"""
_INDEXABLE: Final = """
FROM audit_pages AS ap JOIN pages AS p ON p.url = ap.url
WHERE coalesce(p.noindex, 0) = 0 AND (ap.canonical IS NULL OR ap.canonical = ap.url)
"""


def _is_loop(error: str | None, kind: str | None) -> bool:
    return kind == "redirect" and (error or "").startswith("redirect loop")


def _answer(status: int | None, error: str | None) -> str:
    return f"HTTP {status}" if status is not None else (error or "no answer")


def _link_findings(db: sqlite3.Connection) -> Iterator[Finding]:
    for row in db.execute(_LINK_TARGETS_SQL):
        src, dst, tag, anchor, status, error, kind, final_url, f_status, f_error, f_kind = row[:11]
        is_image = bool(row[11])
        redirected = status is not None and 300 <= status < 400
        if redirected and tag in FOLLOW_TAGS:
            yield finding(
                dst,
                "redirected_link",
                f"redirects to {final_url}: link to that URL instead",
                src,
                anchor,
            )
        if redirected:
            status, error, kind = f_status, f_error, f_kind
            if status is None and error is None:
                continue  # the chain left the crawl (off-scope) or was not followed
        if kind == "skipped":
            continue  # the images plugin stopped the download on purpose
        if status is not None and (status < 400 or status in BLOCKED_STATUSES):
            if status in BLOCKED_STATUSES and tag in FOLLOW_TAGS:
                yield finding(
                    dst,
                    "blocked_link",
                    f"answers HTTP {status} to the crawler: check that it is meant to be "
                    "closed, or link elsewhere",
                    src,
                    anchor,
                )
            continue
        answer = _answer(status, error)
        if tag in FOLLOW_TAGS:
            yield finding(
                dst,
                "broken_link",
                f"{answer}: fix or remove the link on {src}",
                src,
                anchor,
            )
        elif is_image:
            yield finding(
                dst,
                "broken_image",
                f"{answer}: fix the <{tag}> on {src} or restore the image",
                src,
                anchor,
            )


def _robots_findings(db: sqlite3.Connection) -> Iterator[Finding]:
    for src, dst, anchor in db.execute(_ROBOTS_BLOCKED_SQL):
        yield finding(
            dst,
            "blocked_link",
            "robots.txt disallows this URL: nothing was fetched; check that it is meant to be "
            "closed to crawlers",
            src,
            anchor,
        )


def _redirect_findings(db: sqlite3.Connection) -> Iterator[Finding]:
    for url, error in db.execute(
        "SELECT url, error FROM pages WHERE error_kind = 'redirect' AND error LIKE 'redirect loop%'"
    ):
        yield finding(url, "redirect_loop", f"{error}: make the chain end at a page")
    chains = db.execute(
        """
        SELECT r.url, group_concat(r.location, ' -> ') FROM (
            SELECT url, location FROM redirects ORDER BY url, hop
        ) AS r
        JOIN pages AS p ON p.url = r.url
        WHERE NOT (p.error_kind IS 'redirect' AND p.error LIKE 'redirect loop%')
        GROUP BY r.url HAVING count(*) > 1
        """
    )
    for url, path in chains:
        hops = path.split(" -> ")
        yield finding(
            url,
            "redirect_chain",
            f"{len(hops)} hops: {url} -> {path}; redirect straight to {hops[-1]}",
        )
    for url, status in db.execute("SELECT url, status FROM pages WHERE status >= 500"):
        yield finding(url, "server_error", f"HTTP {status}: see the server's log for this URL")


def _duplicates(db: sqlite3.Connection, column: str, rule: str, what: str) -> Iterator[Finding]:
    sql = (
        f"SELECT {column}, group_concat(ap.url, char(10)) {_INDEXABLE} "
        f"AND coalesce({column}, '') != '' GROUP BY {column} HAVING count(*) > 1"
    )
    for _, joined in db.execute(sql):
        urls = sorted(joined.split("\n"))
        for url in urls:
            others = [other for other in urls if other != url]
            shown = ", ".join(others[:_SHOWN]) + (" ..." if len(others) > _SHOWN else "")
            yield finding(
                url,
                rule,
                f"same {what} as {len(others)} other page(s): {shown}; make it unique",
            )


def _near_duplicates(db: sqlite3.Connection, bits: int) -> Iterator[Finding]:
    rows = db.execute(
        f"SELECT ap.url, ap.simhash, p.content_hash {_INDEXABLE} "
        "AND ap.simhash IS NOT NULL AND ap.word_count >= ?",
        (NEAR_DUPLICATE_MIN_WORDS,),
    ).fetchall()
    # Pigeonhole: hashes within `bits` differences agree on at least one of bits + 1 bands.
    bands = bits + 1
    width = 64 // bands
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, (_, value, _) in enumerate(rows):
        unsigned = value & ((1 << 64) - 1)
        for band in range(bands):
            buckets[(band, unsigned >> (band * width) & ((1 << width) - 1))].append(index)
    near: dict[int, dict[int, int]] = defaultdict(dict)
    for members in buckets.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if b in near.get(a, ()) or rows[a][2] == rows[b][2]:
                    continue  # known, or identical bytes (duplicate_content says so)
                distance = hamming(rows[a][1], rows[b][1])
                if distance <= bits:
                    near[a][b] = near[b][a] = distance
    for index in sorted(near, key=lambda i: rows[i][0]):
        others = sorted(near[index].items(), key=lambda item: (item[1], rows[item[0]][0]))
        shown = ", ".join(f"{rows[o][0]} ({d} bits)" for o, d in others[:_SHOWN])
        more = " ..." if len(others) > _SHOWN else ""
        yield finding(
            rows[index][0],
            "near_duplicate_content",
            f"text nearly the same as {len(others)} other page(s): {shown}{more}; merge them "
            "or make each one distinct",
        )


def _canonical_findings(db: sqlite3.Connection) -> Iterator[Finding]:
    rows = db.execute(
        """
        SELECT ap.url, ap.canonical, c.url IS NOT NULL, c.status, c.error, c.final_url
        FROM audit_pages AS ap LEFT JOIN pages AS c ON c.url = ap.canonical
        WHERE ap.canonical IS NOT NULL
        """
    )
    for url, canonical, crawled, status, error, final_url in rows:
        if crawled and status != 200:
            answer = _answer(status, error)
            if status is not None and 300 <= status < 400:
                answer += f" to {final_url}"
            yield finding(
                url,
                "canonical_error",
                f"canonical {canonical} answers {answer}: point it at a URL that answers 200",
            )
        elif canonical != url:
            yield finding(
                url,
                "canonical_mismatch",
                f"canonical is {canonical}: search engines index that URL instead of this one",
            )


# BCP 47 as hreflang uses it: language, optional script, optional region; or x-default.
_HREFLANG_RE: Final = re.compile(
    r"x-default|[a-z]{2,3}(?:-[a-z]{4})?(?:-(?:[a-z]{2}|[0-9]{3}))?", re.IGNORECASE
)


def _hreflang_findings(db: sqlite3.Connection) -> Iterator[Finding]:
    rows = db.execute(
        """
        SELECT h.src_url, h.lang, h.dst_url, p.url IS NOT NULL, p.status, p.error,
               t.url IS NOT NULL,
               EXISTS (SELECT 1 FROM audit_hreflang AS back
                       WHERE back.src_url = h.dst_url AND back.dst_url = h.src_url)
        FROM audit_hreflang AS h
        LEFT JOIN pages AS p ON p.url = h.dst_url
        LEFT JOIN audit_pages AS t ON t.url = h.dst_url
        """
    )
    for src, lang, dst, crawled, status, error, parsed, links_back in rows:
        if not _HREFLANG_RE.fullmatch(lang):
            yield finding(
                dst,
                "hreflang_error",
                f"hreflang={lang!r} on {src} is not a language code: write it like en, en-GB "
                "or x-default",
                src,
            )
        elif crawled and status != 200:
            yield finding(
                dst,
                "hreflang_error",
                f"hreflang {lang} alternate of {src} answers {_answer(status, error)}",
                src,
            )
        elif parsed and dst != src and not links_back:
            yield finding(
                dst,
                "hreflang_error",
                f"hreflang {lang} alternate of {src} has no hreflang link back to it",
                src,
            )


def _fragment_findings(db: sqlite3.Connection) -> Iterator[Finding]:
    rows = db.execute(
        """
        SELECT f.src_url, f.dst_url, f.fragment, f.anchor, ap.ids
        FROM audit_fragments AS f
        JOIN pages AS p ON p.url = f.dst_url
        JOIN audit_pages AS ap ON ap.url =
            CASE WHEN p.status BETWEEN 300 AND 399 THEN p.final_url ELSE p.url END
        """
    )
    for src, dst, fragment, anchor, joined in rows:
        ids = joined.split("\n") if joined else []
        if len(ids) >= MAX_IDS or fragment in ids:
            continue  # present, or the page has more ids than were kept
        yield finding(
            f"{dst}#{fragment}",
            "broken_fragment",
            f"{dst} has no element with id {fragment!r}: fix the link on {src} or add the id",
            src,
            anchor,
        )


def _robots_blocked(db: sqlite3.Connection, url: str) -> bool:
    """True when robots.txt kept the crawl from ``url``: done in the frontier, no pages row."""
    row = db.execute("SELECT state FROM frontier WHERE fp = ?", (fingerprint(url),)).fetchone()
    return row is not None and row[0] == DONE


# Each sitemap the audit asked for, with the answer at the end of its redirects.
_SITEMAPS_SQL: Final = """
SELECT s.url, s.source, s.found_in, s.error, p.url IS NOT NULL, p.status, p.error,
       p.final_url, f.url IS NOT NULL, f.status, f.error
FROM audit_sitemaps AS s
LEFT JOIN pages AS p ON p.url = s.url
LEFT JOIN pages AS f ON p.status BETWEEN 300 AND 399 AND f.url = p.final_url
ORDER BY s.url
"""
# Each good URL a sitemap lists that did not answer 200, with its final answer.
_LISTED_NOT_200_SQL: Final = """
SELECT s.sitemap_url, s.url, p.status, p.error, p.error_kind, p.final_url, f.status, f.error
FROM audit_sitemap_urls AS s
JOIN pages AS p ON p.url = s.url
LEFT JOIN pages AS f ON p.status BETWEEN 300 AND 399 AND f.url = p.final_url
WHERE s.problem IS NULL AND (p.status IS NULL OR p.status != 200)
"""
_LISTED_NOT_FETCHED_SQL: Final = """
SELECT s.sitemap_url, s.url FROM audit_sitemap_urls AS s
WHERE s.problem IS NULL AND NOT EXISTS (SELECT 1 FROM pages AS p WHERE p.url = s.url)
"""
# Tags of the links that bring a visitor to a page: FOLLOW_TAGS, and meta refresh.
_VISIT_TAGS: Final = ", ".join(f"'{tag}'" for tag in sorted(FOLLOW_TAGS | {"meta"}))
# Listed pages that answered 2xx and that no other page links to (seeds are start points).
_ORPHANS_SQL: Final = f"""
SELECT s.url, min(s.sitemap_url), count(DISTINCT s.sitemap_url)
FROM audit_sitemap_urls AS s
JOIN pages AS p ON p.url = s.url
WHERE s.problem IS NULL AND p.status BETWEEN 200 AND 299 AND p.depth > 0
  AND NOT EXISTS (
      SELECT 1 FROM links AS l
      WHERE l.dst_url = s.url AND l.src_url != s.url AND l.tag IN ({_VISIT_TAGS})
  )
GROUP BY s.url ORDER BY s.url
"""
# Pages reached through a link to a URL that redirects to them.
_REDIRECT_LINKED_SQL: Final = f"""
SELECT DISTINCT r.final_url, l.src_url FROM pages AS r
JOIN links AS l ON l.dst_url = r.url
WHERE r.status BETWEEN 300 AND 399 AND r.final_url IS NOT NULL AND l.tag IN ({_VISIT_TAGS})
"""


def _sitemap_findings(db: sqlite3.Connection) -> Iterator[Finding]:
    """The sitemaps themselves: no answer, not 200, not a sitemap, robots.txt says no."""
    for row in db.execute(_SITEMAPS_SQL).fetchall():
        url, source, found_in, error, fetched, status, p_error, final_url = row[:8]
        landed, f_status, f_error = row[8:]
        guessed = source == "guess"  # /sitemap.xml: the site may well have none
        where = f" (named in {found_in})" if found_in else ""
        if not fetched:
            if not guessed and _robots_blocked(db, url):
                yield finding(
                    url,
                    "sitemap_error",
                    f"robots.txt disallows this sitemap{where}: nothing was read; allow it, "
                    "or name a sitemap crawlers may read",
                    found_in,
                )
            continue  # else not reached: the crawl stopped first
        answer = f"redirects to {final_url}, which answers " if landed else ""
        if status is not None and 300 <= status < 400:
            if not landed:
                continue  # the chain was not followed to its end
            status, p_error = f_status, f_error
        if status is None:
            detail = f"{answer}no answer ({p_error or 'no response'})"
        elif not 200 <= status < 300:
            if guessed and status < 500:
                continue  # no /sitemap.xml here: not a fault
            detail = f"{answer}HTTP {status}"
        elif error:
            detail = error
        else:
            continue  # read without fault (or an HTML page at the guessed /sitemap.xml)
        yield finding(
            url,
            "sitemap_error",
            f"sitemap{where}: {detail}; fix it so that it answers 200 with a valid sitemap",
            found_in,
        )
    for sitemap_url, entry, problem in db.execute(
        "SELECT sitemap_url, url, problem FROM audit_sitemap_urls WHERE problem IS NOT NULL"
    ):
        yield finding(
            entry,
            "sitemap_error",
            f"listed in {sitemap_url}: {problem}",
            sitemap_url,
        )


def _listed_findings(db: sqlite3.Connection) -> Iterator[Finding]:
    """URLs the sitemaps list that do not answer 200, or that robots.txt disallows."""
    for row in db.execute(_LISTED_NOT_200_SQL):
        sitemap_url, url, status, error, kind, final_url, f_status, f_error = row
        if kind == "skipped":
            continue
        if status is not None and 300 <= status < 400:
            target = f" ({_answer(f_status, f_error)})" if (f_status or f_error) else ""
            detail = f"redirects to {final_url}{target}: list the final URL instead"
        else:
            detail = f"answers {_answer(status, error)}: take it out, or restore the page"
        yield finding(url, "sitemap_error", f"listed in {sitemap_url} but {detail}", sitemap_url)
    for sitemap_url, url in db.execute(_LISTED_NOT_FETCHED_SQL).fetchall():
        if _robots_blocked(db, url):
            yield finding(
                url,
                "sitemap_error",
                f"listed in {sitemap_url} but robots.txt disallows it: search engines cannot "
                "read it; take it out of the sitemap, or allow it",
                sitemap_url,
            )


def _orphan_findings(db: sqlite3.Connection) -> Iterator[Finding]:
    candidates = db.execute(_ORPHANS_SQL).fetchall()
    if not candidates:
        return
    # A link to a URL that redirects to the page leads there too.
    via_redirect = {
        final_url for final_url, src in db.execute(_REDIRECT_LINKED_SQL) if src != final_url
    }
    for url, sitemap_url, sitemaps in candidates:
        if url in via_redirect:
            continue
        more = f" (and {sitemaps - 1} other sitemap(s))" if sitemaps > 1 else ""
        yield finding(
            url,
            "orphan_page",
            f"listed in {sitemap_url}{more}, but no crawled page links to it: link it from a "
            "relevant page, or take it out of the sitemap",
            sitemap_url,
        )


def site_findings(db: sqlite3.Connection, settings: AuditSettings) -> list[Finding]:
    """Every whole-crawl finding of the crawl in ``db``."""
    found: list[Finding] = []
    found += _link_findings(db)
    found += _robots_findings(db)
    found += _redirect_findings(db)
    found += _fragment_findings(db)
    found += _duplicates(db, "ap.title", "duplicate_title", "title")
    found += _duplicates(db, "ap.meta_description", "duplicate_meta_description", "description")
    found += _duplicates(db, "p.content_hash", "duplicate_content", "content (bytes)")
    found += _near_duplicates(db, settings.near_duplicate_bits)
    found += _canonical_findings(db)
    found += _hreflang_findings(db)
    found += _sitemap_findings(db)
    found += _listed_findings(db)
    found += _orphan_findings(db)
    return found
