"""crawler.parse: links, images, meta robots, page facts, text decoding and robustness."""

from __future__ import annotations

import codecs
import pickle
import random

import pytest

from crawler.parse import (
    _UNICODE_SPACES,
    MAX_IDS,
    Link,
    ParsedPage,
    _count_words,
    decode_html,
    is_html,
    parse_html,
    parse_page,
    parse_srcset,
)

PAGE = "http://example.com/dir/page.html"
HTML = {"content-type": "text/html; charset=utf-8"}


def parse(html: str, url: str = PAGE, **headers: str) -> ParsedPage:
    return parse_html(html.encode("utf-8"), url, {"content-type": "text/html", **headers})


def urls_of(page: ParsedPage, tag: str | None = None) -> list[str]:
    return [link.url for link in page.links if tag is None or link.tag == tag]


# ---------------------------------------------------------------- links and normalization


def test_anchor_links_in_order_with_text_and_follow() -> None:
    page = parse(
        '<a href="/one">One</a> <a href="two">  Two\n\n  <b>words</b> </a>'
        '<a href="https://Other.ORG:443/x#frag">Other</a>'
    )
    assert page.links == (
        Link("http://example.com/one", "a", nofollow=False, follow=True, text="One"),
        Link("http://example.com/dir/two", "a", nofollow=False, follow=True, text="Two words"),
        Link("https://other.org/x", "a", nofollow=False, follow=True, text="Other"),
    )


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/a?x=1&amp;y=2", "http://example.com/a?x=1&y=2"),
        ("/a?x=1&y=2", "http://example.com/a?x=1&y=2"),
        ("/caf&eacute;", "http://example.com/caf%C3%A9"),
        ("/&#x41;&#66;", "http://example.com/AB"),
        ("  /spaced  ", "http://example.com/spaced"),
        ("\n/multi\nline\t", "http://example.com/multiline"),
        ("//cdn.example.net/x", "http://cdn.example.net/x"),
        ("/a//b/../c", "http://example.com/a//c"),
        ("../up", "http://example.com/up"),
        ("?q=b&p=a", "http://example.com/dir/page.html?q=b&p=a"),
        ("#frag", "http://example.com/dir/page.html"),
        ("HTTP://EXAMPLE.COM:80/Case", "http://example.com/Case"),
    ],
)
def test_href_normalization_in_pages(href: str, expected: str) -> None:
    page = parse(f'<a href="{href}">x</a>')
    assert urls_of(page) == [expected]


def test_named_entity_without_semicolon_in_attribute_is_kept_literally() -> None:
    # HTML: "&copy=" inside an attribute is not decoded (it is followed by "=").
    page = parse('<a href="/p?a=1&copy=2">x</a>')
    assert urls_of(page) == ["http://example.com/p?a=1&copy=2"]


@pytest.mark.parametrize(
    "href",
    [
        "mailto:x@example.com",
        "javascript:void(0)",
        "tel:+1234",
        "data:text/html,hi",
        "ftp://example.com/f",
        "http://[::1",
        "http://example.com:99999/",
        "",
    ],
)
def test_unusable_hrefs_are_skipped(href: str) -> None:
    page = parse(f'<a href="{href}">x</a><a href="/ok">ok</a>')
    assert urls_of(page) == ["http://example.com/ok"]


def test_anchor_without_href_is_no_link() -> None:
    assert parse("<a>no href</a><a name=top></a>").links == ()


def test_links_deduplicated_by_url_and_tag_keeping_first() -> None:
    page = parse(
        '<a href="/x">first</a><a href="/x#y" rel=nofollow>second</a>'
        '<link rel=prefetch href="/x"><a href="/z">z</a><a href="/x">third</a>'
    )
    assert [(link.url, link.tag, link.text) for link in page.links] == [
        ("http://example.com/x", "a", "first"),
        ("http://example.com/x", "link", ""),
        ("http://example.com/z", "a", "z"),
    ]
    assert page.links[0].nofollow is False


def test_follow_only_for_page_elements() -> None:
    page = parse(
        '<a href="/a">a</a><map><area href="/area" alt="Area"></map>'
        '<iframe src="/iframe"></iframe><frameset><frame src="/frame"></frameset>'
        '<img src="/img.png"><link rel=stylesheet href="/s.css"><script src="/s.js"></script>'
        '<video src="/v.mp4"></video><audio src="/a.mp3"></audio><embed src="/e.swf">'
        '<object data="/o.pdf"></object>'
    )
    follows = {link.tag: link.follow for link in page.links}
    assert follows == {
        "a": True,
        "area": True,
        "iframe": True,
        "img": False,
        "link": False,
        "script": False,
        "video": False,
        "audio": False,
        "embed": False,
        "object": False,
    }
    area = next(link for link in page.links if link.tag == "area")
    assert area.text == "Area"


def test_frames_are_followed() -> None:
    page = parse('<frameset><frame src="/left"><frame src="right"></frameset>')
    assert [(link.url, link.tag, link.follow) for link in page.links] == [
        ("http://example.com/left", "frame", True),
        ("http://example.com/dir/right", "frame", True),
    ]


def test_meta_refresh_is_a_followed_link() -> None:
    page = parse("<meta http-equiv=Refresh content=\"5; URL='/next?a=1'\">")
    assert page.links == (Link("http://example.com/next?a=1", "meta", False, True),)
    page = parse('<meta http-equiv="refresh" content="0;url=http://other.org/">')
    assert urls_of(page) == ["http://other.org/"]
    assert parse('<meta http-equiv="refresh" content="30">').links == ()


def test_anchor_text_collapsed_truncated_and_from_image_alt() -> None:
    long_text = "word " * 100
    page = parse(
        f'<a href="/long">{long_text}</a>'
        '<a href="/img"><img src="/logo.png" alt=" Home  page "></a>'
    )
    assert page.links[0].text == ("word " * 40)[:200]
    assert len(page.links[0].text) == 200
    assert page.links[1] == Link("http://example.com/img", "a", False, True, "Home page")
    assert page.links[2] == Link("http://example.com/logo.png", "img", False, False, "Home page")


# ---------------------------------------------------------------- base href


def test_base_href_resolves_links() -> None:
    page = parse(
        '<head><base href="/other/"><base href="http://ignored.example/"></head>'
        '<a href="rel">r</a><a href="/abs">a</a><img src="i.png">'
    )
    assert page.base_href == "http://example.com/other/"
    assert urls_of(page) == [
        "http://example.com/other/rel",
        "http://example.com/abs",
        "http://example.com/other/i.png",
    ]


def test_base_href_absolute_and_after_links() -> None:
    page = parse('<a href="x">x</a><base href="https://cdn.example.net/root/">')
    assert page.base_href == "https://cdn.example.net/root/"
    assert urls_of(page) == ["https://cdn.example.net/root/x"]


@pytest.mark.parametrize("base", ["javascript:alert(1)", "http://[::1", "mailto:x@y"])
def test_unusable_base_href_is_ignored(base: str) -> None:
    page = parse(f'<base href="{base}"><a href="x">x</a>')
    assert page.base_href is None
    assert urls_of(page) == ["http://example.com/dir/x"]


def test_empty_base_href_is_the_page_itself() -> None:
    page = parse('<base href=""><a href="x">x</a>')
    assert page.base_href == PAGE
    assert urls_of(page) == ["http://example.com/dir/x"]


def test_base_without_href_is_ignored() -> None:
    page = parse('<base target="_blank"><base href="/b/"><a href="x">x</a>')
    assert page.base_href == "http://example.com/b/"
    assert urls_of(page) == ["http://example.com/b/x"]


# ---------------------------------------------------------------- not links


def test_links_in_comments_scripts_styles_and_templates_are_ignored() -> None:
    page = parse(
        """<html><head>
        <style>a { background: url(/style-bg.png) } /* <a href="/in-style">x</a> */</style>
        <script>document.write('<a href="/in-script">x</a><img src="/script.png">');</script>
        </head><body>
        <!-- <a href="/in-comment">x</a> <img src="/comment.png"> -->
        <template><a href="/in-template">x</a></template>
        <script type="text/template"><a href="/in-js-template">x</a></script>
        <textarea><a href="/in-textarea">x</a></textarea>
        <a href="/real">real</a>
        </body></html>"""
    )
    assert urls_of(page) == ["http://example.com/real"]
    assert page.images == ()


def test_noscript_content_is_parsed_like_a_browser_without_javascript() -> None:
    page = parse('<noscript><img src="/pixel.gif"><a href="/nojs">x</a></noscript>')
    assert urls_of(page) == ["http://example.com/pixel.gif", "http://example.com/nojs"]


# ---------------------------------------------------------------- nofollow / noindex


@pytest.mark.parametrize(
    ("rel", "nofollow"),
    [
        ("nofollow", True),
        ("NoFollow", True),
        ("noopener nofollow noreferrer", True),
        ("  external\tnofollow ", True),
        ("ugc sponsored", False),
        ("nofollowing", False),
        ("", False),
    ],
)
def test_rel_nofollow_per_link(rel: str, nofollow: bool) -> None:
    page = parse(f'<a href="/x" rel="{rel}">x</a><a href="/y">y</a>')
    assert page.links[0].nofollow is nofollow
    assert page.links[0].follow is not nofollow
    assert page.links[1].nofollow is False
    assert page.links[1].follow is True
    assert page.meta_nofollow is False


@pytest.mark.parametrize(
    ("content", "noindex", "nofollow"),
    [
        ("noindex", True, False),
        ("nofollow", False, True),
        ("noindex, nofollow", True, True),
        ("NOINDEX,NOFOLLOW", True, True),
        ("none", True, True),
        ("index, follow", False, False),
        ("all", False, False),
        ("noarchive", False, False),
    ],
)
def test_meta_robots(content: str, noindex: bool, nofollow: bool) -> None:
    page = parse(f'<meta name="Robots" content="{content}"><a href="/x">x</a><img src="/i.png">')
    assert (page.meta_noindex, page.meta_nofollow) == (noindex, nofollow)
    assert [(link.nofollow, link.follow) for link in page.links] == [
        (nofollow, not nofollow),
        (nofollow, False),
    ]


def test_meta_robots_for_other_crawlers_is_ignored() -> None:
    page = parse('<meta name="googlebot" content="noindex, nofollow"><a href="/x">x</a>')
    assert (page.meta_noindex, page.meta_nofollow) == (False, False)
    assert page.links[0].follow is True


def test_several_meta_robots_tags_combine() -> None:
    page = parse('<meta name=robots content=noindex><meta name=robots content="nofollow">')
    assert (page.meta_noindex, page.meta_nofollow) == (True, True)


@pytest.mark.parametrize(
    ("header", "noindex", "nofollow"),
    [
        ("noindex", True, False),
        ("nofollow", False, True),
        ("noindex, nofollow", True, True),
        ("None", True, True),
        ("googlebot: noindex, nofollow", False, False),
        ("unavailable_after: 25 Jun 2030 15:00:00 PST, nofollow", False, True),
        ("noarchive", False, False),
    ],
)
def test_x_robots_tag_header(header: str, noindex: bool, nofollow: bool) -> None:
    page = parse('<a href="/x">x</a>', **{"x-robots-tag": header})
    assert (page.meta_noindex, page.meta_nofollow) == (noindex, nofollow)
    assert page.links[0].follow is not nofollow


# ---------------------------------------------------------------- images


def test_every_image_source_kind() -> None:
    page = parse(
        """<html><head>
        <link rel="icon" href="/favicon.ico">
        <link rel="shortcut icon" href="/shortcut.ico">
        <link rel="apple-touch-icon" href="/touch.png">
        <link rel="apple-touch-icon-precomposed" href="/touch-pre.png">
        <link rel="preload" as="image" href="/preload.png">
        <link rel="stylesheet" href="/style.css">
        <meta property="og:image" content="/og.png">
        <meta name="twitter:image" content="https://img.example.net/tw.png">
        </head><body background="/body-bg.png">
        <img src="/src.png" srcset="/x1.png 1x, /x2.png 2x">
        <img srcset="/w300.png 300w, /w600.png 600w" sizes="50vw">
        <picture><source srcset="/pic.webp" type="image/webp"><img src="/pic.jpg"></picture>
        <img data-src="/lazy.png" data-srcset="/lazy-1.png 1x, /lazy-2.png 2x">
        <img data-original="/original.png">
        <div style="background-image: url('/bg1.png'), url(&quot;/bg2.png&quot;), url(/bg3.png)">
        </div>
        <video poster="/poster.jpg" src="/movie.mp4"></video>
        <input type="image" src="/submit.png">
        <svg><image href="/svg.png"></image></svg>
        </body></html>"""
    )
    paths = [
        "/favicon.ico",
        "/shortcut.ico",
        "/touch.png",
        "/touch-pre.png",
        "/preload.png",
        "/og.png",
        "https://img.example.net/tw.png",
        "/body-bg.png",
        "/src.png",
        "/x1.png",
        "/x2.png",
        "/w300.png",
        "/w600.png",
        "/pic.webp",
        "/pic.jpg",
        "/lazy.png",
        "/lazy-1.png",
        "/lazy-2.png",
        "/original.png",
        "/bg1.png",
        "/bg2.png",
        "/bg3.png",
        "/poster.jpg",
        "/submit.png",
        "/svg.png",
    ]
    assert page.images == tuple(p if "://" in p else "http://example.com" + p for p in paths)
    assert "http://example.com/style.css" not in page.images
    assert "http://example.com/movie.mp4" not in page.images
    tags = {link.url.rsplit("/", 1)[1]: link.tag for link in page.links}
    assert tags["favicon.ico"] == "link"
    assert tags["og.png"] == "meta"
    assert tags["src.png"] == "img"
    assert tags["pic.webp"] == "source"
    assert tags["bg1.png"] == "style"
    assert tags["body-bg.png"] == "body"
    assert tags["poster.jpg"] == "video"
    assert tags["movie.mp4"] == "video"
    assert tags["submit.png"] == "input"
    assert tags["svg.png"] == "image"


def test_images_are_normalized_deduplicated_and_never_data_urls() -> None:
    page = parse(
        '<img src="data:image/png;base64,iVBORw0KGgo=">'
        '<img src="/a.png#x"><img src="/a.png"><img src="A.PNG">'
        '<img srcset="data:image/gif;base64,R0lGOD 1x, /b.png 2x">'
        "<div style=\"background:url('data:image/svg+xml;utf8,<svg/>')\"></div>"
        '<img src="javascript:alert(1)"><img src=""><img>'
    )
    assert page.images == (
        "http://example.com/a.png",
        "http://example.com/dir/A.PNG",
        "http://example.com/b.png",
    )
    assert page.srcsets == ((("http://example.com/b.png", 2.0),),)
    assert not any(url.startswith("data:") for url in urls_of(page))


def test_image_alt_is_link_text() -> None:
    page = parse('<img src="/cat.jpg" alt="  A\n cat ">')
    assert page.links == (Link("http://example.com/cat.jpg", "img", False, False, "A cat"),)


def test_input_other_than_image_is_no_image() -> None:
    assert parse('<input type="text" src="/nope.png">').images == ()


# ---------------------------------------------------------------- srcset


@pytest.mark.parametrize(
    ("srcset", "expected"),
    [
        ("a.png", [("a.png", 1.0)]),
        ("a.png 1x, b.png 2x", [("a.png", 1.0), ("b.png", 2.0)]),
        ("a.png 1.5x,b.png 3X", [("a.png", 1.5), ("b.png", 3.0)]),
        ("small.jpg 480w, large.jpg 1080w", [("small.jpg", 480.0), ("large.jpg", 1080.0)]),
        ("a.png 100w 50h", [("a.png", 100.0)]),
        ("  a.png  ,  b.png 2x  ", [("a.png", 1.0), ("b.png", 2.0)]),
        ("a.png, b.png 2x", [("a.png", 1.0), ("b.png", 2.0)]),
        ("a.png,b.png 2x", [("a.png,b.png", 2.0)]),  # a comma inside a URL is part of it
        ("img.php?w=1,2 2x, c.png", [("img.php?w=1,2", 2.0), ("c.png", 1.0)]),
        (
            "data:image/png;base64,AAAA 1x, d.png 2x",
            [("data:image/png;base64,AAAA", 1.0), ("d.png", 2.0)],
        ),
        ("bad.png 0x, neg.png -1w, nan.png nanx, inf.png infx, ok.png 2x", [("ok.png", 2.0)]),
        ("zz.png fooX, yy.png 2q", [("yy.png", 1.0)]),
        ("", []),
        (" , , ", []),
    ],
)
def test_parse_srcset(srcset: str, expected: list[tuple[str, float]]) -> None:
    assert parse_srcset(srcset) == expected


def test_srcsets_in_pages_keep_descriptors() -> None:
    page = parse(
        '<img srcset="/s.jpg 480w, /l.jpg 1080w"><img srcset="/1.png, /2.png 2x">'
        '<picture><source srcset="p1.webp 1x, p2.webp 2x"></picture>'
    )
    assert page.srcsets == (
        (("http://example.com/s.jpg", 480.0), ("http://example.com/l.jpg", 1080.0)),
        (("http://example.com/1.png", 1.0), ("http://example.com/2.png", 2.0)),
        (("http://example.com/dir/p1.webp", 1.0), ("http://example.com/dir/p2.webp", 2.0)),
    )
    largest = max(page.srcsets[0], key=lambda candidate: candidate[1])
    assert largest == ("http://example.com/l.jpg", 1080.0)


# ---------------------------------------------------------------- page facts


def test_title() -> None:
    assert parse("<title>  Hello\n   world  </title>").title == "Hello world"
    assert parse("<title>A &amp; B</title>").title == "A & B"
    assert parse("<title>First</title><title>Second</title>").title == "First"
    assert parse("<title></title>").title == ""
    assert parse("<p>no title</p>").title is None


def test_canonical_description_h1_lang() -> None:
    page = parse(
        '<html lang=" en-GB "><head><link rel="Canonical" href="/canon?a=1#x">'
        '<link rel="canonical" href="/second">'
        '<meta name="Description" content="  A   page\nabout things ">'
        '<meta name="description" content="second"></head>'
        "<body><h1>One</h1><div><h1>Two</h1></div><h2>not h1</h2></body></html>"
    )
    assert page.canonical == "http://example.com/canon?a=1"
    assert page.meta_description == "A page about things"
    assert page.h1_count == 2
    assert page.lang == "en-GB"


def test_link_resources_and_form_actions() -> None:
    page = parse(
        '<link rel="stylesheet" href="/a.css"><link rel="Alternate Stylesheet" href="/b.css">'
        '<link rel="preload" as="font" href="/f.woff2"><link rel="modulepreload" href="/m.js">'
        '<link rel="canonical" href="/canon"><link rel="preconnect" href="https://cdn.test/">'
        '<link rel="icon" href="/i.ico"><link rel="stylesheet" href="/a.css#again">'
        '<form action="/search"><input name="q"></form><form action="/search">'
        '<form action="javascript:void(0)"></form><form action=""></form><form></form>'
        '<form action="http://other.test/post" method="post"></form>'
    )
    assert page.link_resources == (
        "http://example.com/a.css",
        "http://example.com/b.css",
        "http://example.com/f.woff2",
        "http://example.com/m.js",
    )
    assert page.form_actions == ("http://example.com/search", "http://other.test/post")
    assert "http://example.com/search" not in urls_of(page)  # a form is no link


def test_element_matching_several_selectors_is_seen_once() -> None:
    page = parse(
        '<h1 id="t" style="background:url(/bg.png)" background="/b.png">T</h1>'
        '<a id="a" style="x" href="/x">x</a>'
    )
    assert page.h1_count == 1
    assert page.ids == ("t", "a")
    assert urls_of(page) == [
        "http://example.com/bg.png",
        "http://example.com/b.png",
        "http://example.com/x",
    ]


def test_page_without_facts() -> None:
    page = parse("<p>hi</p>")
    assert page.canonical is None
    assert page.meta_description is None
    assert page.h1_count == 0
    assert page.lang is None
    assert page.base_href is None
    assert page.meta_noindex is False
    assert page.meta_nofollow is False
    assert page.links == ()
    assert page.images == ()
    assert page.srcsets == ()
    assert page.ids == ()
    assert page.link_resources == ()
    assert page.form_actions == ()


def test_ids_and_anchor_names() -> None:
    page = parse(
        '<div id="top"><a name="anchor"></a><p id="p1">x</p><span id="top"></span>'
        '<a id="both" name="named" href="#p1">y</a></div>'
    )
    assert page.ids == ("top", "anchor", "p1", "both", "named")


def test_ids_are_capped() -> None:
    page = parse("".join(f'<i id="i{n}"></i>' for n in range(MAX_IDS + 50)))
    assert len(page.ids) == MAX_IDS
    assert page.ids[-1] == f"i{MAX_IDS - 1}"


def test_word_count_excludes_scripts_styles_and_markup() -> None:
    page = parse(
        "<html><head><title>Not counted here</title><style>.a{color:red}</style></head>"
        "<body><h1>Three words here</h1><p>and&nbsp;four more</p><ul><li>five</li><li>six"
        "</li></ul><script>var not_counted = 1;</script><!-- not counted --></body></html>"
    )
    assert page.word_count == 8


def test_word_count_non_ascii() -> None:
    assert parse("<p>Привет мир — ça va</p>").word_count == 5


@pytest.mark.parametrize(
    "text",
    ["", " ", "a", " a ", "a b", "a\x1cb\tc\n\nd  ", "x\xa0y\u3000z", "\u2003 \x85\u202fq", "é ü"],
)
def test_count_words_is_str_split(text: str) -> None:
    assert _count_words(text) == len(text.split())


def test_count_words_knows_every_unicode_space() -> None:
    spaces = {chr(c) for c in range(0x80, 0x110000) if chr(c).isspace()}
    assert spaces == set(_UNICODE_SPACES)


def test_result_is_picklable_plain_data() -> None:
    page = parse('<title>T</title><a href="/x">x</a><img srcset="/a.png 2x">')
    clone = pickle.loads(pickle.dumps(page))
    assert clone == page
    assert isinstance(clone.links, tuple)
    assert all(type(link.url) is str for link in clone.links)


def test_parse_page_returns_none_for_non_html() -> None:
    html = b"<!doctype html><title>T</title><a href='/x'>x</a>"
    assert parse_page(b"%PDF-1.7 <a href='/x'>", PAGE, {"content-type": "application/pdf"}) is None
    assert parse_page(b"\x89PNG\r\n\x1a\n", PAGE, {"content-type": "image/png"}) is None
    assert parse_page(b'{"a": "<html>"}', PAGE, {"content-type": "application/json"}) is None
    assert parse_page(b"plain words", PAGE, {}) is None
    assert parse_page(html, PAGE, {"content-type": "text/plain"}) is None
    parsed = parse_page(html, PAGE, HTML)
    assert parsed == parse_html(html, PAGE, HTML)
    assert parsed is not None and parsed.title == "T"
    sniffed = parse_page(html, PAGE, {})
    assert sniffed is not None and urls_of(sniffed) == ["http://example.com/x"]


# ---------------------------------------------------------------- is_html


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html", b"", True),
        ("text/html; charset=utf-8", b"", True),
        ("TEXT/HTML ; charset=x", b"", True),
        ("application/xhtml+xml", b"", True),
        ("text/plain", b"<!doctype html>", False),
        ("application/pdf", b"<html>", False),
        ("image/svg+xml", b"<svg>", False),
        ("application/octet-stream", b"<html>", False),
        (None, b"<!DOCTYPE html><html>", True),
        (None, b"  \n<HTML lang=en>", True),
        (None, b"\xef\xbb\xbf<!doctype html>", True),
        (None, b"<?xml version='1.0'?>\n<html xmlns='http://www.w3.org/1999/xhtml'>", True),
        (None, b"<!-- comment --><p>x", True),
        (None, b"\n<head><title>x", True),
        ("", b"<body>hi</body>", True),
        (None, b"%PDF-1.4", False),
        (None, b"\x89PNG\r\n\x1a\n", False),
        (None, b"just text mentioning html", False),
        (None, b"", False),
        (None, b"x" * 600 + b"<html>", False),
    ],
)
def test_is_html(content_type: str | None, body: bytes, expected: bool) -> None:
    assert is_html(content_type, body) is expected


# ---------------------------------------------------------------- text decoding

RUSSIAN = (
    "Съешь же ещё этих мягких французских булок, да выпей чаю. "
    "Широкая электрификация южных губерний даст мощный толчок подъёму сельского хозяйства. "
    "Жил бы цитрус в чащах юга? Да, но фальшивый экземпляр!"
)
JAPANESE = (
    "いろはにほへと ちりぬるを わかよたれそ つねならむ。"
    "東京は日本の首都であり、政治と経済の中心地です。"
    "この文章は文字コードの自動判定を確認するためのものです。"
)


def html_doc(text: str, head: str = "") -> str:
    return f"<html><head>{head}<title>t</title></head><body><p>{text}</p></body></html>"


def test_charset_from_header() -> None:
    body = html_doc(RUSSIAN).encode("cp1251")
    text, encoding = decode_html(body, "text/html; charset=windows-1251")
    assert encoding == "cp1251"
    assert RUSSIAN in text


@pytest.mark.parametrize(
    "header",
    [
        'text/html; charset="KOI8-R"',
        "text/html;charset=koi8-r",
        "text/html; foo=bar; charset='koi8-r'; x=y",
    ],
)
def test_charset_header_spellings(header: str) -> None:
    text, encoding = decode_html(html_doc(RUSSIAN).encode("koi8-r"), header)
    assert (RUSSIAN in text, encoding) == (True, "koi8-r")


def test_header_wins_over_meta() -> None:
    body = html_doc(RUSSIAN, '<meta charset="utf-8">').encode("cp1251")
    text, encoding = decode_html(body, "text/html; charset=cp1251")
    assert (RUSSIAN in text, encoding) == (True, "cp1251")


@pytest.mark.parametrize(
    ("bom", "codec", "expected"),
    [
        (codecs.BOM_UTF8, "utf-8", "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be"),
    ],
)
def test_charset_from_bom(bom: bytes, codec: str, expected: str) -> None:
    body = bom + html_doc(RUSSIAN).encode(codec)
    text, encoding = decode_html(body, None)
    assert encoding == expected
    assert text.startswith("<html>")  # the BOM itself is not text
    assert RUSSIAN in text


def test_bom_wins_over_header_like_browsers() -> None:
    body = codecs.BOM_UTF8 + html_doc(RUSSIAN).encode("utf-8")
    text, encoding = decode_html(body, "text/html; charset=iso-8859-1")
    assert (RUSSIAN in text, encoding) == (True, "utf-8")


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="windows-1251">',
        "<meta charset=windows-1251>",
        "<META CHARSET='Windows-1251'/>",
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">',
        "<meta content='text/html;charset=windows-1251' http-equiv='content-type'>",
        '<!-- <meta charset="utf-8"> --><meta charset="windows-1251">',
        '<meta name="x" content="y"><meta charset="bogus-charset"><meta charset="cp1251">',
    ],
)
def test_charset_from_meta(meta: str) -> None:
    text, encoding = decode_html(html_doc(RUSSIAN, meta).encode("cp1251"), "text/html")
    assert (RUSSIAN in text, encoding) == (True, "cp1251")


def test_meta_content_charset_without_http_equiv_is_ignored() -> None:
    body = html_doc("café", '<meta name="x" content="charset=koi8-r">').encode("utf-8")
    assert decode_html(body, None) == (body.decode("utf-8"), "utf-8")


def test_meta_charset_only_in_the_first_4096_bytes() -> None:
    body = ("<!-- " + "x" * 5000 + " -->" + html_doc("ok", '<meta charset="koi8-r">')).encode()
    assert decode_html(body, None)[1] == "utf-8"


def test_meta_utf16_means_utf8() -> None:
    body = html_doc("café", '<meta charset="utf-16">').encode("utf-8")
    assert decode_html(body, None) == (body.decode("utf-8"), "utf-8")


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("iso-8859-1", "cp1252"),
        ("latin1", "cp1252"),
        ("us-ascii", "cp1252"),
        ("shift_jis", "cp932"),
        ("gb2312", "gb18030"),
        ("euc-kr", "cp949"),
        ("UTF8", "utf-8"),
    ],
)
def test_labels_decode_like_browsers(label: str, expected: str) -> None:
    assert decode_html(b"<p>x</p>", f"text/html; charset={label}")[1] == expected


def test_iso_8859_1_label_decodes_windows_1252_punctuation() -> None:
    sample = "\u201cquoted\u201d \u2013 \u20ac"
    text, _ = decode_html(sample.encode("cp1252"), "text/html; charset=iso-8859-1")
    assert text == sample


@pytest.mark.parametrize(
    ("codec", "source", "expected"),
    [
        ("cp1251", RUSSIAN, "cp1251"),
        ("shift_jis", JAPANESE, "cp932"),
    ],
)
def test_charset_detection_without_declaration(codec: str, source: str, expected: str) -> None:
    body = html_doc(source * 3).encode(codec)
    text, encoding = decode_html(body, "text/html")
    assert encoding == expected
    assert source in text


def test_undeclared_utf8_is_utf8_without_detection() -> None:
    body = html_doc(RUSSIAN + JAPANESE).encode("utf-8")
    assert decode_html(body, None) == (body.decode("utf-8"), "utf-8")


def test_plain_ascii_is_utf8() -> None:
    assert decode_html(b"<p>hello</p>", None) == ("<p>hello</p>", "utf-8")


@pytest.mark.parametrize(
    "header",
    [
        "text/html; charset=bogus-charset",
        "text/html; charset=",
        'text/html; charset="',
        "text/html; charset=base64",
        "text/html; charset=rot13",
        "text/html; charset=idna",
        "text/html; charset=unicode_escape",
        "text/html; charset=utf-7",
        "text/html; charset=undefined",
        "text/html; charset=x-user-defined",
    ],
)
def test_bogus_charset_names_fall_through(header: str) -> None:
    body = html_doc(RUSSIAN, '<meta charset="windows-1251">').encode("cp1251")
    text, encoding = decode_html(body, header)
    assert (RUSSIAN in text, encoding) == (True, "cp1251")


def test_bogus_everywhere_falls_back_to_utf8() -> None:
    body = html_doc("café", '<meta charset="nonsense">').encode("utf-8")
    assert decode_html(body, "text/html; charset=also-nonsense") == (body.decode(), "utf-8")


def test_invalid_bytes_are_replaced() -> None:
    body = b"<p>ok \xff\xfe\xc3 end</p>"
    text, encoding = decode_html(body, "text/html; charset=utf-8")
    assert encoding == "utf-8"
    assert text == "<p>ok \ufffd\ufffd\ufffd end</p>"


def test_invalid_bytes_in_multibyte_charset_are_replaced() -> None:
    text, encoding = decode_html(b"<p>\x82\xa0\x82</p>", "text/html; charset=shift_jis")
    assert encoding == "cp932"
    assert text == "<p>\u3042\ufffd</p>"  # a lead byte without its trail byte


def test_parse_html_reports_the_encoding_and_decodes_links() -> None:
    body = html_doc(RUSSIAN, '<meta charset="windows-1251">').encode("cp1251")
    body += '<a href="/страница">ссылка</a>'.encode("cp1251")
    page = parse_html(body, PAGE, {"content-type": "text/html"})
    assert page.encoding == "cp1251"
    assert page.links == (
        Link(
            "http://example.com/%D1%81%D1%82%D1%80%D0%B0%D0%BD%D0%B8%D1%86%D0%B0",
            "a",
            False,
            True,
            "ссылка",
        ),
    )


# ---------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00",
        b"\x00" * 1000,
        b"<",
        b"<a",
        b"<a href",
        b"<a href=",
        b'<a href="/unterminated',
        b"<a href='/x'>unclosed <b><i><a href=/y>",
        b"</a></p></html></body>",
        b"<html><html><head><head><body><body>",
        b"<!--",
        b"<!-- <a href=/x>",
        b"<script>",
        b"<style><a href=/x>",
        b"<![CDATA[<a href=/x>]]>",
        b"<?xml version='1.0'?><html/>",
        b"<a href=\x00/x\x00>\x00</a>",
        b"\xff\xfe\xfd<a href=/\xff>\xc3</a>",
        b"<img srcset=',,, 1x 2x,,'><img srcset='a.png 1x (foo, bar) 2x'>",
        b"<meta charset=\x00><meta http-equiv=content-type content=charset=>",
        b"<base href=//><a href=x>",
        b"<a href='http://[::1'>x</a><a href='http://a:b:c/'>y</a>",
        b"<div style='url(' id=x>",
        b"<" + b"div>" * 5000,
        b"<a href='" + b"/x" * 100_000 + b"'>big</a>",
        b"<p " + b"a=1 " * 10_000 + b">",
        b"<svg><a xlink:href=/x><image xlink:href=/i.png /></a></svg>",
        b"<math><mi><a href=/m>m</a></mi></math>",
        b"<table><tr><td background=/bg.png><a href=/t>t</a></table>",
        b"<plaintext><a href=/x>",
    ],
)
def test_malformed_html_never_raises(body: bytes) -> None:
    page = parse_html(body, PAGE, {})
    assert isinstance(page, ParsedPage)
    for link in page.links:
        assert link.url.startswith(("http://", "https://"))


def test_plaintext_and_svg_cases() -> None:
    assert parse_html(b"<plaintext><a href=/x>", PAGE, {}).links == ()
    svg = parse_html(
        b"<svg><a href=/x><image xlink:href=/i.png /></a></svg>",
        PAGE,
        {"content-type": "text/html"},
    )
    assert svg.images == ("http://example.com/i.png",)
    assert urls_of(svg, "a") == ["http://example.com/x"]
    xlink = parse_html(b"<svg><a xlink:href=/old-svg-link>x</a></svg>", PAGE, HTML)
    assert urls_of(xlink) == ["http://example.com/old-svg-link"]


def test_unusable_page_url_keeps_absolute_links_only() -> None:
    page = parse_html(b'<a href="/rel">r</a><a href="http://abs.example/">a</a>', "garbage", {})
    assert urls_of(page) == ["http://abs.example/"]


def test_random_garbage_never_raises() -> None:
    rng = random.Random(2024)
    pieces = [
        b"<a href=",
        b"<img src='",
        b'srcset="',
        b"<base href=",
        b"<meta charset=",
        b"<meta name=robots content=",
        b"<!--",
        b"-->",
        b"<script>",
        b"</script>",
        b"style='background:url(",
        b"&amp;",
        b"&#0;",
        b"\x00",
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"http://",
        b"//",
        b"?",
        b"#",
        b"%",
        b"[::1",
        b":99999",
        b"\xe2\x80",
        b">",
        b"<",
        b'"',
        b"'",
        b" 2x, ",
        b" 100w",
        b"<title>",
        b"<link rel=icon href=",
    ]
    headers = [{}, HTML, {"content-type": "text/html; charset=bogus"}, {"x-robots-tag": ":"}]
    for _ in range(1500):
        body = b"".join(
            rng.choice(pieces) if rng.random() < 0.8 else rng.randbytes(rng.randint(1, 16))
            for _ in range(rng.randint(0, 40))
        )
        page = parse_html(body, PAGE, rng.choice(headers))
        assert isinstance(page, ParsedPage)
        assert all(not url.startswith("data:") for url in page.images)


def test_images_without_an_alt_attribute_are_listed() -> None:
    page = parse_html(
        b'<img src="/a.png"><img src="/b.png" alt=""><img src="/c.png" alt="c">'
        b'<img data-src="/d.png"><img src="/a.png">',
        "http://example.com/p",
        {"content-type": "text/html"},
    )
    assert page.missing_alt == ("http://example.com/a.png", "http://example.com/d.png")


def test_hreflang_alternates_are_kept() -> None:
    page = parse_html(
        b'<link rel="alternate" hreflang="de" href="/de/">'
        b'<link rel="Alternate" hreflang=" x-default " href="https://example.com/">'
        b'<link rel="alternate" href="/feed.xml"><link rel="stylesheet" hreflang="fr" href="/s">',
        "http://example.com/en/",
        {"content-type": "text/html"},
    )
    assert page.hreflang == (
        ("de", "http://example.com/de/"),
        ("x-default", "https://example.com/"),
    )
