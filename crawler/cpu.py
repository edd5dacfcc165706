"""Where CPU work runs: inline in the event loop, or in a pool of worker processes.

Parsing and hashing hold the GIL, so with ``workers > 0`` they go to a
:class:`~concurrent.futures.ProcessPoolExecutor` through ``loop.run_in_executor``. The
number of jobs waiting for the pool is bounded (``max_pending``): a fast network cannot
flood the pool with bodies, it waits for room instead. Workers ignore SIGINT so that Ctrl-C
is handled once, by the crawler, which then shuts the pool down.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class CpuPool:
    """Runs CPU-bound functions inline (``workers=0``) or in worker processes."""

    def __init__(self, workers: int, *, max_pending: int | None = None) -> None:
        self.workers = workers
        self.max_pending = max_pending or max(4, workers * 4)
        self._room = asyncio.Semaphore(self.max_pending)
        self._executor: ProcessPoolExecutor | None = None
        if workers > 0:
            context = multiprocessing.get_context("forkserver")
            self._executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_ignore_sigint
            )
        self.jobs = 0
        self.busy_seconds = 0.0

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._executor is None:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.jobs += 1
                self.busy_seconds += time.perf_counter() - start
        async with self._room:
            loop = asyncio.get_running_loop()
            start = time.perf_counter()
            try:
                return await loop.run_in_executor(self._executor, _call, fn, args, kwargs)
            finally:
                self.jobs += 1
                self.busy_seconds += time.perf_counter() - start

    def close(self, *, cancel: bool = False) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=not cancel, cancel_futures=cancel)
            self._executor = None

    def __repr__(self) -> str:
        mode = f"processes={self.workers}" if self.workers else "inline"
        return (
            f"<CpuPool {mode} max_pending={self.max_pending} jobs={self.jobs} "
            f"busy={self.busy_seconds:.2f}s>"
        )


def _call(fn: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]) -> T:
    return fn(*args, **kwargs)
