"""``python -m crawler images-dupes crawl.db [--threshold N]``: near-identical images of a crawl.

Reads the images the images plugin recorded (``images`` joined with ``image_details``), and
groups them into clusters of near-identical pictures: two images are neighbours when their
perceptual hashes (64-bit dHash) differ in at most ``threshold`` bits, and a cluster is a
connected group of neighbours (single linkage). Identical bytes at several URLs are one image
with several URLs. Clusters with at least two URLs are printed, largest first.

Neighbours are found without comparing every pair: cut each hash into ``threshold + 1`` pieces;
two hashes within ``threshold`` bits agree on at least one piece (pigeonhole), so only hashes
that share a piece are compared.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

from plugins.imageinfo import hamming

__all__ = [
    "DEFAULT_THRESHOLD",
    "DupeCluster",
    "DupeImage",
    "DupesError",
    "cluster_images",
    "find_duplicates",
    "format_clusters",
    "images_dupes_main",
]

DEFAULT_THRESHOLD: Final = 8
_HASH_BITS: Final = 64
_MAX_PIECES: Final = 16  # beyond this, pieces are too short to narrow anything: compare all


@dataclass(frozen=True, slots=True)
class DupeImage:
    """One distinct image (one sha256) and every URL it was found at."""

    sha256: str
    phash: str
    format: str | None
    width: int | None
    height: int | None
    bytes: int | None
    path: str | None
    urls: tuple[str, ...]
    distance: int = 0  # bits from the cluster's first image


@dataclass(frozen=True, slots=True)
class DupeCluster:
    """Near-identical images; the first one is the cluster's reference."""

    images: tuple[DupeImage, ...]

    @property
    def url_count(self) -> int:
        return sum(len(image.urls) for image in self.images)


class DupesError(Exception):
    """The database cannot be read for duplicates; the message says why."""


def find_duplicates(db_path: Path, threshold: int = DEFAULT_THRESHOLD) -> list[DupeCluster]:
    """Clusters of near-identical images in a crawl database, largest first.

    Raises DupesError when the file is missing, not SQLite, or holds no images-plugin data.
    """
    if not 0 <= threshold <= _HASH_BITS:
        raise DupesError(f"threshold must be between 0 and {_HASH_BITS}, got {threshold}")
    return cluster_images(_read_images(db_path), threshold)


def cluster_images(images: Iterable[DupeImage], threshold: int) -> list[DupeCluster]:
    """Group images whose perceptual hashes differ in at most ``threshold`` bits."""
    by_hash: dict[int, list[DupeImage]] = defaultdict(list)
    for image in images:
        by_hash[int(image.phash, 16)].append(image)
    hashes = list(by_hash)
    parent = list(range(len(hashes)))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for first, second in _candidate_pairs(hashes, threshold):
        a, b = root(first), root(second)
        if a != b and (hashes[first] ^ hashes[second]).bit_count() <= threshold:
            parent[b] = a

    groups: dict[int, list[DupeImage]] = defaultdict(list)
    for index, value in enumerate(hashes):
        groups[root(index)].extend(by_hash[value])
    clusters = [_cluster(members) for members in groups.values()]
    clusters = [cluster for cluster in clusters if cluster.url_count >= 2]
    clusters.sort(key=lambda c: (-c.url_count, -len(c.images), c.images[0].urls[0]))
    return clusters


def _candidate_pairs(hashes: Sequence[int], threshold: int) -> Iterable[tuple[int, int]]:
    """Index pairs that may be within ``threshold`` bits: those sharing one of the pieces."""
    pieces = threshold + 1
    if pieces > _MAX_PIECES:
        for first in range(len(hashes)):
            for second in range(first + 1, len(hashes)):
                yield first, second
        return
    bounds = [round(i * _HASH_BITS / pieces) for i in range(pieces + 1)]
    for low, high in itertools.pairwise(bounds):
        mask = (1 << (high - low)) - 1
        buckets: dict[int, list[int]] = defaultdict(list)
        for index, value in enumerate(hashes):
            buckets[value >> low & mask].append(index)
        for members in buckets.values():
            for position, first in enumerate(members):
                for second in members[position + 1 :]:
                    yield first, second


def _cluster(members: list[DupeImage]) -> DupeCluster:
    # The reference: the image found at the most URLs, then the largest, then by URL.
    members.sort(key=lambda m: (-len(m.urls), -((m.width or 0) * (m.height or 0)), m.urls[0]))
    reference = members[0]
    ranked = [_with_distance(image, hamming(reference.phash, image.phash)) for image in members]
    ranked[1:] = sorted(ranked[1:], key=lambda m: (m.distance, m.urls[0]))
    return DupeCluster(tuple(ranked))


def _with_distance(image: DupeImage, distance: int) -> DupeImage:
    return DupeImage(
        image.sha256,
        image.phash,
        image.format,
        image.width,
        image.height,
        image.bytes,
        image.path,
        image.urls,
        distance,
    )


_IMAGES_SQL: Final = """
SELECT i.url, i.sha256, i.bytes, i.width, i.height, i.path, d.phash, d.format
FROM images AS i JOIN image_details AS d ON d.url = i.url
WHERE d.error IS NULL AND d.phash IS NOT NULL AND i.sha256 IS NOT NULL
ORDER BY i.url
"""


def _read_images(db_path: Path) -> list[DupeImage]:
    if not db_path.is_file():
        raise DupesError(f"{db_path} not found")
    try:
        uri = db_path.absolute().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"images", "image_details"} <= tables:
                raise DupesError(
                    f"{db_path} holds no images-plugin data: crawl with --plugin images first"
                )
            rows = db.execute(_IMAGES_SQL).fetchall()
    except sqlite3.Error as exc:
        raise DupesError(f"cannot read {db_path}: {exc}") from exc
    by_sha: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for url, sha256, *rest in rows:
        by_sha[sha256].append((url, *rest))
    images = []
    for sha256, found in by_sha.items():
        _, size, width, height, path, phash, fmt = found[0]
        urls = tuple(sorted(entry[0] for entry in found))
        images.append(DupeImage(sha256, phash, fmt, width, height, size, path, urls))
    return images


def format_clusters(clusters: Sequence[DupeCluster], threshold: int) -> str:
    """The clusters as a plain-text table, one block per cluster."""
    if not clusters:
        return f"no near-identical images (dHash distance <= {threshold})\n"
    noun = "cluster" if len(clusters) == 1 else "clusters"
    lines = [f"{len(clusters)} {noun} of near-identical images (dHash distance <= {threshold})"]
    header = ("dist", "size", "bytes", "format", "sha256", "url")
    for number, cluster in enumerate(clusters, 1):
        rows: list[tuple[str, ...]] = []
        for image in cluster.images:
            size = f"{image.width}x{image.height}" if image.width and image.height else "?"
            first, *more = image.urls
            rows.append(
                (
                    str(image.distance),
                    size,
                    f"{image.bytes:,}" if image.bytes is not None else "?",
                    image.format or "?",
                    image.sha256[:12],
                    first,
                )
            )
            rows.extend(("", "", "", "", "", url) for url in more)
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
        images = len(cluster.images)
        lines.append("")
        lines.append(
            f"cluster {number}: {images} image{'s' if images != 1 else ''}, "
            f"{cluster.url_count} URLs"
        )
        for row in (header, *rows):
            cells = [
                cell.rjust(width) if index in (0, 2) else cell.ljust(width)
                for index, (cell, width) in enumerate(zip(row, widths, strict=False))
            ]
            lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise DupesError(message)


def images_dupes_main(argv: Sequence[str]) -> int:
    """The ``images-dupes`` command: print clusters; 0 on success, 2 on a usage or DB error."""
    parser = _ArgumentParser(
        prog="python -m crawler images-dupes",
        description="List clusters of near-identical images in a crawl database "
        "(made with --plugin images).",
    )
    parser.add_argument("db", metavar="CRAWL_DB", help="the crawl database")
    parser.add_argument(
        "--threshold",
        type=int,
        default=DEFAULT_THRESHOLD,
        metavar="N",
        help=f"most differing dHash bits, 0-64, for two images to be near-identical "
        f"(default: {DEFAULT_THRESHOLD})",
    )
    try:
        args = parser.parse_args(list(argv))
        clusters = find_duplicates(Path(args.db), args.threshold)
    except DupesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(format_clusters(clusters, args.threshold))
    return 0
