"""Request to file ready for an export of 100,000 rows, against raw SQL + csv.writer (and raw SQL +
XlsxWriter) reading the same rows from PostgreSQL, in the same run, interleaved.

    .venv/bin/python scripts/measure_export.py [--objectives 10000] [--repeat 3] [--formats csv,xlsx]

The okrsnap side runs the export worker's handler (build_export: claim check, the week view over
HTTP with the real SnapshotClient, the people over HTTP with the real GatewayIdentities, the
document, the file through ExportFiles with its fsync and rename, the job settled). The snapshot
service and the gateway are stood in for by a server in another process that answers the week view
as the snapshot service's own schema dumps it (bench.export's synthetic sealed week: 10,000
Objectives, 100,000 item rows, 30,000 Check-ins) and the people: what is measured is the export
worker, not how fast the snapshot service reads the week. The raw side reads the same flattened
rows (items and Check-ins, every cell as text) with psycopg and writes them with csv.writer (or
XlsxWriter in constant memory). Each side runs in a fresh process; wall time is from the request
to the file being in place, CPU is the child's own (os.wait4), peak RSS its VmHWM.
Needs PostgreSQL (OKRSNAP_TEST_DATABASE_URL or the local server); it creates and drops its own
database.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_URL = os.environ.get("OKRSNAP_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "okrsnap_measure_export"
SECRET = "measure-export-internal-secret-0123456789"


def _database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


# -- set up: the week view bytes and the same rows in PostgreSQL --------------------------------

def prepare(folder: Path, objectives: int) -> dict:
    import psycopg

    from bench.export import week_view
    from services.export.domain import document
    from services.export.domain.document import CHECK_IN_COLUMNS, ITEM_COLUMNS
    from services.snapshot.entrypoints.schemas import WeekView

    view, names = week_view(objectives)
    _uuid_ids(view)
    body = json.dumps(WeekView().dump(view), separators=(",", ":")).encode()
    (folder / "view.json").write_bytes(body)
    people = [{"id": k, "name": p.name, "email": p.email} for k, p in names.items()]
    (folder / "people.json").write_text(json.dumps(people))
    # The raw side's rows: what the file holds, flattened to text once here.
    doc = document.build(view, people=names, workspace_name="Bench", generated_at=datetime.now(timezone.utc),
                         generated_by=None, version="measure")
    items = [[_text(row[k]) for k, _ in ITEM_COLUMNS] for row in doc.items]
    check_ins = [[_text(row[k]) for k, _ in CHECK_IN_COLUMNS] for row in doc.check_ins]
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(_database_url(DATABASE)) as conn:
        for table, columns, rows in (("items", ITEM_COLUMNS, items), ("check_ins", CHECK_IN_COLUMNS, check_ins)):
            conn.execute(f"CREATE TABLE {table} (n serial primary key, "
                         + ", ".join(f"{k} text" for k, _ in columns) + ")")
            with conn.cursor().copy(f"COPY {table} ({', '.join(k for k, _ in columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.execute("ANALYZE")
    return {"items": len(items), "check_ins": len(check_ins), "view_bytes": len(body)}


def _uuid_ids(view: dict) -> None:
    """The snapshot service's Key Result and Check-in ids are UUIDs (bench.export names them kr-1-2)."""
    ids: dict = {}
    for objective in view["objectives"]:
        for kr in objective["key_results"]:
            kr["id"] = ids.setdefault(kr["id"], str(uuid.uuid5(uuid.NAMESPACE_URL, kr["id"])))
    for check_in in view["check_ins"]:
        check_in["key_result_id"] = ids[check_in["key_result_id"]]


def _text(value):
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def drop_database() -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")


# -- the stand-in snapshot service and gateway (own process) ------------------------------------

def serve(folder: Path, port_file: Path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    view = (folder / "view.json").read_bytes()
    people = json.loads((folder / "people.json").read_text())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            if "/snapshots/" in self.path:
                body = view
            elif self.path.startswith("/internal/users/"):
                workspace = self.path.split("/")[3]
                body = json.dumps({"workspaces": {workspace: "owner"}, "without_okr_access": []}).encode()
            elif "/people" in self.path:
                body = json.dumps({"workspace": {"name": "Bench"}, "people": people}).encode()
            else:
                body = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


# -- one measured run (own process) -------------------------------------------------------------

def run_okrsnap(fmt: str, url: str, out_dir: Path) -> dict:
    from services.export.adapters.files import ExportFiles
    from services.export.adapters.identity import GatewayIdentities
    from services.export.adapters.snapshot_client import SnapshotClient
    from services.export.domain.model import ExportJob, new_id
    from services.export.service_layer import handlers
    from shared.clock import SystemClock
    from shared.tokens import Principal

    workspace, session, requester = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    principal = Principal(str(requester), {str(workspace): "owner"})
    clock = SystemClock()
    job = ExportJob(new_id(), workspace, session, "2026-W48", "all", fmt, requester,
                    principal_claims={**principal.to_claims(), "sub": str(requester)}, created_at=clock.now())
    claim = job.claim(clock.now())
    uow = _MemoryUnitOfWork(job)
    files = ExportFiles(out_dir)
    started, cpu = time.perf_counter(), time.process_time()
    handlers.build_export(claim, uow=uow, clock=clock, snapshots=SnapshotClient(url, SECRET),
                          files=files, identities=GatewayIdentities(url, SECRET))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    settled = uow.job
    assert settled.status == "done", (settled.status, settled.error)
    return {"wall": wall, "cpu": cpu, "rows": settled.row_count,
            "bytes": files.path(settled.file_name).stat().st_size}


class _MemoryUnitOfWork:
    """The job's one row, in memory: the build's own database work is a few short transactions."""

    def __init__(self, job):
        self.job, self.repo = job, self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def commit(self):
        pass

    def get(self, job_id, for_update=False):
        return self.job

    def save(self, job):
        self.job = job


def run_raw(fmt: str, out_dir: Path) -> dict:
    import csv

    import psycopg
    import xlsxwriter

    from services.export.domain.document import CHECK_IN_COLUMNS, ITEM_COLUMNS

    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    with psycopg.connect(_database_url(DATABASE)) as conn:
        tables = (("items", ITEM_COLUMNS), ("check_ins", CHECK_IN_COLUMNS))
        if fmt == "csv":
            for table, columns in tables:
                with open(out_dir / f"raw-{table}.csv", "w", newline="", encoding="utf-8") as out:
                    writer = csv.writer(out)
                    writer.writerow([h for _, h in columns])
                    cursor = conn.cursor(name=f"read_{table}")  # server side: bounded memory
                    cursor.execute(f"SELECT {', '.join(k for k, _ in columns)} FROM {table} ORDER BY n")
                    for chunk in iter(lambda: cursor.fetchmany(2000), []):
                        writer.writerows(chunk)
                        rows += len(chunk)
                    cursor.close()
        else:
            workbook = xlsxwriter.Workbook(str(out_dir / "raw.xlsx"), {"constant_memory": True})
            for table, columns in tables:
                sheet = workbook.add_worksheet(table)
                sheet.write_row(0, 0, [h for _, h in columns])
                cursor = conn.cursor(name=f"read_{table}")
                cursor.execute(f"SELECT {', '.join(k for k, _ in columns)} FROM {table} ORDER BY n")
                for chunk in iter(lambda: cursor.fetchmany(2000), []):
                    for row in chunk:
                        rows += 1
                        sheet.write_row(rows, 0, row)
                cursor.close()
            workbook.close()
    return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu, "rows": rows}


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's over the
    fork and exec, and the parent holds the whole prepared week)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, fmt: str, url: str, out_dir: Path) -> dict:
    """Runs one side in a fresh process; adds its whole CPU (os.wait4)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, "--format", fmt, "--url", url,
                             "--out", str(out_dir)], stdout=subprocess.PIPE, cwd=ROOT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{kind} {fmt} failed ({proc.returncode})")
    result = json.loads(output)
    result["process_cpu"] = usage.ru_utime + usage.ru_stime
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objectives", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--child")
    parser.add_argument("--format")
    parser.add_argument("--url")
    parser.add_argument("--out")
    parser.add_argument("--serve")
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve), Path(args.out))
        return
    if args.child:
        out = Path(args.out)
        result = run_raw(args.format, out) if args.child == "raw" else run_okrsnap(args.format, args.url, out)
        result["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sizes = prepare(folder, args.objectives)
        port_file = folder / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(folder), "--out", str(port_file)],
                                  cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while not (port_file.exists() and port_file.read_text()):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the stand-in server did not start")
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port_file.read_text()}"
            runs: dict = {}
            for _ in range(args.repeat):  # interleaved: each side sees the same machine
                for fmt in args.formats.split(","):
                    for kind in ("raw", "okrsnap"):
                        runs.setdefault((kind, fmt), []).append(child(kind, fmt, url, folder))
        finally:
            server.terminate()
            server.wait()
            drop_database()
    print(f"{sizes['items']:,} item rows, {sizes['check_ins']:,} Check-ins, week view {sizes['view_bytes'] / 1e6:.1f} MB;"
          f" medians of {args.repeat} interleaved runs, each in a fresh process")
    print("| format | side | request to file ready | CPU (build) | CPU (process) | peak RSS |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for fmt in args.formats.split(","):
        medians = {}
        for kind in ("raw", "okrsnap"):
            found = runs[(kind, fmt)]
            medians[kind] = {key: statistics.median(r[key] for r in found)
                             for key in ("wall", "cpu", "process_cpu", "peak_rss_mb")}
            m = medians[kind]
            print(f"| {fmt} | {kind} | {m['wall']:.2f} s | {m['cpu']:.2f} s | {m['process_cpu']:.2f} s "
                  f"| {m['peak_rss_mb']:.0f} MB |")
        print(f"| {fmt} | ratio | {medians['okrsnap']['wall'] / medians['raw']['wall']:.2f}x "
              f"| {medians['okrsnap']['cpu'] / medians['raw']['cpu']:.2f}x "
              f"| {medians['okrsnap']['process_cpu'] / medians['raw']['process_cpu']:.2f}x | |")


if __name__ == "__main__":
    main()
