"""The README's API tour runs as pasted, against a running okrsnap (only its address differs)."""
from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.e2e.test_end_to_end import embedded_okrsnap  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_API = "API=http://127.0.0.1:8080/api/v1"


def tour() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## A short API tour"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)[1]
    assert block.startswith(DEFAULT_API + "\n"), "the tour starts by naming the API's address"
    return block


def test_the_readme_tour_runs_as_pasted(embedded_okrsnap, tmp_path):  # noqa: F811 - the fixture
    app = embedded_okrsnap
    app.up()
    script = tour().replace(DEFAULT_API, f"API={app.url}", 1)

    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)

    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert '"status": "on_track"' in done.stdout.replace('"status":"on_track"', '"status": "on_track"')
    assert zipfile.is_zipfile(tmp_path / "week.xlsx")  # an XLSX is a ZIP: the whole file arrived
