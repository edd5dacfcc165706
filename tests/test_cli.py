"""The command line as a user runs it: `python -m crawler` in a subprocess, real local sites."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.site import Site, SiteFactory


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float


async def run_cli(
    cwd: Path, *args: str, interrupt_after: float | None = None, env: dict[str, str] | None = None
) -> Run:
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crawler",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if interrupt_after is not None:
        await asyncio.sleep(interrupt_after)
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode(), time.monotonic() - start)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def pages_in(db: Path) -> dict[str, int | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT url, status FROM pages"))


async def test_crawl_from_the_command_line(site: Site, tmp_path: Path) -> None:
    site.add_page("/", links=["/a"], title="Home")
    site.add_page("/a")
    write(tmp_path / "seed.txt", f"# my seeds\n\n{site.url()}\n")
    run = await run_cli(tmp_path, "seed.txt", "--workers", "1")
    assert run.code == 0, run.stderr
    assert pages_in(tmp_path / "crawl.db") == {site.url(): 200, site.url("/a"): 200}
    assert "crawl finished" in run.stderr and "pages" in run.stderr


async def test_quiet_prints_nothing_on_success(site: Site, tmp_path: Path) -> None:
    site.add_page("/")
    write(tmp_path / "seed.txt", site.url())
    run = await run_cli(tmp_path, "seed.txt", "--quiet", "--db", "out.db")
    assert run.code == 0
    assert run.stderr == "" and run.stdout == ""
    assert (tmp_path / "out.db").exists()


async def test_bad_seed_lines_are_reported_and_skipped(site: Site, tmp_path: Path) -> None:
    site.add_page("/")
    write(tmp_path / "seed.txt", f"{site.url()}\nftp://nope/\nnot a url\n")
    run = await run_cli(tmp_path, "seed.txt", "--quiet")
    assert run.code == 0
    assert "seed.txt:2:" in run.stderr and "seed.txt:3:" in run.stderr
    assert site.count("/") == 1


async def test_no_valid_seed_exits_2_and_fetches_nothing(site: Site, tmp_path: Path) -> None:
    write(tmp_path / "seed.txt", "mailto:x@example.com\n# nothing else\n")
    run = await run_cli(tmp_path, "seed.txt")
    assert run.code == 2
    assert "no valid URL" in run.stderr and "seed.txt" in run.stderr
    assert not (tmp_path / "crawl.db").exists()


async def test_usage_and_config_errors_exit_2(tmp_path: Path) -> None:
    write(tmp_path / "seed.txt", "http://127.0.0.1:9/\n")
    cases = {
        ("missing.txt",): "missing.txt",
        ("seed.txt", "--bogus"): "--bogus",
        ("seed.txt", "--max-pages", "abc"): "--max-pages",
        ("seed.txt", "--scope", "galaxy"): "galaxy",
        ("seed.txt", "--config", "nope.toml"): "nope.toml",
        ("seed.txt", "--plugin", "nosuch"): "nosuch",
    }
    for args, named in cases.items():
        run = await run_cli(tmp_path, *args)
        assert run.code == 2, (args, run.stderr)
        assert named in run.stderr, (args, run.stderr)
    write(tmp_path / "config.toml", "max_pages = [\n")
    run = await run_cli(tmp_path, "seed.txt")
    assert run.code == 2 and "config.toml" in run.stderr and "TOML" in run.stderr
    write(tmp_path / "config.toml", "max_page = 3\n")
    run = await run_cli(tmp_path, "seed.txt")
    assert run.code == 2 and "max_page" in run.stderr and "max_pages" in run.stderr
    assert not (tmp_path / "crawl.db").exists()


async def test_existing_database_is_not_mixed(site: Site, tmp_path: Path) -> None:
    site.add_page("/")
    write(tmp_path / "seed.txt", site.url())
    assert (await run_cli(tmp_path, "seed.txt", "--quiet")).code == 0
    run = await run_cli(tmp_path, "seed.txt")
    assert run.code == 2
    assert "--resume" in run.stderr and "crawl.db" in run.stderr
    assert site.count("/") == 1


async def test_ctrl_c_exits_130_and_keeps_what_was_fetched(site: Site, tmp_path: Path) -> None:
    site.add_page("/", links=["/a", "/b"] + [f"/hang{i}" for i in range(10)])
    site.add_page("/a")
    site.add_page("/b")
    for i in range(10):
        site.add_hang(f"/hang{i}")
    write(tmp_path / "seed.txt", site.url())
    run = await run_cli(tmp_path, "seed.txt", "--workers", "1", interrupt_after=2.5)
    assert run.code == 130, run.stderr
    assert run.seconds < 5
    assert "interrupted" in run.stderr
    pages = pages_in(tmp_path / "crawl.db")
    assert pages[site.url()] == 200 and pages[site.url("/a")] == 200
    assert not any("hang" in url for url in pages)


async def test_seed_redirecting_off_host_is_explained(
    site: Site, make_site: SiteFactory, tmp_path: Path
) -> None:
    other = await make_site()
    other.add_page("/")
    site.add_redirect("/", other.url("/"))
    write(tmp_path / "seed.txt", site.url())
    run = await run_cli(tmp_path, "seed.txt")
    assert run.code == 0
    assert f"redirects to {other.url('/')}" in run.stderr and "--scope host" in run.stderr
    assert other.requests == []


async def test_database_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "seed.txt", "http://127.0.0.1:9/")
    run = await run_cli(tmp_path, "seed.txt", "--db", "nope/crawl.db")
    assert run.code == 2 and "folder nope does not exist" in run.stderr
