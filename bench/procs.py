"""Process tools shared by the benchmarks: run a command and measure its whole process tree.

- :func:`run_measured` runs a command (the crawler) as a subprocess and measures it: wall
  seconds from spawn to exit; CPU seconds (user + sys) of its whole process tree, as the
  ``RUSAGE_CHILDREN`` delta of this process once the command and all its descendants are
  reaped (call :func:`become_subreaper` first, so that the forkserver and parse workers, which
  are not the command's own children or outlive it, are reaped here and counted too); the CPU
  seconds of the command's own process (from ``/proc/PID/stat`` while it is a zombie, before it
  is reaped); its ``wait4`` ``ru_maxrss``; and, through a :class:`TreeSampler`, its peak RSS
  (``VmHWM``) and the peaks of the summed RSS and PSS of its process tree.
- :class:`TreeSampler` polls ``/proc`` every 50 ms for a process tree's memory.
- :class:`BenchServer` runs ``python -m bench.server`` as a subprocess and talks to its
  private ``/__bench/`` targets.
- :func:`describe_crawler` names the crawler code a subprocess will import.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MB",
    "REPO_ROOT",
    "BenchServer",
    "ProcessRun",
    "TreeSampler",
    "become_subreaper",
    "children_cpu",
    "descendants",
    "describe_crawler",
    "high_water_kb",
    "machine_busy_seconds",
    "memory_kb",
    "reap_orphans",
    "run_measured",
    "self_cpu",
    "stat_fields",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.05
PR_SET_CHILD_SUBREAPER = 36
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
MB = 1024 * 1024
KILL_GRACE_SECONDS = 60.0  # after the watchdog's SIGTERM, before its SIGKILL


# --------------------------------------------------------------------------- /proc


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux), so their CPU time reaches RUSAGE_CHILDREN."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 is index 0)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].decode().split()


def descendants(root: int) -> set[int]:
    """``root`` and every process below it, from a scan of /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat_fields(int(name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KB; (0, 0) once it is gone or a zombie."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            rss = int(f.read().split()[1]) * PAGE_KB
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1])
                    break
    except (OSError, ValueError, IndexError):
        pass
    return rss, pss


def high_water_kb(pid: int) -> int:
    """VmHWM (peak RSS) of a live process in KB, 0 once it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeSampler(threading.Thread):
    """Polls the memory of a process tree every ``interval`` seconds, keeping the peaks."""

    def __init__(self, root: int, interval: float = POLL_SECONDS) -> None:
        super().__init__(name=f"sampler-{root}", daemon=True)
        self.root = root
        self.interval = interval
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.peak_processes = 0
        self.root_hwm_kb = 0  # VmHWM of the root process: its own peak RSS
        self.seen: set[int] = set()
        self._done = threading.Event()

    def sample(self) -> None:
        self.root_hwm_kb = max(self.root_hwm_kb, high_water_kb(self.root))
        tree = descendants(self.root)
        self.seen |= tree
        memory = [memory_kb(pid) for pid in tree]
        self.peak_rss_kb = max(self.peak_rss_kb, sum(rss for rss, _ in memory))
        self.peak_pss_kb = max(self.peak_pss_kb, sum(pss for _, pss in memory))
        self.peak_processes = max(self.peak_processes, sum(1 for rss, _ in memory if rss))

    def run(self) -> None:
        while True:
            self.sample()
            if self._done.wait(self.interval):
                return

    def stop(self) -> None:
        self._done.set()
        self.join()

    def __repr__(self) -> str:
        return (
            f"<TreeSampler root={self.root} seen={len(self.seen)} "
            f"peak_rss={self.peak_rss_kb // 1024}MB peak_pss={self.peak_pss_kb // 1024}MB>"
        )


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine spent busy since boot (/proc/stat), 0 if unknown."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def reap_orphans(tracked: set[int], keep: int, timeout: float = 10.0) -> None:
    """Reap descendants adopted by this subreaper until none of ``tracked`` is left.

    ``keep`` (the server) is never waited for here; it is alive for the whole benchmark.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid == keep:
            raise RuntimeError("the benchmark server exited during the crawl")
        if pid:
            continue
        if not any(os.path.exists(f"/proc/{p}") for p in tracked):
            return
        if time.monotonic() > deadline:
            return  # stragglers: their CPU time is missing from this round
        time.sleep(0.01)


# --------------------------------------------------------------------------- one command


@dataclass(slots=True)
class ProcessRun:
    """What :func:`run_measured` saw of one command and its process tree."""

    pid: int
    exit_code: int
    seconds: float  # spawn to exit
    ended_at: float  # time.time() when the exit was seen
    cpu_seconds: float  # the whole process tree, user + sys
    main_cpu_seconds: float  # the command's own process
    wait4_maxrss_kb: int  # see bench.crawl's legend: includes this process's own peak
    machine_busy_seconds: float  # all CPUs of the machine, during the run
    bench_cpu_seconds: float  # this process, during the run (the sampler mostly)
    sampler: TreeSampler  # peak RSS (VmHWM) of the command, peak RSS/PSS sums of its tree
    timed_out: bool = False  # the watchdog had to stop it


def _watchdog(pid: int, timeout: float, done: threading.Event, fired: list[bool]) -> None:
    """SIGTERM ``pid`` after ``timeout`` seconds, SIGKILL it a grace period later.

    The pid cannot be reused meanwhile: it is reaped only after ``done`` is set.
    """
    if done.wait(timeout):
        return
    fired.append(True)
    os.kill(pid, signal.SIGTERM)
    if not done.wait(KILL_GRACE_SECONDS):
        os.kill(pid, signal.SIGKILL)


def run_measured(
    command: Sequence[str],
    *,
    cwd: Path,
    log_path: Path,
    keep: int,
    timeout: float | None = None,
) -> ProcessRun:
    """Run ``command`` (stdout and stderr to ``log_path``) and measure it and its descendants.

    ``keep`` is a child of this process that must stay alive (the benchmark server). With
    ``timeout``, a command still running after that many seconds gets SIGTERM (then SIGKILL
    after a grace period), and the result says ``timed_out``.
    """
    children_cpu_before = children_cpu()
    machine_before, self_before = machine_busy_seconds(), self_cpu()
    fired: list[bool] = []
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        sampler = TreeSampler(process.pid)
        sampler.start()
        done = threading.Event()
        watchdog = None
        if timeout is not None:
            watchdog = threading.Thread(
                target=_watchdog, args=(process.pid, timeout, done, fired), daemon=True
            )
            watchdog.start()
        # Wait for the exit without reaping, so that /proc still has the zombie's own times.
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        seconds = time.perf_counter() - start
        ended_at = time.time()
        done.set()
        if watchdog is not None:
            watchdog.join()
        machine_busy = machine_busy_seconds() - machine_before
        bench_cpu = self_cpu() - self_before
    sampler.stop()
    fields = stat_fields(process.pid) or ["0"] * 20
    main_cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    reap_orphans(sampler.seen - {process.pid}, keep=keep)
    return ProcessRun(
        pid=process.pid,
        exit_code=process.returncode,
        seconds=seconds,
        ended_at=ended_at,
        cpu_seconds=children_cpu() - children_cpu_before,
        main_cpu_seconds=main_cpu,
        wait4_maxrss_kb=usage.ru_maxrss,
        machine_busy_seconds=machine_busy,
        bench_cpu_seconds=bench_cpu,
        sampler=sampler,
        timed_out=bool(fired),
    )


# --------------------------------------------------------------------------- the server


class BenchServer:
    """``python -m bench.server SERVER_ARGS...`` as a subprocess, on a free port."""

    def __init__(self, server_args: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.server",
                *server_args,
                "--port",
                "0",
                "--parent-stdin",
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.port = self._read_port(timeout=120)
        self.base = f"http://127.0.0.1:{self.port}"

    def _read_port(self, timeout: float) -> int:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.close()
                raise RuntimeError(f"bench.server printed no port within {timeout} s")
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"bench.server did not start (first line: {line!r})")
        return int(line)

    def _get(self, target: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.base + target, timeout=10) as answer:
            data: dict[str, Any] = json.load(answer)
        return data

    def reset(self) -> None:
        self._get("/__bench/reset")

    def stats(self) -> dict[str, Any]:
        return self._get("/__bench/stats")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __repr__(self) -> str:
        return f"<BenchServer pid={self.process.pid} port={getattr(self, 'port', None)}>"


# --------------------------------------------------------------------------- the crawler


def describe_crawler(workdir: Path) -> str:
    """Where the crawler subprocess imports ``crawler`` from, and its git revision if any.

    The crawler is imported in a subprocess exactly as the rounds will (same environment and
    working directory), so ``PYTHONPATH=/path/to/checkout`` benchmarks another checkout.
    """
    where = subprocess.run(
        [sys.executable, "-c", "import crawler, os; print(os.path.dirname(crawler.__file__))"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    package = where.stdout.strip()
    if where.returncode != 0 or not package:
        return "crawler not importable: " + (where.stderr.strip().splitlines() or ["?"])[-1]
    root = str(Path(package).parent)
    git = ["git", "-C", root]
    revision = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    if revision.returncode != 0:
        return package
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", "crawler", "plugins"], capture_output=True, text=True
    ).stdout.splitlines()
    state = f"{len(changed)} uncommitted change(s) in crawler/ or plugins/" if changed else "clean"
    return f"{package} (git {revision.stdout.strip()}, {state})"


def quiet_run_problems(exit_code: int, log_path: Path) -> list[str]:
    """What went wrong with a `python -m crawler --quiet` run: its exit code, and any output."""
    problems = []
    if exit_code != 0:
        problems.append(f"crawler exited with {exit_code}")
    output = log_path.read_text(errors="replace").strip()
    if output:
        lines = output.splitlines()
        problems.append(
            f"crawler printed {len(lines)} line(s) with --quiet, first: {lines[0][:200]!r}"
        )
    return problems
