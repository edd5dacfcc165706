"""Plugins used by the tests, registered through a real entry point (see tests/test_plugins.py)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from crawler.config import Config
from crawler.engine import Crawler
from crawler.errors import PluginError
from crawler.fetcher import Response
from crawler.frontier import Task
from crawler.parse import ParsedPage
from crawler.plugins import Plugin
from crawler.storage import PageRow

_order = itertools.count()

LOG_SQL = "INSERT INTO plugin_log(plugin, hook, url, seq, label) VALUES (?, ?, ?, ?, ?)"


class RecorderPlugin(Plugin):
    """Writes a row per hook call, so a test can see which hooks ran, for what, in what order."""

    tables = (
        "CREATE TABLE IF NOT EXISTS plugin_log("
        "plugin TEXT, hook TEXT, url TEXT, seq INTEGER, label TEXT)"
    )

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        super().__init__(settings, config)
        unknown = set(settings) - {"label"}
        if unknown:
            raise PluginError(f"unknown setting {sorted(unknown)[0]!r} in [{self.name or 'rec'}]")
        self.label = str(settings.get("label", ""))
        self.crawler: Crawler | None = None

    def _log(self, hook: str, url: str | None) -> None:
        assert self.crawler is not None
        self.crawler.storage.add_rows(LOG_SQL, [(self.name, hook, url, next(_order), self.label)])

    async def open(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._log("open", None)

    async def on_response(self, task: Task, response: Response, row: PageRow) -> None:
        self._log("on_response", row.url)

    async def on_page(self, row: PageRow, page: ParsedPage) -> None:
        self._log("on_page", row.url)

    async def close(self) -> None:
        self._log("close", None)

    def summary(self) -> list[tuple[str, str]]:
        return [(f"{self.name} label", self.label or "-")]


class BoomPlugin(Plugin):
    """Fails in every page hook: the crawl must go on."""

    async def on_response(self, task: Task, response: Response, row: PageRow) -> None:
        raise RuntimeError("boom in on_response")

    async def on_page(self, row: PageRow, page: ParsedPage) -> None:
        raise ValueError("boom in on_page")


class NotAPlugin:
    """Registered under an entry point by mistake: loading it must fail clearly."""


class LatePagesPlugin(Plugin):
    """Queues the URLs of its ``later`` setting once the crawl has run dry (``on_idle``)."""

    tables = RecorderPlugin.tables

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        super().__init__(settings, config)
        self.later = [str(url) for url in settings.get("later", [])]
        self.crawler: Crawler | None = None

    async def open(self, crawler: Crawler) -> None:
        self.crawler = crawler

    async def on_idle(self) -> None:
        assert self.crawler is not None
        queued = [url for url in self.later if self.crawler.request_page(url, 1)]
        self.later = []
        self.crawler.storage.add_rows(
            LOG_SQL, [(self.name, "on_idle", " ".join(queued), next(_order), "")]
        )
