"""What the audit needs from a page body beyond ``ParsedPage``: a SimHash of its text and the
links that carry a ``#fragment`` (the parser drops fragments when it normalizes URLs).

Pure functions; :func:`document_facts` is the audit plugin's page hook: it runs in the parse
worker, on the tree the crawler's own parse built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple
from urllib.parse import unquote, urldefrag, urljoin

from crawler.parse import HtmlDocument, PageHookError, parse_html_with
from crawler.urls import normalize_url

__all__ = ["FragmentLink", "TextFacts", "document_facts", "hamming", "simhash", "text_facts"]

SHINGLE: Final = 3  # words per shingle
# Fragments that need no element: the top of the page, and client-side routes.
_ALWAYS_THERE: Final = frozenset({"", "top"})
_MASK: Final = (1 << 64) - 1


class FragmentLink(NamedTuple):
    dst_url: str  # the target page, normalized, fragment dropped
    fragment: str  # percent-decoded
    anchor: str


class TextFacts(NamedTuple):
    simhash: int  # 64 bits
    fragments: tuple[FragmentLink, ...]


# _BIT_SET[b] maps a byte to 1 when its bit b is set, else to 0 (for bytes.translate).
_BIT_SET: Final = tuple(bytes((value >> bit) & 1 for value in range(256)) for bit in range(8))


def simhash(words: Iterable[str]) -> int:
    """64-bit SimHash of the word 3-shingles (lowercased): close texts get close hashes.

    Each shingle is hashed to 8 bytes (blake2b); a bit of the result is set when most shingle
    hashes have it set. The bits are counted column by column over the joined digests with
    bytes slicing and translate, so the 64 x n count runs in C.
    """
    tokens = [word.lower() for word in words]
    shingles = (
        [" ".join(tokens[i : i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1)]
        if len(tokens) >= SHINGLE
        else [" ".join(tokens)]
    )
    digests = b"".join(
        hashlib.blake2b(shingle.encode(), digest_size=8).digest() for shingle in shingles
    )
    count = len(shingles)
    result = bytearray(8)
    for position in range(8):
        column = digests[position::8]
        for bit in range(8):
            if column.translate(_BIT_SET[bit]).count(1) * 2 > count:
                result[position] |= 1 << bit
    return int.from_bytes(result, "big")


def hamming(a: int, b: int) -> int:
    """Bits that differ between two 64-bit hashes (signed or not)."""
    return ((a ^ b) & _MASK).bit_count()


def _signed(value: int) -> int:
    """A 64-bit hash as SQLite's signed INTEGER."""
    return value - (1 << 64) if value >= 1 << 63 else value


def text_facts(body: bytes, url: str, headers: Mapping[str, str]) -> TextFacts:
    """The SimHash of the visible text and the fragment links of an HTML body."""
    _, (facts,) = parse_html_with(body, url, headers, (document_facts,))
    if isinstance(facts, PageHookError):
        raise RuntimeError(facts.error)
    assert isinstance(facts, TextFacts)
    return facts


def document_facts(document: HtmlDocument) -> TextFacts:
    """:func:`text_facts` of a page the crawler has parsed: the audit plugin's page hook."""
    tree = document.tree
    for node in tree.css("noscript"):  # script, style and template are already gone
        node.decompose()
    body_node = tree.body
    words = body_node.text(separator=" ").split() if body_node is not None else []
    base = document.base
    fragments: dict[tuple[str, str], FragmentLink] = {}
    for node in tree.css("a[href], area[href]"):
        href = (node.attributes.get("href") or "").strip()
        if "#" not in href:
            continue
        target, fragment = urldefrag(urljoin(base, href))
        fragment = unquote(fragment)
        if fragment in _ALWAYS_THERE or fragment.startswith(("!", "/")):
            continue
        dst = normalize_url(target)
        if dst is None or (dst, fragment) in fragments:
            continue
        anchor = " ".join(node.text().split())[:200]
        fragments[(dst, fragment)] = FragmentLink(dst, fragment, anchor)
    return TextFacts(_signed(simhash(words)), tuple(fragments.values()))
