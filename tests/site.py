"""A real local web site for the tests: aiohttp.web on 127.0.0.1, built per test.

Every test talks to real sockets, never to mocks and never to the internet. A :class:`Site` is
one host (``127.0.0.1:PORT``); several sites are several hosts. Pages are added with small
composable helpers, and every request is logged so that tests can check what the crawler asked
for, how often, how concurrently and how far apart::

    async def test_follows_links(site: Site) -> None:
        site.add_page("/", links=["/a", "/b"])
        site.add_page("/a", title="A")
        site.add_redirect("/b", "/a")
        ...
        assert site.count("/a") == 1

Unknown paths (``/robots.txt`` included, unless :meth:`Site.add_robots` was called) answer 404
and are logged like every other request. The hostile helpers (trickle, hang, big, bomb, reset,
early close) stream what they send, so they cost the test process no memory. :class:`RawServer`
is a bare TCP server for answers that are not HTTP at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import itertools
import socket
import ssl
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import brotli
from aiohttp import web

__all__ = [
    "Encoding",
    "Handler",
    "RawServer",
    "Reply",
    "RequestRecord",
    "Site",
    "SiteFactory",
    "compressed_zeros",
    "encode",
    "page_html",
    "sitemap_xml",
    "unused_port",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Encoding = Literal["gzip", "deflate", "raw-deflate", "br"]

_STREAM_BLOCK = 64 * 1024
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it, logged on arrival."""

    method: str
    path_qs: str  # the request target exactly as sent (path and query, still encoded)
    time: float  # time.monotonic() on arrival
    headers: Mapping[str, str]

    @property
    def path(self) -> str:
        return self.path_qs.partition("?")[0]


@dataclass(frozen=True, slots=True)
class Reply:
    """A canned answer, for :meth:`Site.add_sequence`."""

    status: int = 200
    body: str | bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "text/html; charset=utf-8"

    def to_response(self) -> web.Response:
        body = self.body.encode() if isinstance(self.body, str) else self.body
        headers = {"Content-Type": self.content_type, **self.headers}
        return web.Response(status=self.status, body=body, headers=headers)


def page_html(title: str, links: Sequence[str] = ()) -> str:
    """A small valid HTML page with a title and one ``<a href>`` per link."""
    items = "\n".join(
        f'<li><a href="{html.escape(link, quote=True)}">{html.escape(link)}</a></li>'
        for link in links
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>\n'
        f"<body><h1>{html.escape(title)}</h1>\n<ul>\n{items}\n</ul>\n</body></html>\n"
    )


def sitemap_xml(urls: Sequence[str], *, index: bool = False) -> str:
    """A sitemaps.org ``<urlset>`` listing ``urls`` (a ``<sitemapindex>`` with ``index``)."""
    root, entry = ("sitemapindex", "sitemap") if index else ("urlset", "url")
    items = "".join(
        f"<{entry}><loc>{html.escape(url)}</loc><lastmod>2024-01-01</lastmod></{entry}>\n"
        for url in urls
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{root} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{items}</{root}>\n'
    )


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def encode(data: bytes, encoding: Encoding) -> bytes:
    """``data`` compressed as a server would send it with that Content-Encoding.

    ``raw-deflate`` is deflate without the zlib wrapper, which some servers send as ``deflate``.
    """
    if encoding == "gzip":
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
    elif encoding == "raw-deflate":
        compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    else:
        return bytes(brotli.compress(data))
    return compressor.compress(data) + compressor.flush()


@functools.cache
def _deflated_zero_mib() -> bytes:
    """Raw deflate of 1 MiB of zeros ending in a full flush: a block that can be repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(bytes(_MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)


def _raw_deflate_zeros(n_bytes: int) -> bytes:
    # After Z_FULL_FLUSH the compressor starts afresh, so the 1 MiB block is position
    # independent: the stream is that block repeated, the remainder, and an empty final block.
    whole, rest = divmod(n_bytes, _MIB)
    tail = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    remainder = tail.compress(bytes(rest)) + tail.flush(zlib.Z_FULL_FLUSH) if rest else b""
    return _deflated_zero_mib() * whole + remainder + tail.flush(zlib.Z_FINISH)


@functools.cache
def compressed_zeros(n_bytes: int, encoding: Encoding) -> bytes:
    """A valid compressed stream that inflates to ``n_bytes`` zeros, built without holding them.

    gzip and deflate cost about 1 KB per MiB of output (a 10 GB bomb is about 10 MB) and are
    built by repetition; br is about 190 KB per GiB. Cached: each bomb is computed once per run.
    """
    if encoding == "br":
        compressor = brotli.Compressor(quality=1)
        pieces = [compressor.process(bytes(_MIB)) for _ in range(n_bytes // _MIB)]
        pieces.append(compressor.process(bytes(n_bytes % _MIB)))
        pieces.append(compressor.finish())
        return b"".join(pieces)
    deflated = _raw_deflate_zeros(n_bytes)
    if encoding == "raw-deflate":
        return deflated
    if encoding == "deflate":
        adler = (n_bytes % 65521) << 16 | 1  # adler32 of zeros: a stays 1, b counts bytes
        return b"\x78\xda" + deflated + struct.pack(">I", adler)
    crc = 0
    block = bytes(16 * _MIB)
    whole, rest = divmod(n_bytes, len(block))
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(block[:rest], crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + deflated + struct.pack("<II", crc, n_bytes & 0xFFFFFFFF)


def unused_port() -> int:
    """A local TCP port with nothing listening on it (for "connection refused")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Site:
    """One local web server (one host) whose pages the test defines. Start it before use.

    With ``tls`` (a server-side SSLContext holding a certificate for 127.0.0.1) it serves
    https; a client trusts it through the CA that issued the certificate (conftest's
    ``https_site`` and ``ca_file``).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self._routes: dict[str, Handler] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = asyncio.Event()
        self.requests: list[RequestRecord] = []
        self.in_flight = 0
        self.max_in_flight = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Site:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a handler stops when its client goes away, so hostile
        # handlers never outlive the test; a short shutdown_timeout keeps teardown quick.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        tcp_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.tls)
        await tcp_site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]
        return self

    async def close(self) -> None:
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Site:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the site is not started")
        return self._port

    @property
    def host(self) -> str:
        """The netloc, ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this site."""
        if not path.startswith("/"):
            path = "/" + path
        return f"{'https' if self.tls is not None else 'http'}://{self.host}{path}"

    # -- the request log ---------------------------------------------------------------------

    def _matching(self, path: str | None) -> list[RequestRecord]:
        if path is None:
            return list(self.requests)
        if "?" in path:
            return [record for record in self.requests if record.path_qs == path]
        return [record for record in self.requests if record.path == path]

    def count(self, path: str) -> int:
        """Requests for ``path`` (with a ``?``: that exact path and query; else any query)."""
        return len(self._matching(path))

    def starts(self, path: str | None = None) -> list[float]:
        """Arrival times (monotonic) of the requests for ``path``, or of all requests."""
        return [record.time for record in self._matching(path)]

    def gaps(self, path: str | None = None) -> list[float]:
        """Seconds between successive request arrivals for ``path``, or for the whole host."""
        times = self.starts(path)
        return [later - earlier for earlier, later in itertools.pairwise(times)]

    @property
    def paths(self) -> list[str]:
        """The request targets in arrival order."""
        return [record.path_qs for record in self.requests]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        target = request.raw_path
        self.requests.append(
            RequestRecord(request.method, target, time.monotonic(), dict(request.headers))
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            handler = (
                self._routes.get(target)
                or self._routes.get(target.partition("?")[0])
                or self._routes.get(request.path)
            )
            if handler is None:
                return web.Response(status=404, text="not found", content_type="text/plain")
            return await handler(request)
        finally:
            self.in_flight -= 1

    # -- ordinary pages ----------------------------------------------------------------------

    def add_handler(self, path: str, handler: Handler) -> None:
        """Answer ``path`` with any aiohttp handler. Every other helper is built on this."""
        self._routes[path] = handler

    def add_page(
        self,
        path: str,
        body_html: str | None = None,
        *,
        links: Sequence[str] = (),
        title: str | None = None,
        status: int = 200,
        content_type: str = "text/html; charset=utf-8",
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> None:
        """A page: ``body`` bytes as is, else ``body_html``, else a generated page with links."""
        if body is None:
            text = body_html if body_html is not None else page_html(title or path, links)
            body = text.encode(_charset(content_type))
        all_headers = {"Content-Type": content_type, **(headers or {})}
        self.add_handler(path, _fixed(status, body, all_headers))

    def add_encoded(
        self,
        path: str,
        body: bytes | str,
        encoding: Encoding,
        *,
        content_type: str = "text/html; charset=utf-8",
    ) -> None:
        """A page sent compressed (``raw-deflate`` is labelled ``deflate``, as servers do)."""
        raw = body.encode() if isinstance(body, str) else body
        label = "deflate" if encoding == "raw-deflate" else encoding
        headers = {"Content-Type": content_type, "Content-Encoding": label}
        self.add_handler(path, _fixed(200, encode(raw, encoding), headers))

    def add_redirect(self, path: str, location: str, status: int = 301) -> None:
        body = b"<a href='%s'>moved</a>" % html.escape(location).encode()
        headers = {"Location": location, "Content-Type": "text/html; charset=utf-8"}
        self.add_handler(path, _fixed(status, body, headers))

    def add_sitemap(
        self, path: str, urls: Sequence[str], *, index: bool = False, gzipped: bool = False
    ) -> None:
        """A sitemap (``index``: a sitemap index) listing ``urls``; paths become URLs of this
        site. ``gzipped``: a .xml.gz file, served as application/gzip bytes."""
        absolute = [self.url(url) if url.startswith("/") else url for url in urls]
        body = sitemap_xml(absolute, index=index).encode()
        if gzipped:
            self.add_page(path, body=encode(body, "gzip"), content_type="application/gzip")
        else:
            self.add_page(path, body=body, content_type="application/xml")

    def add_robots(self, text: str) -> None:
        self.add_handler(
            "/robots.txt", _fixed(200, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})
        )

    def add_status(
        self, path: str, status: int, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        self.add_handler(
            path, _fixed(status, body, {"Content-Type": "text/plain", **(headers or {})})
        )

    def add_slow(
        self, path: str, delay_s: float, html: str | None = None, *, links: Sequence[str] = ()
    ) -> None:
        """A page that answers after ``delay_s`` seconds."""
        body = (html if html is not None else page_html(path, links)).encode()

        async def slow(request: web.Request) -> web.StreamResponse:
            await self._sleep(delay_s)
            return web.Response(body=body, content_type="text/html", charset="utf-8")

        self.add_handler(path, slow)

    def add_sequence(self, path: str, responses: Sequence[Reply | Handler]) -> None:
        """Answer successive requests with successive replies; the last one repeats."""
        if not responses:
            raise ValueError("add_sequence needs at least one response")
        served = 0

        async def sequence(request: web.Request) -> web.StreamResponse:
            nonlocal served
            reply = responses[min(served, len(responses) - 1)]
            served += 1
            if isinstance(reply, Reply):
                return reply.to_response()
            return await reply(request)

        self.add_handler(path, sequence)

    # -- hostile servers ---------------------------------------------------------------------

    def add_trickle(
        self, path: str, bytes_per_second: float, total: int, *, content_type: str = "text/html"
    ) -> None:
        """Declares ``total`` bytes and sends them at ``bytes_per_second``."""
        step = max(1, int(bytes_per_second / 20))

        async def trickle(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": content_type})
            response.content_length = total
            await response.prepare(request)
            sent = 0
            while sent < total and not self._closing.is_set():
                piece = min(step, total - sent)
                if not await _write(response, b"x" * piece):
                    break
                sent += piece
                await self._sleep(piece / bytes_per_second)
            return response

        self.add_handler(path, trickle)

    def add_hang(self, path: str) -> None:
        """Accepts the request and never answers (until the site closes or the client leaves)."""

        async def hang(request: web.Request) -> web.StreamResponse:
            await self._closing.wait()
            return web.Response(status=503, text="closing")

        self.add_handler(path, hang)

    def add_big(
        self,
        path: str,
        n_bytes: int,
        *,
        chunked: bool = False,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Streams ``n_bytes`` generated bytes, chunked or with a Content-Length."""
        block = b"a" * _STREAM_BLOCK

        async def big(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": content_type})
            if chunked:
                response.enable_chunked_encoding()
            else:
                response.content_length = n_bytes
            await response.prepare(request)
            remaining = n_bytes
            while remaining > 0 and not self._closing.is_set():
                piece = block if remaining >= len(block) else block[:remaining]
                if not await _write(response, piece):
                    break
                remaining -= len(piece)
            return response

        self.add_handler(path, big)

    def add_gzip_bomb(
        self,
        path: str,
        inflated_bytes: int,
        encoding: Literal["gzip", "deflate", "br"] = "gzip",
        *,
        content_type: str = "text/html",
    ) -> None:
        """A small compressed body that inflates to ``inflated_bytes`` zeros."""
        blob = compressed_zeros(inflated_bytes, encoding)
        headers = {"Content-Type": content_type, "Content-Encoding": encoding}
        self.add_handler(path, _fixed(200, blob, headers))

    def add_reset(self, path: str, after_bytes: int, *, declared: int | None = None) -> None:
        """Declares a body, sends ``after_bytes`` of it, then resets the connection (RST)."""
        length = declared if declared is not None else after_bytes + _MIB

        async def reset(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/html"})
            response.content_length = length
            await response.prepare(request)
            await _write(response, b"r" * after_bytes)
            await asyncio.sleep(0.05)  # let the client take the bytes before the RST
            transport = request.transport
            if transport is not None:
                sock = transport.get_extra_info("socket")
                if sock is not None:  # linger 0: close() sends RST instead of FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            return response

        self.add_handler(path, reset)

    def add_early_close(self, path: str, declared: int, sent: int) -> None:
        """Declares ``declared`` bytes, sends ``sent`` of them and closes cleanly (FIN)."""

        async def early_close(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/html"})
            response.content_length = declared
            await response.prepare(request)
            await _write(response, b"e" * sent)
            if request.transport is not None:
                request.transport.close()
            return response

        self.add_handler(path, early_close)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up as soon as the site starts closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    def __repr__(self) -> str:
        where = self.host if self._port is not None else "not started"
        return (
            f"<Site {where} routes={len(self._routes)} requests={len(self.requests)} "
            f"in_flight={self.in_flight} max_in_flight={self.max_in_flight}>"
        )


SiteFactory = Callable[[], Awaitable[Site]]


def _fixed(status: int, body: bytes, headers: Mapping[str, str]) -> Handler:
    async def fixed(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers=dict(headers))

    return fixed


async def _write(response: web.StreamResponse, data: bytes) -> bool:
    """Write to a client that may have gone away; False once it has."""
    try:
        await response.write(data)
    except ConnectionError:
        return False
    return True


class RawServer:
    """A bare TCP server on 127.0.0.1 that answers every connection with fixed bytes.

    For answers that are not valid HTTP: it reads the request head, writes ``reply`` and closes
    the connection (or keeps it open with ``close=False``, until the server closes).
    """

    def __init__(self, reply: bytes, *, close: bool = True) -> None:
        self.reply = reply
        self.close_after_reply = close
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._closing = asyncio.Event()
        self._port: int | None = None

    async def start(self) -> RawServer:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._closing.set()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._writers):
                writer.close()
            await server.wait_closed()

    async def __aenter__(self) -> RawServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def host(self) -> str:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return f"127.0.0.1:{self._port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}{path if path.startswith('/') else '/' + path}"

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.reply)
            await writer.drain()
            if not self.close_after_reply:
                await self._closing.wait()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def __repr__(self) -> str:
        where = self.host if self._port is not None else "not started"
        return f"<RawServer {where} connections={self.connections} reply={len(self.reply)}B>"
