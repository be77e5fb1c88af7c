"""Finished export files on disk (a volume every export process shares)."""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path


class ExportFiles:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def name_for(self, job_id: uuid.UUID, extension: str) -> str:
        return f"{uuid.UUID(str(job_id))}.{extension}"

    def path(self, name: str) -> Path:
        path = self.directory / name
        if path.parent != self.directory:
            raise ValueError(f"not a plain file name: {name!r}")
        return path

    def write(self, name: str, content: bytes) -> None:
        """Readers see the whole old file or the whole new one, never a partial write."""
        target = self.path(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
