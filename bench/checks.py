"""Correctness checks shared by the benchmarks: a run's time only counts if its output is right."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from bench.sitegen import SitePlan

__all__ = ["SHOWN", "check_links", "check_pages", "examples"]

SHOWN = 5  # examples listed per kind of problem


def examples(items: Collection[Any]) -> str:
    """A few of ``items``, sorted, and how many more there are."""
    shown = sorted(items, key=str)[:SHOWN]
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(map(str, shown)) + more


def check_pages(plan: SitePlan, rows: Sequence[tuple[str, int, Any]]) -> list[str]:
    """(url, status, error) rows: exactly the site's pages, each once, all 200 without error."""
    problems = []
    urls = Counter(url for url, _, _ in rows)
    expected = plan.expected_pages
    if missing := expected - urls.keys():
        problems.append(f"{len(missing)} page(s) missing: {examples(missing)}")
    if extra := urls.keys() - expected:
        problems.append(f"{len(extra)} URL(s) that are not pages of the site: {examples(extra)}")
    if repeated := {url: n for url, n in urls.items() if n > 1}:
        problems.append(f"{len(repeated)} page(s) more than once: {examples(repeated.items())}")
    if bad := [(u, s, e) for u, s, e in rows if s != 200 or e is not None]:
        problems.append(f"{len(bad)} page(s) not 200 or with an error: {examples(bad)}")
    return problems


def check_links(plan: SitePlan, rows: Iterable[tuple[str, str, str]]) -> list[str]:
    """(src, dst, tag) rows: exactly the expected links rows, each once."""
    problems = []
    counted = Counter(rows)
    expected = plan.expected_links
    total = counted.total()
    if total != len(expected):
        problems.append(f"{total} links rows, expected {len(expected)}")
    if missing := expected - counted.keys():
        sources = {src for src, _, _ in missing}
        problems.append(
            f"{len(missing)} link row(s) missing (from {len(sources)} page(s)): "
            + examples(missing)
        )
    if extra := counted.keys() - expected:
        problems.append(f"{len(extra)} unexpected link row(s): {examples(extra)}")
    if repeated := {row: n for row, n in counted.items() if n > 1}:
        problems.append(
            f"{len(repeated)} link row(s) stored more than once: {examples(repeated.items())}"
        )
    return problems
