"""Where CPU work runs: inline in the event loop, or in batches in a pool of worker processes.

Parsing and hashing hold the GIL, so with ``workers > 0`` they can go to a
:class:`~concurrent.futures.ProcessPoolExecutor` through ``loop.run_in_executor``. Moving a job
to another process has a price (pickling the arguments and the result, two pipe writes, two
wake-ups), and :class:`CpuPool` weighs that price against the work, by measuring both:

- **Cost of a job**: every job, inline or in a worker, is timed where it runs (CPU time of the
  thread, so a busy machine does not inflate it); per function the pool keeps a moving average
  of seconds per input byte (bytes arguments: the body).
- **Cost of moving it**: the crawler pickles each batch's calls and unpickles its results
  itself, in the event loop, and times both; with the fixed cost of one executor call
  (``CALL_COST``) shared by the batch's jobs, that is what a job costs the crawler's process to
  move. (Latency is not counted: it costs throughput nothing while the loop does other work.)
- A job whose expected cost is below the cost of moving it runs inline (hashing a small image,
  say); the rest go to the pool. Until a function has been measured, its jobs go to the pool.
- **Batches**: jobs wait in a bounded queue; when a worker is free, the jobs waiting (up to
  ``max_batch``) leave together in one ``run_in_executor`` call, so the fixed price of a call is
  shared. A job that finds the queue empty lingers ``linger`` seconds (10 ms) for others; when
  pages arrive faster than the workers parse them, batches grow further by themselves.
- **Start-up**: until a worker has started (forkserver, imports: up to a second), jobs run
  inline, so the first pages of a crawl never wait for the pool.
- **Back-pressure**: at most ``max_pending`` jobs wait or run at once; a caller beyond that
  waits for room, so a fast network cannot flood the pool with bodies.

Workers ignore SIGINT so that Ctrl-C is handled once, by the crawler, which then shuts the pool
down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import pickle
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

MAX_BATCH: Final = 32
LINGER: Final = 0.01  # seconds a job waits for others to share its executor call
DELIVER_PER_PASS: Final = 4  # results handed back per event loop pass (see _deliver)
# Weight of a new measurement in the moving averages: about the last 20 count.
SMOOTHING: Final = 0.05
# Sizes under this many bytes count as this many, so a per-byte cost stays meaningful.
MIN_SIZE: Final = 256
# What one run_in_executor call costs the crawler's process beyond pickling: the future, the
# pipe writes and reads in the executor's threads, two thread wake-ups. Measured on this
# project's 2-core machine with `python -m bench.cpucall` (CPU time of the calling process per
# call of an empty batch).
CALL_COST: Final = 300e-6


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def payload_size(args: tuple[object, ...]) -> int:
    """Bytes a job carries: the length of its bytes-like arguments (a body, say)."""
    return sum(len(a) for a in args if isinstance(a, bytes | bytearray | memoryview))


def _average(old: float | None, new: float) -> float:
    return new if old is None else old + SMOOTHING * (new - old)


@dataclass(slots=True)
class CostModel:
    """What the pool has measured: per function, seconds of work per byte; per job, seconds of
    the crawler's own time spent moving it to a worker and back."""

    per_byte: dict[str, float] = field(default_factory=dict)
    move: float | None = None

    def work(self, name: str, size: int) -> float | None:
        """Expected seconds of work for a job of ``name`` on ``size`` bytes (None: unknown)."""
        rate = self.per_byte.get(name)
        return None if rate is None else rate * max(size, MIN_SIZE)

    def measured_work(self, name: str, size: int, seconds: float) -> None:
        self.per_byte[name] = _average(self.per_byte.get(name), seconds / max(size, MIN_SIZE))

    def measured_move(self, jobs: int, pickling: float) -> None:
        """A batch of ``jobs`` went and came back; pickling and unpickling took ``pickling``."""
        self.move = _average(self.move, (pickling + CALL_COST) / jobs)

    def inline(self, name: str, size: int) -> bool:
        """Run it inline: the work costs less than moving it would."""
        work = self.work(name, size)
        return work is not None and self.move is not None and work < self.move


Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
Outcome = tuple[bool, Any, float]  # (succeeded, result or exception, seconds of work)


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    name: str
    size: int
    future: asyncio.Future[Any]


class CpuPool:
    """Runs CPU-bound functions inline (``workers=0``), or in worker processes in batches."""

    def __init__(
        self,
        workers: int,
        *,
        max_batch: int = MAX_BATCH,
        max_pending: int | None = None,
        adaptive: bool = True,
        linger: float = LINGER,
    ) -> None:
        self.workers = workers
        self.max_batch = max(1, max_batch)
        # Room for every worker to have a full batch running and one more waiting.
        self.max_pending = max_pending or max(4, (workers + 1) * self.max_batch)
        self.adaptive = adaptive
        self.model = CostModel()
        self._room = asyncio.Semaphore(self.max_pending)
        self._waiting: deque[_Job] = deque()
        self._batches_out = 0
        self.linger = linger
        self._timer: asyncio.TimerHandle | None = None
        self._executor: ProcessPoolExecutor | None = None
        if workers > 0:
            context = multiprocessing.get_context("forkserver")
            self._executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_ignore_sigint
            )
        # Starting the workers takes a while (forkserver, imports): jobs run inline until one
        # of them has answered, so the first pages of a crawl never wait for it.
        self._started = self._executor is None
        if self._executor is not None:
            self._executor.submit(_started).add_done_callback(self._on_started)
        self.jobs = 0
        self.inline_jobs = 0
        self.batches = 0
        self.busy_seconds = 0.0

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)``, inline or in a worker, whichever costs less."""
        name = f"{fn.__module__}.{fn.__qualname__}"
        size = payload_size(args)
        if self._executor is None or (
            self.adaptive and (not self._started or self.model.inline(name, size))
        ):
            return self._inline(fn, args, kwargs, name, size)
        async with self._room:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            self._waiting.append(_Job(fn, args, kwargs, name, size, future))
            self._send()
            return await future

    @property
    def ready(self) -> bool:
        """True once a worker process has started (always, with no workers)."""
        return self._started

    def _on_started(self, done: Future[None]) -> None:
        self._started = done.exception() is None  # (in the executor's thread; a plain flag)

    def _inline(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
        size: int,
    ) -> T:
        start = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds = time.thread_time() - start
            self.model.measured_work(name, size, seconds)
            self.jobs += 1
            self.inline_jobs += 1
            self.busy_seconds += seconds

    def _send(self) -> None:
        """Hand waiting jobs to free workers, as many per call as are waiting.

        A lone job lingers ``linger`` seconds for company, unless a full batch is waiting:
        an executor call costs the event loop as much as parsing a page (see CALL_COST), and
        a few milliseconds of latency cost a crawl nothing (the host's slot is already free).
        """
        if len(self._waiting) < self.max_batch and self.linger > 0:
            if self._timer is None and self._waiting:
                self._timer = asyncio.get_running_loop().call_later(self.linger, self._flush)
            return
        self._flush()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._executor is not None and self._waiting and self._batches_out < self.workers:
            batch: list[_Job] = []
            while self._waiting and len(batch) < self.max_batch:
                job = self._waiting.popleft()
                if not job.future.done():  # its caller may have been cancelled meanwhile
                    batch.append(job)
            if batch:
                self._submit(self._executor, batch)

    def _submit(self, executor: ProcessPoolExecutor, batch: list[_Job]) -> None:
        start = time.thread_time()
        try:
            calls: list[Call] = [(job.fn, job.args, job.kwargs) for job in batch]
            payload = pickle.dumps(calls, pickle.HIGHEST_PROTOCOL)
            pickling = time.thread_time() - start
            sent = executor.submit(_run_batch, payload)
        except Exception as exc:  # an argument that does not pickle; a pool shut down
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self._batches_out += 1
        self.batches += 1
        sent.add_done_callback(
            functools.partial(
                _from_thread, asyncio.get_running_loop(), self._returned, batch, pickling
            )
        )

    def _returned(self, batch: list[_Job], pickling: float, done: Future[bytes]) -> None:
        self._batches_out -= 1
        try:
            start = time.thread_time()
            outcomes: list[Outcome] = pickle.loads(done.result())
            pickling += time.thread_time() - start
        except BaseException as exc:  # the batch never ran (broken pool, shutdown)
            error = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
        else:
            self.model.measured_move(len(batch), pickling)
            for job, (_, _, seconds) in zip(batch, outcomes, strict=True):
                self.model.measured_work(job.name, job.size, seconds)
                self.busy_seconds += seconds
            self.jobs += len(batch)
            self._deliver(list(zip(batch, outcomes, strict=True)))
        if self._waiting and self._timer is None:
            self._flush()  # these waited for a worker, long enough

    def _deliver(self, results: list[tuple[_Job, Outcome]]) -> None:
        """Wake the callers of a batch a few at a time, one event loop pass each: what they
        do next (save a page, queue its links) would otherwise run in one long pass, and
        keep timers and sockets waiting (loop lag)."""
        for job, (ok, value, _) in results[:DELIVER_PER_PASS]:
            if job.future.done():
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        if len(results) > DELIVER_PER_PASS:
            asyncio.get_running_loop().call_soon(self._deliver, results[DELIVER_PER_PASS:])

    def close(self, *, cancel: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for job in self._waiting:
            job.future.cancel()
        self._waiting.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=not cancel, cancel_futures=cancel)
            self._executor = None

    def describe(self) -> str:
        """One line for the summary: where the jobs ran and what moving one cost."""
        if self.workers == 0:
            return f"{self.jobs:,} jobs inline (--workers 0)"
        pooled = self.jobs - self.inline_jobs
        per_batch = pooled / self.batches if self.batches else 0.0
        move = f"; moving a job costs {self.model.move * 1e6:.0f} µs" if self.model.move else ""
        return (
            f"{pooled:,} jobs on {self.workers} processes in {self.batches:,} batches "
            f"({per_batch:.1f} per batch), {self.inline_jobs:,} inline{move}"
        )

    def __repr__(self) -> str:
        mode = f"processes={self.workers}" if self.workers else "inline"
        return (
            f"<CpuPool {mode} max_batch={self.max_batch} max_pending={self.max_pending} "
            f"jobs={self.jobs} inline={self.inline_jobs} batches={self.batches} "
            f"waiting={len(self._waiting)} busy={self.busy_seconds:.2f}s>"
        )


def _started() -> None:
    """Run by the first worker up: the pool can take jobs."""


def _from_thread(
    loop: asyncio.AbstractEventLoop,
    callback: Callable[[list[_Job], float, Future[Any]], None],
    batch: list[_Job],
    pickling: float,
    done: Future[Any],
) -> None:
    """A batch's future is done (in the executor's thread): hand it to the event loop."""
    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(callback, batch, pickling, done)


def _run_batch(payload: bytes) -> bytes:
    """In a worker: run each call of the pickled batch, timing it; an exception is returned in
    its place. Calls and outcomes cross as bytes that the crawler pickles and unpickles itself,
    so that it can time what moving them costs it."""
    calls: list[Call] = pickle.loads(payload)
    outcomes: list[Outcome] = []
    for fn, args, kwargs in calls:
        start = time.thread_time()
        try:
            value, ok = fn(*args, **kwargs), True
        except Exception as exc:
            value, ok = exc, False
        outcomes.append((ok, value, time.thread_time() - start))
    try:
        return pickle.dumps(outcomes, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # a result or an exception that does not pickle
        problem = TypeError(f"a CPU job's result cannot be sent back: {exc!r}")
        return pickle.dumps([(False, problem, seconds) for _, _, seconds in outcomes])
