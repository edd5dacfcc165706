"""The plugin API: discovery through entry points, order, settings, isolation of failures."""

from __future__ import annotations

import importlib
import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from crawler.parse import HtmlDocument, ParsedPage
from crawler.plugins import Plugin
from crawler.storage import PageRow
from tests.conftest import RunCrawl
from tests.site import Site
from tests.test_cli import run_cli, write

REPO = Path(__file__).resolve().parent.parent

ENTRY_POINTS = """\
[crawler.plugins]
rec1 = tests.plugin_fixture:RecorderPlugin
rec2 = tests.plugin_fixture:RecorderPlugin
boom = tests.plugin_fixture:BoomPlugin
notaplugin = tests.plugin_fixture:NotAPlugin
missing = tests.plugin_fixture:DoesNotExist
late = tests.plugin_fixture:LatePagesPlugin
"""


def install_entry_points(where: Path, name: str, text: str) -> Path:
    """A distribution's metadata on disk: what `pip install` leaves for entry points."""
    dist = where / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(text)
    return where


@pytest.fixture
def test_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = install_entry_points(tmp_path / "site-packages", "testplugins", ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(where))
    importlib.invalidate_caches()
    return where


def env_with(*paths: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (*paths, REPO))}


async def test_hooks_run_in_the_order_given(
    site: Site, run_crawl: RunCrawl, test_plugins: Path
) -> None:
    site.add_page("/", links=["/a"])
    site.add_page("/a")
    result = await run_crawl([site.url()], plugins=("rec2", "rec1"))
    log = result.rows("SELECT plugin, hook, url FROM plugin_log ORDER BY seq")
    calls = [(r["plugin"], r["hook"], r["url"]) for r in log]
    assert calls[:2] == [("rec2", "open", None), ("rec1", "open", None)]
    assert calls[-2:] == [("rec2", "close", None), ("rec1", "close", None)]
    for url in (site.url(), site.url("/a")):
        per_url = [(p, h) for p, h, u in calls if u == url]
        assert per_url == [
            ("rec2", "on_response"),
            ("rec1", "on_response"),
            ("rec2", "on_page"),
            ("rec1", "on_page"),
        ]
    assert ("rec1 label", "-") in result.stats.plugin_summary


async def test_on_idle_queues_pages_after_the_link_graph_is_done(
    site: Site, run_crawl: RunCrawl, test_plugins: Path
) -> None:
    site.add_page("/", links=["/a"])
    site.add_page("/a")
    site.add_page("/late", links=["/late/child"])
    site.add_page("/late/child", links=["/late/child/grandchild"])
    later = [site.url("/late"), site.url("/a"), "http://elsewhere.test/"]
    result = await run_crawl(
        [site.url()], plugins=("late",), plugin_settings={"late": {"later": later}}, max_depth=2
    )
    # Queued once the links were done, at the depth given; seen URLs and other hosts are not.
    assert site.paths == ["/robots.txt", "/", "/a", "/late", "/late/child"]
    calls = [row[0] for row in result.rows("SELECT url FROM plugin_log ORDER BY seq")]
    assert calls == [site.url("/late"), ""]  # called again when those were done: nothing new
    depths = {url: row["depth"] for url, row in result.pages().items()}
    assert depths[site.url("/late")] == 1 and depths[site.url("/late/child")] == 2


async def test_a_failing_plugin_does_not_stop_the_crawl(
    site: Site, run_crawl: RunCrawl, test_plugins: Path
) -> None:
    site.add_page("/", links=["/a", "/b"])
    site.add_page("/a")
    site.add_page("/b")
    result = await run_crawl([site.url()], plugins=("boom", "rec1"))
    assert len(result.pages()) == 3
    assert result.stats.plugin_errors["boom"] == 6  # on_response and on_page, 3 pages
    # the plugin after the failing one still ran
    assert len(result.rows("SELECT * FROM plugin_log WHERE hook = 'on_page'")) == 3


async def test_unknown_and_broken_plugins_exit_2(
    site: Site, tmp_path: Path, test_plugins: Path
) -> None:
    write(tmp_path / "seed.txt", site.url())
    env = env_with(test_plugins)
    cases = {
        "nosuch": r"unknown plugin 'nosuch' \(available: .*boom.*rec1.*\)",
        "notaplugin": r"not a crawler.plugins.Plugin subclass",
        "missing": r"plugin 'missing' cannot be loaded",
    }
    for name, message in cases.items():
        run = await run_cli(tmp_path, "seed.txt", "--plugin", name, env=env)
        assert run.code == 2, run.stderr
        assert re.search(message, run.stderr), run.stderr
    write(tmp_path / "config.toml", 'plugins = ["rec1"]\n[rec1]\nbogus = 1\n')
    run = await run_cli(tmp_path, "seed.txt", env=env)
    assert run.code == 2 and "unknown setting 'bogus'" in run.stderr
    assert site.requests == []


async def test_plugins_and_settings_from_config_file(
    site: Site, tmp_path: Path, test_plugins: Path
) -> None:
    site.add_page("/")
    write(tmp_path / "seed.txt", site.url())
    write(tmp_path / "config.toml", 'plugins = ["rec1"]\n[rec1]\nlabel = "from-toml"\n')
    run = await run_cli(tmp_path, "seed.txt", env=env_with(test_plugins))
    assert run.code == 0, run.stderr
    assert "from-toml" in run.stderr  # the plugin's summary line
    with sqlite3.connect(tmp_path / "crawl.db") as conn:
        labels = {row[0] for row in conn.execute("SELECT label FROM plugin_log")}
    assert labels == {"from-toml"}


def readme_plugin_source() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("### Writing a plugin", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's 'Writing a plugin' has no python example"
    return match.group(1)


async def test_the_readme_plugin_example_works(site: Site, tmp_path: Path) -> None:
    site.add_page("/", links=["/a", "/missing"])
    site.add_page("/a")
    code_dir = tmp_path / "example"
    code_dir.mkdir()
    (code_dir / "status_counter.py").write_text(readme_plugin_source())
    where = install_entry_points(
        tmp_path / "meta",
        "status-counter",
        "[crawler.plugins]\nstatus-counter = status_counter:StatusCounter\n",
    )
    write(tmp_path / "seed.txt", site.url())
    run = await run_cli(
        tmp_path, "seed.txt", "--plugin", "status-counter", env=env_with(code_dir, where)
    )
    assert run.code == 0, run.stderr
    with sqlite3.connect(tmp_path / "crawl.db") as conn:
        counts = dict(conn.execute("SELECT status, pages FROM status_counts"))
    assert counts == {200: 2, 404: 1}


def test_fixture_plugins_are_real_entry_points(test_plugins: Path) -> None:
    from crawler.plugins import available_plugins

    assert {"rec1", "rec2", "boom", "images"} <= set(available_plugins())
    assert sys.path[0] == str(test_plugins)


def count_sections(document: HtmlDocument) -> tuple[str, int]:
    """A page hook: runs in the parse worker on the crawler's own tree."""
    return document.url, len(document.tree.css("section"))


def broken_hook(document: HtmlDocument) -> object:
    raise RuntimeError(f"hook failed on {document.url}")


class SectionPlugin(Plugin):
    name = "sections"
    page_hook = count_sections

    def __init__(self, settings: Any, config: Any) -> None:
        super().__init__(settings, config)
        self.seen: dict[str, object] = {}

    async def on_page(self, row: PageRow, page: ParsedPage, data: object = None) -> None:
        self.seen[row.url] = data


class BrokenHookPlugin(SectionPlugin):
    name = "broken"
    page_hook = broken_hook


class PlainPlugin(Plugin):
    name = "plain"

    def __init__(self, settings: Any, config: Any) -> None:
        super().__init__(settings, config)
        self.pages: list[str] = []

    async def on_page(self, row: PageRow, page: ParsedPage) -> None:
        self.pages.append(row.url)


@pytest.mark.parametrize("workers", [0, 2])
async def test_page_hooks_run_on_the_parsed_tree_and_reach_on_page(
    site: Site, run_crawl: RunCrawl, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    site.add_page("/", '<section>a</section><section>b</section><a href="/two">two</a>')
    site.add_page("/two", "<p>none</p>")
    site.add_page("/data.json", body=b"{}", content_type="application/json")
    plugins = [SectionPlugin({}, None), BrokenHookPlugin({}, None), PlainPlugin({}, None)]
    monkeypatch.setattr("crawler.engine.load_plugins", lambda config: plugins)
    result = await run_crawl([site.url(), site.url("/data.json")], workers=workers)
    sections, broken, plain = plugins
    assert sections.seen == {
        site.url("/"): (site.url("/"), 2),
        site.url("/two"): (site.url("/two"), 0),
    }
    assert broken.seen == {site.url("/"): None, site.url("/two"): None}  # data None, crawl on
    assert sorted(plain.pages) == [site.url("/"), site.url("/two")]  # no third argument
    assert result.stats.plugin_errors["broken"] == 2
    assert len(result.pages()) == 3
