"""The crawler's one exception tree.

Every error the crawler raises on purpose derives from :class:`CrawlerError`::

    CrawlerError
    ├── ConfigError        bad command line, config.toml or seed file: the CLI exits 2
    │   └── SeedError      the seed file gave no usable URL
    ├── StorageError       the crawl database cannot be opened, written or trusted
    │   └── StorageWriteError  writing failed mid-crawl (disk full ...): the CLI exits 1
    ├── PluginError        a plugin could not be found or loaded
    └── FrontierError      the shared frontier (Redis) cannot be used: the CLI exits 2
        └── FrontierLostError  Redis went away mid-crawl for longer than ``redis_wait``:
                               the worker stopped with its database saved; the CLI exits 4

Network and HTTP problems are *not* exceptions past the fetcher: the fetcher maps every
low-level aiohttp/OS error at one boundary into a :class:`crawler.fetcher.Response` whose
``error`` names the problem, because a failed page is data for the report, not a crash.
"""

from __future__ import annotations


class CrawlerError(Exception):
    """Base class of every error the crawler raises on purpose."""


class ConfigError(CrawlerError):
    """The command line, config file or seed file is unusable; the message names the problem."""


class SeedError(ConfigError):
    """The seed file yielded no valid URL."""


class StorageError(CrawlerError):
    """The crawl database cannot be opened, written or trusted."""


class StorageWriteError(StorageError):
    """Writing to the crawl database failed during the crawl; what was committed is intact."""


class PluginError(CrawlerError):
    """A plugin could not be found or loaded."""


class FrontierError(CrawlerError):
    """The shared frontier (Redis) is unreachable, or holds a crawl that does not match."""


class FrontierLostError(FrontierError):
    """Redis stayed unreachable mid-crawl for longer than ``redis_wait``; what was fetched is
    saved in the worker's database, and starting the worker again continues the crawl."""
