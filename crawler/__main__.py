"""Command line: ``python -m crawler SEED_FILE [options]``.

argv -> Config -> crawl -> exit code: 0 the crawl finished (even if pages failed), 1 the crawl
stopped because its database could not be written (disk full, say), 2 a usage, config,
seed-file or database problem found before crawling (or Redis unreachable at start, with
``--frontier``), 4 Redis went away mid-crawl for longer than ``redis_wait`` (what was fetched is
saved; the same command with ``--resume`` continues), 130 after Ctrl-C (what was fetched is
saved, and ``--resume`` continues).

``status`` (:mod:`crawler.status`, a shared crawl's progress) and ``merge``
(:mod:`crawler.merge`, the databases of several crawler processes into one) are dispatched from
the first word, and so are the plugins' ``images-dupes``
(:mod:`plugins.imagedupes`), ``report`` and ``diff`` (:mod:`plugins.auditreport`,
:mod:`plugins.auditdiff`; exit 3 for ``--fail-on``).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from crawler.config import Config, load_config, read_seeds
from crawler.engine import crawl
from crawler.errors import (
    ConfigError,
    FrontierError,
    FrontierLostError,
    PluginError,
    StorageError,
    StorageWriteError,
)
from crawler.plugins import load_plugins
from crawler.progress import Progress
from crawler.storage import existing_crawl

# python -m crawler COMMAND ...: merging workers' databases, and the plugins' commands (a
# seed file of that name: ./NAME).
SUBCOMMANDS = {
    "status": "crawler.status:status_main",
    "merge": "crawler.merge:merge_main",
    "images-dupes": "plugins.imagedupes:images_dupes_main",
    "report": "plugins.auditreport:report_main",
    "diff": "plugins.auditdiff:diff_main",
}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_FRONTIER_LOST = 4
EXIT_INTERRUPTED = 130


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _quit_now(signum: int, frame: object) -> None:
    os._exit(EXIT_INTERRUPTED)


def run_async(main: Coroutine[Any, Any, int]) -> int:
    # What start-up made (modules, classes, functions) lives until exit: moved out of the
    # collector's sight, full collections stop scanning it again and again (shorter pauses
    # of the event loop while crawling).
    gc.freeze()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


async def _crawl_main(config: Config, seeds: list[str]) -> int:
    progress = Progress(quiet=config.quiet)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        if stop.is_set():
            # A second Ctrl-C: leave at once. SQLite's journal keeps the database consistent.
            os._exit(EXIT_INTERRUPTED)
        stop.set()
        progress.error("interrupted: saving what was fetched (Ctrl-C again to quit at once)")

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    loop.add_signal_handler(signal.SIGTERM, on_sigint)
    try:
        stats = await crawl(config, seeds, progress, stop)
    except StorageWriteError as exc:
        progress.error(f"{exc}; the crawl stopped. What was saved before is intact.")
        return EXIT_FAILED
    except FrontierLostError as exc:
        progress.error(f"{exc}: {resume_command(config)}")
        return EXIT_FRONTIER_LOST
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        # From here to exit (summary, pool shutdown), Ctrl-C means "quit now".
        signal.signal(signal.SIGINT, _quit_now)
        signal.signal(signal.SIGTERM, _quit_now)
    progress.summary(stats, str(config.db), stats.plugin_summary)
    if stats.interrupted:
        progress.error(f"interrupted; continue with: {resume_command(config)}")
        return EXIT_INTERRUPTED
    return EXIT_OK


def resume_command(config: Config) -> str:
    words = ["python -m crawler", shlex.quote(str(config.seed_file)), "--resume"]
    if config.db != Config().db:
        words += ["--db", shlex.quote(str(config.db))]
    if config.config_path is not None and config.config_path.name != "config.toml":
        words += ["--config", shlex.quote(str(config.config_path))]
    if config.frontier is not None:
        words += ["--frontier", shlex.quote(config.frontier)]
        if config.name != Config().name:
            words += ["--name", shlex.quote(config.name)]
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    command = SUBCOMMANDS.get(args[0]) if args else None
    if command is not None:
        module, _, function = command.partition(":")
        entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
        return entry(args[1:])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        config = load_config(args)
        assert config.seed_file is not None
        seeds = read_seeds(
            config.seed_file, warn=lambda msg: print(f"warning: {msg}", file=sys.stderr)
        )
        load_plugins(config)  # unknown names and bad settings: exit 2 before anything
        if config.resume and not config.db.exists():
            raise ConfigError(f"nothing to resume: {config.db} does not exist")
        known = existing_crawl(config.db)
        if known and not config.resume:
            raise ConfigError(
                f"{config.db} already holds a crawl ({known} URLs): pass --resume to continue "
                f"it, or start fresh with --db NEW.db or by deleting {config.db}"
            )
        code = run_async(_crawl_main(config, seeds))
        if code == EXIT_INTERRUPTED:
            # Everything is saved and closed. Leave now: a second Ctrl-C arriving during the
            # interpreter's own shutdown would otherwise kill the process by signal.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except (ConfigError, PluginError, StorageError, FrontierError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C before the crawl's own handler was in place
        _error("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
