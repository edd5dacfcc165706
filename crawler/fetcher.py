"""One HTTP GET per call, with every limit enforced and every failure turned into data.

The fetcher is the crawler's single boundary with the network. :meth:`Fetcher.fetch` sends
exactly one GET and returns a :class:`Response`; it never follows redirects (the engine follows
them hop by hop, so that each hop gets a politeness slot and a ``redirects`` row) and never loops
on retries (the engine reschedules a retry without blocking a worker). :func:`should_retry` and
:func:`retry_delay` are the pure helpers the engine uses to decide retries.

Limits, all enforced here:

- ``timeout`` covers the whole request: connect, send, headers and the entire body. A server
  that never answers, or trickles one byte a second forever, ends in a ``timeout`` error.
- The body is streamed in chunks of at most :data:`CHUNK_SIZE` bytes and abandoned as soon as it
  passes ``max_bytes``; a ``Content-Length`` above ``max_bytes`` is refused before any body is
  read. At most ``max_bytes`` plus one chunk is ever held.
- ``gzip``, ``deflate`` (zlib-wrapped or raw) and ``br`` are decoded incrementally, each layer
  producing output in bounded pieces, so a compression bomb stops at ``max_bytes`` of decoded
  output without inflating the rest. An unknown ``Content-Encoding`` leaves the body as received.

An optional ``inspect`` callable sees the first :data:`INSPECT_BYTES` of a 2xx body (decoded)
once, as soon as they have arrived (or the whole body, if it is shorter), and may stop the
download there: it returns None to go on, or a reason, which ends the request as a ``skipped``
error. The images plugin uses it to drop tracking pixels and thumbnails from their header
without downloading the rest.

Failures never raise: every aiohttp, OS, timeout and decoding error is mapped here into a
``Response`` with ``status=None``, a human ``error`` message and a stable ``error_kind``
(see :data:`ERROR_KINDS`). Only cancellation propagates.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import random
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final, Protocol

import aiohttp
import brotli
import yarl
from aiohttp.http_exceptions import ContentLengthError, HttpProcessingError, TransferEncodingError

__all__ = [
    "CHUNK_SIZE",
    "ERROR_KINDS",
    "INSPECT_BYTES",
    "REDIRECT_STATUSES",
    "Fetcher",
    "Inspector",
    "Response",
    "retry_delay",
    "should_retry",
]

log = logging.getLogger(__name__)

#: Largest piece read from the socket, and largest piece a decoder emits at a time.
CHUNK_SIZE: Final = 64 * 1024

#: How much of a body an ``inspect`` callable sees (see :meth:`Fetcher.fetch`).
INSPECT_BYTES: Final = 64 * 1024

#: Looks at the first bytes of a 2xx body: None to go on, or the reason to stop downloading.
Inspector = Callable[[bytes], str | None]

#: Statuses that are redirects when they come with a ``Location`` header.
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})

#: Every value ``Response.error_kind`` can take, with what it means.
ERROR_KINDS: Final[Mapping[str, str]] = {
    "timeout": "no complete response within the timeout (connect, headers and body)",
    "too_large": "the body, declared or received or decoded, exceeds max_bytes",
    "connection": "refused, reset, closed early or otherwise broken connection",
    "dns": "the host name could not be resolved",
    "ssl": "TLS handshake or certificate verification failed",
    "protocol": "the server's answer is not valid HTTP (status line, headers, framing)",
    "decoding": "the Content-Encoding could not be decoded",
    "invalid_url": "the URL cannot be requested (not http/https, no host, unparsable)",
    "skipped": "the caller's inspect callable stopped the download after the first bytes",
}

_RETRYABLE_KINDS: Final = frozenset({"timeout", "connection"})
_MAX_ENCODING_LAYERS: Final = 4

# brotli >= 1.2 can bound the output of one process() call; older versions cannot, and then
# the input is fed in tiny pieces instead (brotli's worst case per input byte is still large,
# so the output limit is checked after every piece).
_BROTLI_INPUT_PIECE: Final = 64


def _brotli_supports_output_limit() -> bool:
    try:
        brotli.Decompressor().process(b"", output_buffer_limit=CHUNK_SIZE)
    except TypeError:
        return False
    return True


_BROTLI_HAS_OUTPUT_LIMIT: bool = _brotli_supports_output_limit()


@dataclass(frozen=True, slots=True)
class Response:
    """The outcome of one GET: an HTTP response, or the reason there was none.

    ``status`` is None exactly when there is no complete HTTP response; then ``error`` says why
    in words and ``error_kind`` gives the category (a key of :data:`ERROR_KINDS`), ``headers``
    is empty and ``body`` is ``b""``. ``body`` is the decoded body (content-encoding undone); it
    is empty for redirects, whose body is never read. ``wire_bytes`` counts body bytes as they
    came off the connection (after de-chunking, before decoding).
    """

    url: str
    status: int | None
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float
    error: str | None = None
    error_kind: str | None = None
    wire_bytes: int = field(default=0, kw_only=True)

    @property
    def ok(self) -> bool:
        """True for a complete response with a 2xx status."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        """The media type, lowercased, without parameters; ``""`` when absent."""
        media_type, _, _ = self.headers.get("content-type", "").partition(";")
        return media_type.strip().lower()

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of Content-Type, or None."""
        _, _, params = self.headers.get("content-type", "").partition(";")
        for param in params.split(";"):
            name, sep, value = param.partition("=")
            if sep and name.strip().lower() == "charset":
                value = value.strip().strip("\"'").strip()
                return value or None
        return None

    @property
    def location(self) -> str | None:
        """The raw Location header (unresolved), or None."""
        return self.headers.get("location")

    @property
    def is_redirect(self) -> bool:
        """A 301/302/303/307/308 that says where to go."""
        return self.status in REDIRECT_STATUSES and bool(self.location)

    def __repr__(self) -> str:
        outcome = str(self.status) if self.error is None else f"{self.error_kind}: {self.error}"
        return (
            f"<Response {outcome} {self.url} body={len(self.body)}B "
            f"wire={self.wire_bytes}B {self.elapsed_ms:.0f}ms>"
        )


class _FetchFailed(Exception):
    """Internal: a failure detected by the fetcher itself (limits, decoding, bad URL)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(slots=True)
class _Attempt:
    """What is known so far about one request, for the error message if it fails."""

    content_length: int | None = None
    chunked: bool = False
    response: aiohttp.ClientResponse | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def received(self) -> int:
        if self.response is None:
            return 0
        return self.response.content.total_bytes


class _Decoder(Protocol):
    name: str

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decode ``data``, yielding output in pieces of about CHUNK_SIZE at most."""
        ...

    def finish(self) -> Iterator[bytes]:
        """Yield whatever output is still buffered once the input has ended."""
        ...


class _ZlibDecoder:
    """gzip or deflate. ``deflate`` is sniffed: zlib-wrapped (RFC 1950) or raw (RFC 1951)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._head = b""
        self._inflater: zlib._Decompress | None = None
        if name == "gzip":
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def _ensure_inflater(self, data: bytes) -> tuple[zlib._Decompress | None, bytes]:
        if self._inflater is not None:
            return self._inflater, data
        data = self._head + data
        if len(data) < 2:
            self._head = data
            return None, b""
        self._head = b""
        cmf, flg = data[0], data[1]
        zlib_wrapped = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        return self._inflater, data

    def feed(self, data: bytes) -> Iterator[bytes]:
        inflater, data = self._ensure_inflater(data)
        if inflater is None:
            return
        while data and not inflater.eof:
            out = self._decompress(inflater, data)
            data = inflater.unconsumed_tail
            if out:
                yield out
            # The output was cut at CHUNK_SIZE: more may be pending inside zlib even with
            # no input left, so drain it in bounded pieces.
            while len(out) == CHUNK_SIZE and not data and not inflater.eof:
                out = self._decompress(inflater, b"")
                if out:
                    yield out

    def finish(self) -> Iterator[bytes]:
        inflater = self._inflater
        if inflater is None:  # fewer than two bytes of deflate: nothing decodable
            return
        # Never zlib's flush(): it returns everything at once, unbounded.
        while not inflater.eof:
            out = self._decompress(inflater, b"")
            if not out:
                break
            yield out

    def _decompress(self, inflater: zlib._Decompress, data: bytes) -> bytes:
        try:
            return inflater.decompress(data, CHUNK_SIZE)
        except zlib.error as exc:
            raise _FetchFailed(
                "decoding", f"bad encoding: invalid {self.name} data ({exc})"
            ) from exc


class _BrotliDecoder:
    name = "br"

    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        if not _BROTLI_HAS_OUTPUT_LIMIT:
            for start in range(0, len(data), _BROTLI_INPUT_PIECE):
                out = self._process(data[start : start + _BROTLI_INPUT_PIECE])
                if out:
                    yield out
            return
        out = self._process(data, output_buffer_limit=CHUNK_SIZE)
        if out:
            yield out
        # brotli's contract: once the output limit was hit, call with empty input until it can
        # accept more data again.
        while not self._decompressor.can_accept_more_data():
            out = self._process(b"", output_buffer_limit=CHUNK_SIZE)
            if out:
                yield out

    def finish(self) -> Iterator[bytes]:
        return iter(())

    def _process(self, data: bytes, **limit: int) -> bytes:
        try:
            out: bytes = self._decompressor.process(data, **limit)
        except brotli.error as exc:
            raise _FetchFailed("decoding", f"bad encoding: invalid br data ({exc})") from exc
        return out


class _BoundedDecoder:
    """A stack of content-encodings undone in order, each layer's output bounded by ``limit``."""

    def __init__(self, encodings: Sequence[str], limit: int) -> None:
        # "Content-Encoding: gzip, br" means gzip was applied first: undo br first.
        self.decoders: list[_Decoder] = [_new_decoder(name) for name in reversed(encodings)]
        self._limit = limit
        self._produced = [0] * len(self.decoders)

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, iter((data,)))

    def finish(self) -> Iterator[bytes]:
        for index, decoder in enumerate(self.decoders):
            yield from self._through(index + 1, self._counted(index, decoder.finish()))

    def _through(self, start: int, pieces: Iterable[bytes]) -> Iterator[bytes]:
        for index in range(start, len(self.decoders)):
            pieces = self._fed(index, pieces)
        return iter(pieces)

    def _fed(self, index: int, pieces: Iterable[bytes]) -> Iterator[bytes]:
        decoder = self.decoders[index]
        for piece in pieces:
            yield from self._counted(index, decoder.feed(piece))

    def _counted(self, index: int, pieces: Iterator[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            self._produced[index] += len(piece)
            if self._produced[index] > self._limit:
                name = self.decoders[index].name
                raise _FetchFailed(
                    "too_large",
                    f"too large: decompressed body exceeds max_bytes {self._limit} ({name})",
                )
            yield piece


def _new_decoder(name: str) -> _Decoder:
    if name == "br":
        return _BrotliDecoder()
    return _ZlibDecoder(name)


def _content_encodings(header: str | None) -> list[str] | None:
    """The encodings to undo, [] for none, or None when one is unknown (keep the raw body)."""
    if not header:
        return []
    names = [name.strip().lower() for name in header.split(",")]
    names = [name for name in names if name and name != "identity"]
    aliases = {"x-gzip": "gzip"}
    names = [aliases.get(name, name) for name in names]
    if len(names) > _MAX_ENCODING_LAYERS or any(
        name not in ("gzip", "deflate", "br") for name in names
    ):
        return None
    return names


class Fetcher:
    """A pooled aiohttp session that turns one URL into one :class:`Response`.

    Use as ``async with Fetcher(...) as fetcher: resp = await fetcher.fetch(url)``. The session
    is created on entry (or on the first fetch) and closed by :meth:`close`.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float,
        max_bytes: int,
        concurrency: int,
        accept_encoding: str = "gzip, deflate, br",
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.concurrency = concurrency
        self.accept_encoding = accept_encoding
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.requests = 0
        self.in_flight = 0
        self.failures = 0
        self.wire_bytes = 0

    async def __aenter__(self) -> Fetcher:
        self._open_session()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections. Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this Fetcher is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.concurrency,
                limit_per_host=0,  # per-host limits are the politeness layer's job
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.user_agent, "Accept-Encoding": self.accept_encoding},
                # asyncio.timeout() in fetch() is the real bound; this is aiohttp's own backstop.
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.timeout),
                auto_decompress=False,  # decoded here, with a bound on the inflated size
                # Real sites send long Set-Cookie and CSP headers; still bounded.
                max_line_size=16 * 1024,
                max_field_size=64 * 1024,
            )
        return self._session

    async def fetch(
        self, url: str, *, max_bytes: int | None = None, inspect: Inspector | None = None
    ) -> Response:
        """GET ``url`` once. Never raises for network, HTTP or decoding problems.

        ``inspect``, when given, is called once for a 2xx answer with the first
        :data:`INSPECT_BYTES` of the decoded body (all of it, if shorter), as soon as they are
        in. If it returns a reason, the download stops there and the response is an error of
        kind ``skipped`` whose message is ``"skipped: " + reason``. An inspector that raises is
        logged and ignored: the download goes on.
        """
        session = self._open_session()
        limit = self.max_bytes if max_bytes is None else max_bytes
        attempt = _Attempt()
        self.requests += 1
        self.in_flight += 1
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._get(session, url, limit, attempt, inspect)
        except TimeoutError:  # ours, or aiohttp's ServerTimeoutError (a TimeoutError too)
            response = self._failed(
                url, attempt, "timeout", f"timeout: no complete response within {self.timeout:g} s"
            )
        except _FetchFailed as exc:
            response = self._failed(url, attempt, exc.kind, exc.message)
        except (aiohttp.ClientError, HttpProcessingError, OSError, ValueError) as exc:
            kind, message = _describe(exc, attempt)
            response = self._failed(url, attempt, kind, _one_line(message))
        finally:
            self.in_flight -= 1
        self.wire_bytes += response.wire_bytes
        return response

    async def _get(
        self,
        session: aiohttp.ClientSession,
        url: str,
        limit: int,
        attempt: _Attempt,
        inspect: Inspector | None = None,
    ) -> Response:
        _check_url(url)
        async with session.get(url, allow_redirects=False) as resp:
            attempt.response = resp
            attempt.content_length = resp.content_length
            attempt.chunked = resp.headers.get("transfer-encoding", "").lower() == "chunked"
            headers = {name.lower(): value for name, value in resp.headers.items()}
            if resp.status in REDIRECT_STATUSES and headers.get("location"):
                resp.release()  # the body of a redirect is never read
                return Response(url, resp.status, headers, b"", _ms_since(attempt.started))
            if resp.content_length is not None and resp.content_length > limit:
                raise _FetchFailed(
                    "too_large",
                    f"too large: Content-Length {resp.content_length} exceeds max_bytes {limit}",
                )
            encodings = _content_encodings(headers.get("content-encoding"))
            decoder = _BoundedDecoder(encodings, limit) if encodings else None
            if not 200 <= resp.status < 300:
                inspect = None
            parts: list[bytes] = []
            received = 0
            decoded = 0
            async for chunk in resp.content.iter_chunked(CHUNK_SIZE):
                received += len(chunk)
                if received > limit:
                    raise _FetchFailed("too_large", f"too large: body exceeds max_bytes {limit}")
                if decoder is None:
                    parts.append(chunk)
                    decoded += len(chunk)
                else:
                    for piece in decoder.feed(chunk):
                        parts.append(piece)
                        decoded += len(piece)
                if inspect is not None and decoded >= INSPECT_BYTES:
                    _run_inspector(inspect, b"".join(parts)[:INSPECT_BYTES], url)
                    inspect = None
            if decoder is not None:
                parts.extend(decoder.finish())
            body = b"".join(parts)
            del parts
            if inspect is not None:
                _run_inspector(inspect, body[:INSPECT_BYTES], url)
            return Response(
                url, resp.status, headers, body, _ms_since(attempt.started), wire_bytes=received
            )

    def _failed(self, url: str, attempt: _Attempt, kind: str, message: str) -> Response:
        self.failures += 1
        return Response(
            url,
            None,
            {},
            b"",
            _ms_since(attempt.started),
            error=message,
            error_kind=kind,
            wire_bytes=attempt.received,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._session is not None else "idle"
        return (
            f"<Fetcher {state} requests={self.requests} in_flight={self.in_flight} "
            f"failures={self.failures} wire_bytes={self.wire_bytes} "
            f"concurrency={self.concurrency} timeout={self.timeout:g}s max_bytes={self.max_bytes}>"
        )


def _run_inspector(inspect: Inspector, head: bytes, url: str) -> None:
    """Raise the ``skipped`` failure when ``inspect`` gives a reason to stop."""
    try:
        reason = inspect(head)
    except Exception:
        log.exception("inspect callable failed on %s; downloading it anyway", url)
        return
    if reason is not None:
        raise _FetchFailed("skipped", f"skipped: {_one_line(reason)}")


def _check_url(url: str) -> None:
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError) as exc:
        raise _FetchFailed("invalid_url", f"invalid URL {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise _FetchFailed("invalid_url", f"invalid URL {url!r}: only http and https are fetched")
    if not parsed.host:
        raise _FetchFailed("invalid_url", f"invalid URL {url!r}: no host")


def _one_line(text: str, limit: int = 300) -> str:
    """Parser messages span lines and may quote kilobytes of the bad input: keep it short."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000.0


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_reset(exc: BaseException) -> bool:
    return any(
        isinstance(link, ConnectionResetError)
        or (isinstance(link, OSError) and link.errno == errno.ECONNRESET)
        or "ConnectionResetError" in str(link)
        for link in _chain(exc)
    )


def _describe(exc: BaseException, attempt: _Attempt) -> tuple[str, str]:
    """Map a low-level exception to (error_kind, message). The single place that knows them."""
    received = attempt.received
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns", f"DNS lookup failed for host {exc.host}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "ssl", f"SSL error with {exc.host}:{exc.port}: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return "dns", f"DNS lookup failed for host {exc.host}"
        if isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED:
            return "connection", f"connection refused by {exc.host}:{exc.port}"
        reason = os_error.strerror or str(os_error) or type(os_error).__name__
        return "connection", f"cannot connect to {exc.host}:{exc.port}: {reason}"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return "invalid_url", f"invalid URL: {exc}"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        if attempt.response is None:
            return "connection", "server closed the connection without sending a response"
        if _is_reset(exc):
            return "connection", f"connection reset by peer after {received} bytes"
        if any(isinstance(link, ContentLengthError) for link in _chain(exc)) or (
            attempt.content_length is not None and received < attempt.content_length
        ):
            return (
                "connection",
                f"server closed the connection early: got {received} of "
                f"{attempt.content_length} bytes",
            )
        if attempt.chunked or any(isinstance(link, TransferEncodingError) for link in _chain(exc)):
            return (
                "connection",
                f"server closed the connection early: chunked body incomplete after "
                f"{received} bytes",
            )
        return "protocol", f"bad response body after {received} bytes: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        # Raised while parsing the status line and headers (malformed, too long, too many).
        return "protocol", f"bad response: {exc.message or exc}"
    if isinstance(exc, HttpProcessingError):
        return "protocol", f"bad response: {exc.message or exc}"
    if _is_reset(exc):
        return "connection", f"connection reset by peer after {received} bytes"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connection", f"connection error: {exc or type(exc).__name__}"
    return "protocol", f"bad response: {exc or type(exc).__name__}"


def should_retry(resp: Response) -> bool:
    """Whether another attempt could plausibly succeed.

    Retried: timeouts and connection failures (refused, reset, closed early), 429 and 5xx.
    Never retried: other statuses, and errors that the same server would repeat
    (too_large, decoding, protocol, ssl, invalid_url). DNS failures are not retried either:
    in a crawl they almost always mean a host that does not exist, and the resolver already
    retries transient failures itself.
    """
    if resp.status is None:
        return resp.error_kind in _RETRYABLE_KINDS
    return resp.status == 429 or 500 <= resp.status <= 599


def retry_delay(
    resp: Response,
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 60.0,
    now: float | None = None,
) -> float:
    """Seconds to wait before retrying ``resp``; ``attempt`` is the number of the failed try.

    A ``Retry-After`` header wins: delay-seconds, or an HTTP date (relative to ``now``, epoch
    seconds, default the current time); a negative or past value gives 0. Without a usable
    header: exponential backoff ``base * 2**(attempt-1)`` plus up to 10 % jitter. Always capped
    at ``cap``.
    """
    retry_after = _parse_retry_after(resp.headers.get("retry-after"), now)
    if retry_after is not None:
        return min(retry_after, cap)
    exponent = min(max(attempt, 1) - 1, 62)
    backoff = base * 2.0**exponent
    return min(backoff * (1.0 + 0.1 * random.random()), cap)


def _parse_retry_after(value: str | None, now: float | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete forms may come naive
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)
