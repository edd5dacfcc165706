"""What an image is, from its bytes: format, width and height, perceptual hash. Pure functions.

:func:`identify` looks at a complete body and runs in the process pool (everything here is a
top-level function of plain values, so it pickles). :func:`probe` reads only the first bytes of
a download, cheaply enough to run in the event loop, so that a download can be stopped as soon
as its header says the image is too small.

Raster formats are read by Pillow. Pillow needs the whole file for WebP and AVIF, so
:func:`probe` reads their headers itself (RIFF/VP8 and the ISOBMFF ``ispe`` box); SVG size comes
from the root element's ``width``, ``height`` and ``viewBox`` attributes.

The perceptual hash is a 64-bit difference hash (dHash): the image in grey, shrunk to 9x8,
one bit per pair of horizontal neighbours (is the left one brighter?), as 16 hex digits. Two
images whose hashes differ in few bits (:func:`hamming`) look alike.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from PIL import Image, UnidentifiedImageError

__all__ = [
    "EXTENSIONS",
    "HASH_MAX_PIXELS",
    "ImageInfo",
    "ImageSize",
    "hamming",
    "identify",
    "probe",
    "sniff_format",
    "svg_size",
]

#: Pillow formats accepted as web images (what browsers display), by Pillow's name.
WEB_FORMATS: Final = ("PNG", "JPEG", "GIF", "WEBP", "AVIF", "BMP", "ICO", "TIFF")
#: Formats Pillow can size from the first bytes of a file (WebP and AVIF need all of it).
_PREFIX_FORMATS: Final = ("PNG", "JPEG", "GIF", "BMP", "ICO", "TIFF")

#: File extension per format (``ImageInfo.format``): the store names files by content type.
EXTENSIONS: Final = {
    "png": "png",
    "jpeg": "jpg",
    "gif": "gif",
    "webp": "webp",
    "avif": "avif",
    "bmp": "bmp",
    "ico": "ico",
    "tiff": "tif",
    "svg": "svg",
}

#: Images with more pixels than this (after JPEG's reduced decoding) get no perceptual hash:
#: decoding them would cost a worker hundreds of MB.
HASH_MAX_PIXELS: Final = 16_000_000
_HASH_SIZE: Final = (9, 8)
_SVG_SCAN_BYTES: Final = 64 * 1024

# Magic numbers, to tell a broken image from something that is no image at all.
_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"\x00\x00\x01\x00", "ico"),
    (b"BM", "bmp"),
)
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})


@dataclass(frozen=True, slots=True)
class ImageSize:
    """What a header says: the format and, when known, the size in pixels."""

    format: str
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """The outcome of :func:`identify`. ``error`` is None exactly for a usable image.

    ``error_kind`` is ``not_image`` (no known image format: text served as image/png, an HTML
    page) or ``corrupt`` (an image format whose data cannot be read). A corrupt image may still
    have a format and a size, from its header.
    """

    format: str | None
    width: int | None
    height: int | None
    phash: str | None
    error: str | None = None
    error_kind: str | None = None

    @property
    def extension(self) -> str:
        """The file extension for this format (``jpg`` for JPEG, ``svg`` for SVG, ...)."""
        fmt = self.format or "bin"
        return EXTENSIONS.get(fmt, fmt)


def identify(body: bytes) -> ImageInfo:
    """Identify a complete body: format, size and perceptual hash, or why it is no image."""
    if not body:
        return ImageInfo(None, None, None, None, "not an image: empty body", "not_image")
    svg = svg_size(body)
    if svg is not None:
        return ImageInfo("svg", svg.width, svg.height, None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about odd but readable files
            with Image.open(io.BytesIO(body), formats=WEB_FORMATS) as image:
                fmt = _format_name(image.format)
                width, height = image.size
                try:
                    phash = _dhash(image)
                except Exception as exc:  # Pillow raises many kinds on bad data
                    return ImageInfo(fmt, width, height, None, _corrupt(fmt, exc), "corrupt")
    except UnidentifiedImageError:
        header = probe(body)
        if header is not None:  # a format this Pillow cannot decode (AVIF on old Pillow)
            return ImageInfo(header.format, header.width, header.height, None)
        fmt_guess = sniff_format(body)
        if fmt_guess is not None:
            return ImageInfo(fmt_guess, None, None, None, _corrupt(fmt_guess, None), "corrupt")
        return ImageInfo(None, None, None, None, "not an image: no known image format", "not_image")
    except Exception as exc:
        fmt_guess = sniff_format(body)
        return ImageInfo(fmt_guess, None, None, None, _corrupt(fmt_guess, exc), "corrupt")
    if width <= 0 or height <= 0:
        return ImageInfo(fmt, width, height, None, _corrupt(fmt, None), "corrupt")
    return ImageInfo(fmt, width, height, phash)


def probe(head: bytes) -> ImageSize | None:
    """Format and size from the first bytes of a file, or None when they do not tell (yet).

    Cheap (a header parse, no decoding), for use in the event loop while downloading.
    """
    fmt = sniff_format(head)
    if fmt == "webp":
        return _webp_size(head)
    if fmt == "avif":
        return _avif_size(head)
    if fmt is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(head), formats=_PREFIX_FORMATS) as image:
                    width, height = image.size
                    return ImageSize(_format_name(image.format), width, height)
        except Exception:  # too few bytes yet, or not what the magic number promised
            return None
    svg = svg_size(head)
    if svg is not None and svg.width is not None and svg.height is not None:
        return svg
    return None


def sniff_format(head: bytes) -> str | None:
    """The image format that the magic number at the start of ``head`` announces, or None."""
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and _ftyp_brands(head) & _AVIF_BRANDS:
        return "avif"
    return None


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex perceptual hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _format_name(pillow_format: str | None) -> str:
    name = (pillow_format or "unknown").lower()
    return "jpeg" if name == "mpo" else name  # MPO: a JPEG with extra pictures (cameras)


def _corrupt(fmt: str | None, exc: BaseException | None) -> str:
    what = f"corrupt {fmt.upper()} image" if fmt else "corrupt image"
    if exc is None:
        return f"{what}: unreadable header"
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    return f"{what}: {detail}"


def _dhash(image: Image.Image) -> str | None:
    """The 64-bit difference hash of ``image`` as 16 hex digits; None when too large to decode."""
    if image.format == "JPEG" or image.format == "MPO":
        image.draft("L", (_HASH_SIZE[0] * 8, _HASH_SIZE[1] * 8))  # DCT-scaled decoding
    width, height = image.size
    if width * height > HASH_MAX_PIXELS:
        return None
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat.alpha_composite(rgba)
        grey = flat.convert("L")
    else:
        grey = image.convert("L")
    small = grey.resize(_HASH_SIZE, Image.Resampling.LANCZOS, reducing_gap=2.0)
    pixels = small.tobytes()
    columns = _HASH_SIZE[0]
    bits = 0
    for row in range(_HASH_SIZE[1]):
        for col in range(columns - 1):
            left = pixels[row * columns + col]
            right = pixels[row * columns + col + 1]
            bits = bits << 1 | (left > right)
    return f"{bits:016x}"


# --------------------------------------------------------------------------- WebP and AVIF


def _webp_size(head: bytes) -> ImageSize | None:
    """Canvas size from the first chunk of a WebP file (VP8X, VP8L or VP8)."""
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
    elif chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(head[26:28], "little") & 0x3FFF
        height = int.from_bytes(head[28:30], "little") & 0x3FFF
    else:
        return None
    return ImageSize("webp", width, height)


def _ftyp_brands(head: bytes) -> set[bytes]:
    size = int.from_bytes(head[0:4], "big")
    end = min(size, len(head))
    brands = {head[8:12]}
    brands.update(head[offset : offset + 4] for offset in range(16, end - 3, 4))
    return brands


# ISOBMFF boxes to descend into on the way to the image size, with their extra header bytes.
_CONTAINER_BOXES: Final = {b"meta": 4, b"iprp": 0, b"ipco": 0}


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, content start, content end) of the ISOBMFF boxes in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, min(pos + size, end)
        pos += size


def _ispe_sizes(data: bytes, start: int, end: int, depth: int = 0) -> Iterator[tuple[int, int]]:
    for kind, content, box_end in _boxes(data, start, end):
        if kind == b"ispe" and box_end - content >= 12:
            width = int.from_bytes(data[content + 4 : content + 8], "big")
            height = int.from_bytes(data[content + 8 : content + 12], "big")
            yield width, height
        elif kind in _CONTAINER_BOXES and depth < 4:
            yield from _ispe_sizes(data, content + _CONTAINER_BOXES[kind], box_end, depth + 1)


def _avif_size(head: bytes) -> ImageSize | None:
    """The largest ``ispe`` (image spatial extents) property: the primary image's size."""
    sizes = list(_ispe_sizes(head, 0, len(head)))
    if not sizes:
        return None
    width, height = max(sizes, key=lambda size: size[0] * size[1])
    return ImageSize("avif", width, height)


# --------------------------------------------------------------------------- SVG

_SVG_ROOT_RE: Final = re.compile(
    r"\A(?:\s|<\?[^>]*\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>)*"
    r"<(?:[\w.-]+:)?svg\b((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>",
    re.DOTALL | re.IGNORECASE,
)
_SVG_ATTR_RE: Final = re.compile(r"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_SVG_LENGTH_RE: Final = re.compile(
    r"\s*\+?((?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*(px|pt|pc|mm|cm|in)?\s*\Z", re.IGNORECASE
)
# CSS pixels per unit; em, ex and % depend on the page and give no size.
_SVG_UNITS: Final = {"px": 1.0, "pt": 96 / 72, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54}
_SVG_UNITS_IN: Final = 96.0


def svg_size(data: bytes) -> ImageSize | None:
    """None unless ``data`` is an SVG document; else its size in CSS pixels (each may be None).

    The size is the root ``<svg>``'s ``width`` and ``height`` (px, pt, pc, mm, cm, in); a
    missing one follows from the ``viewBox`` aspect ratio, and both missing take the viewBox's.
    """
    text = data[:_SVG_SCAN_BYTES].removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    match = _SVG_ROOT_RE.match(text)
    if match is None:
        return None
    attrs: dict[str, str] = {}
    for attr in _SVG_ATTR_RE.finditer(match.group(1)):
        attrs.setdefault(attr.group(1).lower(), attr.group(2) or attr.group(3) or "")
    width = _svg_length(attrs.get("width"))
    height = _svg_length(attrs.get("height"))
    view_box = _svg_view_box(attrs.get("viewbox"))
    if view_box is not None:
        box_width, box_height = view_box
        if width is None and height is None:
            width, height = box_width, box_height
        elif width is None and height is not None:
            width = height * box_width / box_height
        elif height is None and width is not None:
            height = width * box_height / box_width
    return ImageSize("svg", _pixels(width), _pixels(height))


def _svg_length(value: str | None) -> float | None:
    if value is None:
        return None
    match = _SVG_LENGTH_RE.match(value)
    if match is None:
        return None
    unit = (match.group(2) or "px").lower()
    scale = _SVG_UNITS_IN if unit == "in" else _SVG_UNITS[unit]
    return float(match.group(1)) * scale


def _svg_view_box(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    parts = value.replace(",", " ").split()
    if len(parts) != 4:
        return None
    try:
        width, height = float(parts[2]), float(parts[3])
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _pixels(value: float | None) -> int | None:
    if value is None:
        return None
    pixels = round(value)
    return pixels if pixels > 0 else None
