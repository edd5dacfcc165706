"""A redis-server of a test's (or a benchmark's) own: 127.0.0.1, a free port, no persistence.

No pytest here: ``bench.scale`` starts its Redis with it too.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.site import unused_port

__all__ = ["RedisServer"]


class RedisServer:
    """A redis-server of the test's own on 127.0.0.1 and a free port: no persistence, its
    files in a temporary directory. ``pause`` (SIGSTOP) and ``resume`` (SIGCONT) make it go
    away and come back with its data, as a network outage would."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.port = unused_port()
        self.process = subprocess.Popen(
            [
                binary,
                *["--port", str(self.port), "--bind", "127.0.0.1"],
                *["--save", "", "--appendonly", "no", "--dir", str(directory)],
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __repr__(self) -> str:
        return f"<RedisServer 127.0.0.1:{self.port} pid={self.process.pid}>"
