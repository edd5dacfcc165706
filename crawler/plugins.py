"""Plugins: the hook spec (:class:`Plugin`) and how plugins are found and loaded.

Every plugin, built-in or third-party, is an entry point in the ``crawler.plugins`` group
(``[project.entry-points."crawler.plugins"]`` in its pyproject.toml) naming a
:class:`Plugin` subclass. ``--plugin NAME`` (repeatable) or ``plugins = [...]`` in config.toml
choose them; they run in that order. A plugin's settings are its own table in config.toml
(``[images]`` for the ``images`` plugin); it validates them in ``__init__`` and raises
:class:`~crawler.errors.PluginError` to refuse bad ones.

A hook that raises does not stop the crawl: the engine logs the error, counts it against the
plugin and goes on.
"""

from __future__ import annotations

import difflib
import sqlite3
from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from crawler.errors import PluginError

if TYPE_CHECKING:
    from crawler.config import Config
    from crawler.engine import Crawler
    from crawler.fetcher import Response
    from crawler.frontier import Task
    from crawler.parse import PageHook, ParsedPage
    from crawler.storage import PageRow

ENTRY_POINT_GROUP = "crawler.plugins"


class Plugin:
    """Base class of plugins: every hook is a no-op, override the ones you need.

    Hooks, in the order a crawl calls them:

    - ``open(crawler)``: once, before the first request. ``crawler.storage``,
      ``crawler.cpu`` (run CPU work in the process pool), ``crawler.request_asset(url, depth,
      owner=self.name)`` (fetch a URL that is not a page, such as an image, with robots.txt
      and politeness; ``task.owner`` tells a plugin its own assets from other plugins').
    - ``on_response(task, response, row)``: every URL fetched (pages and assets), with its
      ``pages`` row, after retries and before the row is saved.
    - ``on_page(row, page)``: every HTML page parsed, with what the parser found. A plugin
      that needs more from the HTML sets ``page_hook``: a module-level function of an
      :class:`~crawler.parse.HtmlDocument` (the parsed tree, the page URL, its base), run in the
      parse worker on the same tree, with no second parse; its return value (picklable) comes
      to ``on_page(row, page, data)`` as a third argument. A hook that raises gives ``data``
      None and counts as an error of the plugin.
    - ``on_idle()``: each time the crawl runs out of URLs to fetch. A plugin may queue more
      (``crawler.request_page(url, depth)``, ``request_asset``): the crawl goes on with them,
      and calls ``on_idle`` again when they are done. Not called after Ctrl-C.
    - ``close()``: once, at the end, also after Ctrl-C.
    - ``summary()``: lines for the end-of-crawl summary.

    Outside a crawl, ``after_merge(db)`` runs when ``python -m crawler merge`` has merged the
    databases of several crawler processes, to recompute what needs the whole crawl.

    ``tables`` is the DDL of the plugin's own tables (``CREATE TABLE IF NOT EXISTS ...``),
    created with the crawl database; write rows with ``crawler.storage.add_rows(sql, rows)`` so
    they are committed in the same transactions as the pages they belong to.
    """

    name: str = ""
    tables: ClassVar[str] = ""
    page_hook: ClassVar[PageHook | None] = None

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        self.settings = settings
        self.config = config

    async def open(self, crawler: Crawler) -> None:
        """Called once before the crawl starts."""

    async def on_response(self, task: Task, response: Response, row: PageRow) -> None:
        """Called for every URL fetched, pages and assets alike."""

    async def on_page(self, row: PageRow, page: ParsedPage) -> None:
        """Called for every HTML page parsed."""

    async def on_idle(self) -> None:
        """Called when no URL is left to fetch; queue more to keep the crawl going."""

    async def close(self) -> None:
        """Called once when the crawl ends, also after Ctrl-C."""

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) lines for the end-of-crawl summary."""
        return []

    def after_merge(self, db: sqlite3.Connection) -> list[tuple[str, str]]:
        """Called by ``python -m crawler merge`` on the merged database (open in ``db``, in a
        transaction), once every worker's rows are in, when the workers' databases held this
        plugin's tables: recompute here what needs the whole crawl. Not async: merging runs
        no event loop. Returns (label, value) lines for the merge summary."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def check_setting_keys(table: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    """Refuse a plugin settings table with a key outside ``known`` (a typo, most likely)."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise PluginError(f"{where} unknown setting {key!r} ({hint})")


def available_plugins() -> dict[str, EntryPoint]:
    """Installed plugins by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def check_plugin_names(names: Sequence[str]) -> None:
    """Raise PluginError naming the unknown plugin and the available ones."""
    available = available_plugins()
    for name in names:
        if name not in available:
            known = ", ".join(sorted(available)) or "none installed"
            raise PluginError(f"unknown plugin {name!r} (available: {known})")


def load_plugins(config: Config) -> list[Plugin]:
    """Instantiate the plugins ``config`` names, in its order, with their settings tables."""
    check_plugin_names(config.plugins)
    available = available_plugins()
    plugins: list[Plugin] = []
    for name in config.plugins:
        try:
            cls = available[name].load()
        except Exception as exc:
            raise PluginError(f"plugin {name!r} cannot be loaded: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Plugin)):
            raise PluginError(f"plugin {name!r} is not a crawler.plugins.Plugin subclass: {cls!r}")
        settings = config.plugin_settings.get(name, {})
        try:
            plugin = cls(settings, config)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {name!r} refused its settings: {exc}") from exc
        plugin.name = name
        plugins.append(plugin)
    return plugins
