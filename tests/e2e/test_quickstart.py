"""The README's quick start from a fresh clone: `make run` in a new virtual environment reaches a
working demo sign-in, and Ctrl-C stops it (scripts/quickstart.py, which prints the time it took;
`--write` puts it in BENCHMARKS.md)."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parent.parent.parent / "scripts" / "quickstart.py"


def test_a_fresh_clone_signs_in_after_make_run(capsys):
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.fail("the quick start needs make and git on PATH")
    spec = importlib.util.spec_from_file_location("okrsnap_quickstart", SCRIPT)
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)

    result = quickstart.run(timeout=600)

    with capsys.disabled():
        print("\n" + quickstart.report(result))
    output = result["output"]
    assert "[setup] creating the virtual environment" in output and "[setup] installed in" in output
    assert "[5/5] Waiting for the services to answer ... done" in output
    assert "okrsnap is up" in output and "Stopping okrsnap ... stopped." in output
    assert '"GET /healthz"' not in output  # request logs stay in var/logs
