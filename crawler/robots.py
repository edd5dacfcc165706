"""robots.txt: fetched once per host, parsed by Protego, consulted before every request.

Status handling follows RFC 9309: a 4xx answer (404, 410, 403 ...) means "allow everything";
a 5xx answer or no answer at all means "disallow everything" for this crawl, and the reason is
kept so that the summary and the ``robots`` table can say why a host was skipped. Redirects are
followed (up to five hops, as the RFC asks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protego import Protego

from crawler.urls import normalize_url

if TYPE_CHECKING:
    from crawler.fetcher import Fetcher

MAX_ROBOTS_REDIRECTS = 5
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309: parse at least 500 KiB


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """The parsed robots.txt of one host, or the verdict that replaces it."""

    host: str
    status: int | None
    parser: Protego | None = None
    disallow_all: bool = False
    error: str | None = None
    # The robots.txt text parsed (2xx answers), kept so that a shared frontier can hand it to
    # other crawler processes (rules_from_answer rebuilds the same rules from it).
    text: str = field(default="", repr=False, compare=False)

    def allows(self, url: str, token: str) -> bool:
        if self.disallow_all:
            return False
        if self.parser is None:
            return True
        return bool(self.parser.can_fetch(url, token))

    def crawl_delay(self, token: str) -> float:
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(token)
        return float(delay) if delay else 0.0

    @property
    def verdict(self) -> str:
        if self.disallow_all:
            return "disallow all"
        if self.parser is None:
            return "allow all"
        return "rules"

    def __repr__(self) -> str:
        reason = f" error={self.error!r}" if self.error else ""
        return f"<RobotsRules {self.host} status={self.status} {self.verdict}{reason}>"


def rules_from_answer(
    host: str, status: int | None, body: bytes, error: str | None = None
) -> RobotsRules:
    """Pure: turn the answer to ``GET /robots.txt`` into rules (RFC 9309 status handling)."""
    if status is None:
        return RobotsRules(host, None, disallow_all=True, error=error or "no response")
    if 200 <= status < 300:
        text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        try:
            parser = Protego.parse(text)
        except Exception as exc:  # Protego is lenient; guard against the unexpected anyway
            return RobotsRules(
                host, status, error=f"unparseable robots.txt ({exc}); allow all", text=text
            )
        return RobotsRules(host, status, parser=parser, text=text)
    if 400 <= status < 500:
        return RobotsRules(host, status)
    if 300 <= status < 400:
        return RobotsRules(host, status, error=f"too many redirects (HTTP {status}); allow all")
    return RobotsRules(host, status, disallow_all=True, error=f"HTTP {status}: disallow all")


async def fetch_robots(fetcher: Fetcher, host: str) -> tuple[RobotsRules, int]:
    """Fetch and parse ``host``'s robots.txt; returns the rules and the requests made."""
    url = f"{host}/robots.txt"
    requests = 0
    for _ in range(MAX_ROBOTS_REDIRECTS + 1):
        resp = await fetcher.fetch(url, max_bytes=MAX_ROBOTS_BYTES)
        requests += 1
        if not resp.is_redirect:
            return rules_from_answer(host, resp.status, resp.body, resp.error), requests
        target = normalize_url(resp.location or "", url)
        if target is None:
            break
        url = target
    return rules_from_answer(host, resp.status, b""), requests


class RobotsCache:
    """The rules of every host met so far; ``enabled=False`` allows everything."""

    def __init__(self, token: str, *, enabled: bool = True) -> None:
        self.token = token
        self.enabled = enabled
        self._rules: dict[str, RobotsRules] = {}
        self._loading: set[str] = set()

    def needs_fetch(self, host: str) -> bool:
        return self.enabled and host not in self._rules and host not in self._loading

    def is_loading(self, host: str) -> bool:
        return host in self._loading

    def mark_loading(self, host: str) -> None:
        self._loading.add(host)

    def store(self, rules: RobotsRules) -> None:
        self._loading.discard(rules.host)
        self._rules[rules.host] = rules

    def get(self, host: str) -> RobotsRules | None:
        return self._rules.get(host)

    def allows(self, host: str, url: str) -> bool:
        rules = self._rules.get(host)
        return True if rules is None else rules.allows(url, self.token)

    def crawl_delay(self, host: str) -> float:
        rules = self._rules.get(host)
        return 0.0 if rules is None else rules.crawl_delay(self.token)

    def __repr__(self) -> str:
        return (
            f"<RobotsCache token={self.token!r} enabled={self.enabled} "
            f"hosts={len(self._rules)} loading={len(self._loading)}>"
        )
