"""The fetcher against a real local site: statuses, decoding, every limit, every failure mode."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

import crawler.fetcher
from crawler.fetcher import (
    CHUNK_SIZE,
    ERROR_KINDS,
    INSPECT_BYTES,
    Fetcher,
    Response,
    _Attempt,
    _describe,
    retry_delay,
    should_retry,
)
from tests.site import RawServer, Reply, Site, SiteFactory, encode, page_html, unused_port

MIB = 1024 * 1024
GIB = 1024 * MIB
MAX_BYTES = 10 * MIB
RSS_LIMIT_MB = 300
SHORT_TIMEOUT = 1.5
USER_AGENT = "crawler-tests/1.0 (+http://127.0.0.1/)"

RawServerFactory = Callable[[bytes], Awaitable[RawServer]]


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(
        user_agent=USER_AGENT, timeout=10.0, max_bytes=MAX_BYTES, concurrency=4
    ) as opened:
        yield opened


@pytest.fixture
async def impatient() -> AsyncIterator[Fetcher]:
    async with Fetcher(
        user_agent=USER_AGENT, timeout=SHORT_TIMEOUT, max_bytes=MAX_BYTES, concurrency=4
    ) as opened:
        yield opened


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) so a test measures its own peak."""
    # Without /proc the peak is the whole process's, which only makes the check stricter.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def assert_failed(resp: Response, kind: str, message_start: str) -> None:
    assert resp.status is None, resp
    assert resp.error_kind == kind, resp
    assert resp.error is not None and resp.error.startswith(message_start), resp
    assert "\n" not in resp.error
    assert resp.headers == {} and resp.body == b""
    assert resp.error_kind in ERROR_KINDS


# -- ordinary answers --------------------------------------------------------------------------


async def test_page_body_and_headers(site: Site, fetcher: Fetcher) -> None:
    site.add_page("/", links=["/a", "/b"], title="Home", headers={"X-Custom": "yes"})

    resp = await fetcher.fetch(site.url("/"))

    assert resp.status == 200 and resp.error is None and resp.error_kind is None
    assert resp.ok
    assert resp.url == site.url("/")
    assert resp.body == page_html("Home", ["/a", "/b"]).encode()
    assert resp.wire_bytes == len(resp.body)
    assert resp.headers["x-custom"] == "yes"
    assert all(name == name.lower() for name in resp.headers)
    assert resp.content_type == "text/html" and resp.charset == "utf-8"
    assert resp.location is None and not resp.is_redirect
    assert 0 < resp.elapsed_ms < 5000
    [request] = site.requests
    assert request.method == "GET" and request.path_qs == "/"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["Accept-Encoding"] == "gzip, deflate, br"


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/gone", 410), ("/boom", 500)])
async def test_error_statuses_keep_status_and_body(
    site: Site, fetcher: Fetcher, path: str, status: int
) -> None:
    site.add_status("/gone", 410, body=b"gone")
    site.add_status("/boom", 500, headers={"Retry-After": "3"}, body=b"oops")

    resp = await fetcher.fetch(site.url(path))

    assert resp.status == status and resp.error is None
    assert resp.body in (b"not found", b"gone", b"oops")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_not_followed_and_its_body_not_read(
    site: Site, fetcher: Fetcher, status: int
) -> None:
    site.add_redirect("/old", "/new?x=1", status)
    site.add_page("/new")

    resp = await fetcher.fetch(site.url("/old"))

    assert resp.status == status and resp.is_redirect
    assert resp.location == "/new?x=1"
    assert resp.body == b"" and resp.error is None
    assert site.paths == ["/old"]


async def test_redirect_status_without_location_is_an_ordinary_answer(
    site: Site, fetcher: Fetcher
) -> None:
    site.add_status("/odd", 302, body=b"no location")

    resp = await fetcher.fetch(site.url("/odd"))

    assert resp.status == 302 and not resp.is_redirect and resp.body == b"no location"


async def test_only_get_is_ever_used(site: Site, fetcher: Fetcher) -> None:
    site.add_page("/a")
    site.add_redirect("/r", "/a")
    await fetcher.fetch(site.url("/a"))
    await fetcher.fetch(site.url("/r"))
    await fetcher.fetch(site.url("/robots.txt"))
    assert [record.method for record in site.requests] == ["GET", "GET", "GET"]


async def test_concurrency_caps_connections(site: Site) -> None:
    for index in range(6):
        site.add_slow(f"/slow{index}", 0.2)
    async with Fetcher(
        user_agent=USER_AGENT, timeout=5, max_bytes=MAX_BYTES, concurrency=2
    ) as fetcher:
        answers = await asyncio.gather(
            *(fetcher.fetch(site.url(f"/slow{index}")) for index in range(6))
        )
        assert "requests=6" in repr(fetcher) and "in_flight=0" in repr(fetcher)
    assert [resp.status for resp in answers] == [200] * 6
    assert site.max_in_flight == 2


# -- decoding ----------------------------------------------------------------------------------

TEXT = "<p>Caf\u00e9 \u2014 compressible text.</p>\n" * 2000


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate", "br"])
async def test_content_encodings_are_decoded(site: Site, fetcher: Fetcher, encoding: str) -> None:
    site.add_encoded("/page", TEXT, encoding)  # type: ignore[arg-type]

    resp = await fetcher.fetch(site.url("/page"))

    assert resp.status == 200 and resp.error is None
    assert resp.body == TEXT.encode()
    assert resp.wire_bytes < len(resp.body) // 10
    assert resp.headers["content-encoding"] in ("gzip", "deflate", "br")


async def test_stacked_encodings_are_undone_in_reverse_order(site: Site, fetcher: Fetcher) -> None:
    data = TEXT.encode()
    body = encode(encode(data, "gzip"), "br")
    site.add_page("/twice", body=body, headers={"Content-Encoding": "gzip, br"})

    resp = await fetcher.fetch(site.url("/twice"))

    assert resp.status == 200 and resp.body == data


async def test_unknown_encoding_keeps_the_raw_body(site: Site, fetcher: Fetcher) -> None:
    site.add_page("/z", body=b"\x28\xb5\x2f\xfd opaque", headers={"Content-Encoding": "zstd"})
    site.add_page("/id", body=b"plain", headers={"Content-Encoding": "identity"})

    zstd = await fetcher.fetch(site.url("/z"))
    identity = await fetcher.fetch(site.url("/id"))

    assert zstd.status == 200 and zstd.body == b"\x28\xb5\x2f\xfd opaque"
    assert identity.status == 200 and identity.body == b"plain"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_invalid_compressed_data_is_a_decoding_error(
    site: Site, fetcher: Fetcher, encoding: str
) -> None:
    site.add_page(
        "/bad", body=b"this is not compressed at all", headers={"Content-Encoding": encoding}
    )

    resp = await fetcher.fetch(site.url("/bad"))

    assert_failed(resp, "decoding", f"bad encoding: invalid {encoding} data")
    assert not should_retry(resp)


async def test_brotli_without_output_limit_is_still_bounded(
    site: Site, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # brotli < 1.2 has no output_buffer_limit: input is then fed in small pieces.
    monkeypatch.setattr(crawler.fetcher, "_BROTLI_HAS_OUTPUT_LIMIT", False)
    site.add_encoded("/page", TEXT, "br")
    site.add_gzip_bomb("/bomb", GIB, "br")

    page = await fetcher.fetch(site.url("/page"))
    bomb = await fetcher.fetch(site.url("/bomb"))

    assert page.status == 200 and page.body == TEXT.encode()
    assert_failed(bomb, "too_large", "too large: decompressed body exceeds max_bytes")


async def test_empty_compressed_body_is_empty(site: Site, fetcher: Fetcher) -> None:
    site.add_page("/empty", body=b"", headers={"Content-Encoding": "gzip"})

    resp = await fetcher.fetch(site.url("/empty"))

    assert resp.status == 200 and resp.body == b""


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_compression_bomb_stops_at_max_bytes(
    site: Site, fetcher: Fetcher, encoding: str
) -> None:
    site.add_gzip_bomb("/bomb", GIB, encoding)  # type: ignore[arg-type]
    reset_peak_rss()

    started = time.monotonic()
    resp = await fetcher.fetch(site.url("/bomb"))

    assert_failed(
        resp,
        "too_large",
        f"too large: decompressed body exceeds max_bytes {MAX_BYTES} ({encoding})",
    )
    assert time.monotonic() - started < 2.0  # stopped early, never inflated the whole GiB
    assert peak_rss_mb() < RSS_LIMIT_MB
    assert not should_retry(resp)


# -- size limits -------------------------------------------------------------------------------


async def test_content_length_over_max_bytes_is_refused_before_reading(
    site: Site, fetcher: Fetcher
) -> None:
    site.add_big("/big", 100 * MIB, chunked=False)
    reset_peak_rss()

    resp = await fetcher.fetch(site.url("/big"))

    assert_failed(
        resp, "too_large", f"too large: Content-Length {100 * MIB} exceeds max_bytes {MAX_BYTES}"
    )
    assert resp.wire_bytes < MIB  # at most what the socket had buffered
    assert peak_rss_mb() < RSS_LIMIT_MB


async def test_chunked_body_is_counted_as_it_streams(site: Site, fetcher: Fetcher) -> None:
    site.add_big("/big", 100 * MIB, chunked=True)
    reset_peak_rss()

    resp = await fetcher.fetch(site.url("/big"))

    assert_failed(resp, "too_large", f"too large: body exceeds max_bytes {MAX_BYTES}")
    assert MAX_BYTES < resp.wire_bytes < MAX_BYTES + CHUNK_SIZE + MIB
    assert peak_rss_mb() < RSS_LIMIT_MB


@pytest.mark.parametrize("chunked", [False, True])
async def test_max_bytes_boundary_and_per_call_override(
    site: Site, fetcher: Fetcher, chunked: bool
) -> None:
    site.add_big("/1000", 1000, chunked=chunked)

    exact = await fetcher.fetch(site.url("/1000"), max_bytes=1000)
    over = await fetcher.fetch(site.url("/1000"), max_bytes=999)
    default = await fetcher.fetch(site.url("/1000"))

    assert exact.status == 200 and exact.body == b"a" * 1000
    assert over.error_kind == "too_large" and over.error is not None and "999" in over.error
    assert default.status == 200 and len(default.body) == 1000


# -- inspecting the first bytes ------------------------------------------------------------------


class Recorder:
    """An inspector that remembers what it was shown and answers with a fixed verdict."""

    def __init__(self, verdict: str | None) -> None:
        self.verdict = verdict
        self.seen: list[bytes] = []

    def __call__(self, head: bytes) -> str | None:
        self.seen.append(head)
        return self.verdict


async def test_inspect_stops_a_download_after_its_first_bytes(site: Site, fetcher: Fetcher) -> None:
    site.add_big("/big", 8 * MIB)
    inspect = Recorder("1x1 tracking pixel")

    resp = await fetcher.fetch(site.url("/big"), inspect=inspect)

    assert_failed(resp, "skipped", "skipped: 1x1 tracking pixel")
    assert inspect.seen == [b"a" * INSPECT_BYTES]
    assert resp.wire_bytes < MIB  # the other 7+ MiB were never read


async def test_inspect_that_lets_it_go_sees_the_head_once(site: Site, fetcher: Fetcher) -> None:
    site.add_big("/big", 3 * MIB, chunked=True)
    site.add_page("/short", body=b"GIF89a tiny", content_type="image/gif")
    big, short = Recorder(None), Recorder(None)

    big_resp = await fetcher.fetch(site.url("/big"), inspect=big)
    short_resp = await fetcher.fetch(site.url("/short"), inspect=short)

    assert big_resp.status == 200 and len(big_resp.body) == 3 * MIB
    assert big.seen == [b"a" * INSPECT_BYTES]
    assert short_resp.status == 200 and short.seen == [b"GIF89a tiny"]


async def test_inspect_sees_the_decoded_body(site: Site, fetcher: Fetcher) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB
    site.add_encoded("/gz", body, "gzip", content_type="image/png")
    inspect = Recorder("enough")

    resp = await fetcher.fetch(site.url("/gz"), inspect=inspect)

    assert resp.error_kind == "skipped"
    assert inspect.seen == [body[:INSPECT_BYTES]]


async def test_inspect_is_only_asked_about_2xx_bodies(site: Site, fetcher: Fetcher) -> None:
    site.add_status("/gone", 404, body=b"not here")
    site.add_redirect("/moved", "/gone")
    inspect = Recorder("never")

    gone = await fetcher.fetch(site.url("/gone"), inspect=inspect)
    moved = await fetcher.fetch(site.url("/moved"), inspect=inspect)

    assert gone.status == 404 and gone.body == b"not here"
    assert moved.status == 301
    assert inspect.seen == []


async def test_a_failing_inspector_is_logged_and_ignored(
    site: Site, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    site.add_page("/p", body=b"x" * 100, content_type="image/png")

    def broken(head: bytes) -> str | None:
        raise ValueError("inspector bug")

    resp = await fetcher.fetch(site.url("/p"), inspect=broken)

    assert resp.status == 200 and resp.body == b"x" * 100
    assert "inspect callable failed" in caplog.text and "inspector bug" in caplog.text


# -- time limits -------------------------------------------------------------------------------


async def test_trickling_server_times_out(site: Site, impatient: Fetcher) -> None:
    site.add_trickle("/trickle", bytes_per_second=20, total=1_000_000)

    resp = await impatient.fetch(site.url("/trickle"))

    assert_failed(resp, "timeout", f"timeout: no complete response within {SHORT_TIMEOUT:g} s")
    assert SHORT_TIMEOUT * 1000 - 50 <= resp.elapsed_ms <= SHORT_TIMEOUT * 1000 + 1000
    assert resp.wire_bytes > 0  # bytes were arriving: only a total timeout catches this
    assert should_retry(resp)


async def test_hanging_server_times_out(site: Site, impatient: Fetcher) -> None:
    site.add_hang("/hang")

    started = time.monotonic()
    resp = await impatient.fetch(site.url("/hang"))

    assert_failed(resp, "timeout", "timeout: no complete response within")
    assert time.monotonic() - started <= SHORT_TIMEOUT + 1.0


async def test_slow_but_timely_answer_succeeds(site: Site, impatient: Fetcher) -> None:
    site.add_slow("/slow", 0.3)

    resp = await impatient.fetch(site.url("/slow"))

    assert resp.status == 200 and resp.elapsed_ms >= 250


async def test_cancellation_propagates(site: Site, fetcher: Fetcher) -> None:
    site.add_hang("/hang")
    task = asyncio.create_task(fetcher.fetch(site.url("/hang")))
    await asyncio.sleep(0.2)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert fetcher.in_flight == 0


# -- broken connections and broken HTTP ---------------------------------------------------------


async def test_connection_reset_mid_body(site: Site, fetcher: Fetcher) -> None:
    site.add_reset("/reset", after_bytes=5000)

    resp = await fetcher.fetch(site.url("/reset"))

    assert_failed(resp, "connection", "connection reset by peer after")
    assert should_retry(resp)


async def test_early_close_is_a_connection_error(site: Site, fetcher: Fetcher) -> None:
    site.add_early_close("/early", declared=10_000, sent=5000)

    resp = await fetcher.fetch(site.url("/early"))

    assert_failed(resp, "connection", "server closed the connection early: got 5000 of 10000 bytes")
    assert should_retry(resp)


async def test_connection_refused(fetcher: Fetcher) -> None:
    port = unused_port()

    resp = await fetcher.fetch(f"http://127.0.0.1:{port}/")

    assert_failed(resp, "connection", f"connection refused by 127.0.0.1:{port}")
    assert should_retry(resp)


async def test_server_closing_without_answer(
    make_raw_server: RawServerFactory, fetcher: Fetcher
) -> None:
    server = await make_raw_server(b"")

    resp = await fetcher.fetch(server.url("/"))

    assert_failed(resp, "connection", "server closed the connection without sending a response")


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"garbage\r\n\r\n", id="not-http"),
        pytest.param(b"HTTP/1.1 abc Whatever\r\n\r\n", id="bad-status-code"),
        pytest.param(b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n", id="bad-header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\n", id="long"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(500)) + b"\r\n",
            id="too-many-headers",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
            id="bad-chunk-size",
        ),
    ],
)
async def test_malformed_http_is_a_protocol_error(
    make_raw_server: RawServerFactory, fetcher: Fetcher, reply: bytes
) -> None:
    server = await make_raw_server(reply)

    resp = await fetcher.fetch(server.url("/"))

    assert_failed(resp, "protocol", "bad response")
    assert resp.error is not None and len(resp.error) <= 300
    assert not should_retry(resp)


async def test_tls_failure_is_an_ssl_error(site: Site, fetcher: Fetcher) -> None:
    site.add_page("/")

    resp = await fetcher.fetch(site.url("/").replace("http://", "https://"))  # plain HTTP port

    assert_failed(resp, "ssl", f"SSL error with {site.host}")
    assert not should_retry(resp)


def test_dns_failure_mapping() -> None:
    # No resolver can be made to fail without touching the network, so the mapping of
    # aiohttp's DNS error is checked on the exception itself.
    key = ConnectionKey("no-such-host.test", 80, False, True, None, None, None)
    error = aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))

    kind, message = _describe(error, _Attempt())

    assert (kind, message) == ("dns", "DNS lookup failed for host no-such-host.test")
    assert not should_retry(
        Response("http://no-such-host.test/", None, {}, b"", 1.0, message, kind)
    )


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/file", "http://", "http://[::1", "mailto:someone@example.com"]
)
async def test_unrequestable_url(fetcher: Fetcher, url: str) -> None:
    resp = await fetcher.fetch(url)

    assert_failed(resp, "invalid_url", "invalid URL")
    assert not should_retry(resp)


# -- lifecycle and representations ---------------------------------------------------------------


async def test_fetcher_lifecycle_and_repr(site: Site) -> None:
    site.add_page("/")
    fetcher = Fetcher(user_agent=USER_AGENT, timeout=5, max_bytes=MAX_BYTES, concurrency=3)
    assert repr(fetcher).startswith("<Fetcher idle requests=0")

    resp = await fetcher.fetch(site.url("/"))  # opens the session lazily
    assert resp.status == 200
    assert "open requests=1" in repr(fetcher) and "concurrency=3" in repr(fetcher)

    await fetcher.close()
    await fetcher.close()
    assert repr(fetcher).startswith("<Fetcher closed")
    with pytest.raises(RuntimeError, match="closed"):
        await fetcher.fetch(site.url("/"))


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"max_bytes": -1}, {"concurrency": 0}], ids=str)
def test_fetcher_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    settings: dict[str, float] = {"timeout": 1, "max_bytes": 1, "concurrency": 1, **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Fetcher(user_agent="x", **settings)  # type: ignore[arg-type]


def test_response_properties_and_repr() -> None:
    resp = Response(
        "http://h/",
        200,
        {"content-type": 'Text/HTML; Charset="ISO-8859-1"', "location": "/x"},
        b"secret body " * 1000,
        12.5,
    )
    assert resp.content_type == "text/html" and resp.charset == "ISO-8859-1"
    assert resp.location == "/x" and not resp.is_redirect  # 200 is no redirect
    assert "secret" not in repr(resp) and "200" in repr(resp) and "12000B" in repr(resp)

    bare = Response("http://h/", 204, {}, b"", 1.0)
    assert bare.content_type == "" and bare.charset is None and bare.location is None

    failed = Response("http://h/", None, {}, b"", 3.0, "connection refused", "connection")
    assert "connection refused" in repr(failed) and not failed.ok


# -- retry decisions ---------------------------------------------------------------------------


def answer(status: int | None, kind: str | None = None, **headers: str) -> Response:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return Response("http://h/", status, named, b"", 1.0, "failed" if kind else None, kind)


@pytest.mark.parametrize(
    ("resp", "expected"),
    [
        (answer(200), False),
        (answer(301), False),
        (answer(304), False),
        (answer(400), False),
        (answer(403), False),
        (answer(404), False),
        (answer(410), False),
        (answer(429), True),
        (answer(500), True),
        (answer(502), True),
        (answer(503), True),
        (answer(504), True),
        (answer(599), True),
        (answer(None, "timeout"), True),
        (answer(None, "connection"), True),
        (answer(None, "dns"), False),
        (answer(None, "ssl"), False),
        (answer(None, "too_large"), False),
        (answer(None, "decoding"), False),
        (answer(None, "protocol"), False),
        (answer(None, "invalid_url"), False),
    ],
    ids=repr,
)
def test_should_retry(resp: Response, expected: bool) -> None:
    assert should_retry(resp) is expected


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("5", 5.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("120", 60.0),  # capped
        ("-3", 0.0),
        (http_date(NOW + timedelta(seconds=30)), 30.0),
        (http_date(NOW - timedelta(seconds=30)), 0.0),
        (http_date(NOW + timedelta(hours=2)), 60.0),
        ("Wed, 01 May 2024 12:00:10 GMT", 10.0),
        ("Wednesday, 01-May-24 12:00:20 GMT", 20.0),  # obsolete RFC 850 form
    ],
)
def test_retry_delay_honours_retry_after(retry_after: str, expected: float) -> None:
    resp = answer(503, retry_after=retry_after)
    assert retry_delay(resp, 1, now=NOW.timestamp()) == pytest.approx(expected)


def test_retry_after_respects_a_custom_cap() -> None:
    assert retry_delay(answer(429, retry_after="30"), 1, cap=10) == 10


@pytest.mark.parametrize("retry_after", [None, "", "soon", "nan", "inf", "Someday 99"])
def test_retry_delay_backs_off_exponentially_without_usable_retry_after(
    retry_after: str | None,
) -> None:
    resp = answer(503) if retry_after is None else answer(503, retry_after=retry_after)
    for attempt, base_delay in [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]:
        delay = retry_delay(resp, attempt)
        assert base_delay <= delay <= base_delay * 1.1 + 1e-9, (attempt, delay)
    assert retry_delay(resp, 3, base=1.0) >= 4.0
    assert retry_delay(resp, 50) == 60.0
    assert retry_delay(resp, 10_000) == 60.0
    assert retry_delay(resp, 8, cap=5.0) == 5.0
    assert retry_delay(answer(None, "timeout"), 2) >= 1.0


def test_retry_delay_has_jitter() -> None:
    delays = {retry_delay(answer(500), 3) for _ in range(20)}
    assert len(delays) > 1


# -- the test site itself ----------------------------------------------------------------------


async def test_sequence_drives_a_retry(site: Site, fetcher: Fetcher) -> None:
    site.add_sequence(
        "/flaky",
        [Reply(503, "busy", headers={"Retry-After": "1"}), Reply(200, "<p>fine</p>")],
    )

    first = await fetcher.fetch(site.url("/flaky"))
    assert first.status == 503 and should_retry(first)
    assert retry_delay(first, 1) == 1.0
    second = await fetcher.fetch(site.url("/flaky"))
    third = await fetcher.fetch(site.url("/flaky"))

    assert second.status == 200 and second.body == b"<p>fine</p>"
    assert third.status == 200  # the last reply repeats
    assert site.count("/flaky") == 3 and len(site.gaps("/flaky")) == 2


async def test_site_logs_everything_and_answers_404(
    make_site: SiteFactory, fetcher: Fetcher
) -> None:
    first, second = await make_site(), await make_site()
    assert first.host != second.host
    first.add_page("/p?q=1", title="query")

    await fetcher.fetch(first.url("/robots.txt"))
    await fetcher.fetch(first.url("/p?q=1"))
    await fetcher.fetch(first.url("/p?q=2"))
    robots = await fetcher.fetch(first.url("/robots.txt"))

    assert robots.status == 404
    assert first.paths == ["/robots.txt", "/p?q=1", "/p?q=2", "/robots.txt"]
    assert first.count("/robots.txt") == 2 and first.count("/p") == 2
    assert first.count("/p?q=1") == 1
    assert second.requests == [] and second.max_in_flight == 0
    assert "requests=4" in repr(first)
    second.add_robots("User-agent: *\nDisallow: /private\n")
    robots_txt = await fetcher.fetch(second.url("/robots.txt"))
    assert robots_txt.status == 200 and b"Disallow: /private" in robots_txt.body
