"""An asyncio-first web crawler: crawl a site into SQLite, download its images, audit it.

The public API is what ``__all__`` names; everything else is private to its module and may
change. ``python -m crawler SEED_FILE`` is the command line (see :mod:`crawler.__main__`).
"""

from crawler.config import Config, load_config, read_seeds
from crawler.engine import Crawler, CrawlStats, crawl
from crawler.errors import (
    ConfigError,
    CrawlerError,
    FrontierError,
    FrontierLostError,
    PluginError,
    SeedError,
    StorageError,
    StorageWriteError,
)
from crawler.fetcher import Fetcher, Response
from crawler.frontier import Frontier, MemoryFrontier, Task
from crawler.parse import HtmlDocument, Link, ParsedPage, parse_html, parse_page
from crawler.politeness import HostSlot
from crawler.storage import Storage
from crawler.urls import Scope, normalize_url

__version__ = "0.1.0"

__all__ = [
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
]
