"""What a crawl looks like in numbers, for the HTML report: status classes, response times,
depths and page sizes, read from the ``pages`` table and the crawl's ``meta``.

:func:`load_crawl_stats` does the reading (one pass over ``pages``, streamed, so a crawl of a
million URLs costs a few megabytes); :func:`summarize` is the pure computation behind it.
Histograms use fixed, human-friendly bin edges (:data:`RESPONSE_MS_EDGES`,
:data:`PAGE_BYTES_EDGES`) so that two reports can be compared at a glance.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

__all__ = [
    "DEPTH_BARS",
    "HTML_MEDIA_TYPES",
    "PAGE_BYTES_EDGES",
    "RESPONSE_MS_EDGES",
    "STATUS_CLASSES",
    "CrawlStats",
    "PageFacts",
    "bin_counts",
    "load_crawl_stats",
    "status_class",
    "summarize",
]

# Lower edges of the histogram bins; the last bin is open-ended.
RESPONSE_MS_EDGES: Final[tuple[float, ...]] = (0, 50, 100, 200, 500, 1000, 2000, 5000)
PAGE_BYTES_EDGES: Final[tuple[float, ...]] = (
    0,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
)
STATUS_CLASSES: Final = ("2xx", "3xx", "4xx", "5xx", "other", "no response")
DEPTH_BARS: Final = 16  # depths 0..14 each get a bar, the last bar is "15 and deeper"
HTML_MEDIA_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})


class PageFacts(NamedTuple):
    """The columns of one ``pages`` row that the statistics use."""

    status: int | None
    elapsed_ms: float | None
    depth: int | None
    bytes: int | None
    content_type: str | None
    fetched_at: str | None


@dataclass(frozen=True, slots=True)
class CrawlStats:
    """A crawl in numbers. Response times are over the requests that got an HTTP answer;
    page sizes over the HTML pages that answered 2xx."""

    urls: int
    status_classes: Mapping[str, int]  # every key of STATUS_CLASSES, zeros included
    responses: int
    mean_ms: float | None
    median_ms: float | None
    response_ms_bins: tuple[int, ...]  # one count per RESPONSE_MS_EDGES bin
    depths: tuple[int, ...]  # URLs at depth 0, 1, ..., the last entry also counts deeper ones
    html_pages: int
    page_bytes_bins: tuple[int, ...]  # one count per PAGE_BYTES_EDGES bin
    first_fetch: str | None  # ISO 8601 (UTC), as stored in pages.fetched_at
    last_fetch: str | None
    seeds: tuple[str, ...]
    scope: str | None


def status_class(status: int | None) -> str:
    if status is None:
        return "no response"
    klass = f"{status // 100}xx"
    return klass if klass in STATUS_CLASSES else "other"


def bin_counts(values: Iterable[float], edges: Sequence[float]) -> tuple[int, ...]:
    """How many ``values`` fall in each bin ``[edges[i], edges[i + 1])``; the last bin is
    open-ended and values below ``edges[0]`` count in the first."""
    counts = [0] * len(edges)
    for value in values:
        counts[max(bisect_right(edges, value) - 1, 0)] += 1
    return tuple(counts)


def is_html_type(content_type: str | None) -> bool:
    return (content_type or "").partition(";")[0].strip().lower() in HTML_MEDIA_TYPES


def summarize(rows: Iterable[PageFacts], meta: Mapping[str, str]) -> CrawlStats:
    """Pure: the statistics of the ``pages`` rows (any iterable, consumed once) and ``meta``."""
    urls = 0
    classes: Counter[str] = Counter()
    times = array("d")
    depths = [0] * DEPTH_BARS
    sizes = array("d")
    first: str | None = None
    last: str | None = None
    for row in rows:
        urls += 1
        classes[status_class(row.status)] += 1
        if row.status is not None and row.elapsed_ms is not None:
            times.append(row.elapsed_ms)
        if row.depth is not None:
            depths[min(max(row.depth, 0), DEPTH_BARS - 1)] += 1
        if (
            row.status is not None
            and 200 <= row.status < 300
            and row.bytes is not None
            and is_html_type(row.content_type)
        ):
            sizes.append(row.bytes)
        if row.fetched_at:
            first = row.fetched_at if first is None else min(first, row.fetched_at)
            last = row.fetched_at if last is None else max(last, row.fetched_at)
    while len(depths) > 1 and depths[-1] == 0:
        depths.pop()
    return CrawlStats(
        urls=urls,
        status_classes={klass: classes[klass] for klass in STATUS_CLASSES},
        responses=len(times),
        mean_ms=statistics.fmean(times) if times else None,
        median_ms=statistics.median(times) if times else None,
        response_ms_bins=bin_counts(times, RESPONSE_MS_EDGES),
        depths=tuple(depths),
        html_pages=len(sizes),
        page_bytes_bins=bin_counts(sizes, PAGE_BYTES_EDGES),
        first_fetch=first,
        last_fetch=last,
        seeds=_seeds(meta.get("seeds")),
        scope=meta.get("scope"),
    )


def _seeds(value: str | None) -> tuple[str, ...]:
    """meta.seeds is a JSON list of URLs; anything else (an older or foreign crawl) is none."""
    try:
        seeds = json.loads(value) if value else []
    except ValueError:
        return ()
    if not isinstance(seeds, list):
        return ()
    return tuple(seed for seed in seeds if isinstance(seed, str))


def load_crawl_stats(path: Path) -> CrawlStats:
    """The statistics of the crawl database at ``path`` (opened read-only): its ``pages``
    table, and ``meta`` when it has one. sqlite3.Error when it cannot be read."""
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        meta: dict[str, str] = {}
        if "meta" in tables:
            meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(pages)")}
        wanted = [name if name in columns else "NULL" for name in PageFacts._fields]
        cursor = db.execute(f"SELECT {', '.join(wanted)} FROM pages")
        return summarize((PageFacts(*row) for row in cursor), meta)
    finally:
        db.close()
