"""Live progress on stderr while crawling, and the summary at the end.

On a terminal the progress line is redrawn in place twice a second; when stderr is a file or
a pipe, a plain line is written every ``log_interval`` seconds instead, so logs stay readable.
``quiet`` silences everything but errors.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from crawler.engine import Crawler, CrawlStats


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(stats: CrawlStats, queued: int, max_pages: int | None) -> str:
    elapsed = stats.elapsed
    rate = stats.pages / elapsed if elapsed > 0 else 0.0
    parts = [
        f"{stats.pages} pages",
        f"{rate:.1f}/s",
        f"queued {queued}",
        f"in flight {stats.in_flight}",
        f"errors {stats.error_count}",
        human_bytes(stats.bytes),
        f"{human_duration(elapsed)} elapsed",
    ]
    if max_pages and rate > 0:
        parts.append(f"ETA {human_duration((max_pages - stats.pages) / rate)}")
    return "  ".join(parts)


def summary_table(stats: CrawlStats, db: str, extra: Sequence[tuple[str, str]] = ()) -> str:
    """The end-of-crawl summary, as a small aligned table (``extra``: plugins' lines)."""
    rate = stats.pages / stats.elapsed if stats.elapsed > 0 else 0.0
    rows: list[tuple[str, str]] = [
        ("pages", str(stats.pages)),
        ("requests", f"{stats.requests} (retries {stats.retries})"),
        ("links found", str(stats.links)),
        ("downloaded", human_bytes(stats.bytes)),
        ("elapsed", f"{stats.elapsed:.1f} s"),
        ("rate", f"{rate:.1f} pages/s"),
    ]
    for klass, count in sorted(stats.status_classes.items()):
        rows.append((f"status {klass}", str(count)))
    for kind, count in stats.errors.most_common():
        rows.append((f"error: {kind}", str(count)))
    if stats.robots_blocked:
        rows.append(("blocked by robots.txt", str(stats.robots_blocked)))
    rows.extend(stats.details)
    for name, count in stats.plugin_errors.items():
        rows.append((f"plugin {name} errors", str(count)))
    if stats.internal_errors:
        rows.append(("internal errors", f"{stats.internal_errors} (see log above)"))
    rows.extend(extra)
    rows.append(("database", db))
    width = max(len(k) for k, _ in rows)
    title = "crawl interrupted" if stats.interrupted else "crawl finished"
    return "\n".join([title, *(f"  {k:<{width}}  {v}" for k, v in rows)])


class Progress:
    """Draws the progress line for a running :class:`~crawler.engine.Crawler`."""

    def __init__(
        self,
        stream: TextIO = sys.stderr,
        *,
        quiet: bool = False,
        interval: float = 0.5,
        log_interval: float = 10.0,
    ) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.interval = interval if self.tty else log_interval
        self._task: asyncio.Task[None] | None = None
        self._crawler: Crawler | None = None
        self._drawn = False

    def start(self, crawler: Crawler) -> None:
        self._crawler = crawler
        if not self.quiet:
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.draw()

    def draw(self) -> None:
        crawler = self._crawler
        if crawler is None or self.quiet:
            return
        line = progress_line(crawler.stats, crawler.frontier.queued, crawler.config.max_pages)
        if self.tty:
            self.stream.write(f"\r\x1b[K{line}")
            self._drawn = True
        else:
            self.stream.write(f"[{time.strftime('%H:%M:%S')}] {line}\n")
        self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False

    def warn(self, message: str) -> None:
        if not self.quiet:
            self._clear()
            self.stream.write(f"warning: {message}\n")
            self.stream.flush()

    def note(self, message: str) -> None:
        if not self.quiet:
            self._clear()
            self.stream.write(f"{message}\n")
            self.stream.flush()

    def error(self, message: str) -> None:
        self._clear()
        self.stream.write(f"error: {message}\n")
        self.stream.flush()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._clear()
        self.stream.flush()

    def summary(self, stats: CrawlStats, db: str, extra: Sequence[tuple[str, str]] = ()) -> None:
        if not self.quiet:
            self.stream.write(summary_table(stats, db, extra) + "\n")
            self.stream.flush()

    def __repr__(self) -> str:
        mode = "quiet" if self.quiet else ("tty" if self.tty else "log")
        return f"<Progress {mode} interval={self.interval}s>"
