"""The curated public API: what `import crawler` offers, and nothing by accident."""

from __future__ import annotations

import crawler

EXPECTED = {
    "Config",
    "ConfigError",
    "CrawlStats",
    "Crawler",
    "CrawlerError",
    "Fetcher",
    "Frontier",
    "FrontierError",
    "FrontierLostError",
    "HostSlot",
    "HtmlDocument",
    "Link",
    "MemoryFrontier",
    "ParsedPage",
    "PluginError",
    "Response",
    "Scope",
    "SeedError",
    "Storage",
    "StorageError",
    "StorageWriteError",
    "Task",
    "__version__",
    "crawl",
    "load_config",
    "normalize_url",
    "parse_html",
    "parse_page",
    "read_seeds",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(crawler.__all__) == EXPECTED
    for name in crawler.__all__:
        assert hasattr(crawler, name), name


def test_public_names_are_documented() -> None:
    for name in crawler.__all__:
        obj = getattr(crawler, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_errors_form_one_tree() -> None:
    for error in (
        crawler.ConfigError,
        crawler.SeedError,
        crawler.StorageError,
        crawler.PluginError,
        crawler.FrontierError,
        crawler.FrontierLostError,
    ):
        assert issubclass(error, crawler.CrawlerError)
    assert issubclass(crawler.FrontierLostError, crawler.FrontierError)
    assert issubclass(crawler.SeedError, crawler.ConfigError)
