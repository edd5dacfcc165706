"""The HTML report's numbers and chart geometry, as pure functions (no database, no browser)."""

from __future__ import annotations

import json

import pytest

from plugins.auditcharts import bar_chart, nice_ticks
from plugins.auditstats import (
    DEPTH_BARS,
    RESPONSE_MS_EDGES,
    PageFacts,
    bin_counts,
    status_class,
    summarize,
)


def test_bins_take_values_from_their_lower_edge_up_to_the_next() -> None:
    edges = (0, 50, 100)
    assert bin_counts([0, 49.9, 50, 99, 100, 10**9], edges) == (2, 2, 2)
    assert bin_counts([-1], edges) == (1, 0, 0)
    assert bin_counts([], RESPONSE_MS_EDGES) == (0,) * len(RESPONSE_MS_EDGES)


def test_status_classes() -> None:
    assert [status_class(s) for s in (200, 301, 404, 503, None, 99, 700)] == [
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "no response",
        "other",
        "other",
    ]


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (0, (0, 1)),
        (1, (0, 1)),
        (4, (0, 1, 2, 3, 4)),
        (7, (0, 2, 4, 6, 8)),
        (37, (0, 10, 20, 30, 40)),
        (46, (0, 20, 40, 60)),
        (1000, (0, 500, 1000)),
        (12_345, (0, 5000, 10_000, 15_000)),
    ],
)
def test_count_axis_has_round_ticks_up_to_the_largest_count(
    maximum: int, ticks: tuple[int, ...]
) -> None:
    assert nice_ticks(maximum) == ticks


def test_bars_are_proportional_and_inside_the_plot() -> None:
    chart = bar_chart("c", "Title", ["a", "b", "c"], [10, 5, 0], x_title="Things", y_title="URLs")
    a, b, c = chart.bars
    assert [bar.label for bar in chart.bars] == ["a", "b", "c"]
    assert a.height == pytest.approx(2 * b.height) and c.height == 0
    for bar in chart.bars:
        assert bar.y + bar.height == pytest.approx(chart.bottom)
        assert chart.top <= bar.y and chart.left <= bar.x
        assert bar.x + bar.width <= chart.right
    assert a.x < b.x < c.x
    # The top tick is the largest count (10 is round), at the top of the plot.
    assert chart.ticks[-1].value == 10 and chart.ticks[-1].y == pytest.approx(chart.top)
    assert chart.description == "URLs by things: a: 10, b: 5, c: 0."
    assert chart.total == 15
    with pytest.raises(ValueError, match="3 labels for 2 counts"):
        bar_chart("c", "T", ["a", "b", "c"], [1, 2], x_title="x", y_title="y")


def facts(status: int | None, ms: float | None, depth: int, size: int | None) -> PageFacts:
    at = "2024-05-01T10:00:00.000+00:00"
    return PageFacts(status, ms, depth, size, "text/html; charset=utf-8", at)


def test_summary_of_pages_rows() -> None:
    rows = [
        facts(200, 10.0, 0, 5_000),
        facts(200, 30.0, 1, 15_000),
        facts(404, 20.0, 1, 100),
        facts(None, None, 2, None),  # no response: no time, no size
        facts(301, 1500.0, 20, 0),  # deeper than the last bar
        PageFacts(200, 5.0, 1, 999_999, "image/png", "2024-05-01T09:59:59.000+00:00"),
    ]
    stats = summarize(rows, {"seeds": json.dumps(["https://a.example/"]), "scope": "domain"})
    assert stats.urls == 6
    assert stats.status_classes == {
        "2xx": 3,
        "3xx": 1,
        "4xx": 1,
        "5xx": 0,
        "other": 0,
        "no response": 1,
    }
    assert stats.responses == 5
    assert stats.mean_ms == pytest.approx((10 + 30 + 20 + 1500 + 5) / 5)
    assert stats.median_ms == 20.0
    assert stats.response_ms_bins == (4, 0, 0, 0, 0, 1, 0, 0)
    assert len(stats.depths) == DEPTH_BARS and stats.depths[:3] == (1, 3, 1)
    assert stats.depths[-1] == 1
    # Sizes of 2xx HTML pages only: the image and the 404 are left out.
    assert stats.html_pages == 2 and stats.page_bytes_bins[:2] == (1, 1)
    assert stats.first_fetch == "2024-05-01T09:59:59.000+00:00"
    assert stats.last_fetch == "2024-05-01T10:00:00.000+00:00"
    assert (stats.seeds, stats.scope) == (("https://a.example/",), "domain")


def test_summary_of_an_empty_or_foreign_crawl() -> None:
    stats = summarize([], {"seeds": "not json"})
    assert (stats.urls, stats.responses, stats.mean_ms, stats.median_ms) == (0, 0, None, None)
    assert stats.depths == (0,)
    assert stats.seeds == () and stats.scope is None
    assert summarize([], {"seeds": '{"a": 1}'}).seeds == ()
