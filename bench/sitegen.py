"""A deterministic synthetic web site for the crawl benchmark.

``plan_site(pages, port, seed)`` decides everything that matters for correctness (page URLs,
every href of every page, the expected ``links`` rows) from one seeded RNG; it is cheap, so
the benchmark recomputes it instead of asking the server. ``render_site(plan)`` turns the plan
into bytes (10-40 KB of HTML per page); its filler text comes from its own RNG, so the bodies
never change the structure.

The site, all on ``http://127.0.0.1:PORT``:

- page 0 is ``/`` (the seed); the other pages live in a few directories (``/N.html``,
  ``/p/N.html``, ``/docs/guide/N.html``, ``/a/b/c/N.html``), and about one page in fifty is a
  listing page ``/list.html?page=K`` (K = 1, 2, ...): the query string is part of its identity;
- every page is reachable from page 0: page i > 0 has a parent among pages 0..i-1 (a random
  recursive tree) that links to it, and every page adds random extra links to random pages, so
  the set of normalized page URLs reachable from page 0 is exactly the N page URLs;
- each page has 20-60 elements with a URL: ``<a href>`` in several spellings of the same
  targets (minimal relative ``123.html`` / ``p/5.html``, up-to-the-root relative
  ``../p/123.html``, ``./``-prefixed, root-relative ``/p/5.html``, absolute
  ``http://127.0.0.1:PORT/p/5.html``, a ``#frag`` appended to any of those, a bare ``#sec3``
  that is the page itself, and a bare ``?page=K`` on a listing page), plus 1-4 ``<img>`` and
  one stylesheet ``<link>``, which are recorded as links but never fetched;
- query variants always name a listing page that exists (``?page=K`` with K <= the number of
  listing pages) and appear only on listing hrefs: no href ever names a URL outside the page set,
  so nothing 404s. ``/list.html`` without a query is not a page and is never linked;
- ``/robots.txt`` allows everything; ``/static/site.css`` and ``/img/K.png`` exist (served as
  small files) so that a crawler that fetched them by mistake would show up as extra pages, not
  as errors.

The expected ``links`` rows follow the crawler's contract: every link of every page as a
normalized absolute URL, one row per distinct (target, tag) within a page (the fragment is
dropped, so ``#sec`` and ``x.html#top`` collapse onto their targets).
"""

from __future__ import annotations

import posixpath
import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urldefrag, urljoin

__all__ = [
    "DEFAULT_PAGES",
    "DEFAULT_SEED",
    "SitePlan",
    "check_plan",
    "content_type",
    "filler_pool",
    "iter_site",
    "plan_site",
    "render_site",
]

DEFAULT_PAGES: Final = 2000
DEFAULT_SEED: Final = 20240501

MIN_PAGE_BYTES: Final = 10 * 1024
MAX_PAGE_BYTES: Final = 40 * 1024
MIN_URL_ELEMENTS: Final = 20
MAX_URL_ELEMENTS: Final = 60
LISTING_EVERY: Final = 50  # about one page in fifty is /list.html?page=K
IMAGE_COUNT: Final = 40
STYLESHEET: Final = "/static/site.css"
ROBOTS_TXT: Final = b"User-agent: *\nAllow: /\n"

# (directory, weight) for pages that are not the root and not listing pages.
_DIRECTORIES: Final = (("/", 1), ("/p/", 6), ("/docs/guide/", 2), ("/a/b/c/", 1))
_HREF_STYLES: Final = (
    ("relative", 30),
    ("up_to_root", 15),
    ("dot_relative", 5),
    ("root", 25),
    ("absolute", 15),
    ("protocol_relative", 2),
)
_FILLER_TEXT: Final = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris "
    "nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse "
    "cillum eu fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa "
    "qui officia deserunt mollit anim id est laborum crawler frontier politeness robots sitemap "
    "anchor parser selectolax asyncio event loop worker process sqlite batch transaction"
)
_WORDS: Final = tuple(_FILLER_TEXT.split())


@dataclass(frozen=True, slots=True)
class SitePlan:
    """The structure of the site: URLs, hrefs and the expected crawl result."""

    base: str  # http://127.0.0.1:PORT
    seed: int
    targets: tuple[str, ...]  # request target (path + query) of page i
    hrefs: tuple[tuple[str, ...], ...]  # <a href> values of page i, in document order
    images: tuple[tuple[str, ...], ...]  # <img src> values of page i
    expected_links: frozenset[tuple[str, str, str]]  # (src_url, dst_url, tag)

    @property
    def seed_url(self) -> str:
        return self.base + "/"

    @property
    def page_urls(self) -> tuple[str, ...]:
        return tuple(self.base + target for target in self.targets)

    @property
    def expected_pages(self) -> frozenset[str]:
        return frozenset(self.page_urls)

    def __repr__(self) -> str:
        return (
            f"<SitePlan {self.base} pages={len(self.targets)} "
            f"links={len(self.expected_links)} seed={self.seed}>"
        )


def _page_target(index: int, rng: random.Random, listing: int) -> str:
    if index == 0:
        return "/"
    if listing:
        return f"/list.html?page={listing}"
    directories = [d for d, _ in _DIRECTORIES]
    weights = [w for _, w in _DIRECTORIES]
    return f"{rng.choices(directories, weights)[0]}{index}.html"


def _split(target: str) -> tuple[str, str]:
    """(path, "?query" or "") of a request target."""
    path, question, query = target.partition("?")
    return path, question + query


def _href(source: str, target: str, base: str, rng: random.Random) -> str:
    """One spelling of a link from page ``source`` to page ``target`` (request targets)."""
    src_path, _ = _split(source)
    dst_path, query = _split(target)
    src_dir = posixpath.dirname(src_path)  # "/" or "/p" or "/a/b/c"
    depth = 0 if src_dir == "/" else src_dir.count("/")
    if query and src_path == dst_path and rng.random() < 0.5:
        return query  # "?page=3" on a listing page
    styles = [s for s, _ in _HREF_STYLES]
    weights = [w for _, w in _HREF_STYLES]
    style = rng.choices(styles, weights)[0]
    if style == "root":
        href = target
    elif style == "absolute":
        href = base + target
    elif style == "protocol_relative":
        href = "//" + base.partition("://")[2] + target
    elif style == "up_to_root":
        href = "../" * depth + dst_path.lstrip("/") + query
        if not href:
            href = "./"
    else:
        if dst_path == "/":
            relative = "../" * depth or "./"
        else:
            relative = posixpath.relpath(dst_path, src_dir)
        if style == "dot_relative" and not relative.startswith("."):
            relative = "./" + relative
        href = relative + query
    if rng.random() < 0.08:
        href += f"#s{rng.randrange(10)}"
    return href


def plan_site(pages: int = DEFAULT_PAGES, port: int = 8080, seed: int = DEFAULT_SEED) -> SitePlan:
    """Decide the site's structure: page URLs, hrefs and the expected links rows."""
    if pages < 1:
        raise ValueError("a site needs at least one page")
    rng = random.Random(seed)
    base = f"http://127.0.0.1:{port}"
    listing_pages = [i for i in range(1, pages) if i % LISTING_EVERY == 1]
    listing_of = {index: k for k, index in enumerate(listing_pages, start=1)}
    targets = tuple(_page_target(i, rng, listing_of.get(i, 0)) for i in range(pages))

    children: list[list[int]] = [[] for _ in range(pages)]
    for child in range(1, pages):
        children[rng.randrange(child)].append(child)

    all_hrefs: list[tuple[str, ...]] = []
    all_images: list[tuple[str, ...]] = []
    expected: set[tuple[str, str, str]] = set()
    for index, source in enumerate(targets):
        url = base + source
        images = tuple(f"/img/{rng.randrange(IMAGE_COUNT)}.png" for _ in range(rng.randint(1, 4)))
        anchors = max(
            rng.randint(MIN_URL_ELEMENTS, MAX_URL_ELEMENTS) - len(images) - 2,  # #sec, stylesheet
            len(children[index]) + 2,
        )
        linked = list(children[index])
        while len(linked) < anchors:
            linked.append(rng.randrange(pages))
        rng.shuffle(linked)
        hrefs = [_href(source, targets[j], base, rng) for j in linked]
        hrefs.insert(rng.randrange(len(hrefs) + 1), f"#sec{rng.randrange(5)}")
        for j in linked:
            expected.add((url, base + targets[j], "a"))
        expected.add((url, url, "a"))  # the bare #sec link
        expected.update((url, base + src, "img") for src in images)
        expected.add((url, base + STYLESHEET, "link"))
        all_hrefs.append(tuple(hrefs))
        all_images.append(images)
    return SitePlan(base, seed, targets, tuple(all_hrefs), tuple(all_images), frozenset(expected))


def filler_pool(rng: random.Random, size: int = 256 * 1024) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        chunk = rng.choices(_WORDS, k=1024)
        words.extend(chunk)
        length += sum(len(w) + 1 for w in chunk)
    return " ".join(words)


def _png(seed: int) -> bytes:
    """A tiny valid 1x1 RGB PNG whose colour depends on ``seed``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    pixel = bytes([0, seed * 37 % 256, seed * 91 % 256, seed * 13 % 256])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(pixel))
        + chunk(b"IEND", b"")
    )


def _render_page(plan: SitePlan, index: int, pool: str, rng: random.Random) -> bytes:
    target_size = rng.randint(MIN_PAGE_BYTES + 512, MAX_PAGE_BYTES - 2048)
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Page {index}</title>\n"
        f'<link rel="stylesheet" href="{STYLESHEET}">\n</head>\n<body>\n<h1>Page {index}</h1>\n'
    )
    tail = "</body>\n</html>\n"
    elements = [f'<a href="{href}">link {n}</a>' for n, href in enumerate(plan.hrefs[index])]
    elements += [f'<img src="{src}" alt="figure {n}">' for n, src in enumerate(plan.images[index])]
    rng.shuffle(elements)
    # Spread the URL elements over paragraphs of filler text until the page is big enough.
    paragraphs = max(1, (target_size - len(head) - len(tail)) // 600)
    per_paragraph = -(-len(elements) // paragraphs)
    parts = [head]
    size = len(head) + len(tail)
    n = 0
    while size < target_size or elements:
        text = ""
        if size < target_size:
            start = pool.index(" ", rng.randrange(len(pool) - 2048)) + 1
            text = pool[start : pool.rindex(" ", start, start + rng.randint(300, 700))]
        links = " ".join(elements[:per_paragraph])
        del elements[:per_paragraph]
        attrs = f' id="sec{n}"' if n < 5 else ""  # the targets of the "#secN" links
        paragraph = f"<p{attrs}>{text} {links}</p>\n"
        parts.append(paragraph)
        size += len(paragraph)
        n += 1
    parts.append(tail)
    body = "".join(parts).encode()
    assert MIN_PAGE_BYTES <= len(body) <= MAX_PAGE_BYTES, (index, len(body))
    return body


def iter_site(plan: SitePlan) -> Iterator[tuple[str, bytes]]:
    """(request target, body) of every file of the site, one at a time: pages, robots.txt,
    assets. For writing a large site to disk without holding all of it in memory."""
    rng = random.Random(f"{plan.seed}-bodies")
    pool = filler_pool(rng)
    for index, target in enumerate(plan.targets):
        yield target, _render_page(plan, index, pool, random.Random(f"{plan.seed}-{index}"))
    yield "/robots.txt", ROBOTS_TXT
    yield STYLESHEET, b"body { font-family: sans-serif; }\n"
    for k in range(IMAGE_COUNT):
        yield f"/img/{k}.png", _png(k)


def render_site(plan: SitePlan) -> dict[str, bytes]:
    """Every file of the site by request target (path + query): pages, robots.txt, assets."""
    return dict(iter_site(plan))


def content_type(target: str) -> str:
    """The Content-Type the server sends for a request target."""
    path = target.partition("?")[0]
    if path.endswith(".png"):
        return "image/png"
    if path.endswith(".css"):
        return "text/css; charset=utf-8"
    if path.endswith(".txt"):
        return "text/plain; charset=utf-8"
    return "text/html; charset=utf-8"


def check_plan(plan: SitePlan) -> None:
    """Resolve every href with the standard library and check it lands on its planned target.

    This keeps the expected links independent of the crawler's own URL code: a mismatch between
    the crawl and the plan is then the crawler's, not the generator's. Raises AssertionError.
    """
    pages = plan.expected_pages
    planned: dict[str, set[tuple[str, str]]] = {url: set() for url in plan.page_urls}
    for src, dst, tag in plan.expected_links:
        planned[src].add((dst, tag))
    for source, hrefs, images in zip(plan.page_urls, plan.hrefs, plan.images, strict=True):
        resolved = {(urldefrag(urljoin(source, href)).url, "a") for href in hrefs}
        resolved |= {(urljoin(source, src), "img") for src in images}
        resolved.add((urljoin(source, STYLESHEET), "link"))
        assert resolved == planned[source], (source, resolved ^ planned[source])
        assert {dst for dst, tag in resolved if tag == "a"} <= pages, source
