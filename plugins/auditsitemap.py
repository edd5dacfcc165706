"""Sitemaps, read safely: pure functions from a fetched body to the URLs it lists.

Formats (sitemaps.org): an XML ``<urlset>`` lists pages in ``<url><loc>``, an XML
``<sitemapindex>`` lists other sitemaps in ``<sitemap><loc>``, and the text format lists one
URL per line. Any of them may be gzip-compressed: a ``.xml.gz`` file served as it is (a body
served with ``Content-Encoding: gzip`` was decoded by the fetcher already). Extensions
(``<image:image>``, ``<xhtml:link>``, ...) and the other tags (``<lastmod>``, ...) are ignored;
namespaces are not checked.

Hostile input never raises and never runs away: the XML parser is defusedxml's, which refuses
DTDs, entity declarations (the "billion laughs" bomb) and external references; decompression
stops at ``max_bytes`` of output; at most :data:`MAX_ENTRIES` entries are read (the sitemaps.org
limit), elements are dropped as soon as they are read, and at most :data:`MAX_PROBLEMS` bad
entries are kept. Everything wrong ends up as words in :class:`SitemapFile`.

Runs in the process pool: :func:`read_sitemap` is pure and its result plain picklable data.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml.common import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)

from crawler.urls import host_key, normalize_url

__all__ = [
    "MAX_ENTRIES",
    "MAX_PROBLEMS",
    "MAX_URL_CHARS",
    "SitemapFile",
    "SitemapKind",
    "check_entry",
    "read_sitemap",
]

SitemapKind = Literal["urlset", "sitemapindex", "text"]

MAX_ENTRIES: Final = 50_000  # sitemaps.org: at most 50,000 URLs per sitemap
MAX_URL_CHARS: Final = 2048  # sitemaps.org: a <loc> is less than 2,048 characters
MAX_PROBLEMS: Final = 20  # bad entries kept per sitemap; the rest are counted
MAX_SHOWN_CHARS: Final = 300  # of a bad entry, as written
MAX_XML_DEPTH: Final = 16  # a sitemap nests 3 or 4 deep (with extensions)

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ABSOLUTE_HTTP_RE: Final = re.compile(r"https?://", re.IGNORECASE)
_ENTRY_ELEMENT: Final[dict[str, str]] = {"urlset": "url", "sitemapindex": "sitemap"}


@dataclass(frozen=True, slots=True)
class SitemapFile:
    """What one sitemap body holds, and what is wrong with it."""

    kind: SitemapKind | None  # None: not a sitemap at all (see errors)
    locs: tuple[str, ...]  # good entries: normalized, on the sitemap's site, deduplicated
    problems: tuple[tuple[str, str], ...]  # bad entries: (entry as written, what is wrong)
    errors: tuple[str, ...]  # what is wrong with the file itself; entries before it are kept
    entries: int  # entries read, good and bad

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None


def check_entry(raw: str, hosts: Collection[str]) -> tuple[str | None, str]:
    """``(normalized URL, "")`` for a good entry, ``(None, what is wrong)`` for a bad one.

    Good: an absolute http(s) URL of fewer than 2,048 characters on one of ``hosts``
    (``scheme://host[:port]`` keys, see :func:`crawler.urls.host_key`).
    """
    if not raw:
        return None, "empty entry"
    if len(raw) >= MAX_URL_CHARS:
        return None, f"{len(raw):,} characters long (a sitemap URL has fewer than 2,048)"
    if not _ABSOLUTE_HTTP_RE.match(raw):
        return None, "not an absolute http(s) URL: write it in full, https://host/path"
    url = normalize_url(raw)
    if url is None:
        return None, "not a valid URL"
    host = host_key(url)
    if host not in hosts:
        return None, f"on another site ({host}): a sitemap lists URLs of its own site only"
    return url, ""


class _Entries:
    """The entries of one sitemap as they are read: checked, deduplicated, bounded."""

    def __init__(self, hosts: Collection[str]) -> None:
        self.hosts = frozenset(hosts)
        self.locs: dict[str, None] = {}
        self.problems: list[tuple[str, str]] = []
        self.unlisted_problems = 0
        self.count = 0

    def add(self, raw: str) -> bool:
        """Take one entry; False once :data:`MAX_ENTRIES` were read (this one is not)."""
        if self.count >= MAX_ENTRIES:
            return False
        self.count += 1
        text = raw.strip()
        url, problem = check_entry(text, self.hosts)
        if url is not None:
            self.locs[url] = None
        elif len(self.problems) < MAX_PROBLEMS:
            shown = text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "..."
            self.problems.append((shown, problem))
        else:
            self.unlisted_problems += 1
        return True

    def result(self, kind: SitemapKind | None, errors: list[str]) -> SitemapFile:
        if self.unlisted_problems:
            errors.append(f"{self.unlisted_problems:,} more bad entries")
        return SitemapFile(kind, tuple(self.locs), tuple(self.problems), tuple(errors), self.count)


def _too_many(kind: SitemapKind) -> str:
    what = "sitemaps" if kind == "sitemapindex" else "URLs"
    return (
        f"lists more than {MAX_ENTRIES:,} {what} (the sitemaps.org limit): split it; "
        "the rest was not read"
    )


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """The first gzip member of ``data``, inflated to at most ``max_bytes``.

    Raises ValueError saying what is wrong: not gzip, truncated, or too large once inflated.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise ValueError(f"not valid gzip data ({exc})") from None
    if len(out) > max_bytes:
        raise ValueError(
            f"inflates to more than {max_bytes:,} bytes (max_bytes): split it into smaller sitemaps"
        )
    if not inflater.eof:
        raise ValueError("truncated gzip data: the file ends before the compressed stream")
    return out


def _local_name(tag: object) -> str:
    """``urlset`` for ``{http://www.sitemaps.org/schemas/sitemap/0.9}urlset``."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _read_xml(data: bytes, entries: _Entries) -> SitemapFile:
    kind: SitemapKind | None = None
    errors: list[str] = []
    names: list[str] = []  # the open elements' local names, root first
    open_elements: list[Element] = []
    try:
        events = SafeET.iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True)
        for event, element in events:
            name = _local_name(element.tag)
            if event == "start":
                if not names:
                    if name not in _ENTRY_ELEMENT:
                        errors.append(
                            f"not a sitemap: the root element is <{name}>, not <urlset> or "
                            "<sitemapindex>"
                        )
                        break
                    kind = "urlset" if name == "urlset" else "sitemapindex"
                elif len(names) >= MAX_XML_DEPTH:
                    errors.append(f"elements nested more than {MAX_XML_DEPTH} deep: not read on")
                    break
                names.append(name)
                open_elements.append(element)
                continue
            names.pop()
            open_elements.pop()
            if (
                kind is not None
                and name == "loc"
                and len(names) == 2
                and names[1] == _ENTRY_ELEMENT[kind]
                and not entries.add(element.text or "")
            ):
                errors.append(_too_many(kind))
                break
            if open_elements:
                # Read: drop it from its parent, so that memory stays flat however long or
                # wide the file is (the parent holds its open child only).
                open_elements[-1].remove(element)
    except DTDForbidden:
        errors.append("declares a DTD (<!DOCTYPE>), which sitemaps never have: not read")
    except EntitiesForbidden as exc:
        errors.append(f"declares the XML entity {exc.name!r}: refused (entity bombs), not read")
    except ExternalReferenceForbidden:
        errors.append("refers to an external XML resource: refused, not read")
    except DefusedXmlException as exc:
        errors.append(f"unsafe XML refused: {exc}")
    except SafeET.ParseError as exc:
        errors.append(f"malformed XML: {exc}")
    except (LookupError, UnicodeError) as exc:  # <?xml encoding="..."?> unknown or unusable
        errors.append(f"malformed XML: {exc}")
    return entries.result(kind, errors)


def _read_text(data: bytes, entries: _Entries) -> SitemapFile:
    errors: list[str] = []
    for line in data.decode("utf-8-sig", "replace").splitlines():
        if line.strip() and not entries.add(line):
            errors.append(_too_many("text"))
            break
    return entries.result("text", errors)


def read_sitemap(body: bytes, hosts: Collection[str], max_bytes: int) -> SitemapFile:
    """Read a sitemap: XML urlset or sitemapindex, or a text list of URLs, maybe gzipped.

    ``hosts`` are the ``scheme://host[:port]`` keys an entry may be on: the sitemap's own,
    and the host whose robots.txt named it (sitemaps.org allows that cross-submission).
    ``max_bytes`` bounds the inflated size of a gzip file. Never raises.
    """
    entries = _Entries(hosts)
    data = body
    if data.startswith(_GZIP_MAGIC):
        try:
            data = gunzip(data, max_bytes)
        except ValueError as exc:
            return entries.result(None, [str(exc)])
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not start:
        return entries.result(None, ["empty: no XML and no URL in it"])
    if start.startswith(b"<"):
        return _read_xml(data, entries)
    if _ABSOLUTE_HTTP_RE.match(start[:16].decode("ascii", "replace")):
        return _read_text(data, entries)
    return entries.result(
        None,
        ["not a sitemap: neither XML (<urlset>, <sitemapindex>) nor a text list of URLs"],
    )
