"""The CPU pool: batches to worker processes, inline when moving costs more, bounded queue."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest

from crawler.analyze import analyze, digest
from crawler.cpu import CALL_COST, CostModel, CpuPool
from crawler.parse import Link, ParsedPage, parse_html


def square(n: int) -> int:
    return n * n


def fail(message: str) -> int:
    raise ValueError(message)


def unpicklable(_: int) -> object:
    return threading.Lock()


def burn(body: bytes) -> str:
    """Work that costs far more than moving its small argument."""
    digest_ = body
    for _ in range(20_000):
        digest_ = hashlib.sha256(digest_).digest()
    return digest_.hex()


async def test_jobs_go_to_the_workers_in_batches() -> None:
    pool = CpuPool(2, adaptive=False)
    try:
        results = await asyncio.gather(*(pool.run(square, n) for n in range(200)))
    finally:
        pool.close()
    assert results == [n * n for n in range(200)]
    assert pool.jobs == 200
    assert pool.inline_jobs == 0
    assert pool.batches < 200 / 4  # many jobs per executor call
    assert "batches" in pool.describe()


async def test_an_exception_comes_back_to_its_caller_only() -> None:
    pool = CpuPool(2, adaptive=False)
    try:
        outcomes = await asyncio.gather(
            pool.run(square, 3),
            pool.run(fail, "bad page"),
            pool.run(square, 4),
            return_exceptions=True,
        )
    finally:
        pool.close()
    assert outcomes[0] == 9 and outcomes[2] == 16
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "bad page"


async def test_a_result_that_cannot_be_sent_back_is_an_error_not_a_hang() -> None:
    pool = CpuPool(1, adaptive=False)
    try:
        with pytest.raises(TypeError, match="cannot be sent back"):
            await asyncio.wait_for(pool.run(unpicklable, 1), 30)
        assert await pool.run(square, 5) == 25  # the pool still works
    finally:
        pool.close()


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    pool = CpuPool(1, adaptive=False, linger=0.05)
    try:
        doomed = asyncio.create_task(pool.run(square, 2))
        kept = asyncio.create_task(pool.run(square, 3))
        await asyncio.sleep(0)
        doomed.cancel()
        assert await kept == 9
        with pytest.raises(asyncio.CancelledError):
            await doomed
    finally:
        pool.close()


async def test_the_queue_to_the_pool_is_bounded() -> None:
    pool = CpuPool(1, max_batch=2, max_pending=3, adaptive=False)
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, pool.max_pending - pool._room._value)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(pool.run(burn, bytes([n])) for n in range(8)))
    finally:
        watcher.cancel()
        pool.close()
    assert most == 3


async def wait_ready(pool: CpuPool) -> None:
    for _ in range(600):
        if pool.ready:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the worker processes never started")


async def test_jobs_run_inline_until_the_workers_are_up() -> None:
    pool = CpuPool(1)
    try:
        assert not pool.ready
        assert await pool.run(square, 7) == 49  # at once, in the event loop
        assert pool.inline_jobs == 1
        await wait_ready(pool)
        await pool.run(burn, b"x")
        assert pool.inline_jobs == 1 and pool.batches == 1
    finally:
        pool.close()


async def test_cheap_jobs_run_inline_once_measured_expensive_ones_stay_in_the_pool() -> None:
    pool = CpuPool(2)
    try:
        await wait_ready(pool)
        for _ in range(5):  # a few batches: both costs measured
            await asyncio.gather(*(pool.run(digest, b"x" * 100) for _ in range(20)))
        assert pool.model.move is not None
        before = pool.inline_jobs
        await pool.run(digest, b"tiny")
        assert pool.inline_jobs == before + 1  # hashing 4 bytes: cheaper than moving them
        for _ in range(3):
            await asyncio.gather(*(pool.run(burn, bytes([n])) for n in range(4)))
        inline = pool.inline_jobs
        await pool.run(burn, b"z")
        assert pool.inline_jobs == inline  # 20,000 hashes: worth moving
    finally:
        pool.close()


def test_cost_model_compares_work_with_moving() -> None:
    model = CostModel()
    assert not model.inline("f", 1000)  # nothing measured: to the pool, to measure it
    model.measured_work("f", 1000, 0.0002)  # 0.2 µs per byte
    assert not model.inline("f", 1000)  # the cost of moving is still unknown
    model.measured_move(jobs=10, pickling=0.001)
    move = (0.001 + CALL_COST) / 10
    assert model.move == pytest.approx(move)
    break_even = move / 2e-7  # bytes
    assert break_even > 400
    assert model.inline("f", int(break_even * 0.8))
    assert not model.inline("f", int(break_even * 1.2))


async def test_pages_come_back_from_the_workers_equal() -> None:
    body = (
        b"<html lang=en><title>T</title><a href='/a' rel=nofollow>A</a><img src=/i.png>"
        b"<link rel=alternate hreflang=de href=/de><h1>x</h1></html>"
    )
    headers = {"content-type": "text/html"}
    pool = CpuPool(1, adaptive=False)
    try:
        analysis = await pool.run(analyze, body, "http://example.com/", headers)
    finally:
        pool.close()
    page = analysis.page
    assert isinstance(page, ParsedPage)
    assert page == parse_html(body, "http://example.com/", headers)
    assert all(type(link) is Link for link in page.links)
    assert page.links[0] == Link("http://example.com/a", "a", True, False, "A")
    assert page.links[0].nofollow is True
