"""Pure page parsing: ``(body bytes, final URL, headers) -> ParsedPage``.

This runs in a ProcessPoolExecutor, so everything here is a pure function of its arguments
and the result holds only picklable plain values (frozen slotted dataclasses, tuples, str).

One HTML parse (selectolax's Lexbor, the HTML5 tree builder browsers use) and one pass over
the elements that carry URLs. Because the DOM is used, markup inside comments, ``<script>``,
``<style>`` and ``<template>`` never yields links. Every URL goes through
:func:`crawler.urls.normalize_url`, resolved against ``<base href>`` when there is one.
"""

from __future__ import annotations

import codecs
import functools
import math
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, NamedTuple

import charset_normalizer
from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawler.urls import normalize_url

__all__ = [
    "HtmlDocument",
    "Link",
    "PageHook",
    "PageHookError",
    "ParsedPage",
    "decode_html",
    "is_html",
    "parse_html",
    "parse_html_with",
    "parse_page",
    "parse_srcset",
]

MAX_IDS: Final = 5000
MAX_LINK_TEXT: Final = 200
PRESCAN_BYTES: Final = 4096
DETECT_BYTES: Final = 64 * 1024
SNIFF_BYTES: Final = 512

# Elements whose target the crawler fetches as a page (unless nofollow).
FOLLOW_TAGS: Final = frozenset({"a", "area", "iframe", "frame"})


class Link(NamedTuple):
    """One URL reference found in a page.

    A named tuple rather than a dataclass: pages cross from the parse workers with dozens of
    links each, and a tuple is rebuilt from its pickle in C (see ``ParsedPage.__reduce__``).
    """

    url: str  # normalized absolute URL
    tag: str  # the element: a, area, link, img, iframe, frame, script, source, ...
    nofollow: bool  # rel="nofollow" on the element, or meta robots / X-Robots-Tag nofollow
    follow: bool  # crawl it as a page: a/area/iframe/frame and meta refresh, not nofollow
    text: str = ""  # anchor text for <a>, alt text for <img> and <area>


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """What the crawler and the plugins need from one HTML page."""

    title: str | None  # None: no <title>; "" an empty one
    links: tuple[Link, ...]  # deduplicated by (url, tag), first one kept, document order
    images: tuple[str, ...]  # every image URL a browser would load, deduplicated, in order
    srcsets: tuple[tuple[tuple[str, float], ...], ...]  # (url, w or x descriptor) per srcset
    base_href: str | None
    meta_noindex: bool
    meta_nofollow: bool
    canonical: str | None
    meta_description: str | None
    h1_count: int
    lang: str | None
    ids: tuple[str, ...]  # id="" and <a name=""> values, deduplicated, at most MAX_IDS
    word_count: int
    encoding: str  # Python codec name used to decode the body, e.g. "utf-8", "cp1251"
    missing_alt: tuple[str, ...] = ()  # <img> URLs with no alt attribute at all (alt="" is fine)
    hreflang: tuple[tuple[str, str], ...] = ()  # <link rel=alternate hreflang=L href=U>: (L, U)
    # <link> hrefs the browser loads with the page: rel stylesheet, preload, modulepreload
    # (links records every <link> under tag "link", a canonical as much as a stylesheet)
    link_resources: tuple[str, ...] = ()
    form_actions: tuple[str, ...] = ()  # <form action> URLs, deduplicated, in order

    def __reduce__(self) -> tuple[Callable[..., ParsedPage], tuple[Any, ...]]:
        # The fields as a plain tuple, links as plain tuples: unpickled and rebuilt in C,
        # several times faster than dataclasses' own __setstate__ and a Link per REDUCE.
        values = tuple(() if name == "links" else getattr(self, name) for name in _PAGE_FIELDS)
        return _rebuild_page, (tuple(map(tuple, self.links)), values)


_PAGE_FIELDS: Final = tuple(f.name for f in fields(ParsedPage))


def _rebuild_page(links: tuple[tuple[Any, ...], ...], values: tuple[Any, ...]) -> ParsedPage:
    page = ParsedPage(*values)
    object.__setattr__(page, "links", tuple([_new_tuple(Link, row) for row in links]))
    return page


_new_tuple: Final = tuple.__new__


# --------------------------------------------------------------------------- text decoding

_HEADER_CHARSET_RE: Final = re.compile(r"""charset\s*=\s*["']?\s*([^"';,\s]+)""", re.IGNORECASE)
_COMMENT_RE: Final = re.compile(rb"<!--.*?-->", re.DOTALL)
_META_TAG_RE: Final = re.compile(rb"<meta[\s/][^>]*>?", re.IGNORECASE)
_ATTR_RE: Final = re.compile(rb"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Python codecs that are no web encoding, or that the HTML standard forbids (utf-7).
_NOT_WEB_CODECS: Final = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "utf-7"}
)
# Browsers decode these labels with a superset encoding (WHATWG Encoding Standard).
_BROWSER_SUPERSETS: Final = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "euc_kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}


@functools.lru_cache(maxsize=256)
def _codec(label: str) -> str | None:
    """The Python codec a browser-style charset label decodes with, or None if unusable."""
    label = label.strip().strip("\"'").strip().lower()
    if not label:
        return None
    try:
        name = codecs.lookup(label).name
        if name in _NOT_WEB_CODECS:
            return None
        name = _BROWSER_SUPERSETS.get(name, name)
        b"<html>".decode(name, "replace")  # bytes-to-bytes codecs (base64, rot13) fail here
    except (LookupError, UnicodeError, ValueError, TypeError):
        return None
    return name


def _header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = _HEADER_CHARSET_RE.search(content_type)
    return None if match is None else _codec(match.group(1))


def _bom_charset(body: bytes) -> tuple[str, int] | None:
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, len(bom)
    return None


def _meta_charset(body: bytes) -> str | None:
    """The charset declared by <meta> in the first bytes, as the HTML prescan finds it."""
    head = body[:PRESCAN_BYTES]
    if b"<!--" in head:
        head = _COMMENT_RE.sub(b"", head)
    for tag in _META_TAG_RE.findall(head):
        attrs: dict[bytes, bytes] = {}
        for match in _ATTR_RE.finditer(tag, 5):
            name = match.group(1).lower()
            if name not in attrs:
                attrs[name] = match.group(2) or match.group(3) or match.group(4) or b""
        label: bytes | None = attrs.get(b"charset")
        if label is None and attrs.get(b"http-equiv", b"").strip().lower() == b"content-type":
            found = _HEADER_CHARSET_RE.search(attrs.get(b"content", b"").decode("latin-1"))
            label = None if found is None else found.group(1).encode("latin-1")
        if label is None:
            continue
        name = _codec(label.decode("latin-1"))
        if name is None:
            continue
        # A <meta> readable as ASCII cannot be UTF-16: the standard says use UTF-8.
        return "utf-8" if name.startswith(("utf-16", "utf-32")) else name
    return None


def _detect_charset(body: bytes) -> str | None:
    sample = body[:DETECT_BYTES]
    if len(body) > DETECT_BYTES:
        # Cut after a newline or '>' so that no multi-byte character is split in two: in
        # every common multi-byte encoding these bytes never occur inside a character.
        cut = max(sample.rfind(b"\n"), sample.rfind(b">"))
        if cut > DETECT_BYTES // 2:
            sample = sample[: cut + 1]
    best = charset_normalizer.from_bytes(sample).best()
    return None if best is None else _codec(best.encoding)


def decode_html(body: bytes, content_type_header: str | None) -> tuple[str, str]:
    """Decode an HTML body; returns ``(text, encoding)``, ``encoding`` a Python codec name.

    The charset comes from, in order: a byte-order mark (as browsers do, it wins over the
    header); the Content-Type header's ``charset``; ``<meta charset>`` or ``<meta
    http-equiv="content-type" content="...; charset=...">`` in the first 4096 bytes; UTF-8
    if the body is valid UTF-8; detection with charset-normalizer on the first 64 KiB;
    else UTF-8. Labels are mapped as browsers map them (``iso-8859-1`` decodes as cp1252,
    ``shift_jis`` as cp932, ...). Unknown or unusable charset names fall through to the
    next source. Invalid bytes become U+FFFD; this never raises.
    """
    bom = _bom_charset(body)
    if bom is not None:
        name, size = bom
        return body[size:].decode(name, "replace"), name
    declared = _header_charset(content_type_header) or _meta_charset(body)
    if declared is not None:
        return body.decode(declared, "replace"), declared
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    detected = _detect_charset(body)
    if detected is not None:
        return body.decode(detected, "replace"), detected
    return body.decode("utf-8", "replace"), "utf-8"


_HTML_MEDIA_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
# The WHATWG MIME sniffing patterns for HTML: one of these tags at the start of the body...
_SNIFF_START_RE: Final = re.compile(
    rb"[\t\n\x0c\r ]*<(?:!doctype html|html|head|script|iframe|h1|div|font|table|a|style"
    rb"|title|b|body|br|p|!--)[ >]",
    re.IGNORECASE,
)


def is_html(content_type_header: str | None, body_start: bytes) -> bool:
    """True for a text/html or application/xhtml+xml Content-Type.

    Without a Content-Type (missing or empty), the first 512 bytes are sniffed: a doctype or
    ``<html`` anywhere in them, or an HTML tag at the start (WHATWG MIME sniffing).
    """
    if content_type_header and content_type_header.strip():
        media_type = content_type_header.partition(";")[0].strip().lower()
        return media_type in _HTML_MEDIA_TYPES
    start = body_start[:SNIFF_BYTES]
    if start.startswith(codecs.BOM_UTF8):
        start = start[len(codecs.BOM_UTF8) :]
    lowered = start.lower()
    if b"<!doctype html" in lowered or b"<html" in lowered:
        return True
    return _SNIFF_START_RE.match(start) is not None


# --------------------------------------------------------------------------- HTML parsing

# Every element the single pass looks at; :is() makes an element match once.
_SELECTOR: Final = (
    ":is(a, area, link, img, iframe, frame, script, source, video, audio, embed, object,"
    " input, image, meta, title, h1, html, form, [id], [style], [background])"
)
_CSS_URL_RE: Final = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.I)
_REFRESH_URL_RE: Final = re.compile(r"""^\s*[\d.]*\s*[;,]?\s*(?:url\s*=\s*)?(.*)$""", re.I)
_ROBOTS_DIRECTIVE_RE: Final = re.compile(r"\s*([a-z0-9_\-]+)\s*:\s*(.*)$", re.IGNORECASE)
_ROBOTS_KNOWN_VALUES: Final = frozenset(
    {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}
)
_ICON_RELS: Final = frozenset({"icon", "apple-touch-icon", "apple-touch-icon-precomposed"})
_LOADED_RELS: Final = frozenset({"stylesheet", "preload", "modulepreload"})
_IMAGE_META: Final = frozenset(
    {"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"}
)
_WORDLESS_TAGS: Final = ["script", "style", "template"]
_SRCSET_URL_RE: Final = re.compile(r"[\s,]*(\S*)")
_SRCSET_DESCRIPTORS_RE: Final = re.compile(r"[^,(]*(?:\([^)]*\)?[^,(]*)*")


def parse_srcset(srcset: str) -> list[tuple[str, float]]:
    """Split a srcset into raw ``(url, descriptor)`` candidates, per the HTML algorithm.

    The descriptor is the ``w`` width or the ``x`` density (default 1); URLs may contain
    commas (``a.jpg?x=1,2 2x``). Candidates with an invalid descriptor are dropped.
    """
    candidates: list[tuple[str, float]] = []
    pos, end = 0, len(srcset)
    while pos < end:
        url_match = _SRCSET_URL_RE.match(srcset, pos)
        if url_match is None or not url_match.group(1):
            break
        url, pos = url_match.group(1), url_match.end()
        descriptors = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            desc_match = _SRCSET_DESCRIPTORS_RE.match(srcset, pos)
            if desc_match is not None:
                descriptors, pos = desc_match.group(), desc_match.end()
        value = _srcset_descriptor(descriptors)
        if url and value is not None:
            candidates.append((url, value))
    return candidates


def _srcset_descriptor(descriptors: str) -> float | None:
    value = 1.0
    for token in descriptors.split():
        unit = token[-1:].lower()
        if unit not in ("w", "x"):
            continue  # "h" (future-compatible) and unknown tokens are ignored
        try:
            number = float(token[:-1])
        except ValueError:
            return None
        if not math.isfinite(number) or number <= 0:
            return None
        value = number
    return value


# str.split() separates words at ASCII whitespace and at these (str.isspace() beyond ASCII).
_UNICODE_SPACES: Final = (
    "\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# ASCII whitespace -> b" ", any other byte -> b"x".
_WORD_BYTES: Final = bytes.maketrans(
    bytes(range(256)),
    bytes(0x20 if b < 0x80 and chr(b).isspace() else 0x78 for b in range(256)),
)


def _count_words(text: str) -> int:
    """``len(text.split())``, about twice as fast: no list of words is built."""
    if not text.isascii():
        for space in _UNICODE_SPACES:
            if space in text:
                text = text.replace(space, " ")
    marks = text.encode("utf-8", "surrogatepass").translate(_WORD_BYTES)
    return marks.count(b" x") + marks.startswith(b"x")


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _rel_tokens(attrs: Mapping[str, str | None]) -> frozenset[str]:
    rel = attrs.get("rel")
    return frozenset(rel.lower().split()) if rel else frozenset()


def _robots_directives(content: str) -> set[str]:
    return {token.strip().lower() for token in content.split(",")}


def _x_robots_directives(header: str | None) -> set[str]:
    """Directives of an X-Robots-Tag header that apply to every crawler."""
    if not header:
        return set()
    match = _ROBOTS_DIRECTIVE_RE.match(header)
    if match is not None and match.group(1).lower() not in _ROBOTS_KNOWN_VALUES:
        return set()  # "googlebot: noindex" names a specific crawler, not us
    return _robots_directives(header)


class _PageBuilder:
    """The mutable state of one parse_html call."""

    __slots__ = (
        "base",
        "canonical",
        "description",
        "form_actions",
        "h1_count",
        "hreflang",
        "ids",
        "images",
        "lang",
        "link_resources",
        "links",
        "missing_alt",
        "nofollow",
        "noindex",
        "resolved",
        "srcsets",
        "title",
    )

    def __init__(self, base: str | None) -> None:
        self.base = base
        self.resolved: dict[str, str | None] = {}
        # (url, tag) -> (rel nofollow, follow-able tag, text); dicts keep insertion order
        self.links: dict[tuple[str, str], tuple[bool, bool, str]] = {}
        self.images: dict[str, None] = {}
        self.missing_alt: dict[str, None] = {}
        self.hreflang: dict[tuple[str, str], None] = {}
        self.link_resources: dict[str, None] = {}
        self.form_actions: dict[str, None] = {}
        self.srcsets: list[tuple[tuple[str, float], ...]] = []
        self.ids: dict[str, None] = {}
        self.title: str | None = None
        self.canonical: str | None = None
        self.description: str | None = None
        self.lang: str | None = None
        self.h1_count = 0
        self.noindex = False
        self.nofollow = False

    def resolve(self, raw: str | None) -> str | None:
        if not raw:
            return None
        try:
            return self.resolved[raw]
        except KeyError:
            url = self.resolved[raw] = normalize_url(raw, self.base)
            return url

    def link(
        self, raw: str | None, tag: str, rel_nofollow: bool = False, text: str = ""
    ) -> str | None:
        url = self.resolve(raw)
        if url is not None:
            key = (url, tag)
            if key not in self.links:
                self.links[key] = (rel_nofollow, tag in FOLLOW_TAGS, text)
        return url

    def image(self, raw: str | None, tag: str, text: str = "") -> None:
        url = self.link(raw, tag, text=text)
        if url is not None:
            self.images[url] = None

    def srcset(self, raw: str | None, tag: str, text: str = "") -> None:
        if not raw:
            return
        resolved: list[tuple[str, float]] = []
        for candidate, descriptor in parse_srcset(raw):
            url = self.link(candidate, tag, text=text)
            if url is not None:
                self.images[url] = None
                resolved.append((url, descriptor))
        if resolved:
            self.srcsets.append(tuple(resolved))

    def style(self, style: str) -> None:
        if "url(" not in style.lower():
            return
        for match in _CSS_URL_RE.finditer(style):
            self.image(match.group(1) or match.group(2) or match.group(3), "style")

    def element(self, node: LexborNode, tag: str, attrs: dict[str, str | None]) -> None:
        """Record what one element contributes."""
        element_id = attrs.get("id")
        if element_id:
            self._add_id(element_id)
        if tag == "a":
            href = attrs.get("href")
            if href is None:
                href = attrs.get("xlink:href")  # SVG 1.1 links
            if href is not None:
                self.link(href, tag, "nofollow" in _rel_tokens(attrs), _anchor_text(node))
            name = attrs.get("name")
            if name:
                self._add_id(name)
        elif tag == "img":
            alt = _collapse(attrs.get("alt") or "")[:MAX_LINK_TEXT]
            if "alt" not in attrs:
                src = self.resolve(attrs.get("src") or attrs.get("data-src"))
                if src is not None:
                    self.missing_alt[src] = None
            self.image(attrs.get("src"), tag, alt)
            self.srcset(attrs.get("srcset"), tag, alt)
            self.image(attrs.get("data-src"), tag, alt)
            self.srcset(attrs.get("data-srcset"), tag, alt)
            self.image(attrs.get("data-original"), tag, alt)
        elif tag == "link":
            self._link_element(attrs)
        elif tag == "meta":
            self._meta(attrs)
        elif tag == "area":
            alt = _collapse(attrs.get("alt") or "")[:MAX_LINK_TEXT]
            self.link(attrs.get("href"), tag, "nofollow" in _rel_tokens(attrs), alt)
        elif tag in ("iframe", "frame", "script", "audio", "embed"):
            self.link(attrs.get("src"), tag)
        elif tag == "source":
            self.link(attrs.get("src"), tag)  # <video>/<audio> media
            self.srcset(attrs.get("srcset"), tag)  # <picture> images
            self.srcset(attrs.get("data-srcset"), tag)
        elif tag == "video":
            self.link(attrs.get("src"), tag)
            self.image(attrs.get("poster"), tag)
        elif tag == "object":
            self.link(attrs.get("data"), tag)
        elif tag == "input":
            if (attrs.get("type") or "").strip().lower() == "image":
                self.image(attrs.get("src"), tag)
        elif tag == "image":  # SVG
            self.image(attrs.get("href") or attrs.get("xlink:href"), tag)
        elif tag == "title":
            if self.title is None:
                self.title = _collapse(node.text())
        elif tag == "h1":
            self.h1_count += 1
        elif tag == "form":
            action = self.resolve(attrs.get("action"))
            if action is not None:
                self.form_actions[action] = None
        elif tag == "html":
            lang = (attrs.get("lang") or attrs.get("xml:lang") or "").strip()
            if lang and self.lang is None:
                self.lang = lang

        style = attrs.get("style")
        if style:
            self.style(style)
        background = attrs.get("background")
        if background:
            self.image(background, tag)

    def _add_id(self, value: str) -> None:
        if len(self.ids) < MAX_IDS:
            self.ids[value] = None

    def _link_element(self, attrs: dict[str, str | None]) -> None:
        rels = _rel_tokens(attrs)
        href = attrs.get("href")
        url = self.link(href, "link", "nofollow" in rels)
        if "canonical" in rels and self.canonical is None:
            self.canonical = url
        lang = (attrs.get("hreflang") or "").strip()
        if "alternate" in rels and lang and url is not None:
            self.hreflang[lang, url] = None
        if url is not None and not rels.isdisjoint(_LOADED_RELS):
            self.link_resources[url] = None
        if rels & _ICON_RELS:
            self.image(href, "link")
        elif "preload" in rels and (attrs.get("as") or "").strip().lower() == "image":
            self.image(href, "link")
            self.srcset(attrs.get("imagesrcset"), "link")

    def _meta(self, attrs: dict[str, str | None]) -> None:
        content = attrs.get("content")
        if content is None:
            return
        name = (attrs.get("name") or "").strip().lower()
        if name == "robots":
            directives = _robots_directives(content)
            self.noindex |= not directives.isdisjoint(("noindex", "none"))
            self.nofollow |= not directives.isdisjoint(("nofollow", "none"))
        elif name == "description":
            if self.description is None:
                self.description = _collapse(content)
        elif name in _IMAGE_META or (attrs.get("property") or "").strip().lower() in _IMAGE_META:
            self.image(content, "meta")
        elif (attrs.get("http-equiv") or "").strip().lower() == "refresh":
            match = _REFRESH_URL_RE.match(content)
            target = match.group(1).strip().strip("\"'") if match is not None else ""
            url = self.resolve(target)
            if url is not None and (url, "meta") not in self.links:
                self.links[url, "meta"] = (False, True, "")  # a redirect: followed like <a>

    def build(self, word_count: int, base_href: str | None, encoding: str) -> ParsedPage:
        nofollow_all = self.nofollow
        links = tuple(
            Link(
                url,
                tag,
                rel_nofollow or nofollow_all,
                follows and not (rel_nofollow or nofollow_all),
                text,
            )
            for (url, tag), (rel_nofollow, follows, text) in self.links.items()
        )
        return ParsedPage(
            title=self.title,
            links=links,
            images=tuple(self.images),
            srcsets=tuple(self.srcsets),
            base_href=base_href,
            meta_noindex=self.noindex,
            meta_nofollow=self.nofollow,
            canonical=self.canonical,
            meta_description=self.description,
            h1_count=self.h1_count,
            lang=self.lang,
            ids=tuple(self.ids),
            missing_alt=tuple(self.missing_alt),
            hreflang=tuple(self.hreflang),
            link_resources=tuple(self.link_resources),
            form_actions=tuple(self.form_actions),
            word_count=word_count,
            encoding=encoding,
        )


def _anchor_text(node: LexborNode) -> str:
    text = _collapse(node.text())
    if not text:
        image = node.css_first("img[alt]")
        if image is not None:
            text = _collapse(image.attributes.get("alt") or "")
    return text[:MAX_LINK_TEXT]


@dataclass(frozen=True, slots=True)
class HtmlDocument:
    """A parsed page as a plugin's page hook sees it, in the parse worker (see PageHook).

    ``tree`` has had its ``<script>``, ``<style>`` and ``<template>`` elements removed; a hook
    may change it further (hooks run one after the other, in plugin order).
    """

    tree: LexborHTMLParser
    url: str  # the page's normalized URL
    base: str  # what relative references resolve against (<base href> or the page URL)
    page: ParsedPage


# A plugin's extra work on each HTML page, done in the same parse (see Plugin.page_hook): a
# module-level function, so that it can be sent to the worker processes by reference.
PageHook = Callable[[HtmlDocument], object]


def parse_html(body: bytes, url: str, headers: Mapping[str, str]) -> ParsedPage:
    """Parse an HTML page. ``url`` is its final URL; ``headers`` have lowercase keys.

    Never raises on malformed HTML or undecodable bytes.
    """
    return parse_html_with(body, url, headers, ())[0]


def parse_html_with(
    body: bytes, url: str, headers: Mapping[str, str], hooks: Sequence[PageHook]
) -> tuple[ParsedPage, tuple[object, ...]]:
    """:func:`parse_html`, then each of ``hooks`` on the same tree: (page, hook results)."""
    text, encoding = decode_html(body, headers.get("content-type"))
    tree = LexborHTMLParser(text)
    page_url = normalize_url(url)

    base_href: str | None = None
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base_href = normalize_url(base_node.attributes.get("href") or "", page_url)
    base = base_href or page_url
    builder = _PageBuilder(base)

    for node in tree.css(_SELECTOR):
        tag = node.tag
        if tag is not None:
            builder.element(node, tag, node.attributes)

    x_robots = _x_robots_directives(headers.get("x-robots-tag"))
    builder.noindex |= not x_robots.isdisjoint(("noindex", "none"))
    builder.nofollow |= not x_robots.isdisjoint(("nofollow", "none"))

    word_count = 0
    tree.strip_tags(_WORDLESS_TAGS)
    body_node = tree.body
    if body_node is not None:
        word_count = _count_words(body_node.text(separator=" "))
    page = builder.build(word_count, base_href, encoding)
    if not hooks:
        return page, ()
    document = HtmlDocument(tree, page_url or url, base or url, page)
    return page, tuple(_run_hook(hook, document) for hook in hooks)


@dataclass(frozen=True, slots=True)
class PageHookError:
    """What a page hook raised, in place of its result (tracebacks do not cross processes)."""

    hook: str
    error: str


def _run_hook(hook: PageHook, document: HtmlDocument) -> object:
    try:
        return hook(document)
    except Exception:
        name = f"{getattr(hook, '__module__', '?')}.{getattr(hook, '__qualname__', hook)}"
        return PageHookError(name, traceback.format_exc())


def parse_page(body: bytes, url: str, headers: Mapping[str, str]) -> ParsedPage | None:
    """Parse ``body`` if it is HTML (by Content-Type, else sniffed); None for anything else."""
    if not is_html(headers.get("content-type"), body[:SNIFF_BYTES]):
        return None
    return parse_html(body, url, headers)
