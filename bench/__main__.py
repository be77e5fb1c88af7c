"""`python -m bench` (or `make bench`): runs every benchmark and rewrites BENCHMARKS.md."""
import os
import platform
import time
from pathlib import Path

from bench import export, footprint, pipeline, snapshots, web

HEADER = f"""# Benchmarks

Measured by `make bench` (`python -m bench`), on {platform.machine()} with {os.cpu_count()} cores,
{time.strftime('%Y-%m-%d')}, against PostgreSQL and RabbitMQ on the same machine. Ratios are
against a raw baseline run in the same process (raw kombu on the same broker, raw SQL on the same
rows); absolute figures vary with the machine, the ratios much less.
"""

if __name__ == "__main__":
    report = "\n".join([HEADER, pipeline.run(), snapshots.report(snapshots.run()), web.report(web.run()),
                        export.report(export.run()), footprint.section(footprint.measure())])
    (Path(__file__).resolve().parent.parent / "BENCHMARKS.md").write_text(report)
    print(report)
