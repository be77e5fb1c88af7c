"""Finished export files on disk (a volume every export process shares)."""
from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable


class ExportFiles:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def name_for(self, job_id: uuid.UUID, extension: str, *, attempt: int = 1) -> str:
        """One name per attempt: an attempt that lost its job can delete its own file and never
        the one a newer attempt wrote."""
        return f"{uuid.UUID(str(job_id))}-{int(attempt)}.{extension}"

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def remove_abandoned(self, older_than: float) -> int:
        """Partial files of builders that died mid-write (SIGKILL, power loss): never served,
        since only a complete file is renamed to its final name, and removed here once nobody
        has written to them for `older_than` seconds."""
        if not self.directory.is_dir():
            return 0
        removed = 0
        cutoff = time.time() - older_than
        for partial in self.directory.glob(".*.tmp"):
            try:
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # another worker's sweep took it
        return removed

    def path(self, name: str) -> Path:
        path = self.directory / name
        if path.parent != self.directory:
            raise ValueError(f"not a plain file name: {name!r}")
        return path

    def write(self, name: str, content: bytes) -> None:
        """Readers see the whole old file or the whole new one, never a partial write."""
        self.write_with(name, lambda handle: handle.write(content))

    def write_with(self, name: str, produce: Callable[[BinaryIO], object]) -> None:
        """Like write, with `produce` writing the content into a binary file as it goes (a large
        export is never held in memory whole)."""
        target = self.path(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w+b") as handle:
                produce(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
