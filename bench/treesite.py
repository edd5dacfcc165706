"""An endless generated site for the memory benchmark: a k-ary tree of small pages.

Nothing is generated up front: a page is rendered when it is asked for, so the site has no size
limit. All on ``http://127.0.0.1:PORT``, with ``k = fanout``:

- ``/n/<i>`` for every i >= 0 (decimal, no leading zeros; the seed is ``/n/0``) is a page of
  2-3 KB of HTML whose ``<a href>`` links are its k children ``/n/<k*i+1>`` .. ``/n/<k*i+k>``
  and, for i > 0, its parent ``/n/<(i-1)//k>``. No other page links to a page's children, so
  the k links are new URLs; the parent link is a URL the crawler already knows, so it adds
  nothing to the frontier but goes through the seen-set check like most links on a real site;
- ``/robots.txt`` allows everything; any other target is a 404.

A crawl from ``/n/0`` that saves P pages, all parsed, therefore knows exactly ``1 + k*P``
distinct URLs, whatever order it fetched them in: each page fetched adds its own k children and
nothing else (:func:`known_urls`). Bodies are deterministic: the same i and k give the same
bytes, filler text included (taken from a seeded pool, as in :mod:`bench.sitegen`).
"""

from __future__ import annotations

import random
from typing import Final

from bench.sitegen import DEFAULT_SEED, ROBOTS_TXT, filler_pool

__all__ = [
    "DEFAULT_FANOUT",
    "ROBOTS_TXT",
    "SEED_TARGET",
    "TreeSite",
    "children",
    "known_urls",
    "node_of",
    "node_target",
]

DEFAULT_FANOUT: Final = 50
MIN_PAGE_BYTES: Final = 2048
MAX_PAGE_BYTES: Final = 3072
PREFIX: Final = "/n/"
SEED_TARGET: Final = PREFIX + "0"
_MAX_DIGITS: Final = 30
_POOL_BYTES: Final = 64 * 1024


def node_target(index: int) -> str:
    """The request target of page ``index``."""
    return f"{PREFIX}{index}"


def node_of(target: str) -> int | None:
    """The page index of a request target, or None when it is not a page of the site."""
    if not target.startswith(PREFIX):
        return None
    digits = target[len(PREFIX) :]
    if not (0 < len(digits) <= _MAX_DIGITS and digits.isascii() and digits.isdigit()):
        return None
    if digits[0] == "0" and digits != "0":
        return None  # one spelling per page: /n/07 is not /n/7
    return int(digits)


def children(index: int, fanout: int) -> range:
    """The pages that page ``index`` links to first (and only it does)."""
    return range(fanout * index + 1, fanout * index + fanout + 1)


def known_urls(pages: int, fanout: int) -> int:
    """Distinct URLs a crawl from the seed knows after saving ``pages`` pages, all parsed."""
    return 1 + fanout * pages


class TreeSite:
    """Renders the pages of the tree with ``fanout`` children per page."""

    def __init__(self, fanout: int = DEFAULT_FANOUT, seed: int = DEFAULT_SEED) -> None:
        if fanout < 1:
            raise ValueError("fanout must be at least 1")
        self.fanout = fanout
        self.seed = seed
        self.pool = filler_pool(random.Random(f"{seed}-tree"), _POOL_BYTES)

    def page(self, index: int) -> bytes:
        """The HTML of page ``index``: 2-3 KB, more only if its links alone take more."""
        parent = (
            f'<p><a href="{node_target((index - 1) // self.fanout)}">up</a></p>\n' if index else ""
        )
        head = (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>Node {index}</title>\n</head>\n<body>\n<h1>Node {index}</h1>\n{parent}<ul>\n"
        )
        links = "".join(
            f'<li><a href="{node_target(c)}">{c}</a></li>\n' for c in children(index, self.fanout)
        )
        tail = "</body>\n</html>\n"
        mixed = index * 2654435761 % 2**32  # Knuth's multiplicative hash: sizes spread evenly
        # A margin at each end: the filler is cut at word boundaries, a few bytes short.
        size = MIN_PAGE_BYTES + 64 + mixed % (MAX_PAGE_BYTES - MIN_PAGE_BYTES - 128)
        room = size - len(head) - len(links) - len(tail) - len("</ul>\n<p></p>\n")
        text = ""
        if room > 0:
            start = self.pool.index(" ", mixed % (len(self.pool) - room - 1)) + 1
            end = self.pool.rfind(" ", start, start + room)
            text = self.pool[start:end] if end > start else ""
        return f"{head}{links}</ul>\n<p>{text}</p>\n{tail}".encode()

    def __repr__(self) -> str:
        return f"<TreeSite fanout={self.fanout} seed={self.seed}>"
