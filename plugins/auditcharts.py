"""Bar charts for the HTML report, laid out in Python: no chart library, no JavaScript.

:func:`bar_chart` is pure: labels and counts in, a :class:`BarChart` with every coordinate
out. The template (``templates/report.html.j2``) turns it into inline SVG, so that the text of
the chart (labels, counts, titles) goes through the template's autoescaping like the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["Bar", "BarChart", "Tick", "bar_chart", "nice_ticks"]

WIDTH: Final = 480
HEIGHT: Final = 250
MARGIN_LEFT: Final = 52  # room for the count axis and its title
MARGIN_RIGHT: Final = 12
MARGIN_TOP: Final = 22  # room for the count above the tallest bar
MARGIN_BOTTOM: Final = 52  # room for the bar labels and the axis title
GAP: Final = 0.25  # share of each bar's slot left empty


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float
    tone: str  # a CSS class suffix: the bar's colour


@dataclass(frozen=True, slots=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True, slots=True)
class BarChart:
    id: str
    title: str
    description: str  # the values in words, for screen readers
    x_title: str
    y_title: str
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: float = MARGIN_LEFT
    right: float = WIDTH - MARGIN_RIGHT
    top: float = MARGIN_TOP
    bottom: float = HEIGHT - MARGIN_BOTTOM

    @property
    def total(self) -> int:
        return sum(bar.count for bar in self.bars)

    @property
    def label_size(self) -> int:
        """Font size of the bar labels: smaller when many bars share the width."""
        return 11 if len(self.bars) <= 10 else 9


def nice_ticks(maximum: int, most: int = 5) -> tuple[int, ...]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to at least ``maximum``."""
    if maximum <= 0:
        return (0, 1)
    raw = maximum / (most - 1)
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(int(step), 1)
    top = math.ceil(maximum / step) * step
    return tuple(range(0, top + 1, step))


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    counts: Sequence[int],
    *,
    x_title: str,
    y_title: str,
    tones: Sequence[str] | None = None,
) -> BarChart:
    """A vertical bar chart of ``counts``, one bar per label, scaled to the largest count."""
    if len(labels) != len(counts):
        raise ValueError(f"{len(labels)} labels for {len(counts)} counts")
    ticks = nice_ticks(max(counts, default=0))
    left, right = float(MARGIN_LEFT), float(WIDTH - MARGIN_RIGHT)
    top, bottom = float(MARGIN_TOP), float(HEIGHT - MARGIN_BOTTOM)
    scale = (bottom - top) / ticks[-1]
    slot = (right - left) / max(len(counts), 1)
    bars = []
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        height = count * scale
        bars.append(
            Bar(
                label=label,
                count=count,
                x=round(left + slot * i + slot * GAP / 2, 2),
                y=round(bottom - height, 2),
                width=round(slot * (1 - GAP), 2),
                height=round(height, 2),
                tone=tones[i] if tones else "default",
            )
        )
    described = ", ".join(
        f"{label}: {count:,}" for label, count in zip(labels, counts, strict=True)
    )
    return BarChart(
        id=chart_id,
        title=title,
        description=f"{y_title} by {x_title.lower()}: {described}.",
        x_title=x_title,
        y_title=y_title,
        bars=tuple(bars),
        ticks=tuple(Tick(value, round(bottom - value * scale, 2)) for value in ticks),
    )
