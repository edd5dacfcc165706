"""Loop lag measurement and adaptive concurrency: the limit, the controller, a real crawl."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from crawler.concurrency import ConcurrencyController, ConcurrencyLimit
from crawler.looplag import LoopLag
from crawler.parse import ParsedPage
from crawler.plugins import Plugin
from crawler.storage import PageRow
from tests.conftest import RunCrawl
from tests.site import Site


async def test_loop_lag_sees_a_blocked_loop() -> None:
    lag = LoopLag(interval=0.01)
    lag.start()
    await asyncio.sleep(0.1)
    time.sleep(0.2)  # noqa: ASYNC251 - a callback that holds the loop, on purpose
    await asyncio.sleep(0.05)
    lag.stop()
    assert lag.samples >= 5
    assert lag.worst >= 0.15
    assert lag.percentile(1.0) >= 0.15
    assert lag.percentile(0.5) < 0.05
    assert "p99" in lag.describe()


def test_loop_lag_percentiles() -> None:
    lag = LoopLag()
    for ms in range(1, 101):
        lag.record(ms / 1000)
    assert lag.percentile(0.5) == pytest.approx(0.050, abs=2e-4)
    assert lag.percentile(0.99) == pytest.approx(0.099, abs=2e-4)
    assert lag.recent(0.9) == pytest.approx(0.097, abs=2e-3)  # the last 40 samples: 61..100
    assert LoopLag().percentile(0.99) == 0.0


async def test_limit_resizes_while_held() -> None:
    limit = ConcurrencyLimit(2)
    await limit.acquire()
    await limit.acquire()
    waiter = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0)
    assert not waiter.done() and limit.saturated
    limit.resize(3)  # growing lets a waiter in at once
    await asyncio.sleep(0)
    assert waiter.done() and limit.held == 3
    limit.resize(1)  # shrinking applies as holders release
    limit.release()
    limit.release()
    late = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0)
    assert not late.done()
    limit.release()
    await asyncio.sleep(0)
    assert late.done() and limit.held == 1


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    limit = ConcurrencyLimit(1)
    await limit.acquire()
    waiter = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0)
    limit.release()  # granted to the waiter ...
    waiter.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limit.held == 0
    await asyncio.wait_for(limit.acquire(), 1)


def test_controller_shrinks_on_loop_lag_and_grows_back() -> None:
    control = ConcurrencyController(64)
    assert control.minimum == 16
    assert control.decide(64, lag=0.2, saturated=True) == 48
    assert control.decide(48, lag=0.2, saturated=True) == 36
    assert control.decide(16, lag=0.2, saturated=True) == 16  # never under the floor
    assert control.decide(36, lag=0.001, saturated=True) == 40
    assert control.decide(40, lag=0.001, saturated=False) == 40  # slots unused: no need
    assert control.decide(64, lag=0.001, saturated=True) == 64  # the user's ceiling
    assert control.decide(40, lag=0.03, saturated=True) == 40  # not quite calm: hold
    assert control.lowest == 16


def test_controller_backs_off_when_servers_slow_down() -> None:
    control = ConcurrencyController(32)
    for _ in range(50):
        control.observe(0.010)
    assert control.decide(32, lag=0.0, saturated=True) == 32  # the best latency so far
    for _ in range(50):
        control.observe(0.080)  # eight times slower under our load
    shrunk = control.decide(32, lag=0.0, saturated=True)
    assert 8 <= shrunk < 32
    assert ConcurrencyController(3).minimum == 3  # a small ceiling is its own floor


class StallingPlugin(Plugin):
    """Holds the event loop on every page, as heavy inline work would."""

    name = "stall"

    async def on_page(self, row: PageRow, page: ParsedPage) -> None:
        time.sleep(0.08)  # noqa: ASYNC251 - on purpose


async def test_a_lagging_loop_lowers_the_concurrency(
    site: Site, run_crawl: RunCrawl, monkeypatch: Any
) -> None:
    paths = [f"/p{i}" for i in range(40)]
    site.add_page("/", links=paths)
    for path in paths:
        site.add_page(path)
    monkeypatch.setattr("crawler.engine.load_plugins", lambda config: [StallingPlugin({}, config)])
    result = await run_crawl([site.url()], concurrency=32, per_host=32)
    assert len(result.pages()) == 41
    assert result.stats.loop_lag_p99 >= 0.05
    assert result.stats.concurrency_low < 32
    fixed = await run_crawl([site.url()], concurrency=32, per_host=32, adaptive=False)
    assert fixed.stats.concurrency_low == 32


async def test_the_run_is_recorded_in_meta(site: Site, run_crawl: RunCrawl) -> None:
    site.add_page("/", links=["/a"])
    site.add_page("/a")
    result = await run_crawl([site.url()])
    (value,) = result.rows("SELECT value FROM meta WHERE key = 'last_run'")
    run = json.loads(value[0])
    assert run["pages"] == 2 and run["interrupted"] is False
    assert set(run["loop_lag_ms"]) == {"p50", "p99", "max"}
    assert run["concurrency"]["max"] == 32
    assert run["cpu"]["jobs"] == 2 and run["cpu"]["workers"] == 0
