"""The generated site on disk, served by nginx on 127.0.0.1: :class:`NginxSite`.

``bench.compare`` needs a server that is not the bottleneck when three crawlers take turns at a
20,000-page site, so the site is written to a temporary directory and served by Debian's nginx
(``bash scripts/bench-setup.sh`` installs it) with a minimal configuration of its own: one
worker process, keep-alive (up to a million requests per connection), no access log, sendfile,
an open-file cache, the pid file, error log and temp paths in the temporary directory, and
``daemon off`` so that nginx stays this process's child and is stopped with it.

Request targets become files as follows (:func:`file_name`): ``/`` is ``/__root.html``;
``/p/5.html`` is ``p/5.html``; a listing page ``/list.html?page=3`` is a file literally named
``list.html?page=3``. The one ``location /`` rule, ``try_files "$uri$is_args$args" =404``, then
answers a target with a query string from the file named by the whole target, and only from
that one: ``/list.html`` (no query) and ``/p/5.html?page=3`` are 404, as with ``bench.server``.
Content types come from a ``types`` table (html, css, txt, png) with ``text/html`` as the
default (``list.html?page=3`` has no known extension) and ``charset utf-8`` for the text types,
so each file's ``Content-Type`` is :func:`bench.sitegen.content_type`'s.

nginx does not count requests per target (no access log), but ``stub_status`` at the private
target ``/__bench/status`` gives the total request count: :meth:`NginxSite.requests` is the
number of requests since the previous call, its own status request left out. The CPU seconds of
the master and its worker(s) come from ``/proc``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
import zlib
from pathlib import Path

from bench.procs import CLOCK_TICKS, stat_fields
from bench.sitegen import SitePlan, content_type, iter_site

__all__ = ["NginxError", "NginxSite", "file_name", "find_nginx", "free_port"]

STATUS_TARGET = "/__bench/status"
ROOT_FILE = "__root.html"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

CONFIG = """\
# Written by bench/nginx.py for one benchmark run.
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
events {{
    worker_connections 4096;
}}

http {{
    {access_log}
    server_tokens off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    types {{
        text/html html;
        text/css css;
        text/plain txt;
        image/png png;
    }}
    default_type text/html;
    charset utf-8;
    charset_types text/css text/plain;  # text/html is always in the list

    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;  # each entry holds a descriptor (ulimit -n)
    open_file_cache_valid 60s;
    gzip off;

    server {{
        listen 127.0.0.1:{port} backlog=1024 reuseport;
        root {root};

        location = / {{
            if ($args) {{
                return 404;
            }}
            try_files /{root_file} =404;
        }}
        location / {{
            try_files "$uri$is_args$args" =404;
        }}
        location = {status} {{
            stub_status;
            allow 127.0.0.1;
            deny all;
        }}
    }}
}}
"""


class NginxError(RuntimeError):
    """nginx is missing, would not start, or does not serve the site as planned."""


def find_nginx() -> str:
    """The nginx binary: on PATH, else Debian's /usr/sbin/nginx."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise NginxError("nginx is not installed: run `bash scripts/bench-setup.sh`")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def file_name(target: str) -> str:
    """The path (relative to the site root) of the file that nginx serves for ``target``."""
    if target == "/":
        return ROOT_FILE
    if not target.startswith("/") or "/../" in target or "#" in target:
        raise ValueError(f"not a site target: {target!r}")
    return target[1:]


class NginxSite:
    """The site of ``plan`` written under ``tmp``/site and served by nginx on ``plan``'s port.

    ``plan`` must be made for a free port (:func:`free_port`): its absolute hrefs name it.
    """

    def __init__(self, plan: SitePlan, tmp: Path, *, timing_log: bool = False) -> None:
        self.plan = plan
        self.tmp = tmp
        # With timing_log, each request is logged as "<end time> <request time> <target>" (both
        # in seconds, millisecond resolution) to access.log: requests in flight at the server
        # and gaps between request starts can be checked afterwards (bench.scale does).
        self.timing_log = timing_log
        self.root = tmp / "site"
        self.port = int(plan.base.rpartition(":")[2])
        self.binary = find_nginx()
        self.version = (
            subprocess.run([self.binary, "-v"], capture_output=True, text=True)
            .stderr.strip()
            .removeprefix("nginx version: ")
        )
        self.files: dict[str, tuple[int, int]] = {}  # target -> (size, crc32) of its body
        self.process: subprocess.Popen[bytes] | None = None
        self._status_seen: int | None = None

    # ------------------------------------------------------------------ files and config

    def write(self) -> int:
        """Write every file of the site (rendered one at a time); returns the bytes written."""
        total = 0
        self.root.mkdir(parents=True)
        directories: set[Path] = {self.root}
        for target, body in iter_site(self.plan):
            path = self.root / file_name(target)
            if path.parent not in directories:
                path.parent.mkdir(parents=True, exist_ok=True)
                directories.add(path.parent)
            path.write_bytes(body)
            self.files[target] = (len(body), zlib.crc32(body))
            total += len(body)
        return total

    def config(self) -> str:
        # Started as root, nginx's worker would switch to "nobody" (whose group Debian lacks)
        # and could not read the private temporary directory: keep root's identity.
        user = "user root root;" if os.geteuid() == 0 else ""
        access_log = "access_log off;"
        if self.timing_log:
            access_log = (
                "log_format timing '$msec $request_time $request_uri';\n"
                f"    access_log {self.access_log} timing buffer=256k flush=1s;"
            )
        return CONFIG.format(
            access_log=access_log,
            tmp=self.tmp,
            user=user,
            port=self.port,
            root=self.root,
            root_file=ROOT_FILE,
            status=STATUS_TARGET,
        )

    # ------------------------------------------------------------------ process

    def start(self, timeout: float = 10.0) -> None:
        conf = self.tmp / "nginx.conf"
        conf.write_text(self.config())
        command = [self.binary, "-p", str(self.tmp), "-c", str(conf), "-e", str(self.error_log)]
        test = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True)
        if test.returncode != 0:
            raise NginxError(f"nginx -t rejected {conf}: {test.stderr.strip()}")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise NginxError(f"nginx exited with {self.process.returncode}: {self.errors()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError as error:
                if time.monotonic() > deadline:
                    self.stop()
                    message = f"nginx not accepting within {timeout} s: {self.errors()}"
                    raise NginxError(message) from error
                time.sleep(0.05)
        self.requests()  # start counting from here

    def stop(self) -> None:
        """SIGQUIT (graceful), then SIGTERM and SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(3)  # SIGQUIT: finish the open requests, then exit
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise NginxError("nginx is not running")
        return self.process.pid

    @property
    def access_log(self) -> Path:
        return self.tmp / "access.log"

    def timings(self) -> list[tuple[float, float, str]]:
        """(start, end, target) of every request in the timing log so far (seconds since the
        epoch, millisecond resolution), after making nginx write out its log buffer."""
        if self.process is not None:
            self.process.send_signal(10)  # SIGUSR1: reopen the logs, which flushes the buffer
            time.sleep(0.3)
        rows = []
        with open(self.access_log, encoding="utf-8", errors="replace") as log:
            for line in log:
                end, elapsed, target = line.rstrip("\n").split(" ", 2)
                rows.append((float(end) - float(elapsed), float(end), target))
        return rows

    @property
    def error_log(self) -> Path:
        return self.tmp / "error.log"

    def error_lines(self) -> list[str]:
        """The error log (warnings and errors only are logged)."""
        try:
            return self.error_log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return []

    def errors(self) -> str:
        """The error log's last lines, for messages."""
        return " | ".join(self.error_lines()[-5:]) or "(error log empty)"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def processes(self) -> list[int]:
        """The master and its workers."""
        master = self.pid
        workers = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                fields = stat_fields(int(name))
                if fields is not None and int(fields[1]) == master:
                    workers.append(int(name))
        return [master, *workers]

    def cpu_seconds(self) -> float:
        """user + sys of the master and its live workers so far."""
        total = 0
        for pid in self.processes():
            fields = stat_fields(pid)
            if fields is not None:
                total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    # ------------------------------------------------------------------ counters

    def _status_total(self) -> int:
        url = f"http://127.0.0.1:{self.port}{STATUS_TARGET}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        # "server accepts handled requests\n A H R \n"
        match = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", text, re.MULTILINE)
        if match is None:
            raise NginxError(f"unexpected stub_status answer: {text!r}")
        return int(match.group(3))

    def requests(self) -> int:
        """Requests nginx answered since the previous call, the status requests left out."""
        total = self._status_total()
        previous, self._status_seen = self._status_seen, total
        return 0 if previous is None else total - previous - 1

    # ------------------------------------------------------------------ checks

    def verify(self, concurrency: int = 16) -> list[str]:
        """GET every file of the site and some targets it does not have: problems found."""
        return asyncio.run(self._verify(concurrency))

    async def _verify(self, concurrency: int) -> list[str]:
        import aiohttp

        problems: list[str] = []
        absent = ["/list.html", "/?page=1", "/p/0.html", f"{self.plan.targets[-1]}?x=1"]
        expected: dict[str, tuple[int, tuple[int, int] | None]] = {
            target: (200, size_crc) for target, size_crc in self.files.items()
        }
        expected.update((target, (404, None)) for target in absent if target not in self.files)
        queue: asyncio.Queue[str] = asyncio.Queue()
        for target in expected:
            queue.put_nowait(target)

        async def worker(session: aiohttp.ClientSession) -> None:
            while not queue.empty():
                target = queue.get_nowait()
                status, size_crc = expected[target]
                async with session.get(self.plan.base + target, allow_redirects=False) as answer:
                    body = await answer.read()
                    kind = answer.headers.get("Content-Type", "")
                if answer.status != status:
                    problems.append(f"{target}: status {answer.status}, expected {status}")
                elif size_crc is not None:
                    if (len(body), zlib.crc32(body)) != size_crc:
                        problems.append(f"{target}: body differs from the rendered file")
                    if kind != content_type(target):
                        problems.append(
                            f"{target}: Content-Type {kind!r}, not {content_type(target)!r}"
                        )

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return problems

    def __repr__(self) -> str:
        pid = None if self.process is None else self.process.pid
        return f"<NginxSite {self.plan.base} root={self.root} pid={pid}>"
