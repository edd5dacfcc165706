"""The CPU job run for every response body: hash it and, for HTML, parse it.

A module of its own so that worker processes import only what they need.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from crawler.parse import ParsedPage, parse_page


@dataclass(frozen=True, slots=True)
class Analysis:
    sha256: str
    page: ParsedPage | None


def analyze(body: bytes, url: str, headers: Mapping[str, str], parse: bool) -> Analysis:
    """Pure: the sha256 of ``body`` and, when ``parse`` is set and it is HTML, its parse."""
    digest = hashlib.sha256(body).hexdigest()
    return Analysis(digest, parse_page(body, url, headers) if parse else None)
