"""crawler.urls: every normalization rule of the contract, origins, domains and scope."""

from __future__ import annotations

import pickle
import random

import pytest
from yarl import URL

from crawler import urls
from crawler.urls import Scope, host_key, normalize_url, registrable_domain, robots_url

BASE = "http://example.com/dir/page.html?x=1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://example.com/a#frag", "http://example.com/a"),
        ("http://example.com/a?q=1#frag", "http://example.com/a?q=1"),
        ("http://example.com/a#", "http://example.com/a"),
        ("http://example.com/a#b#c", "http://example.com/a"),
        ("http://example.com/a?#frag", "http://example.com/a?"),
    ],
)
def test_fragment_is_dropped(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://EXAMPLE.COM/", "http://example.com/"),
        ("Https://Example.Com/Path/File.HTML", "https://example.com/Path/File.HTML"),
        ("http://example.com/A?Q=B", "http://example.com/A?Q=B"),
        ("http://ExAmPlE.cOm:8080/MiXeD", "http://example.com:8080/MiXeD"),
    ],
)
def test_scheme_and_host_lowercased_path_and_query_case_kept(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("http://example.com:/a", "http://example.com/a"),
    ],
)
def test_default_port_dropped_other_ports_kept(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/../../x", "http://example.com/x"),
        ("http://example.com/a/b/..", "http://example.com/a/"),
        ("http://example.com/a/.", "http://example.com/a/"),
        ("http://example.com/a/b/../../../c?x=../y", "http://example.com/c?x=../y"),
    ],
)
def test_dot_segments_resolved(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("../x", BASE, "http://example.com/x"),
        ("./x", BASE, "http://example.com/dir/x"),
        ("../../../../x", BASE, "http://example.com/x"),
        ("sub/../y", BASE, "http://example.com/dir/y"),
    ],
)
def test_relative_dot_segments_resolved(raw: str, base: str, expected: str) -> None:
    assert normalize_url(raw, base) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://example.com", "http://example.com/"),
        ("https://example.com", "https://example.com/"),
        ("http://example.com?a=1", "http://example.com/?a=1"),
        ("http://example.com#top", "http://example.com/"),
        ("http://example.com:8080", "http://example.com:8080/"),
    ],
)
def test_empty_path_becomes_slash(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://example.com//a//b/", "http://example.com//a//b/"),
        ("http://example.com/a//b", "http://example.com/a//b"),
        ("http://example.com/a//../b", "http://example.com/a/b"),
    ],
)
def test_double_slash_inside_path_kept(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://example.com/?b=2&a=1", "http://example.com/?b=2&a=1"),
        ("http://example.com/?a=1&a=0&&b=", "http://example.com/?a=1&a=0&&b="),
        ("http://example.com/?z", "http://example.com/?z"),
        ("http://example.com/a?b=c?d", "http://example.com/a?b=c?d"),
        ("http://example.com/a?x=%2B+&y=%26", "http://example.com/a?x=%2B+&y=%26"),
        # decision: an empty query keeps its "?" (it can be a different resource)
        ("http://example.com/a?", "http://example.com/a?"),
        ("http://example.com?", "http://example.com/?"),
    ],
)
def test_query_kept_as_is_in_order(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  http://example.com/a  ", "http://example.com/a"),
        ("\n\thttp://example.com/a\r\n", "http://example.com/a"),
        ("http://exam\nple.com/a\tb", "http://example.com/ab"),
        ("/a\n/b", "http://example.com/a/b"),
        ("\x00\x01 /a \x1f", "http://example.com/a"),
        ("/a b?c d", "http://example.com/a%20b?c%20d"),
    ],
)
def test_whitespace_stripped_like_a_browser(raw: str, expected: str) -> None:
    assert normalize_url(raw, BASE) == expected


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("//other.com/x", "http://example.com/", "http://other.com/x"),
        ("//other.com/x", "https://example.com/", "https://other.com/x"),
        ("//Other.COM:80/x", "http://example.com/", "http://other.com/x"),
        ("//other.com:80/x", "https://example.com/", "https://other.com:80/x"),
        ("//other.com", "https://example.com/a", "https://other.com/"),
        ("\\\\other.com\\x", "http://example.com/", "http://other.com/x"),
    ],
)
def test_protocol_relative_takes_base_scheme(raw: str, base: str, expected: str) -> None:
    assert normalize_url(raw, base) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/abs", "http://example.com/abs"),
        ("rel", "http://example.com/dir/rel"),
        ("rel/", "http://example.com/dir/rel/"),
        ("?q=2", "http://example.com/dir/page.html?q=2"),
        ("?", "http://example.com/dir/page.html?"),
        ("", "http://example.com/dir/page.html?x=1"),
        ("#section", "http://example.com/dir/page.html?x=1"),
        ("http://other.org/p", "http://other.org/p"),
        ("https://example.com/dir/", "https://example.com/dir/"),
        ("HTTP://example.com/Z", "http://example.com/Z"),
        ("/a:b", "http://example.com/a:b"),
        ("https.html", "http://example.com/dir/https.html"),
    ],
)
def test_relative_references_resolve_against_base(raw: str, expected: str) -> None:
    assert normalize_url(raw, BASE) == expected
    assert normalize_url(raw, URL(BASE)) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://example.com/ä ö", "http://example.com/%C3%A4%20%C3%B6"),
        ("http://example.com/?q=ä", "http://example.com/?q=%C3%A4"),
        ('http://example.com/?q="<>', "http://example.com/?q=%22%3C%3E"),
        ("http://example.com/a%", "http://example.com/a%25"),
        ("http://example.com/%7Euser", "http://example.com/~user"),
        ("http://example.com/a%2Fb", "http://example.com/a%2Fb"),
        ("http://example.com/\\a\\b?c=\\", "http://example.com//a/b?c=%5C"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("http://xn--bcher-kva.example/", "http://xn--bcher-kva.example/"),
        ("http://☃.com/", "http://xn--n3h.com/"),
    ],
)
def test_percent_encoding_and_idn(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "mailto:someone@example.com",
        "javascript:void(0)",
        "JavaScript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "tel:+123456",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "about:blank",
        "ws://example.com/",
        "a:b",
    ],
)
def test_non_http_schemes_are_none(raw: str) -> None:
    assert normalize_url(raw, BASE) is None


@pytest.mark.parametrize(
    ("raw", "base"),
    [
        ("", None),
        ("   ", None),
        ("/relative/without/base", None),
        ("#frag", None),
        ("http://", None),
        ("http:///path", None),
        ("http:example.com", None),
        ("http://example.com:99999/", None),
        ("http://example.com:0/", None),
        ("http://example.com:-1/", None),
        ("http://example.com:abc/", None),
        ("http://example.com:80:90/", None),
        ("http://[::1/", None),
        ("http://[v1.x]/", None),
        ("http://exa mple.com/", None),
        ("http://exa<mple.com/", None),
        ("http://%zz/", None),
        ("http://@/", None),
        ("x", "mailto:a@b.c"),
        ("x", "not a url"),
    ],
)
def test_malformed_input_is_none(raw: str, base: str | None) -> None:
    assert normalize_url(raw, base) is None


def test_never_raises_on_garbage() -> None:
    rng = random.Random(1234)
    alphabet = "abz09:/?#[]@!$&'()*+,;=%-._~ \t\n\\\"<>^`{|}\x00\x7fé☃\ud800"
    for _ in range(5000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        for prefix in ("", "http://", "https://h", "//"):
            result = normalize_url(prefix + raw, rng.choice([None, BASE]))
            assert result is None or result.startswith(("http://", "https://"))


@pytest.mark.parametrize(
    "raw",
    [
        "HTTP://Example.COM:80/a/../b/./c?z=1&a=2#frag",
        "http://example.com",
        "http://example.com/a?",
        "https://ex.com:8443//x//y?q=a%20b",
        "http://xn--bcher-kva.example/%C3%A4",
    ],
)
def test_normalization_is_idempotent(raw: str) -> None:
    once = normalize_url(raw)
    assert once is not None
    assert normalize_url(once) == once


def test_fast_path_agrees_with_yarl_path() -> None:
    """The string-only fast path must give exactly what the yarl path gives."""
    rng = random.Random(99)
    pieces = [
        *"aZ09-._~!$&'()*+,;=:@/?%# \\\"<>[]^`{|}é",
        "/./",
        "/../",
        "..",
        "../",
        "./",
        ".",
        "/.",
        "/..",
        "a/",
        "//",
        "http://",
        "https://",
        "HTTP://",
        "h.com",
        ":80",
        ":443",
        ":8080",
        ":65535",
        ":99999",
        ":0",
        "127.0.0.1",
        "?",
        "%2e",
        "%41",
    ]
    bases: list[str | URL | None] = [
        None,
        BASE,
        "https://example.com:8443/",
        "http://example.com",
        URL("http://example.com/a/b/"),
        "http://u:p@example.com/d/p?q",
        "ftp://example.com/",
    ]
    checked = 0
    for _ in range(60000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 10)))
        text = text.partition("#")[0].strip()
        base = rng.choice(bases)
        fast = urls._normalize_fast(text, base)
        if fast is None:
            continue
        checked += 1
        assert fast == urls._normalize_slow(text, base), (text, base)
    assert checked > 1000


# ---------------------------------------------------------------- origins and robots.txt


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080"),
        ("http://example.com/a/b?c", "http://example.com"),
        ("https://example.com/", "https://example.com"),
        ("https://example.com:8443/?q", "https://example.com:8443"),
        ("http://user:pw@example.com:81/", "http://example.com:81"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("http://example.com?q", "http://example.com"),
    ],
)
def test_host_key_is_the_origin(url: str, expected: str) -> None:
    assert host_key(url) == expected


def test_host_key_of_normalized_urls_drops_default_port() -> None:
    url = normalize_url("HTTPS://Example.com:443/x")
    assert url is not None
    assert host_key(url) == "https://example.com"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/a/b?c=d", "http://127.0.0.1:8080/robots.txt"),
        ("https://example.com/", "https://example.com/robots.txt"),
        ("http://example.com/robots.txt", "http://example.com/robots.txt"),
    ],
)
def test_robots_url(url: str, expected: str) -> None:
    assert robots_url(url) == expected


# ---------------------------------------------------------------- registrable domains


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("a.example.co.uk", "example.co.uk"),
        ("b.example.co.uk", "example.co.uk"),
        ("example.co.uk", "example.co.uk"),
        ("www.example.com", "example.com"),
        ("deep.sub.example.com", "example.com"),
        ("WWW.Example.COM.", "example.com"),
        ("xn--bcher-kva.example.de", "example.de"),
        ("user.github.io", "user.github.io"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("localhost", "localhost"),
        ("intranet", "intranet"),
        ("co.uk", "co.uk"),
    ],
)
def test_registrable_domain(host: str, expected: str) -> None:
    assert registrable_domain(host) == expected


# ---------------------------------------------------------------- scope


def test_scope_host_same_host_and_port_only() -> None:
    scope = Scope.from_seeds(["http://127.0.0.1:8001/start"], "host")
    assert scope.allows("http://127.0.0.1:8001/other")
    assert scope.allows("https://127.0.0.1:8001/secure")  # http/https: the same host
    assert not scope.allows("http://127.0.0.1:8002/")
    assert not scope.allows("http://127.0.0.2:8001/")
    assert not scope.allows("http://localhost:8001/")


def test_scope_host_with_several_seeds() -> None:
    scope = Scope.from_seeds(["http://a.example.com/", "https://b.example.org/x"], "host")
    assert scope.allows("https://a.example.com/p")
    assert scope.allows("http://b.example.org/q")
    assert not scope.allows("http://c.example.com/")
    assert not scope.allows("http://example.com/")
    assert not scope.allows("http://a.example.com:8080/")


def test_scope_host_normalizes_seeds() -> None:
    scope = Scope.from_seeds(["  HTTP://Example.COM:80/a#x ", "not a url", "mailto:a@b"], "host")
    assert scope.hosts == frozenset({"example.com"})
    assert scope.allows("http://example.com/b")
    assert scope.allows("https://example.com/b")


def test_scope_domain_same_registrable_domain() -> None:
    scope = Scope.from_seeds(["http://a.example.co.uk/"], "domain")
    assert scope.allows("http://b.example.co.uk/")
    assert scope.allows("https://example.co.uk/x")
    assert scope.allows("http://a.example.co.uk:8080/")
    assert not scope.allows("http://other.co.uk/")
    assert not scope.allows("http://example.com/")


def test_scope_domain_with_ips_is_exact() -> None:
    scope = Scope.from_seeds(["http://127.0.0.1:8001/"], "domain")
    assert scope.allows("http://127.0.0.1:8002/")  # same "domain": the IP itself
    assert not scope.allows("http://127.0.0.2:8001/")
    assert not scope.allows("http://localhost:8001/")


def test_scope_any_allows_every_http_url() -> None:
    scope = Scope.from_seeds(["http://example.com/"], "any")
    assert scope.allows("http://elsewhere.org/")
    assert scope.allows("https://127.0.0.1:9/")
    assert not scope.allows("ftp://example.com/")
    assert not scope.allows("mailto:x@example.com")


def test_scope_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown scope 'site'"):
        Scope.from_seeds(["http://example.com/"], "site")


def test_scope_repr_and_pickle() -> None:
    scope = Scope.from_seeds(["http://b.example.com/", "http://127.0.0.1:8001/"], "host")
    assert repr(scope) == "<Scope host: 127.0.0.1:8001, b.example.com>"
    domain = Scope.from_seeds(["http://b.example.com/"], "domain")
    assert repr(domain) == "<Scope domain: example.com>"
    assert repr(Scope.from_seeds([], "any")) == "<Scope any>"
    assert repr(Scope.from_seeds([], "host")) == "<Scope host: no seeds>"
    assert pickle.loads(pickle.dumps(scope)) == scope
