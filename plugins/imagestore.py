"""A content-addressed image store on disk: ``ROOT/ab/cd/<sha256>.<ext>``.

A file's name is the sha256 of its bytes, so identical images found at many URLs are stored
once, and a file that exists is complete: bytes are written with aiofiles to a hidden temporary
file in the same directory (``.<name>.<pid>.<n>.part``) and renamed into place, which is atomic.
An interrupted write leaves no file under the final name; a ``.part`` file is left behind only
if the process is killed outright, and can be deleted. A save that is cancelled (Ctrl-C) finishes
its short write before it gives in, so no open file or half-written ``.part`` is abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from pathlib import Path

import aiofiles
import aiofiles.os
import aiofiles.ospath

__all__ = ["ImageStore"]


class ImageStore:
    """Writes image bytes under ``root`` by content; safe to call concurrently."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files_written = 0
        self.bytes_written = 0
        self._folders: set[Path] = set()  # at most 65,536 ab/cd folders
        self._writing: dict[Path, asyncio.Event] = {}
        self._temporary_names = itertools.count()

    def path_for(self, sha256: str, extension: str) -> Path:
        """Where the image with this digest is stored: ``root/ab/cd/<sha256>.<extension>``."""
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.{extension}"

    async def save(self, sha256: str, extension: str, body: bytes) -> tuple[Path, bool]:
        """Store ``body`` (whose digest is ``sha256``) unless it is there already.

        Returns the path and whether this call wrote it (False: the same bytes were stored
        before). Raises OSError when the file cannot be written.
        """
        path = self.path_for(sha256, extension)
        while (busy := self._writing.get(path)) is not None:
            await busy.wait()  # the same bytes, found at another URL, are being written now
        done = asyncio.Event()
        self._writing[path] = done
        try:
            if await aiofiles.ospath.exists(path):
                return path, False
            writing = asyncio.ensure_future(self._write_atomically(path, body))
            try:
                await asyncio.shield(writing)
            except asyncio.CancelledError:
                # A write cannot be stopped halfway inside its thread: let it finish (the file
                # is complete, or removed if it failed), then give in to the cancellation.
                with contextlib.suppress(Exception):
                    await writing
                raise
        finally:
            del self._writing[path]
            done.set()
        self.files_written += 1
        self.bytes_written += len(body)
        return path, True

    async def _write_atomically(self, path: Path, body: bytes) -> None:
        folder = path.parent
        if folder not in self._folders:
            await aiofiles.os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        # Unique per process and write; "xb" refuses to reuse a name another crawler holds.
        temporary = folder / f".{path.name}.{os.getpid()}.{next(self._temporary_names)}.part"
        try:
            async with aiofiles.open(temporary, "xb") as file:
                await file.write(body)
            await aiofiles.os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                await aiofiles.os.remove(temporary)
            raise

    def __repr__(self) -> str:
        return (
            f"<ImageStore {self.root} written={self.files_written} "
            f"bytes={self.bytes_written} writing={len(self._writing)}>"
        )
