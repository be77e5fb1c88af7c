"""A PostgreSQL primary and its streaming replica, started for a test from the machine's own
PostgreSQL binaries (initdb, pg_basebackup -R): the machine's server on 5432 is not touched.

The clusters run as the `postgres` system user (PostgreSQL refuses to run as root) in a folder of
the test's, on two free ports, with trust authentication on loopback only."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamingPair:
    def __init__(self, folder: Path | None = None):
        self.bin = binaries()
        # Its own folder under the system's temporary one: pytest's are private to root, and the
        # postgres user must reach this one.
        self.folder = folder or Path(tempfile.mkdtemp(prefix="okrsnap-pg-pair-"))
        self.primary_port = _free_port()
        self.replica_port = _free_port()
        self._started: list[Path] = []

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port, "okrsnap")

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port, "okrsnap")

    def _as_postgres(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
        return done

    def start(self) -> "StreamingPair":
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        primary, replica = self.folder / "primary", self.folder / "replica"
        self._as_postgres(str(self.bin / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust",
                          "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        with open(primary / "postgresql.conf", "a") as conf:
            conf.write(self._settings(self.primary_port) + "wal_level = replica\nmax_wal_senders = 4\n")
        with open(primary / "pg_hba.conf", "a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self._pg_ctl(primary, "start")
        self._as_postgres(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.primary_port),
                          "-U", "postgres", "okrsnap")
        # -R writes standby.signal and primary_conninfo: the copy starts as a streaming replica.
        self._as_postgres(str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary_port),
                          "-U", "postgres", "-D", str(replica), "-R", "-X", "stream", "--no-sync")
        with open(replica / "postgresql.conf", "a") as conf:
            conf.write(self._settings(self.replica_port) + "hot_standby = on\n")
        self._pg_ctl(replica, "start")
        return self

    def _settings(self, port: int) -> str:
        return (f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.folder}'\n"
                "fsync = off\nmax_connections = 60\nshared_buffers = 32MB\n")

    def _pg_ctl(self, data: Path, action: str) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(data.parent / f"{data.name}.log"),
                          "-w", "-t", "60", action, *(("-m", "fast") if action == "stop" else ()))
        if action == "start":
            self._started.append(data)

    def pause_replay(self) -> None:
        """Hold the replica behind the primary, as a lagging replica is."""
        self.sql(self.replica_port, "SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.sql(self.replica_port, "SELECT pg_wal_replay_resume()")

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        target = self.sql(self.primary_port, "SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            behind = self.sql(self.replica_port, f"SELECT pg_wal_lsn_diff('{target}', pg_last_wal_replay_lsn()) > 0")
            if behind == "f":
                return
            time.sleep(0.05)
        raise TimeoutError(f"the replica did not replay up to {target} within {timeout} s")

    def sql(self, port: int, statement: str, database: str = "okrsnap") -> str:
        return self._as_postgres(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                 "-d", database, "-Atc", statement).stdout.strip()

    def stop(self) -> None:
        for data in reversed(self._started):
            try:
                self._pg_ctl(data, "stop")
            except (RuntimeError, subprocess.SubprocessError):
                pass
        self._started.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
