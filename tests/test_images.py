"""The images plugin against real local sites: discovery, rows, the store, filters, dupes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import random
import re
import sqlite3
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from PIL import Image, ImageDraw

from crawler.config import Config
from crawler.errors import PluginError
from crawler.fetcher import INSPECT_BYTES
from crawler.parse import parse_page
from crawler.progress import human_bytes
from plugins.imagedupes import DupeImage, cluster_images, find_duplicates, format_clusters
from plugins.imageinfo import hamming, identify, probe, svg_size
from plugins.images import ImageSettings, ImagesPlugin, images_to_fetch
from plugins.imagestore import ImageStore
from tests.conftest import CrawlResult, RunCrawl
from tests.site import Site, SiteFactory
from tests.test_cli import run_cli, write
from tests.test_config import uncommented_repo_config

# --------------------------------------------------------------------------- test images


def picture(seed: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    """A deterministic picture of coloured rectangles; different seeds look different."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(8):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(width // 4, width), y0 + rng.randrange(height // 4, height)
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PNG = encoded(picture(1, (120, 80)), "PNG")
JPEG_SMALL = encoded(picture(2, (60, 40)), "JPEG", quality=80)
JPEG_BIG = encoded(picture(2, (240, 160)), "JPEG", quality=80)
WEBP_400 = encoded(picture(3, (40, 30)), "WEBP", quality=70)
WEBP_800 = encoded(picture(3, (80, 60)), "WEBP", lossless=True)
AVIF = encoded(picture(4, (64, 48)), "AVIF", quality=60)
GIF = encoded(picture(5, (50, 30)).convert("P"), "GIF")
ICON = encoded(picture(6, (32, 32)), "ICO", sizes=[(32, 32)])
TOUCH = encoded(picture(7, (57, 57)), "PNG")
OG = encoded(picture(8, (200, 100)), "JPEG")
LAZY_A = encoded(picture(9, (30, 20)), "PNG")
LAZY_B = encoded(picture(10, (31, 21)), "PNG")
LAZY_C = encoded(picture(11, (32, 22)), "PNG")
BACKGROUND = encoded(picture(12, (90, 10)), "PNG")
DUPLICATE = encoded(picture(13, (70, 70)), "PNG")
MISNAMED = encoded(picture(14, (33, 44)), "PNG")  # served as /img/misnamed.jpg
REMOTE = encoded(picture(15, (77, 55)), "PNG")
SECRET = encoded(picture(16, (10, 10)), "PNG")
PIXEL = encoded(Image.new("RGBA", (1, 1), (0, 0, 0, 0)), "GIF")
SVG_SIZED = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="2in" height="48pt"/>'
)
SVG_VIEWBOX = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 150"><rect/></svg>'
FAKE = b"I am a text file pretending to be a PNG\n"
CORRUPT = b"\x89PNG\r\n\x1a\n" + b"\x00" * 60


@dataclass(frozen=True)
class Served:
    body: bytes
    content_type: str
    size: tuple[int, int] | None = None  # expected width x height
    fmt: str | None = None  # expected image_details.format


# Every image on the main site, by path, with what the plugin must make of it.
IMAGES: dict[str, Served] = {
    "/img/photo.png": Served(PNG, "image/png", (120, 80), "png"),
    "/img/small.jpg": Served(JPEG_SMALL, "image/jpeg", (60, 40), "jpeg"),
    "/img/big.jpg": Served(JPEG_BIG, "image/jpeg", (240, 160), "jpeg"),
    "/img/w400.webp": Served(WEBP_400, "image/webp", (40, 30), "webp"),
    "/img/w800.webp": Served(WEBP_800, "image/webp", (80, 60), "webp"),
    "/img/pic.avif": Served(AVIF, "image/avif", (64, 48), "avif"),
    "/img/fallback.gif": Served(GIF, "image/gif", (50, 30), "gif"),
    "/icons/favicon.ico": Served(ICON, "image/x-icon", (32, 32), "ico"),
    "/icons/touch.png": Served(TOUCH, "image/png", (57, 57), "png"),
    "/og.jpg": Served(OG, "image/jpeg", (200, 100), "jpeg"),
    "/lazy/a.png": Served(LAZY_A, "image/png", (30, 20), "png"),
    "/lazy/b.png": Served(LAZY_B, "image/png", (31, 21), "png"),
    "/lazy/c.png": Served(LAZY_C, "image/png", (32, 22), "png"),
    "/css/bg.png": Served(BACKGROUND, "image/png", (90, 10), "png"),
    "/vector.svg": Served(SVG_SIZED, "image/svg+xml", (192, 64), "svg"),
    "/viewbox.svg": Served(SVG_VIEWBOX, "image/svg+xml", (300, 150), "svg"),
    "/dup/one.png": Served(DUPLICATE, "image/png", (70, 70), "png"),
    "/dup/two.png": Served(DUPLICATE, "image/png", (70, 70), "png"),
    "/other/three.png": Served(DUPLICATE, "image/png", (70, 70), "png"),
    "/img/misnamed.jpg": Served(MISNAMED, "image/jpeg", (33, 44), "png"),
    "/pixel.gif": Served(PIXEL, "image/gif", (1, 1), "gif"),
    "/fake.png": Served(FAKE, "image/png"),
    "/corrupt.png": Served(CORRUPT, "image/png"),
}
MISSING = "/missing.png"
BROKEN = {"/fake.png", "/corrupt.png"}
USABLE = {path for path in IMAGES if path not in BROKEN}


def gallery_html(remote: Site) -> str:
    return f"""<!DOCTYPE html>
<html><head><title>Gallery</title>
<link rel="icon" href="/icons/favicon.ico">
<link rel="apple-touch-icon" href="/icons/touch.png">
<meta property="og:image" content="/og.jpg">
</head><body>
<img src="/img/photo.png" alt="photo">
<img src="/img/small.jpg" srcset="/img/small.jpg 1x, /img/big.jpg 2x">
<img srcset="/img/w400.webp 400w, /img/w800.webp 800w" sizes="50vw">
<picture><source srcset="/img/pic.avif" type="image/avif"><img src="/img/fallback.gif"></picture>
<img data-src="/lazy/a.png" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<img data-srcset="/lazy/b.png 1x">
<img data-original="/lazy/c.png">
<div style="background-image: url('/css/bg.png')">text</div>
<img src="/vector.svg"><img src="/viewbox.svg">
<img src="/dup/one.png"><img src="/dup/two.png"><img src="/other/three.png">
<img src="/img/misnamed.jpg">
<img src="{MISSING}"><img src="/fake.png"><img src="/corrupt.png">
<img src="/pixel.gif" width="1" height="1">
<img src="{remote.url("/remote.png")}"><img src="{remote.url("/private/secret.png")}">
<a href="/second">second page</a>
</body></html>"""


@dataclass
class Gallery:
    site: Site
    remote: Site
    paths: dict[str, Served] = field(default_factory=lambda: dict(IMAGES))

    def url(self, path: str) -> str:
        return self.site.url(path)


@pytest.fixture
async def gallery(site: Site, make_site: SiteFactory) -> Gallery:
    remote = await make_site()
    remote.add_robots("User-agent: *\nDisallow: /private/\n")
    remote.add_page("/remote.png", body=REMOTE, content_type="image/png")
    remote.add_page("/private/secret.png", body=SECRET, content_type="image/png")
    remote.add_page("/", links=["/elsewhere"])
    site.add_page("/", gallery_html(remote))
    # The second page shows an image of the first page again: still one request for it.
    site.add_page("/second", '<title>2</title><img src="/img/photo.png">')
    for path, served in IMAGES.items():
        site.add_page(path, body=served.body, content_type=served.content_type)
    return Gallery(site, remote)


async def crawl_images(
    run_crawl: RunCrawl, seed: str, folder: Path | None, **settings: Any
) -> CrawlResult:
    return await run_crawl(
        [seed],
        plugins=("images",),
        images=folder,
        plugin_settings={"images": settings} if settings else {},
    )


def image_rows(result: CrawlResult) -> dict[str, sqlite3.Row]:
    sql = (
        "SELECT i.*, d.format, d.content_type AS served_as, d.phash, d.error, d.error_kind "
        "FROM images AS i LEFT JOIN image_details AS d ON d.url = i.url"
    )
    return {row["url"]: row for row in result.rows(sql)}


def stored_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


# --------------------------------------------------------------------------- discovery


async def test_every_image_a_browser_loads_is_fetched_once(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    result = await crawl_images(run_crawl, gallery.url("/"), tmp_path / "img")

    for path in [*IMAGES, MISSING]:
        assert gallery.site.count(path) == 1, path
    assert not [p for p in gallery.site.paths if "data:" in p or "base64" in p]
    rows = image_rows(result)
    expected = {gallery.url(path) for path in [*IMAGES, MISSING]}
    expected.add(gallery.remote.url("/remote.png"))
    assert set(rows) == expected
    # Every image URL has its pages row, with status, content type, size and body hash.
    for path, served in IMAGES.items():
        page = result.page(gallery.url(path))
        assert page["status"] == 200 and page["content_type"] == served.content_type
        assert page["bytes"] == len(served.body) and page["content_hash"] == sha(served.body)
        assert page["depth"] == 1
    assert not result.rows("SELECT url FROM pages WHERE url LIKE 'data:%'")


async def test_off_host_images_are_fetched_under_their_hosts_robots_txt(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    result = await crawl_images(run_crawl, gallery.url("/"), tmp_path / "img")

    remote = gallery.remote
    assert remote.paths == ["/robots.txt", "/remote.png"]  # robots first; the rest disallowed
    row = image_rows(result)[remote.url("/remote.png")]
    assert (row["width"], row["height"], row["sha256"]) == (77, 55, sha(REMOTE))
    assert remote.url("/private/secret.png") not in result.pages()


async def test_with_the_plugin_off_no_image_is_requested(
    gallery: Gallery, run_crawl: RunCrawl
) -> None:
    result = await run_crawl([gallery.url("/")])

    assert sorted(gallery.site.paths) == ["/", "/robots.txt", "/second"]
    assert gallery.remote.requests == []
    assert result.rows("SELECT * FROM images") == []


async def test_an_image_linked_as_a_page_gets_its_images_row(
    site: Site, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    site.add_page("/", '<a href="/photo.png">full size</a>')
    site.add_page("/photo.png", body=PNG, content_type="image/png")

    result = await crawl_images(run_crawl, site.url("/"), tmp_path / "img")

    row = image_rows(result)[site.url("/photo.png")]
    assert (row["width"], row["height"], row["format"]) == (120, 80, "png")
    assert row["path"] is not None and read(row["path"]) == PNG


# --------------------------------------------------------------------------- rows


async def test_dimensions_and_format_of_every_kind_of_image(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    result = await crawl_images(run_crawl, gallery.url("/"), tmp_path / "img")

    rows = image_rows(result)
    for path in USABLE:
        served, row = IMAGES[path], rows[gallery.url(path)]
        assert (row["width"], row["height"]) == served.size, path
        assert row["format"] == served.fmt, path
        assert row["sha256"] == sha(served.body) and row["bytes"] == len(served.body), path
        assert row["error"] is None and row["served_as"] == served.content_type, path
        if served.fmt == "svg":
            assert row["phash"] is None  # no rasteriser for SVG
        else:
            assert re.fullmatch(r"[0-9a-f]{16}", row["phash"]), path


async def test_broken_fake_and_corrupt_images_get_rows_with_an_error(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    result = await crawl_images(run_crawl, gallery.url("/"), tmp_path / "img")

    rows = image_rows(result)
    missing = rows[gallery.url(MISSING)]
    assert result.page(gallery.url(MISSING))["status"] == 404
    assert (missing["error"], missing["error_kind"]) == ("HTTP 404", "http")
    assert [missing[c] for c in ("sha256", "bytes", "width", "height", "path")] == [None] * 5

    fake = rows[gallery.url("/fake.png")]
    assert fake["error_kind"] == "not_image" and fake["error"].startswith("not an image")
    assert (fake["sha256"], fake["bytes"]) == (sha(FAKE), len(FAKE))
    assert (fake["width"], fake["height"], fake["path"], fake["format"]) == (None,) * 4
    assert fake["served_as"] == "image/png"

    corrupt = rows[gallery.url("/corrupt.png")]
    assert corrupt["error_kind"] == "corrupt" and corrupt["error"].startswith("corrupt PNG")
    assert (corrupt["width"], corrupt["height"], corrupt["path"]) == (None, None, None)

    stored = {path.stem for path in stored_files(tmp_path / "img")}
    assert sha(FAKE) not in stored and sha(CORRUPT) not in stored


async def test_an_image_cut_short_gets_a_row_with_the_fetch_error(
    site: Site, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    site.add_early_close("/cut.png", declared=5000, sent=100)
    site.add_page("/", '<img src="/cut.png">')

    result = await run_crawl(
        [site.url("/")], plugins=("images",), images=tmp_path / "img", retries=1
    )

    row = image_rows(result)[site.url("/cut.png")]
    assert row["error_kind"] == "fetch" and row["error"].startswith("server closed the connection")
    assert row["error"] == result.page(site.url("/cut.png"))["error"]
    assert (row["width"], row["sha256"], row["path"]) == (None, None, None)
    assert stored_files(tmp_path / "img") == []


# --------------------------------------------------------------------------- the store


async def test_store_is_content_addressed_deduplicated_and_complete(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    folder = tmp_path / "img"
    result = await crawl_images(run_crawl, gallery.url("/"), folder)

    files = stored_files(folder)
    for file in files:
        relative = file.relative_to(folder).as_posix()
        match = re.fullmatch(r"([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})\.(\w+)", relative)
        assert match, relative
        digest = match.group(3)
        assert digest[:2] == match.group(1) and digest[2:4] == match.group(2)
        assert sha(read(file)) == digest  # complete: the name is the content's hash
    contents = {IMAGES[path].body for path in USABLE} | {REMOTE}
    assert len(files) == len(contents)  # three URLs of one picture: one file

    rows = image_rows(result)
    duplicate_paths = {rows[gallery.url(p)]["path"] for p in ("/dup/one.png", "/dup/two.png")}
    duplicate_paths.add(rows[gallery.url("/other/three.png")]["path"])
    digest = sha(DUPLICATE)
    assert duplicate_paths == {str(folder / digest[:2] / digest[2:4] / f"{digest}.png")}
    # The extension comes from the bytes, not from the URL.
    assert rows[gallery.url("/img/misnamed.jpg")]["path"].endswith(f"{sha(MISNAMED)}.png")
    assert rows[gallery.url("/img/pic.avif")]["path"].endswith(".avif")
    assert rows[gallery.url("/icons/favicon.ico")]["path"].endswith(".ico")
    assert rows[gallery.url("/img/small.jpg")]["path"].endswith(".jpg")
    assert rows[gallery.url("/vector.svg")]["path"].endswith(".svg")
    for path in USABLE:
        assert read(rows[gallery.url(path)]["path"]) == IMAGES[path].body


async def test_a_second_crawl_into_the_same_folder_writes_nothing_new(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    folder = tmp_path / "img"
    first = await crawl_images(run_crawl, gallery.url("/"), folder)
    before = {path: path.stat().st_mtime_ns for path in stored_files(folder)}
    second = await crawl_images(run_crawl, gallery.url("/"), folder)

    assert {path: path.stat().st_mtime_ns for path in stored_files(folder)} == before
    summary = dict(second.stats.plugin_summary)
    assert summary["images stored"] == f"{folder} (0 files, 0 B new)"
    assert dict(first.stats.plugin_summary)["images stored"].startswith(f"{folder} ({len(before)}")


async def test_without_a_folder_rows_are_recorded_and_nothing_is_stored(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    result = await crawl_images(run_crawl, gallery.url("/"), None)

    rows = image_rows(result)
    photo = rows[gallery.url("/img/photo.png")]
    assert (photo["width"], photo["height"], photo["sha256"]) == (120, 80, sha(PNG))
    assert all(row["path"] is None for row in rows.values())
    assert dict(result.stats.plugin_summary)["images stored"] == "none: no --images DIR"
    assert [p for p in stored_files(tmp_path) if p.suffix in (".png", ".jpg", ".part")] == []


async def test_a_file_appears_only_once_complete(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    body = b"x" * (64 * 1024 * 1024)
    final = store.path_for(sha(body), "png")
    saving = asyncio.create_task(store.save(sha(body), "png", body))
    for _ in range(1_000_000):  # until the write has started
        if stored_files(tmp_path):
            break
        await asyncio.sleep(0)

    (temporary,) = stored_files(tmp_path)  # being written: under a temporary name only
    assert temporary.parent == final.parent and temporary.name.endswith(".part")
    assert not final.exists()
    assert await saving == (final, True)
    assert stored_files(tmp_path) == [final] and sha(read(final)) == sha(body)


async def test_a_cancelled_save_leaves_a_complete_file_or_none(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    body = b"y" * (64 * 1024 * 1024)
    saving = asyncio.create_task(store.save(sha(body), "png", body))
    for _ in range(1_000_000):
        if stored_files(tmp_path):
            break
        await asyncio.sleep(0)
    saving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await saving

    files = stored_files(tmp_path)
    assert not [path for path in files if path.name.endswith(".part")]
    assert all(sha(read(path)) == path.stem for path in files)


async def test_concurrent_saves_of_the_same_bytes_write_once(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    body = PNG
    results = await asyncio.gather(*(store.save(sha(body), "png", body) for _ in range(5)))

    assert [written for _, written in results].count(True) == 1
    assert {path for path, _ in results} == {store.path_for(sha(body), "png")}
    assert stored_files(tmp_path / "store") == [store.path_for(sha(body), "png")]
    assert store.files_written == 1 and store.bytes_written == len(body)


async def test_identification_runs_in_the_process_pool(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    result = await run_crawl(
        [gallery.url("/")], plugins=("images",), images=tmp_path / "img", workers=1
    )

    rows = image_rows(result)
    assert (rows[gallery.url("/img/pic.avif")]["width"], rows[gallery.url("/og.jpg")]["width"]) == (
        64,
        200,
    )
    assert result.stats.plugin_errors == {}


# --------------------------------------------------------------------------- filters


async def test_tracking_pixels_are_dropped_from_their_header(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    folder = tmp_path / "img"
    result = await crawl_images(run_crawl, gallery.url("/"), folder, min_width=2, min_height=2)

    pixel_url = gallery.url("/pixel.gif")
    page = result.page(pixel_url)
    assert page["error_kind"] == "skipped" and page["status"] is None
    assert page["error"] == "skipped: 1x1 GIF image is narrower than min_width 2"
    row = image_rows(result)[pixel_url]
    assert row["error_kind"] == "skipped" and row["path"] is None
    assert sha(PIXEL) not in {path.stem for path in stored_files(folder)}
    assert image_rows(result)[gallery.url("/img/photo.png")]["path"] is not None


@dataclass
class Streamed:
    """An image served in blocks, counting what the server managed to send."""

    body: bytes
    sent: int = 0

    async def handler(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = len(self.body)
        await response.prepare(request)
        block = 64 * 1024
        try:
            for start in range(0, len(self.body), block):
                piece = self.body[start : start + block]
                await response.write(piece)
                self.sent += len(piece)
                await asyncio.sleep(0.002)
        except ConnectionError:
            pass
        return response


@pytest.mark.parametrize("min_height", [None, 16])
async def test_a_small_image_stops_downloading_after_its_header(
    site: Site, run_crawl: RunCrawl, tmp_path: Path, min_height: int | None
) -> None:
    # A real 1x1 PNG followed by 8 MB of padding: only the header says it is tiny.
    padded = Streamed(encoded(Image.new("L", (1, 1)), "PNG") + bytes(8 * 1024 * 1024))
    site.add_handler("/huge-pixel.png", padded.handler)
    site.add_page("/", '<img src="/huge-pixel.png">')
    settings = {"min_height": min_height} if min_height is not None else {}

    result = await crawl_images(run_crawl, site.url("/"), tmp_path / "img", **settings)

    page = result.page(site.url("/huge-pixel.png"))
    if min_height is None:  # the control: without a limit, everything is downloaded
        assert padded.sent == len(padded.body) and page["bytes"] == len(padded.body)
        return
    assert page["error"] == "skipped: 1x1 PNG image is lower than min_height 16"
    assert padded.sent < 2 * 1024 * 1024  # stopped after the first 64 KiB, not 8 MB
    row = image_rows(result)[site.url("/huge-pixel.png")]
    assert row["error_kind"] == "skipped" and row["path"] is None


async def test_min_bytes_drops_small_files(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    limit = len(PNG)
    result = await crawl_images(run_crawl, gallery.url("/"), tmp_path / "img", min_bytes=limit)

    rows = image_rows(result)
    small = rows[gallery.url("/lazy/a.png")]
    assert len(LAZY_A) < limit
    assert small["error"] == f"skipped: {len(LAZY_A)} bytes, fewer than min_bytes {limit}"
    assert small["path"] is None and small["width"] == 30  # the size is still recorded
    assert rows[gallery.url("/img/photo.png")]["path"] is not None  # exactly the limit: kept


def test_probe_reads_sizes_from_the_first_bytes_only() -> None:
    big = picture(20, (640, 480))
    formats: list[tuple[str, dict[str, Any]]] = [
        ("PNG", {}),
        ("JPEG", {}),
        ("GIF", {}),
        ("BMP", {}),
        ("WEBP", {"quality": 50}),  # VP8
        ("WEBP", {"lossless": True}),  # VP8L
        ("AVIF", {}),
    ]
    for fmt, options in formats:
        data = encoded(big, fmt, **options)
        size = probe(data[:INSPECT_BYTES])
        assert size is not None and (size.width, size.height) == (640, 480), fmt
    translucent = big.convert("RGBA")
    translucent.putalpha(128)
    alpha = encoded(translucent, "WEBP", quality=50)
    assert alpha[12:16] == b"VP8X"
    size = probe(alpha[:64])
    assert size is not None and (size.format, size.width, size.height) == ("webp", 640, 480)
    assert probe(encoded(big, "PNG")[:20]) is None  # not enough yet
    assert probe(b"<!DOCTYPE html><html>" * 10) is None


def test_svg_size_from_attributes_and_view_box() -> None:
    def size(text: str) -> tuple[int | None, int | None] | None:
        found = svg_size(text.encode())
        return None if found is None else (found.width, found.height)

    assert size('<svg width="10" height="20.4px">') == (10, 20)
    assert size('<svg width="1in" height="72pt">') == (96, 96)
    assert size('<svg viewBox="0 0 300 150">') == (300, 150)
    assert size('<svg width="600" viewBox="0,0,300,150">') == (600, 300)
    assert size('<svg width="100%" height="50em">') == (None, None)
    assert size('<!-- a > b --><!DOCTYPE svg [<!ENTITY x "y">]><svg:svg height="5">') == (
        None,
        5,
    )
    assert size("<html><svg width='3'></svg></html>") is None
    assert identify(b"<svg").error_kind == "not_image"


# --------------------------------------------------------------------------- srcset


def parsed(body: str) -> Any:
    page = parse_page(body.encode(), "http://example.com/", {"content-type": "text/html"})
    assert page is not None
    return page


def test_images_to_fetch_prefers_the_largest_srcset_candidate() -> None:
    page = parsed(
        '<img src="/small.jpg" srcset="/small.jpg 1x, /big.jpg 2x, /mid.jpg 1.5x">'
        '<img src="/fallback.jpg" srcset="/w400.jpg 400w, /w1200.jpg 1200w, /w800.jpg 800w">'
        '<picture><source srcset="/a.webp 1x, /a2.webp 2x"><img src="/a.jpg"></picture>'
        '<img srcset="/only.png"><link rel="icon" href="/favicon.ico">'
    )
    base = "http://example.com"
    everything = images_to_fetch(page, prefer_largest_srcset=False)
    largest = images_to_fetch(page, prefer_largest_srcset=True)

    assert f"{base}/small.jpg" in everything and f"{base}/w400.jpg" in everything
    assert largest == [
        f"{base}/big.jpg",
        f"{base}/fallback.jpg",
        f"{base}/w1200.jpg",
        f"{base}/a2.webp",
        f"{base}/a.jpg",
        f"{base}/only.png",
        f"{base}/favicon.ico",
    ]


async def test_prefer_largest_srcset_in_a_crawl(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    result = await crawl_images(
        run_crawl, gallery.url("/"), tmp_path / "img", prefer_largest_srcset=True
    )

    for path in ("/img/small.jpg", "/img/w400.webp"):
        assert gallery.site.count(path) == 0, path
    for path in ("/img/big.jpg", "/img/w800.webp", "/img/pic.avif", "/img/fallback.gif"):
        assert gallery.site.count(path) == 1, path
    assert gallery.url("/img/small.jpg") not in image_rows(result)


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_widht": 5}, "[images] unknown setting 'min_widht' (did you mean 'min_width'?)"),
        ({"colour": 1}, "[images] unknown setting 'colour' (known: dir, min_width"),
        ({"min_width": -1}, "[images] min_width must be an integer >= 0, got -1"),
        ({"min_height": "10"}, "[images] min_height must be an integer >= 0, got '10'"),
        ({"min_bytes": True}, "[images] min_bytes must be an integer >= 0, got True"),
        ({"min_bytes": 1.5}, "[images] min_bytes must be an integer >= 0, got 1.5"),
        (
            {"prefer_largest_srcset": "yes"},
            "[images] prefer_largest_srcset must be true or false, got 'yes'",
        ),
        ({"dir": 3}, "[images] dir must be a path (a string), got 3"),
    ],
)
def test_bad_settings_are_refused_naming_key_and_value(
    settings: Mapping[str, Any], message: str
) -> None:
    with pytest.raises(PluginError) as error:
        ImagesPlugin(settings, Config())
    assert str(error.value).startswith(message)


def test_an_unusable_folder_is_refused(tmp_path: Path) -> None:
    a_file = write(tmp_path / "file", "x")
    with pytest.raises(PluginError, match=r"dir '.*file' is not a directory"):
        ImagesPlugin({}, Config(images=a_file))
    with pytest.raises(PluginError, match=r"dir '.*file/sub' cannot be created"):
        ImagesPlugin({}, Config(images=a_file / "sub"))
    settings = ImageSettings.from_table(
        {"min_width": 3, "prefer_largest_srcset": True}, Config(images=tmp_path / "new" / "dir")
    )
    assert settings == ImageSettings(tmp_path / "new" / "dir", 3, 0, 0, True)
    assert not (tmp_path / "new").exists()  # created when the crawl starts, not before


async def test_settings_from_config_toml_and_errors_from_the_cli(
    site: Site, tmp_path: Path
) -> None:
    site.add_page("/", '<img src="/p.png"><img src="/pixel.gif">')
    site.add_page("/p.png", body=PNG, content_type="image/png")
    site.add_page("/pixel.gif", body=PIXEL, content_type="image/gif")
    write(tmp_path / "seed.txt", site.url("/"))
    write(tmp_path / "config.toml", '[images]\ndir = "pics"\nmin_width = 2\n')

    run = await run_cli(tmp_path, "seed.txt", "--plugin", "images", "--workers", "1")

    assert run.code == 0, run.stderr
    assert len(stored_files(tmp_path / "pics")) == 1
    assert re.search(r"images\s+2 \(1 usable, 0 broken or not images, 1 skipped\)", run.stderr)
    write(tmp_path / "config.toml", "[images]\nmin_width = -3\n")
    bad = await run_cli(tmp_path, "seed.txt", "--plugin", "images", "--db", "other.db")
    assert bad.code == 2
    assert "config.toml: [images] min_width must be an integer >= 0, got -3" in bad.stderr


# --------------------------------------------------------------------------- summary


async def test_summary_counts_images_distinct_and_bytes_saved(
    gallery: Gallery, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    result = await crawl_images(run_crawl, gallery.url("/"), tmp_path / "img")

    summary = dict(result.stats.plugin_summary)
    rows = len(IMAGES) + 2  # the 404 and the remote image
    usable = len(USABLE) + 1
    assert summary["images"] == f"{rows} ({usable} usable, 3 broken or not images, 0 skipped)"
    assert summary["images distinct"].startswith(f"{usable - 2} (")
    saved = human_bytes(2 * len(DUPLICATE))
    assert summary["saved by dedupe"] == f"{saved} (2 duplicate images)"


# --------------------------------------------------------------------------- images-dupes


def dupe(name: str, phash: int, urls: int = 1) -> DupeImage:
    return DupeImage(
        name, f"{phash:016x}", "png", 1, 1, 1, None, tuple(f"u/{name}/{i}" for i in range(urls))
    )


def brute_force(images: list[DupeImage], threshold: int) -> set[frozenset[str]]:
    parent = {image.sha256: image.sha256 for image in images}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for a, b in itertools.combinations(images, 2):
        if hamming(a.phash, b.phash) <= threshold:
            parent[root(b.sha256)] = root(a.sha256)
    groups: dict[str, set[str]] = {}
    for image in images:
        groups.setdefault(root(image.sha256), set()).add(image.sha256)
    return {frozenset(group) for group in groups.values() if len(group) > 1}


@pytest.mark.parametrize("threshold", [0, 1, 3, 8, 15, 20])
def test_clustering_finds_the_same_groups_as_comparing_every_pair(threshold: int) -> None:
    rng = random.Random(threshold)
    images = []
    for index in range(150):
        value = rng.getrandbits(64)
        images.append(dupe(f"s{index}", value))
        for copy in range(rng.randrange(3)):  # near copies: a few flipped bits
            flipped = value
            for bit in rng.sample(range(64), rng.randrange(threshold + 3)):
                flipped ^= 1 << bit
            images.append(dupe(f"s{index}c{copy}", flipped))

    clusters = cluster_images(images, threshold)

    found = {frozenset(image.sha256 for image in cluster.images) for cluster in clusters}
    assert found == brute_force(images, threshold)
    assert found  # the test plants near copies


async def test_images_dupes_lists_near_identical_images(
    site: Site, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    original, other = picture(30, (96, 64)), picture(31, (96, 64))
    variants = {
        "/a.png": encoded(original, "PNG"),
        "/a-copy.png": encoded(original, "PNG"),  # the same bytes at another URL
        "/a-big.jpg": encoded(original.resize((192, 128)), "JPEG", quality=60),
        "/a.avif": encoded(original, "AVIF", quality=50),
        "/b.png": encoded(other, "PNG"),
        "/c.png": encoded(picture(32, (96, 64)), "PNG"),
    }
    for path, body in variants.items():
        site.add_page(path, body=body, content_type="image/png")
    site.add_page("/", "".join(f'<img src="{path}">' for path in variants))
    phash = {path: identify(body).phash or "" for path, body in variants.items()}
    assert hamming(phash["/a.png"], phash["/b.png"]) > 12  # really different pictures
    assert hamming(phash["/b.png"], phash["/c.png"]) > 12

    result = await crawl_images(run_crawl, site.url("/"), tmp_path / "img")
    clusters = find_duplicates(result.path, threshold=6)

    assert len(clusters) == 1
    (cluster,) = clusters
    urls = [image.urls for image in cluster.images]
    assert urls[0] == (site.url("/a-copy.png"), site.url("/a.png"))  # most URLs first
    assert {u for found in urls[1:] for u in found} == {site.url("/a-big.jpg"), site.url("/a.avif")}
    assert cluster.url_count == 4
    text = format_clusters(clusters, 6)
    assert text.startswith("1 cluster of near-identical images (dHash distance <= 6)")
    assert "192x128" in text and site.url("/a.avif") in text and site.url("/b.png") not in text

    run = await run_cli(tmp_path, "images-dupes", str(result.path), "--threshold", "6")
    assert run.code == 0, run.stderr
    assert run.stdout == text
    strict = await run_cli(tmp_path, "images-dupes", str(result.path), "--threshold", "0")
    assert strict.code == 0 and "(dHash distance <= 0)" in strict.stdout
    assert site.url("/a-copy.png") in strict.stdout  # identical bytes: always one cluster


async def test_images_dupes_explains_unusable_input(tmp_path: Path) -> None:
    missing = await run_cli(tmp_path, "images-dupes", "nope.db")
    assert missing.code == 2 and "error: nope.db not found" in missing.stderr
    with sqlite3.connect(tmp_path / "plain.db") as conn:
        conn.execute("CREATE TABLE t(x)")
    plain = await run_cli(tmp_path, "images-dupes", "plain.db")
    assert plain.code == 2 and "crawl with --plugin images first" in plain.stderr
    bad = await run_cli(tmp_path, "images-dupes", "plain.db", "--threshold", "65")
    assert bad.code == 2 and "threshold must be between 0 and 64, got 65" in bad.stderr


def test_the_repo_config_toml_documents_the_images_settings() -> None:
    table = tomllib.loads(uncommented_repo_config())["images"]
    assert set(table) == {"dir", "min_width", "min_height", "min_bytes", "prefer_largest_srcset"}
    settings = ImageSettings.from_table({k: v for k, v in table.items() if k != "dir"}, Config())
    assert settings == ImageSettings()  # every documented value is the default


async def test_an_image_redirected_to_another_host_is_followed(
    site: Site, make_site: SiteFactory, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    cdn = await make_site()
    cdn.add_page("/real.png", body=PNG, content_type="image/png")
    site.add_page("/", '<img src="/img/logo.png">')
    site.add_redirect("/img/logo.png", cdn.url("/real.png"), 302)
    result = await crawl_images(run_crawl, site.url("/"), tmp_path / "img")

    assert cdn.paths == ["/robots.txt", "/real.png"]
    assert result.page(site.url("/img/logo.png"))["final_url"] == cdn.url("/real.png")
    assert image_rows(result)[cdn.url("/real.png")]["sha256"] == sha(PNG)
