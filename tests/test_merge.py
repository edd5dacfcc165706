"""``python -m crawler merge``: the databases of several crawler processes become one, equal to
a single process's crawl of the same site; bad inputs are refused and never touched."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from crawler.errors import ConfigError, StorageError
from crawler.merge import MergeLog, fetch_key, merge_databases, merged_meta, plugin_tables
from plugins.audit import TABLES as AUDIT_TABLES
from tests.conftest import RunCrawl
from tests.site import Site, page_html
from tests.test_cli import run_cli, write
from tests.test_images import encoded, picture
from tests.test_resume import make_v1_database

PLUGINS = ("audit", "images")
SAME_TITLE = "One title that two pages share"
PNG = encoded(picture(7), "PNG")


def add_split_site(site: Site) -> None:
    """Two halves, /a/ and /b/, each crawled from its own seed, and pages both halves reach
    at the same depth (/shared/, an image, a redirect, a 404), so that either worker's rows
    for them equal a single crawl's. /a/1 and /b/1 share a title: only a crawl that sees both
    halves finds the duplicate."""
    img = '</ul><img src="/img/logo.png" alt="logo">'
    site.add_page("/a/0", page_html("a zero", ["/a/1", "/a/2", "/shared/1", "/redir"]))
    site.add_page("/a/1", page_html(SAME_TITLE, ["/a/0"]).replace("</ul>", img))
    site.add_page("/a/2", page_html("a two", ["/a/1", "/missing"]))
    site.add_page("/b/0", page_html("b zero", ["/b/1", "/shared/1", "/redir"]))
    site.add_page("/b/1", page_html(SAME_TITLE, ["/b/0", "/shared/2#nope"]).replace("</ul>", img))
    site.add_page("/shared/1", page_html("shared one", ["/shared/2", "/missing"]))
    site.add_page("/shared/2", page_html("shared two", ["/shared/1"]))
    site.add_redirect("/redir", "/landing")
    site.add_page("/landing", page_html("landing", ["/shared/2"]))
    site.add_page("/img/logo.png", body=PNG, content_type="image/png")


PAGE_COLUMNS = (
    "url, final_url, status, content_type, depth, title, bytes, content_hash, error, error_kind, "
    "noindex, attempts"
)
TABLES = {
    "pages": f"SELECT {PAGE_COLUMNS} FROM pages",
    "links": "SELECT src_url, dst_url, tag, nofollow FROM links",
    "redirects": "SELECT url, hop, status, location FROM redirects",
    "images": "SELECT url, sha256, bytes, width, height, path FROM images",
    "image_details": "SELECT * FROM image_details",
    "audit": "SELECT url, rule, severity, detail, src_url, anchor FROM audit",
    "audit_pages": "SELECT * FROM audit_pages",
    "audit_anchors": "SELECT * FROM audit_anchors",
    "audit_fragments": "SELECT * FROM audit_fragments",
    "robots": "SELECT host, status, verdict, crawl_delay, error FROM robots",
    "frontier": "SELECT fp, url, state FROM frontier",
}


def tables(
    db: Path, names: Sequence[str] = tuple(TABLES)
) -> dict[str, Counter[tuple[object, ...]]]:
    """Tables as multisets of rows, fetch times and order left out."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {name: Counter(conn.execute(TABLES[name])) for name in names}


def rows(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql, args))


def file_state(*paths: Path) -> dict[Path, tuple[bytes, int]]:
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in paths}


def files_named(folder: Path, part: str) -> list[str]:
    return sorted(name for name in os.listdir(folder) if part in name)


def merge(out: Path, *inputs: Path, **options: object) -> None:
    merge_databases(out, list(inputs), log=MergeLog(quiet=True), **options)  # type: ignore[arg-type]


async def test_merged_workers_equal_a_single_crawl(
    site: Site, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    add_split_site(site)
    single = await run_crawl([site.url("/a/0"), site.url("/b/0")], plugins=PLUGINS)
    one = await run_crawl([site.url("/a/0")], plugins=PLUGINS)
    two = await run_crawl([site.url("/b/0")], plugins=PLUGINS)
    for worker in (one, two):  # each worker saw one of the two pages with the same title
        assert not worker.rows("SELECT * FROM audit WHERE rule = 'duplicate_title'")
        assert worker.rows("SELECT * FROM audit WHERE rule = 'broken_link'")
    shared = {row["url"] for row in one.rows("SELECT url FROM pages")} & {
        row["url"] for row in two.rows("SELECT url FROM pages")
    }
    assert site.url("/shared/1") in shared and site.url("/img/logo.png") in shared
    before = file_state(one.path, two.path)

    out = tmp_path / "merged.db"
    merge(out, one.path, two.path)

    merged, expected = tables(out), tables(single.path)
    for name in TABLES:
        extra, missing = merged[name] - expected[name], expected[name] - merged[name]
        assert not extra and not missing, f"{name}: extra {extra}, missing {missing}"
    # the duplicate title across the two workers is found once the crawl is whole
    found = rows(out, "SELECT url FROM audit WHERE rule = 'duplicate_title' ORDER BY url")
    assert found == [(site.url("/a/1"),), (site.url("/b/1"),)]
    # a broken link both workers reported is there once per source page, not once per worker
    broken = Counter(rows(out, "SELECT src_url FROM audit WHERE rule = 'broken_link'"))
    assert broken == Counter([(site.url("/a/2"),), (site.url("/shared/1"),)])
    assert rows(out, "PRAGMA integrity_check") == [("ok",)]
    meta = dict(rows(out, "SELECT key, value FROM meta"))
    assert json.loads(meta["seeds"]) == [site.url("/a/0"), site.url("/b/0")]
    assert meta["scope"] == "host" and meta["schema_version"] == "2"
    assert json.loads(meta["merged_from"]) == [str(one.path), str(two.path)]
    assert "last_run" not in meta  # how one worker's run went says nothing of the merge
    indexes = {r[0] for r in rows(out, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"links_src", "links_dst", "redirects_url", "frontier_queue", "audit_url"} <= indexes
    assert file_state(one.path, two.path) == before
    assert files_named(tmp_path, "merged") == ["merged.db"]  # no temporary file, no lock


async def test_a_url_fetched_twice_keeps_the_better_fetch_and_its_rows(
    site: Site, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    site.add_page("/", page_html("home", ["/flaky", "/changing"]))
    site.add_status("/flaky", 500)  # the first worker gets a server error
    site.add_page("/changing", page_html("changing", ["/old-child"]))
    site.add_page("/old-child")
    site.add_page("/new-child")
    first = await run_crawl([site.url()], retries=1)
    # Then the server is fixed, and another worker fetches the same URLs again.
    site.add_page("/flaky", page_html("flaky", ["/flaky-child"]))
    site.add_page("/flaky-child")
    site.add_page("/changing", page_html("changing", ["/new-child"]))
    second = await run_crawl([site.url()], retries=1)
    # A third worker's fetch got no answer at all: an error row, the latest of all.
    third = await run_crawl([site.url("/changing")], retries=1)
    third.db.execute(
        "UPDATE pages SET status = NULL, error = 'timeout', error_kind = 'timeout', "
        "fetched_at = '9999-01-01T00:00:00.000+00:00' WHERE url = ?",
        (site.url("/changing"),),
    )
    third.db.execute("DELETE FROM links")
    third.db.commit()

    out = tmp_path / "merged.db"
    report = merge_databases(out, [first.path, second.path, third.path], log=MergeLog(quiet=True))
    flaky = rows(out, "SELECT status, title FROM pages WHERE url = ?", site.url("/flaky"))
    assert flaky == [(200, "flaky")]  # both answered (500, then 200): the later fetch
    changing = rows(out, "SELECT status FROM pages WHERE url = ?", site.url("/changing"))
    assert changing == [(200,)]  # an answer beats a later error
    # the links of each page are those of the fetch kept, once
    assert rows(out, "SELECT dst_url FROM links WHERE src_url = ?", site.url("/changing")) == [
        (site.url("/new-child"),)
    ]
    assert rows(out, "SELECT dst_url FROM links WHERE src_url = ?", site.url("/flaky")) == [
        (site.url("/flaky-child"),)
    ]
    assert rows(out, "SELECT count(*) FROM links WHERE src_url = ?", site.url()) == [(2,)]
    urls = [r[0] for r in rows(out, "SELECT url FROM pages")]
    assert len(urls) == len(set(urls))
    # /old-child was fetched (by the first worker): its row stays, though no kept page links it
    assert site.url("/old-child") in urls
    # first: /, /flaky, /changing; second: /new-child (third's is later); third: /changing
    assert [w.dropped for w in report.inputs] == [3, 1, 1]
    assert "duplicates dropped" in report.table()


async def test_resume_of_a_merged_partial_crawl_completes_it(
    site: Site, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    add_split_site(site)
    single = await run_crawl([site.url("/a/0"), site.url("/b/0")])
    # two workers stopped early (--max-pages), with URLs still queued
    one = await run_crawl([site.url("/a/0")], max_pages=3)
    two = await run_crawl([site.url("/b/0")], max_pages=3)
    out = tmp_path / "merged.db"
    merge(out, one.path, two.path)
    queued = {r[0] for r in rows(out, "SELECT url FROM frontier WHERE state = 0")}
    saved = {r[0] for r in rows(out, "SELECT url FROM pages")}
    assert queued and not queued & saved

    write(tmp_path / "seed.txt", f"{site.url('/a/0')}\n{site.url('/b/0')}\n")
    site.requests.clear()
    run = await run_cli(tmp_path, "seed.txt", "--resume", "--db", "merged.db", "--workers", "0")
    assert run.code == 0, run.stderr
    fetched = Counter(site.url(r.path) for r in site.requests if r.path != "/robots.txt")
    # no page a worker saved is fetched again; every other page once
    assert set(fetched) == set(single.pages()) - saved
    assert all(n == 1 for n in fetched.values())
    names = ("pages", "links", "redirects", "frontier")
    assert tables(out, names) == tables(single.path, names)


async def test_plugin_tables_merge_by_column_name(
    site: Site, run_crawl: RunCrawl, tmp_path: Path
) -> None:
    add_split_site(site)
    one = await run_crawl([site.url("/a/0")], plugins=("audit",))
    two = await run_crawl([site.url("/b/0")])  # no plugin: no plugin tables at all
    three = await run_crawl([site.url("/b/0")], plugins=("audit",))  # later: its fetches win
    # another version of the plugin had one more column; a plugin not installed here
    one.db.execute("ALTER TABLE audit_pages ADD COLUMN lang TEXT")
    one.db.execute("UPDATE audit_pages SET lang = 'en'")
    one.db.execute("CREATE TABLE notes(url TEXT UNIQUE, note TEXT)")
    one.db.execute("CREATE INDEX notes_note ON notes(note)")
    three.db.execute("CREATE TABLE notes(url TEXT UNIQUE, note TEXT, extra INTEGER)")
    for worker, name in ((one, "one"), (three, "three")):
        worker.db.execute("INSERT INTO notes(url, note) SELECT url, ? FROM pages", (name,))
        worker.db.execute("INSERT INTO notes(url, note) VALUES ('no page', ?)", (name,))
        worker.db.commit()

    out = tmp_path / "merged.db"
    merge(out, one.path, two.path, three.path)
    notes = dict(rows(out, "SELECT url, note FROM notes"))
    assert notes[site.url("/a/0")] == "one" and notes[site.url("/b/0")] == "three"
    assert notes[site.url("/shared/1")] == "three"  # with the fetch kept
    assert notes["no page"] == "one"  # no pages row anywhere: the first input that has it
    assert [c[1] for c in rows(out, "PRAGMA table_info(notes)")] == ["url", "note", "extra"]
    assert rows(out, "SELECT name FROM sqlite_master WHERE name = 'notes_note'") != []
    langs = dict(rows(out, "SELECT url, lang FROM audit_pages"))
    assert langs[site.url("/a/0")] == "en" and langs[site.url("/shared/1")] is None
    assert set(langs) == {
        r[0] for db in (one.path, three.path) for r in rows(db, "SELECT url FROM audit_pages")
    }


async def test_merge_from_the_command_line(site: Site, run_crawl: RunCrawl, tmp_path: Path) -> None:
    add_split_site(site)
    one = await run_crawl([site.url("/a/0")], plugins=PLUGINS)
    two = await run_crawl([site.url("/b/0")], plugins=PLUGINS)
    inputs = (str(one.path), str(two.path))
    before = file_state(one.path, two.path)

    run = await run_cli(tmp_path, "merge", "out.db", *inputs)
    assert run.code == 0, run.stderr
    out = tmp_path / "out.db"
    pages = rows(out, "SELECT count(*) FROM pages")[0][0]
    assert "duplicates dropped" in run.stderr and f"{pages:,}" in run.stderr
    assert str(one.path) in run.stderr and "whole-crawl findings" in run.stderr
    assert rows(out, "SELECT count(*) FROM audit WHERE rule = 'duplicate_title'") == [(2,)]
    report = await run_cli(tmp_path, "report", "out.db", "--format", "csv")
    assert report.code == 0 and "duplicate_title" in report.stdout

    merged = out.read_bytes()
    again = await run_cli(tmp_path, "merge", "out.db", *inputs)
    assert again.code == 2 and "out.db already exists" in again.stderr and "--force" in again.stderr
    assert out.read_bytes() == merged
    first = tables(out)
    forced = await run_cli(tmp_path, "merge", "out.db", *inputs, "--force", "--quiet")
    assert forced.code == 0 and forced.stderr == ""
    assert tables(out) == first
    assert file_state(one.path, two.path) == before

    usage = await run_cli(tmp_path, "merge", "only-out.db")
    assert usage.code == 2 and "WORKER_DB" in usage.stderr
    assert not (tmp_path / "only-out.db").exists()


@pytest.fixture
async def worker_dbs(site: Site, run_crawl: RunCrawl) -> tuple[Path, Path]:
    add_split_site(site)
    one = await run_crawl([site.url("/a/0")], plugins=("audit",))
    two = await run_crawl([site.url("/b/0")], plugins=("audit",))
    return one.path, two.path


@pytest.mark.parametrize(
    "setup, message",
    [
        ("UPDATE meta SET value = '99' WHERE key = 'schema_version'", "newer than this crawler"),
        ("DROP TABLE meta; CREATE TABLE other(x)", "not a crawl database"),
        ("UPDATE meta SET value = 'any' WHERE key = 'scope'", "--scope host and"),
    ],
)
async def test_unusable_input_is_refused_untouched(
    worker_dbs: tuple[Path, Path], tmp_path: Path, setup: str, message: str
) -> None:
    good, bad = worker_dbs
    with contextlib.closing(sqlite3.connect(bad)) as conn, conn:
        conn.executescript(setup)
    before = file_state(good, bad)
    run = await run_cli(tmp_path, "merge", "out.db", str(good), str(bad))
    assert run.code == 2, run.stderr
    assert message in run.stderr and str(bad) in run.stderr
    assert file_state(good, bad) == before
    assert files_named(tmp_path, "out.db") == []


async def test_missing_garbage_and_misused_inputs(
    worker_dbs: tuple[Path, Path], tmp_path: Path
) -> None:
    good, other = worker_dbs
    garbage = write(tmp_path / "garbage.db", "this is not sqlite" * 100)
    empty = write(tmp_path / "empty.db", "")
    write(tmp_path / "bad.toml", "[audit]\nnear_duplicate_bits = 99\n")
    before = file_state(good, other, garbage, empty)
    cases = [
        (["out.db", str(good), "nosuch.db"], "nosuch.db does not exist"),
        (["out.db", str(good), "garbage.db"], "garbage.db: the file is not a usable SQLite"),
        (["out.db", str(good), "empty.db"], "empty.db is empty"),
        (["out.db", str(good), str(good)], "given twice"),
        ([str(good), str(other), str(good)], "is one of the inputs"),
        (["nofolder/out.db", str(good)], "the folder nofolder does not exist"),
        (["out.db", str(good), "--config", "bad.toml"], "bad.toml: [audit] near_duplicate_bits"),
    ]
    for args, message in cases:
        run = await run_cli(tmp_path, "merge", *args)
        assert run.code == 2 and message in run.stderr, (args, run.stderr)
    assert file_state(good, other, garbage, empty) == before
    assert not (tmp_path / "out.db").exists()


async def test_an_input_still_being_crawled(worker_dbs: tuple[Path, Path], tmp_path: Path) -> None:
    done, running = worker_dbs
    fd = os.open(running.with_name(running.name + ".lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242")
        before = file_state(done, running)
        run = await run_cli(tmp_path, "merge", "out.db", str(done), str(running))
        assert run.code == 2
        assert "still being written by a running crawl (pid 4242)" in run.stderr
        assert "--allow-running" in run.stderr and not (tmp_path / "out.db").exists()
        # a crawl writing to the output is refused too
        out_lock = os.open(tmp_path / "busy.db.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(out_lock, fcntl.LOCK_EX)
            run = await run_cli(tmp_path, "merge", "busy.db", str(done))
            assert run.code == 2 and "busy.db is in use by a running crawl" in run.stderr
        finally:
            os.close(out_lock)
        # what it has saved so far, from a snapshot
        run = await run_cli(tmp_path, "merge", "out.db", str(done), str(running), "--allow-running")
        assert run.code == 0, run.stderr
        assert "snapshot of a running crawl" in run.stderr
        assert file_state(done, running) == before
    finally:
        os.close(fd)
    pages = {r[0] for db in (done, running) for r in rows(db, "SELECT url FROM pages")}
    assert {r[0] for r in rows(tmp_path / "out.db", "SELECT url FROM pages")} == pages


class WriteDuringMerge(MergeLog):
    """Progress that, as rows start to move, has a crawl write to an input."""

    def __init__(self, victim: Path) -> None:
        super().__init__(quiet=True)
        self.victim = victim

    def line(self, text: str) -> None:
        if text.startswith("merging"):
            with contextlib.closing(sqlite3.connect(self.victim)) as conn, conn:
                conn.execute(
                    "INSERT INTO pages(url, status, depth) VALUES ('http://late/', 200, 0)"
                )
        super().line(text)


def test_an_input_written_during_the_merge_fails_it(
    worker_dbs: tuple[Path, Path], tmp_path: Path
) -> None:
    one, two = worker_dbs
    out = tmp_path / "out.db"
    with pytest.raises(StorageError, match=f"{two} changed while it was being merged"):
        merge_databases(out, [one, two], log=WriteDuringMerge(two))
    assert files_named(tmp_path, "out.db") == []


async def test_an_old_schema_is_migrated_in_a_copy(site: Site, tmp_path: Path) -> None:
    site.add_page("/", page_html("home", ["/new"]))
    site.add_page("/new")
    write(tmp_path / "seed.txt", site.url())
    assert (await run_cli(tmp_path, "seed.txt", "--quiet", "--workers", "0")).code == 0
    old = tmp_path / "old.db"
    make_v1_database(old, [site.url(), site.url("/old-only")])
    before = file_state(old)
    run = await run_cli(tmp_path, "merge", "out.db", "old.db", "crawl.db")
    assert run.code == 0, run.stderr
    assert "migrated copy" in run.stderr
    assert file_state(old) == before
    out = tmp_path / "out.db"
    assert {r[0] for r in rows(out, "SELECT url FROM pages")} == {
        site.url(),
        site.url("/new"),
        site.url("/old-only"),
    }
    # the row with the later fetch time wins: the crawl's (the v1 rows have none)
    assert rows(out, "SELECT title FROM pages WHERE url = ?", site.url()) == [("home",)]
    assert rows(out, "SELECT count(*) FROM frontier WHERE state != 1") == [(0,)]


# --------------------------------------------------------------------------- pure helpers


def test_fetch_key_names_the_page_a_row_came_from() -> None:
    assert fetch_key(["src_url", "dst_url", "tag"]) == "t.src_url"
    assert fetch_key(["url", "hop"]) == "t.url"
    assert fetch_key(["url", "rule", "src_url"], "a") == "coalesce(a.src_url, a.url)"
    assert fetch_key(["host", "status"]) is None
    assert fetch_key(["sitemap_url", "url", "problem"]) == "coalesce(t.sitemap_url, t.url)"


def test_plugin_tables_are_those_its_ddl_adds() -> None:
    assert plugin_tables(AUDIT_TABLES) == {
        "audit_pages", "audit_anchors", "audit_fragments", "audit_hreflang",
        "audit_sitemaps", "audit_sitemap_urls",
    }  # fmt: skip
    assert plugin_tables("CREATE INDEX IF NOT EXISTS x ON images(sha256)") == frozenset()


def test_merged_meta() -> None:
    a, b = Path("a.db"), Path("b.db")
    meta = merged_meta(
        [
            (a, {"scope": "domain", "seeds": '["http://x/", "http://y/"]', "other": "1"}),
            (b, {"scope": "domain", "seeds": '["http://y/", "http://z/"]', "other": "2"}),
        ]
    )
    assert json.loads(meta["seeds"]) == ["http://x/", "http://y/", "http://z/"]
    assert meta["scope"] == "domain" and meta["other"] == "1"
    assert json.loads(meta["merged_from"]) == [str(a.resolve()), str(b.resolve())]
    with pytest.raises(StorageError, match=r"a.db was crawled with --scope host and b.db"):
        merged_meta([(a, {"scope": "host"}), (b, {"scope": "any"})])


def test_no_inputs_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no worker databases"):
        merge(tmp_path / "out.db")
