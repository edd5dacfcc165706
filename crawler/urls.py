"""Pure URL functions: normalization, origins, registrable domains and crawl scope.

Everything the crawler stores, deduplicates or requests is a *normalized* URL string, as
returned by :func:`normalize_url`. The rules (the public contract in DESIGN.md):

- surrounding whitespace and control characters are stripped, and tab/CR/LF anywhere are
  removed, the way browsers clean an ``href``; a backslash before the query counts as ``/``;
- the reference is resolved against the base (RFC 3986, via yarl); ``//host/path`` takes the
  base's scheme;
- the fragment is dropped; scheme and host are lowercased (IDN hosts become punycode); the
  default port (80 for http, 443 for https) is dropped; dot segments are resolved; an empty
  path becomes ``/``;
- path case, ``//`` inside a path, the query string and its order are kept; a trailing ``?``
  with an empty query is kept too (``/a?`` and ``/a`` may be different resources);
- characters a browser would percent-encode are percent-encoded (a space is ``%20`` in the
  query as well as in the path);
- only http and https URLs with a valid host and port come out; anything else is ``None``.

HTML entities are decoded by the HTML parser before an attribute value gets here.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import TYPE_CHECKING, Final, Literal, cast, get_args

from yarl import URL

if TYPE_CHECKING:
    from tldextract import TLDExtract

__all__ = [
    "Scope",
    "ScopeMode",
    "host_key",
    "normalize_url",
    "registrable_domain",
    "robots_url",
]

ScopeMode = Literal["host", "domain", "any"]
SCOPE_MODES: Final[tuple[str, ...]] = get_args(ScopeMode)

_HTTP_SCHEMES: Final = frozenset({"http", "https"})
# Browsers strip leading/trailing C0 controls and spaces, and drop tab/CR/LF anywhere.
_STRIP_CHARS: Final = "".join(chr(c) for c in range(0x21))
_REMOVED_CHARS: Final = {ord("\t"): None, ord("\n"): None, ord("\r"): None}
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# WHATWG "forbidden domain code points" (plus the ASCII space), checked on the ASCII host.
_FORBIDDEN_HOST_RE: Final = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")
_BRACKETED_HOST_RE: Final = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//[^/?]*\[")
# scheme, then userinfo (skipped), then host[:port] of a normalized URL.
_ORIGIN_RE: Final = re.compile(r"([a-z][a-z0-9+.\-]*://)(?:[^@/?#]*@)?([^/?#]*)")


def normalize_url(raw: str, base: str | URL | None = None) -> str | None:
    """Resolve ``raw`` against ``base`` and normalize it; ``None`` if not a usable http(s) URL.

    ``raw`` is an attribute value (already entity-decoded) or a seed line; ``base`` the page
    URL or its ``<base href>``, as a string or a ``yarl.URL``. Never raises.
    """
    try:
        text = raw.strip(_STRIP_CHARS)
        if "\t" in text or "\n" in text or "\r" in text:
            text = text.translate(_REMOVED_CHARS)
        text = text.partition("#")[0]
        fast = _normalize_fast(text, base)
        return fast if fast is not None else _normalize_slow(text, base)
    except Exception:
        # Mostly ValueError/UnicodeError (bad port, IPv6 literal, IDNA label), but yarl has
        # raised IndexError on odd authorities too: an unusable href is never fatal.
        return None


# The common case, a plain ASCII href, needs no percent-encoding, no dot-segment removal
# and no case folding, so it is resolved by string concatenation: about ten times faster
# than a round trip through yarl, and the tests check that both paths agree.
_SAFE = r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]"  # what yarl leaves as is in a path or query
_FAST_ABSOLUTE_RE: Final = re.compile(
    rf"http(s?)://[a-z0-9\-.]+(?::([1-9][0-9]{{1,3}}|[1-5][0-9]{{4}}))?(/{_SAFE}*)?"
)
_FAST_RELATIVE_RE: Final = re.compile(rf"(?!//){_SAFE}+")


def _normalize_fast(text: str, base: str | URL | None) -> str | None:
    """``text`` normalized by string operations, or None to take the yarl path."""
    if text.startswith("http"):
        match = _FAST_ABSOLUTE_RE.fullmatch(text)
        if match is None:
            return None
        secure, port, path = match.groups()
        if port is not None and port == ("443" if secure else "80"):
            return None  # a default port to drop: the yarl path does it
        if path is None:
            return text + "/"
        if "/." in path.partition("?")[0]:
            return text[: match.start(3)] + _without_dot_segments(path)
        return text
    if base is None or _FAST_RELATIVE_RE.fullmatch(text) is None:
        return None
    first = text[0]
    if first != "/" and first != "?" and ":" in text:
        return None  # maybe a scheme
    parts = _base_parts(base)
    if parts is None:
        return None  # an unusable base: the yarl path says why
    authority, directory, document = parts
    if first == "?":
        return document + text
    path = text if first == "/" else directory[len(authority) :] + text
    if "/." in path.partition("?")[0]:
        path = _without_dot_segments(path)
    return authority + path


def _without_dot_segments(path_and_query: str) -> str:
    """RFC 3986 remove_dot_segments on the path of an absolute ``/path?query``."""
    path, question, query = path_and_query.partition("?")
    out: list[str] = []
    segments = path.split("/")
    for segment in segments[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")  # "/a/b/.." is the directory "/a/"
    return "/" + "/".join(out) + question + query


@functools.lru_cache(maxsize=64)
def _base_parts(base: str | URL) -> tuple[str, str, str] | None:
    """(``scheme://authority``, directory, document without query) of a base URL."""
    normalized = _normalize_slow(str(base).partition("#")[0], None)
    if normalized is None:
        return None
    path_start = normalized.index("/", normalized.index("://") + 3)
    document = normalized.partition("?")[0]
    return normalized[:path_start], document[: document.rindex("/") + 1], document


def _normalize_slow(text: str, base: str | URL | None) -> str | None:
    """Normalize a cleaned, fragment-less reference with yarl."""
    match = _SCHEME_RE.match(text)
    if match is not None and text[match.end() : match.end() + 1] == ":":
        if match.group().lower() not in _HTTP_SCHEMES:
            return None  # mailto:, javascript:, data:, tel:, ftp:, ...
        relative = False
    else:
        relative = True

    keep_empty_query = text.endswith("?")
    head, question, query = text.partition("?")
    if "\\" in head:
        head = head.replace("\\", "/")
    if " " in text:
        head = head.replace(" ", "%20")
        query = query.replace(" ", "%20")
    text = head + question + query

    if relative:
        if base is None:
            return None
        if isinstance(base, str):
            if text == "":
                # A same-document reference ("", "#frag") is the base page itself.
                return _normalize_slow(base.partition("#")[0], None)
            base = URL(base)
        if base.scheme not in _HTTP_SCHEMES:
            return None
        # For "?" alone yarl would keep the base's query; the reference asks for an empty one.
        url = base.with_query(None) if text == "?" else base.join(URL(text))
        if url.raw_fragment:
            url = url.with_fragment(None)
    else:
        url = URL(text)

    if url.scheme not in _HTTP_SCHEMES:
        return None
    host = url.raw_host
    if not host:
        return None
    if ":" not in host and (
        _FORBIDDEN_HOST_RE.search(host) or _BRACKETED_HOST_RE.match(text) is not None
    ):
        return None  # yarl unwraps "[v1.x]" to "v1.x": only IPv6 belongs in brackets
    if url.explicit_port == 0:
        return None

    result = str(url)
    if not url.raw_query_string:
        if not result.endswith("/") and url.raw_path == "/":
            result += "/"  # yarl renders an empty path as nothing
        if keep_empty_query:
            result += "?"
    return result


def host_key(url: str) -> str:
    """The origin ``scheme://host[:port]`` of a normalized URL: the politeness/robots key.

    The port appears only when it is not the scheme's default (normalization dropped it).
    """
    match = _ORIGIN_RE.match(url)
    if match is None:
        raise ValueError(f"not a normalized absolute URL: {url!r}")
    return match.group(1) + match.group(2)


def robots_url(url: str) -> str:
    """The robots.txt URL of the origin of a normalized URL."""
    return host_key(url) + "/robots.txt"


def _netloc(url: str) -> str | None:
    """``host[:port]`` of a normalized URL (no userinfo), or None if it is not http(s)."""
    match = _ORIGIN_RE.match(url)
    if match is None or match.group(1) not in ("http://", "https://"):
        return None
    return match.group(2)


def _host_of_netloc(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")]
    return netloc.rpartition(":")[0] if ":" in netloc else netloc


@functools.cache
def _domain_extractor() -> TLDExtract:
    import tldextract  # imported on first use: it takes about 0.1 s

    # suffix_list_urls=(): never fetch the Public Suffix List, use the bundled snapshot.
    # Private suffixes count (github.io, blogspot.com): user.github.io is its own site.
    return tldextract.TLDExtract(
        suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
    )


@functools.lru_cache(maxsize=16384)
def registrable_domain(host: str) -> str:
    """The registrable domain ("eTLD+1") of a host: ``a.example.co.uk`` -> ``example.co.uk``.

    Uses tldextract's bundled Public Suffix List snapshot, private suffixes included, offline.
    IP addresses, ``localhost`` and hosts without a known public suffix return themselves
    (lowercased, without a trailing dot).
    """
    host = host.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host
    if host == "localhost":
        return host
    parts = _domain_extractor()(host)
    if parts.domain and parts.suffix:
        return f"{parts.domain}.{parts.suffix}"
    return host


@dataclass(frozen=True, slots=True)
class Scope:
    """Which URLs the crawl may follow, built from the seeds.

    - ``host``: the same ``host[:port]`` as a seed (http and https of it alike);
    - ``domain``: the same registrable domain as a seed (:func:`registrable_domain`);
    - ``any``: every http(s) URL.
    """

    mode: ScopeMode
    hosts: frozenset[str]
    domains: frozenset[str]
    # URL beginnings in scope for sure: the seed origins, http and https (a fast path).
    _prefixes: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefixes = tuple(
            f"{scheme}://{host}/" for host in self.hosts for scheme in ("http", "https")
        )
        object.__setattr__(self, "_prefixes", prefixes)

    @classmethod
    def from_seeds(cls, seeds: Iterable[str], mode: str) -> Scope:
        """Build a scope from seed URLs (normalized here; unusable ones are skipped).

        Raises ValueError for a mode other than ``host``, ``domain`` or ``any``.
        """
        if mode not in SCOPE_MODES:
            raise ValueError(f"unknown scope {mode!r}: expected one of {', '.join(SCOPE_MODES)}")
        hosts: set[str] = set()
        for seed in seeds:
            normalized = normalize_url(seed)
            netloc = None if normalized is None else _netloc(normalized)
            if netloc is not None:
                hosts.add(netloc)
        domains = frozenset(registrable_domain(_host_of_netloc(h)) for h in hosts)
        return cls(cast(ScopeMode, mode), frozenset(hosts), domains)

    def allows(self, url: str) -> bool:
        """True if the normalized URL ``url`` is in scope."""
        if url.startswith(self._prefixes):  # most links stay on their site: no parsing
            return True
        netloc = _netloc(url)
        if netloc is None:
            return False
        if self.mode == "any":
            return True
        if netloc in self.hosts:
            return True
        if self.mode == "domain":
            return registrable_domain(_host_of_netloc(netloc)) in self.domains
        return False

    def __repr__(self) -> str:
        if self.mode == "any":
            return "<Scope any>"
        shown = self.hosts if self.mode == "host" else self.domains
        return f"<Scope {self.mode}: {', '.join(sorted(shown)) or 'no seeds'}>"


@functools.lru_cache(maxsize=16384)
def fingerprint(url: str) -> int:
    """A 64-bit signed fingerprint of a normalized URL: the seen set's key, on disk and in RAM.

    Cached for the most recent URLs: a site's navigation links come back on every page, and a
    cache hit costs a tenth of the hash (about 3 MB at most).
    """
    return int.from_bytes(blake2b(url.encode(), digest_size=8).digest(), "big", signed=True)
