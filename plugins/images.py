"""The images plugin: download every image of the crawled pages, once per content.

``python -m crawler seed.txt --plugin images --images DIR``

- Every image a browser would load on a parsed page (``ParsedPage.images``: img src and
  srcset, picture sources, lazy-load attributes, icons, og:image, inline style ``url()``) is
  requested as an asset: robots.txt and politeness apply, scope does not, so images on other
  hosts are fetched too. Each URL is fetched once per crawl.
- Each image URL gets an ``images`` row (the contract's table: sha256, bytes, width, height,
  path) and an ``image_details`` row (format, served content type, perceptual hash, error).
  Broken images (HTTP errors, no answer), bodies that are no image, corrupt images and images
  filtered out by the size settings get rows too, with ``error`` set and no path.
- Identification (Pillow; SVG by its attributes) and the perceptual hash run in the process
  pool. Usable images are stored by content in DIR (see :mod:`plugins.imagestore`); identical
  bytes at many URLs are one file. Without a DIR, rows are recorded and nothing is stored.
- ``min_width``/``min_height`` are decided from the first bytes of the download: the fetch
  stops there, so a tracking pixel or a thumbnail costs no more than its header. ``min_bytes``
  is decided once the body is in (a body under it is small anyway).

Settings, in config.toml's ``[images]`` table: ``dir`` (same as ``--images``), ``min_width``,
``min_height``, ``min_bytes`` (0: no limit), ``prefer_largest_srcset`` (false). The
``images-dupes`` command (:mod:`plugins.imagedupes`) lists near-identical images afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from crawler.errors import PluginError
from crawler.plugins import Plugin, check_setting_keys
from crawler.progress import human_bytes
from plugins.imageinfo import ImageInfo, identify, probe
from plugins.imagestore import ImageStore

if TYPE_CHECKING:
    from crawler.config import Config
    from crawler.engine import Crawler
    from crawler.fetcher import Response
    from crawler.frontier import Task
    from crawler.parse import ParsedPage
    from crawler.storage import PageRow

__all__ = ["ImageSettings", "ImagesPlugin", "images_to_fetch"]

TABLES: Final = """
CREATE TABLE IF NOT EXISTS image_details(
    url TEXT PRIMARY KEY, format TEXT, content_type TEXT, phash TEXT, error TEXT, error_kind TEXT
);
CREATE INDEX IF NOT EXISTS images_sha256 ON images(sha256);
"""

INSERT_IMAGE: Final = (
    "INSERT OR REPLACE INTO images(url, sha256, bytes, width, height, path) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_DETAILS: Final = (
    "INSERT OR REPLACE INTO image_details(url, format, content_type, phash, error, error_kind) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)

_SUMMARY_SQL: Final = """
SELECT count(*),
       coalesce(sum(d.error IS NULL), 0),
       count(DISTINCT CASE WHEN d.error IS NULL THEN i.sha256 END),
       coalesce(sum(CASE WHEN d.error IS NULL THEN i.bytes END), 0),
       coalesce(sum(d.error_kind = 'skipped'), 0)
FROM images AS i JOIN image_details AS d ON d.url = i.url
"""
_DISTINCT_BYTES_SQL: Final = """
SELECT coalesce(sum(size), 0) FROM (
    SELECT max(i.bytes) AS size FROM images AS i JOIN image_details AS d ON d.url = i.url
    WHERE d.error IS NULL GROUP BY i.sha256
)
"""


@dataclass(frozen=True, slots=True)
class ImageSettings:
    """The ``[images]`` table, checked. Limits of 0 mean no limit."""

    dir: Path | None = None
    min_width: int = 0
    min_height: int = 0
    min_bytes: int = 0
    prefer_largest_srcset: bool = False

    @classmethod
    def from_table(cls, table: Mapping[str, Any], config: Config) -> ImageSettings:
        """Check the ``[images]`` table; PluginError names the key and the value."""
        where = f"{config.config_path}: [images]" if config.config_path else "[images]"
        known = ("dir", "min_width", "min_height", "min_bytes", "prefer_largest_srcset")
        check_setting_keys(table, known, where)
        limits: dict[str, int] = {}
        for key in ("min_width", "min_height", "min_bytes"):
            value = table.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PluginError(f"{where} {key} must be an integer >= 0, got {value!r}")
            limits[key] = value
        prefer = table.get("prefer_largest_srcset", False)
        if not isinstance(prefer, bool):
            shown = repr(prefer)
            raise PluginError(f"{where} prefer_largest_srcset must be true or false, got {shown}")
        # crawler.config turns [images] dir into Config.images (and --images overrides it);
        # the table's own value counts only for a Config built without it.
        folder = config.images
        if folder is None and "dir" in table:
            value = table["dir"]
            if not isinstance(value, str) or not value.strip():
                raise PluginError(f"{where} dir must be a path (a string), got {value!r}")
            folder = Path(value)
        if folder is not None:
            _check_folder(folder, where)
        return cls(folder, prefer_largest_srcset=prefer, **limits)

    def too_small(self, width: int | None, height: int | None, fmt: str) -> str | None:
        """Why an image of this size is filtered out, or None when it is kept."""
        size = f"{width}x{height} {fmt.upper()}"
        if width is not None and width < self.min_width:
            return f"{size} image is narrower than min_width {self.min_width}"
        if height is not None and height < self.min_height:
            return f"{size} image is lower than min_height {self.min_height}"
        return None


def _check_folder(folder: Path, where: str) -> None:
    """Refuse an image folder that is a file, or that cannot be created or written."""
    if folder.exists():
        if not folder.is_dir():
            raise PluginError(f"{where} dir {str(folder)!r} is not a directory")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PluginError(f"{where} dir {str(folder)!r} is not writable")
        return
    parent = folder.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PluginError(
            f"{where} dir {str(folder)!r} cannot be created ({parent} is not a writable directory)"
        )


def images_to_fetch(page: ParsedPage, prefer_largest_srcset: bool) -> list[str]:
    """The image URLs of ``page`` to download, in page order.

    With ``prefer_largest_srcset``, each srcset contributes only its largest candidate (by its
    ``w``, else ``x`` descriptor; the first on a tie); its other candidates are skipped unless
    another srcset prefers them. URLs from anywhere else (an ``img src`` outside the srcset, an
    icon, og:image) are kept, except one that is also a skipped srcset candidate: an
    ``<img src=small.jpg srcset="small.jpg 1x, big.jpg 2x">`` yields ``big.jpg`` alone.
    """
    urls = [url for url in page.images if url.startswith(("http://", "https://"))]
    if not prefer_largest_srcset or not page.srcsets:
        return urls
    largest = {max(srcset, key=lambda candidate: candidate[1])[0] for srcset in page.srcsets}
    smaller = {url for srcset in page.srcsets for url, _ in srcset} - largest
    return [url for url in urls if url not in smaller]


class ImagesPlugin(Plugin):
    """Downloads the images of every crawled page into a content-addressed store."""

    tables = TABLES

    def __init__(self, settings: Mapping[str, Any], config: Config) -> None:
        super().__init__(settings, config)
        self.options = ImageSettings.from_table(settings, config)
        self.store = ImageStore(self.options.dir) if self.options.dir is not None else None
        self.crawler: Crawler | None = None
        self.requested = 0
        self._summary: list[tuple[str, str]] = []

    async def open(self, crawler: Crawler) -> None:
        self.crawler = crawler
        if self.options.min_width or self.options.min_height:
            crawler.asset_inspector = self.inspect_head
        if self.store is None and crawler.progress is not None:
            crawler.progress.note(
                "images: no --images DIR (or [images] dir): recording image rows, storing nothing"
            )

    async def on_page(self, row: PageRow, page: ParsedPage) -> None:
        assert self.crawler is not None
        for url in images_to_fetch(page, self.options.prefer_largest_srcset):
            if self.crawler.request_asset(url, row.depth + 1, owner=self.name):
                self.requested += 1

    def inspect_head(self, head: bytes) -> str | None:
        """The fetcher's early look at an image download: a reason to stop, or None."""
        size = probe(head)
        if size is None:
            return None
        return self.options.too_small(size.width, size.height, size.format)

    async def on_response(self, task: Task, response: Response, row: PageRow) -> None:
        # Our assets (no owner: a database of before owners were kept); anything else only
        # when it is served as an image (<a href="photo.jpg"> was fetched as a page), so that
        # another plugin's assets, the audit's sitemaps say, are never taken for images.
        ours = task.kind == "asset" and task.owner in (None, self.name)
        if not ours and not response.content_type.startswith("image/"):
            return
        assert self.crawler is not None
        url = task.url
        content_type = response.content_type or None
        if response.status is None:
            kind = "skipped" if response.error_kind == "skipped" else "fetch"
            self._record(url, content_type, response.error or "no response", kind)
            return
        if not response.ok:
            self._record(url, content_type, f"HTTP {response.status}", "http")
            return
        body = response.body
        info = await self.crawler.cpu.run(identify, body)
        sha256 = row.content_hash or hashlib.sha256(body).hexdigest()
        if info.error is not None:
            self._record(url, content_type, info.error, info.error_kind, info, sha256, len(body))
            return
        reason = self.options.too_small(info.width, info.height, info.format or "?")
        if reason is None and len(body) < self.options.min_bytes:
            reason = f"{len(body)} bytes, fewer than min_bytes {self.options.min_bytes}"
        if reason is not None:
            error = f"skipped: {reason}"
            self._record(url, content_type, error, "skipped", info, sha256, len(body))
            return
        path: str | None = None
        if self.store is not None:
            try:
                stored, _ = await self.store.save(sha256, info.extension, body)
            except OSError as exc:
                error = f"cannot store image: {exc.strerror or exc}"
                self._record(url, content_type, error, "store", info, sha256, len(body))
                return
            path = str(stored)
        self._record(url, content_type, None, None, info, sha256, len(body), path)

    def _record(
        self,
        url: str,
        content_type: str | None,
        error: str | None,
        error_kind: str | None,
        info: ImageInfo | None = None,
        sha256: str | None = None,
        size: int | None = None,
        path: str | None = None,
    ) -> None:
        """One ``images`` row and its ``image_details`` row, in the page's transaction."""
        assert self.crawler is not None
        width = info.width if info is not None else None
        height = info.height if info is not None else None
        storage = self.crawler.storage
        storage.add_rows(INSERT_IMAGE, [(url, sha256, size, width, height, path)])
        fmt = info.format if info is not None else None
        phash = info.phash if info is not None else None
        storage.add_rows(INSERT_DETAILS, [(url, fmt, content_type, phash, error, error_kind)])

    async def close(self) -> None:
        if self.crawler is None:
            return
        storage = self.crawler.storage
        try:
            await storage.flush()
            totals = await asyncio.to_thread(_read_totals, storage.path)
        except Exception as exc:
            self._summary = [("images", f"no summary: {exc}")]
            raise
        self._summary = self._summary_lines(*totals)

    def _summary_lines(
        self, rows: int, usable: int, distinct: int, usable_bytes: int, skipped: int, unique: int
    ) -> list[tuple[str, str]]:
        failed = rows - usable - skipped
        counts = f"{usable} usable, {failed} broken or not images, {skipped} skipped"
        lines = [
            ("images", f"{rows} ({counts})"),
            ("images distinct", f"{distinct} ({human_bytes(unique)})"),
            (
                "saved by dedupe",
                f"{human_bytes(usable_bytes - unique)} ({usable - distinct} duplicate images)",
            ),
        ]
        if self.store is None:
            lines.append(("images stored", "none: no --images DIR"))
        else:
            written = f"{self.store.files_written} files, {human_bytes(self.store.bytes_written)}"
            lines.append(("images stored", f"{self.store.root} ({written} new)"))
        return lines

    def summary(self) -> list[tuple[str, str]]:
        return list(self._summary)

    def __repr__(self) -> str:
        where = str(self.options.dir) if self.options.dir is not None else "no dir"
        return f"<ImagesPlugin {where} requested={self.requested} {self.options!r}>"


def _read_totals(db_path: Path) -> tuple[int, int, int, int, int, int]:
    """(rows, usable, distinct usable, usable bytes, skipped, bytes of distinct contents)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        rows, usable, distinct, usable_bytes, skipped = db.execute(_SUMMARY_SQL).fetchone()
        (unique,) = db.execute(_DISTINCT_BYTES_SQL).fetchone()
    return int(rows), int(usable), int(distinct), int(usable_bytes), int(skipped), int(unique)
