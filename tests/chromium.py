"""Headless Chromium driven over the DevTools protocol, with nothing but aiohttp.

    async with open_page(require_program("chromium"), tmp_path) as page:
        await page.navigate(path.as_uri())
        assert await page.evaluate("document.title") == "..."

Chromium runs in a process group of its own, with a throwaway profile, no background
networking and no first-run requests; it is killed (the whole group) when the block ends,
whatever happened. Every wait is bounded by ``timeout`` seconds, so a hung browser fails the
test instead of hanging the run. The page's console messages, uncaught exceptions, log
entries and network requests are recorded in :attr:`Page.events` for the test to check.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
)

Event = dict[str, Any]


class DevToolsError(Exception):
    """Chromium did not start, answered with an error, or did not answer in time."""


@dataclass
class Page:
    """One page target of a running Chromium, over its DevTools websocket."""

    ws: aiohttp.ClientWebSocketResponse
    timeout: float
    events: list[Event] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _replies: dict[int, asyncio.Future[Event]] = field(default_factory=dict)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __repr__(self) -> str:
        return f"<Page events={len(self.events)} pending={len(self._replies)}>"

    async def read_messages(self) -> None:
        """Route replies to their callers and keep events; runs until the socket closes."""
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._replies.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self.events.append(data)
                self._arrived.set()
        for future in self._replies.values():
            if not future.done():
                future.set_exception(DevToolsError("the DevTools connection closed"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result (DevToolsError on an error reply)."""
        call_id = next(self._ids)
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._replies[call_id] = future
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        try:
            async with asyncio.timeout(self.timeout):
                reply = await future
        except TimeoutError:
            raise DevToolsError(f"{method}: no answer in {self.timeout} s") from None
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def wait_for(
        self, method: str, where: Callable[[Event], bool] = lambda _: True, start: int = 0
    ) -> Event:
        """The first event ``method`` (from ``events[start]`` on) that ``where`` accepts."""
        seen = start
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    for event in self.events[seen:]:
                        if event.get("method") == method and where(event.get("params", {})):
                            return event
                    seen = len(self.events)
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise DevToolsError(f"no {method} event in {self.timeout} s") from None

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise DevToolsError(f"evaluating {expression!r}: {text}")
        return result["result"].get("value")

    async def wait_until(self, expression: str, poll: float = 0.05) -> Any:
        """Evaluate ``expression`` until it is truthy; its value."""
        try:
            async with asyncio.timeout(self.timeout):
                # Polling: the page has no way to signal us.
                while not (value := await self.evaluate(expression)):  # noqa: ASYNC110
                    await asyncio.sleep(poll)
                return value
        except TimeoutError:
            raise DevToolsError(f"{expression!r} still false after {self.timeout} s") from None

    async def navigate(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        start = len(self.events)
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise DevToolsError(f"navigating to {url}: {result['errorText']}")
        await self.wait_for("Page.loadEventFired", start=start)

    async def click(self, selector: str) -> None:
        """A real mouse click (press and release) in the middle of the element."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        if box is None:
            raise DevToolsError(f"nothing matches {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left" if kind != "mouseMoved" else "none",
                clickCount=1 if kind != "mouseMoved" else 0,
            )

    async def type_text(self, selector: str, text: str) -> None:
        """Click into the element, then type ``text`` as the keyboard would insert it."""
        await self.click(selector)
        await self.send("Input.insertText", text=text)

    async def screenshot(self) -> bytes:
        """A PNG of the whole page, not only the viewport."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        result = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        return base64.b64decode(result["data"])

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries, as text."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(
                    "exception: "
                    + str(details.get("exception", {}).get("description") or details["text"])
                )
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                found.append(f"console.{params['type']}: {args}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                found.append(f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}")
        return found

    def requested_urls(self) -> list[str]:
        return [
            str(event["params"]["request"]["url"])
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]


async def _devtools_port(profile: Path, proc: asyncio.subprocess.Process, log: Path) -> int:
    """The port Chromium chose, from the DevToolsActivePort file it writes in its profile."""
    active = profile / "DevToolsActivePort"
    while True:
        if active.exists():
            lines = active.read_text().splitlines()
            if lines and lines[0].strip().isdigit():
                return int(lines[0])
        if proc.returncode is not None:
            tail = log.read_text(errors="replace")[-2000:]  # noqa: ASYNC240 (a small file)
            raise DevToolsError(f"chromium exited with {proc.returncode} before listening:\n{tail}")
        await asyncio.sleep(0.05)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def open_page(program: str, workdir: Path, seconds: float = 30.0) -> AsyncIterator[Page]:
    """Start Chromium, connect to its blank page with Runtime, Log, Network and Page enabled.
    ``seconds`` bounds every wait: the start, each call, each event awaited."""
    timeout = seconds
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (local and instant)
    # A new profile each time: an old DevToolsActivePort file would name a dead port.
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir))
    log = profile.with_suffix(".log")
    with log.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            program,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # its own process group: killed as a whole below
        )
    reader: asyncio.Task[None] | None = None
    try:
        try:
            async with asyncio.timeout(timeout):
                port = await _devtools_port(profile, proc, log)
        except TimeoutError:
            raise DevToolsError(f"chromium did not listen within {timeout} s") from None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            pages = [t for t in targets if t.get("type") == "page"]
            if not pages:
                raise DevToolsError(f"chromium has no page target: {targets}")
            async with http.ws_connect(
                pages[0]["webSocketDebuggerUrl"], max_msg_size=0, autoping=True
            ) as ws:
                page = Page(ws, timeout)
                reader = asyncio.create_task(page.read_messages())
                for domain in ("Runtime", "Log", "Network", "Page"):
                    await page.send(f"{domain}.enable")
                try:
                    yield page
                finally:
                    await ws.close()
    finally:
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        _kill_group(proc)
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            raise DevToolsError(f"chromium (pid {proc.pid}) did not die after SIGKILL") from None
