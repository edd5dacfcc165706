"""Durable crawls: Ctrl-C, kill -9 and --resume lose nothing and fetch nothing twice;
bad databases give clear errors and stay intact."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.site import Site
from tests.test_cli import run_cli, write

TREE_PAGES = 60


def add_tree(site: Site, delay: float = 0.02) -> None:
    """A tree of pages: /p/i links to its children 3i+1..3i+3, its parent and the root."""
    for i in range(TREE_PAGES):
        links = [f"/p/{c}" for c in (3 * i + 1, 3 * i + 2, 3 * i + 3) if c < TREE_PAGES]
        links += ["/p/0", f"/p/{max(0, (i - 1) // 3)}"]
        site.add_slow(f"/p/{i}", delay, links=links)


def snapshot(db: Path) -> tuple[dict[str, tuple[object, ...]], Counter[tuple[object, ...]]]:
    """The pages and links tables, in a form two crawls can be compared by."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        pages = {
            row[0]: tuple(row[1:])
            for row in conn.execute(
                "SELECT url, status, depth, title, final_url, content_hash, error, bytes FROM pages"
            )
        }
        links = Counter(conn.execute("SELECT src_url, dst_url, tag, nofollow FROM links"))
    return pages, links


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def start_crawl(cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", *args,
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def wait_for_requests(site: Site, n: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(3000):
        if len(site.requests) >= n or proc.returncode is not None:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the crawler made only {len(site.requests)} requests")


CRAWL_ARGS = ("seed.txt", "--workers", "0", "--per-host", "4", "--quiet")


async def baseline(site: Site, tmp_path: Path) -> tuple[dict[str, tuple[object, ...]], Counter]:  # type: ignore[type-arg]
    work = tmp_path / "baseline"
    work.mkdir()
    write(work / "seed.txt", site.url("/p/0"))
    run = await run_cli(work, *CRAWL_ARGS)
    assert run.code == 0, run.stderr
    pages, links = snapshot(work / "crawl.db")
    assert len(pages) == TREE_PAGES
    site.requests.clear()
    return pages, links


def read_indexes(db: Path) -> set[str]:
    """The indexes for reading the links table that ``db`` has."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    return names & {"links_src", "links_dst"}


def fetched_pages(site: Site) -> Counter[str]:
    return Counter(r.path for r in site.requests if r.path.startswith("/p/"))


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
async def test_interrupted_crawl_resumes_to_the_same_tables(
    site: Site, tmp_path: Path, how: str
) -> None:
    add_tree(site)
    expected = await baseline(site, tmp_path)
    for moment in (3, 15, 35):  # after this many requests reached the server
        work = tmp_path / f"{how}-{moment}"
        work.mkdir()
        write(work / "seed.txt", site.url("/p/0"))
        db = work / "crawl.db"
        site.requests.clear()
        proc = await start_crawl(work, *CRAWL_ARGS)
        await wait_for_requests(site, moment, proc)
        proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        if how == "sigint":
            assert proc.returncode == 130, err.decode()
            assert "--resume" in err.decode()
        else:
            assert proc.returncode == -signal.SIGKILL
        assert integrity(db) == "ok"
        assert read_indexes(db) == set()  # built when the crawl finishes, not before
        saved_before, _ = snapshot(db)
        first_run = fetched_pages(site)
        site.requests.clear()

        run = await run_cli(work, *CRAWL_ARGS, "--resume")
        assert run.code == 0, run.stderr
        got = snapshot(db)
        assert got[0] == expected[0], f"{how} after {moment} requests: pages differ"
        assert got[1] == expected[1], (
            f"{how} after {moment}: extra links {got[1] - expected[1]}, "
            f"missing {expected[1] - got[1]}"
        )
        second_run = fetched_pages(site)
        # no page saved before the interruption is fetched again ...
        assert not {url.split(site.host, 1)[1] for url in saved_before} & set(second_run)
        # ... the only pages fetched twice are those whose rows were not yet committed
        # (in flight, or in the last write batch: at most 0.2 s of crawling) ...
        saved_paths = {url.split(site.host, 1)[1] for url in saved_before}
        repeated = {p for p in second_run if first_run[p]}
        assert repeated == set(first_run) - saved_paths
        if how == "sigint":  # Ctrl-C lets the last batch be written: only in-flight requests
            assert len(repeated) <= 4, (repeated, moment)
        # ... and the resumed crawl fetches each page once.
        assert all(count == 1 for count in second_run.values())
        assert read_indexes(db) == {"links_src", "links_dst"}


async def test_resume_of_a_finished_crawl_fetches_nothing(site: Site, tmp_path: Path) -> None:
    add_tree(site, delay=0)
    write(tmp_path / "seed.txt", site.url("/p/0"))
    assert (await run_cli(tmp_path, *CRAWL_ARGS)).code == 0
    site.requests.clear()
    run = await run_cli(tmp_path, "seed.txt", "--resume")
    assert run.code == 0
    assert "nothing to do" in run.stderr and "complete" in run.stderr
    assert site.requests == []
    assert read_indexes(tmp_path / "crawl.db") == {"links_src", "links_dst"}


async def test_resume_after_max_pages_and_with_new_seeds(site: Site, tmp_path: Path) -> None:
    add_tree(site, delay=0)
    site.add_page("/extra", title="extra")
    write(tmp_path / "seed.txt", site.url("/p/0"))
    assert (await run_cli(tmp_path, *CRAWL_ARGS, "--max-pages", "10")).code == 0
    run = await run_cli(tmp_path, *CRAWL_ARGS[:-1], "--max-pages", "10", "--resume")
    assert run.code == 0 and "--max-pages" in run.stderr and "nothing to do" in run.stderr
    site.requests.clear()
    write(tmp_path / "seed.txt", f"{site.url('/p/0')}\n{site.url('/extra')}\n")
    assert (await run_cli(tmp_path, *CRAWL_ARGS, "--resume")).code == 0
    pages, _ = snapshot(tmp_path / "crawl.db")
    assert len(pages) == TREE_PAGES + 1
    assert all(n == 1 for n in fetched_pages(site).values())


async def test_resume_with_another_scope_is_refused(site: Site, tmp_path: Path) -> None:
    site.add_page("/")
    write(tmp_path / "seed.txt", site.url())
    assert (await run_cli(tmp_path, *CRAWL_ARGS)).code == 0
    run = await run_cli(tmp_path, *CRAWL_ARGS, "--resume", "--scope", "any")
    assert run.code == 2 and "--scope host" in run.stderr


async def test_resume_needs_a_database(tmp_path: Path) -> None:
    write(tmp_path / "seed.txt", "http://127.0.0.1:9/")
    run = await run_cli(tmp_path, "seed.txt", "--resume")
    assert run.code == 2 and "nothing to resume" in run.stderr


async def test_database_in_use_by_another_crawl(site: Site, tmp_path: Path) -> None:
    site.add_page("/")
    write(tmp_path / "seed.txt", site.url())
    fd = os.open(tmp_path / "crawl.db.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242")
        run = await run_cli(tmp_path, *CRAWL_ARGS)
    finally:
        os.close(fd)
    assert run.code == 2
    assert "in use by another crawl" in run.stderr and "4242" in run.stderr
    assert site.requests == []


def make_v1_database(path: Path, pages: list[str]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE pages(url TEXT UNIQUE, final_url TEXT, status INTEGER, "
            "content_type TEXT, depth INTEGER, title TEXT, bytes INTEGER, elapsed_ms REAL, "
            "content_hash TEXT, error TEXT, fetched_at TEXT, error_kind TEXT, noindex INTEGER, "
            "attempts INTEGER)"
        )
        conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.executemany(
            "INSERT INTO pages(url, status, depth) VALUES (?, 200, 0)", [(p,) for p in pages]
        )


async def test_old_schema_is_migrated(site: Site, tmp_path: Path) -> None:
    site.add_page("/", links=["/new"])
    site.add_page("/new")
    write(tmp_path / "seed.txt", site.url())
    make_v1_database(tmp_path / "crawl.db", [site.url()])
    run = await run_cli(tmp_path, *CRAWL_ARGS, "--resume")
    assert run.code == 0, run.stderr
    # the page saved by the old version is not fetched again
    assert site.count("/") == 0 and site.count("/new") == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "crawl.db")) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            "2",
        )
        assert conn.execute("SELECT state FROM frontier").fetchall() == [(1,)]


@pytest.mark.parametrize(
    "setup, message",
    [
        ("UPDATE meta SET value = '99' WHERE key = 'schema_version'", "newer than this crawler"),
        ("DROP TABLE meta; CREATE TABLE other(x)", "not a crawl database"),
    ],
)
async def test_incompatible_database_is_refused_untouched(
    site: Site, tmp_path: Path, setup: str, message: str
) -> None:
    site.add_page("/")
    write(tmp_path / "seed.txt", site.url())
    assert (await run_cli(tmp_path, *CRAWL_ARGS)).code == 0
    db = tmp_path / "crawl.db"
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(setup)
    before = db.read_bytes()
    run = await run_cli(tmp_path, *CRAWL_ARGS, "--resume")
    assert run.code == 2 and message in run.stderr, run.stderr
    assert db.read_bytes() == before


async def test_garbage_file_as_database(tmp_path: Path) -> None:
    write(tmp_path / "seed.txt", "http://127.0.0.1:9/")
    (tmp_path / "crawl.db").write_bytes(b"this is not sqlite" * 100)
    run = await run_cli(tmp_path, *CRAWL_ARGS, "--resume")
    assert run.code == 2 and "crawl.db" in run.stderr and "not" in run.stderr


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root, as in CI)."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny filesystem needs root (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_full_disk_stops_the_crawl_with_data_intact(site: Site, tmp_path: Path) -> None:
    big_title = "x" * 2000
    site.add_page("/", links=[f"/{i}" for i in range(400)])
    for i in range(400):
        site.add_page(f"/{i}", title=f"{big_title} {i}", links=[f"/{j}" for j in range(0, 400, 7)])
    with tiny_filesystem(tmp_path / "small", "600k") as small:
        write(small / "seed.txt", site.url())
        run = await run_cli(small, *CRAWL_ARGS)
        assert run.code == 1, run.stderr
        assert "disk is full" in run.stderr
        assert integrity(small / "crawl.db") == "ok"
        pages, _ = snapshot(small / "crawl.db")
        assert 0 < len(pages) < 401


async def test_read_only_database_is_refused_untouched(site: Site, tmp_path: Path) -> None:
    site.add_page("/", links=["/a"])
    site.add_page("/a")
    with tiny_filesystem(tmp_path / "ro", "4m") as ro:
        write(ro / "seed.txt", site.url())
        assert (await run_cli(ro, *CRAWL_ARGS, "--max-pages", "1")).code == 0
        before = (ro / "crawl.db").read_bytes()
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)  # noqa: ASYNC221 (instant)
        site.requests.clear()
        run = await run_cli(ro, *CRAWL_ARGS, "--resume")
        assert run.code == 2, run.stderr
        assert "read-only" in run.stderr
        assert (ro / "crawl.db").read_bytes() == before
        assert site.requests == []


async def test_second_ctrl_c_quits_at_once_leaving_a_consistent_database(
    site: Site, tmp_path: Path
) -> None:
    add_tree(site)
    for i in range(10):
        site.add_hang(f"/hang{i}")
    site.add_page("/", links=["/p/0"] + [f"/hang{i}" for i in range(10)])
    expected_pages = TREE_PAGES + 1
    write(tmp_path / "seed.txt", site.url())
    proc = await start_crawl(tmp_path, *CRAWL_ARGS, "--per-host", "16")
    await wait_for_requests(site, 20, proc)
    proc.send_signal(signal.SIGINT)
    await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):  # it may be done already
        proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 3)
    assert proc.returncode == 130, err.decode()
    assert integrity(tmp_path / "crawl.db") == "ok"
    run = await run_cli(tmp_path, *CRAWL_ARGS, "--resume", "--timeout", "1", "--retries", "1")
    assert run.code == 0, run.stderr
    pages, _ = snapshot(tmp_path / "crawl.db")
    assert len(pages) == expected_pages + 10
