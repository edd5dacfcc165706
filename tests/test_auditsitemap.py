"""plugins.auditsitemap: reading sitemaps, good and hostile, as pure functions."""

from __future__ import annotations

import pickle
import random
import time
import tracemalloc

import pytest

from plugins.auditsitemap import (
    MAX_ENTRIES,
    MAX_PROBLEMS,
    SitemapFile,
    check_entry,
    gunzip,
    read_sitemap,
)
from tests.site import compressed_zeros, encode, sitemap_xml

HOSTS = frozenset({"https://example.com"})
MIB = 1024 * 1024


def read(body: bytes | str, max_bytes: int = 10 * MIB) -> SitemapFile:
    return read_sitemap(body.encode() if isinstance(body, str) else body, HOSTS, max_bytes)


def test_urlset() -> None:
    found = read(
        sitemap_xml(
            ["https://example.com/", "https://Example.com:443/a#frag", "https://example.com/"]
        )
    )
    assert found.kind == "urlset"
    assert found.locs == ("https://example.com/", "https://example.com/a")  # normalized, once
    assert found.entries == 3
    assert found.problems == () and found.errors == () and found.error is None


def test_sitemap_index() -> None:
    found = read(
        sitemap_xml(["https://example.com/s1.xml", "https://example.com/s2.xml.gz"], index=True)
    )
    assert found.kind == "sitemapindex"
    assert found.locs == ("https://example.com/s1.xml", "https://example.com/s2.xml.gz")


def test_loc_only_as_a_direct_child_of_its_entry_and_extensions_ignored() -> None:
    found = read(
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">'
        "<url><loc>https://example.com/page</loc>"
        "<image:image><image:loc>https://cdn.test/photo.jpg</image:loc></image:image></url>"
        "<loc>https://example.com/stray</loc>"
        "<url><loc>\n  https://example.com/spaced?a=1&amp;b=2  \n</loc></url></urlset>"
    )
    assert found.locs == ("https://example.com/page", "https://example.com/spaced?a=1&b=2")
    assert found.entries == 2


def test_sitemap_without_namespace_is_read() -> None:
    assert read("<urlset><url><loc>https://example.com/x</loc></url></urlset>").locs == (
        "https://example.com/x",
    )


def test_text_sitemap() -> None:
    found = read("\ufeffhttps://example.com/a\r\n\r\nhttps://example.com/b\n  \nfoo\n")
    assert found.kind == "text"
    assert found.locs == ("https://example.com/a", "https://example.com/b")
    assert found.problems == (
        ("foo", "not an absolute http(s) URL: write it in full, https://host/path"),
    )


def test_gzip_file_of_any_format() -> None:
    xml = sitemap_xml(["https://example.com/z"]).encode()
    assert read(encode(xml, "gzip")).locs == ("https://example.com/z",)
    assert read(encode(b"https://example.com/t\n", "gzip")).kind == "text"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("", "empty entry"),
        ("/relative/page", "not an absolute http(s) URL"),
        ("example.com/page", "not an absolute http(s) URL"),
        ("ftp://example.com/file", "not an absolute http(s) URL"),
        ("http://", "not a valid URL"),
        ("http://example.com/", "on another site (http://example.com)"),  # another scheme
        ("https://www.example.com/", "on another site (https://www.example.com)"),
        ("https://example.com/" + "x" * 2100, "2,120 characters long"),
    ],
)
def test_bad_entries(entry: str, problem: str) -> None:
    url, why = check_entry(entry, HOSTS)
    assert url is None and why.startswith(problem)


def test_bad_entries_are_kept_as_written_and_bounded() -> None:
    entries = [f"https://other.test/{i}" for i in range(MAX_PROBLEMS + 6)]
    found = read(sitemap_xml(["https://example.com/ok", *entries]))
    assert found.locs == ("https://example.com/ok",)
    assert len(found.problems) == MAX_PROBLEMS
    assert found.problems[0] == (
        "https://other.test/0",
        "on another site (https://other.test): a sitemap lists URLs of its own site only",
    )
    assert found.errors == ("6 more bad entries",)
    long_entry = read(sitemap_xml(["https://example.com/" + "y" * 600])).problems
    assert long_entry == ()  # 620 characters is fine
    shown = read(sitemap_xml(["/" + "z" * 600])).problems[0][0]
    assert len(shown) == 303 and shown.endswith("...")


def test_at_most_max_entries_are_read() -> None:
    body = "https://example.com/\n" * 10 + "".join(
        f"https://example.com/{i}\n" for i in range(MAX_ENTRIES)
    )
    started = time.monotonic()
    found = read(body)
    assert found.entries == MAX_ENTRIES
    assert len(found.locs) == MAX_ENTRIES - 9  # the first ten are one URL
    assert found.errors == (
        "lists more than 50,000 URLs (the sitemaps.org limit): split it; the rest was not read",
    )
    assert time.monotonic() - started < 30
    index = sitemap_xml(
        [f"https://example.com/s{i}.xml" for i in range(MAX_ENTRIES + 1)], index=True
    )
    assert read(index).errors[0].startswith("lists more than 50,000 sitemaps")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "empty: no XML and no URL in it"),
        (b"  \n ", "empty: no XML and no URL in it"),
        (b"Not found", "not a sitemap: neither XML"),
        (b"\x89PNG\r\n\x1a\n", "not a sitemap: neither XML"),
        (b"<html><body>Home</body></html>", "not a sitemap: the root element is <html>"),
        (b'<?xml version="1.0"?><rss><channel/></rss>', "not a sitemap: the root element is <rss>"),
        (b"<urlset><url><loc>https://example.com/", "malformed XML: no element found: line 1"),
        (b"<urlset><url></urlset>", "malformed XML: mismatched tag: line 1, column 15"),
        (b"<urlset>\xff\xfe</urlset>", "malformed XML: not well-formed (invalid token)"),
        (b"<!DOCTYPE html><html></html>", "declares a DTD (<!DOCTYPE>)"),
        (b"\x1f\x8bnot gzip", "not valid gzip data"),
        (b'<?xml version="1.0" encoding="no-such"?><urlset/>', "malformed XML: unknown encoding"),
        (encode(b"<urlset></urlset>", "gzip")[:-12], "truncated gzip data"),
    ],
)
def test_what_is_not_a_sitemap_says_why(body: bytes, error: str) -> None:
    found = read(body)
    assert found.error is not None and found.error.startswith(error), found.error
    assert found.locs == ()


def test_entries_before_the_fault_are_kept() -> None:
    found = read(
        "<urlset><url><loc>https://example.com/a</loc></url><url><loc>https://example.com/b"
    )
    assert found.kind == "urlset" and found.locs == ("https://example.com/a",)
    assert found.error is not None and found.error.startswith("malformed XML")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<urlset><url><loc>https://example.com/&lol9;</loc></url></urlset>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<urlset><url><loc>https://example.com/&secret;</loc></url></urlset>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_xml_bombs_and_external_entities_are_refused(body: bytes) -> None:
    started = time.monotonic()
    found = read(body)
    assert found.kind is None and found.locs == ()
    assert found.error is not None and "not read" in found.error
    assert time.monotonic() - started < 1


def test_gzip_bomb_stops_at_max_bytes() -> None:
    bomb = compressed_zeros(1024 * MIB, "gzip")  # 1 GiB of zeros in about 1 MB
    started = time.monotonic()
    found = read(bomb, max_bytes=2 * MIB)
    assert found.errors == (
        "inflates to more than 2,097,152 bytes (max_bytes): split it into smaller sitemaps",
    )
    assert time.monotonic() - started < 5
    with pytest.raises(ValueError, match="inflates to more than 10 bytes"):
        gunzip(encode(b"x" * 11, "gzip"), 10)
    assert gunzip(encode(b"x" * 10, "gzip"), 10) == b"x" * 10


@pytest.mark.parametrize(
    "body",
    [
        b"<urlset><url>" + b"<x/>" * 200_000 + b"</url></urlset>",  # wide
        b"<urlset>" + b"<url><loc>https://example.com/</loc></url>" * 40_000 + b"</urlset>",
        b"<urlset>" + b"<a>" * 200_000,  # deep
    ],
    ids=["wide", "long", "deep"],
)
def test_memory_stays_flat_whatever_the_shape(body: bytes) -> None:
    tracemalloc.start()
    try:
        found = read(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB, f"{peak:,} bytes"  # holding them would take 20 MB and more
    assert found.locs in ((), ("https://example.com/",))
    if body.endswith(b"<a>"):
        assert found.errors == ("elements nested more than 16 deep: not read on",)


def test_result_is_picklable_for_the_process_pool() -> None:
    found = read(sitemap_xml(["https://example.com/a", "nope"]))
    assert pickle.loads(pickle.dumps(found)) == found


def test_hostile_bytes_never_raise() -> None:
    rng = random.Random(7)
    valid = sitemap_xml([f"https://example.com/{i}" for i in range(20)]).encode()
    samples = [rng.randbytes(rng.randint(0, 400)) for _ in range(200)]
    for _ in range(300):  # valid sitemaps with bytes flipped, cut, or gzipped and damaged
        body = bytearray(valid)
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        cut = bytes(body[: rng.randint(0, len(body))])
        samples += [cut, encode(cut, "gzip")[: rng.randint(0, 200)]]
    for sample in samples:
        found = read_sitemap(sample, HOSTS, MIB)
        assert isinstance(found, SitemapFile)
        assert all(url.startswith("https://example.com/") for url in found.locs)
