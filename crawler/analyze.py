"""The CPU jobs run for response bodies: hash them and, for HTML, parse them.

A module of its own so that worker processes import only what they need. Two jobs, so that the
CPU pool measures their costs apart: hashing an image is cheap enough to run inline, parsing a
page usually is not (see :class:`crawler.cpu.CpuPool`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crawler.parse import PageHook, ParsedPage, parse_html_with


@dataclass(frozen=True, slots=True)
class Analysis:
    sha256: str
    page: ParsedPage | None
    extras: tuple[object, ...] = ()  # one result per page hook, in order

    def __reduce__(
        self,
    ) -> tuple[type[Analysis], tuple[str, ParsedPage | None, tuple[object, ...]]]:
        # A plain tuple: dataclasses' own __setstate__ is slow, and every page crosses processes.
        return Analysis, (self.sha256, self.page, self.extras)


def digest(body: bytes) -> Analysis:
    """Pure: the sha256 of ``body``."""
    return Analysis(hashlib.sha256(body).hexdigest(), None)


def analyze(
    body: bytes, url: str, headers: Mapping[str, str], hooks: Sequence[PageHook] = ()
) -> Analysis:
    """Pure: the sha256 of the HTML page ``body``, its parse, and what ``hooks`` make of it."""
    page, extras = parse_html_with(body, url, headers, hooks)
    return Analysis(hashlib.sha256(body).hexdigest(), page, extras)
