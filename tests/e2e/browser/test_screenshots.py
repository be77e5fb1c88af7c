"""The README's screenshots, written from the running stack (docs/screenshots/*.png), and the
script that takes them from any running instance."""
from __future__ import annotations

import importlib.util
import os
import struct
import subprocess
import sys

import pytest

from tests.e2e.browser.conftest import CHROMIUM, DEMO_EMAIL, DEMO_PASSWORD, ROOT

pytestmark = pytest.mark.e2e
SCRIPT = ROOT / "scripts" / "screenshots.py"


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def _script():
    spec = importlib.util.spec_from_file_location("okrsnap_screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_screenshots_for_the_readme(demo_page, world, tmp_path):
    """`make screenshots` writes them into docs/screenshots (OKRSNAP_WRITE_SCREENSHOTS=1); a plain
    test run checks them in a temporary folder and leaves the committed ones alone."""
    script = _script()
    out = ROOT / "docs" / "screenshots" if os.environ.get("OKRSNAP_WRITE_SCREENSHOTS") == "1" else tmp_path
    written = script.capture(demo_page, out)
    assert [p.name for p in written] == list(script.NAMES)
    for path in written:
        width, height = _png_size(path)
        assert width == 1280 and height >= 600, (path, width, height)


def test_the_screenshot_script_runs_against_an_instance(stack, world, tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--url", stack.web, "--email", DEMO_EMAIL,
                           "--password", DEMO_PASSWORD, "--out", str(tmp_path), "--chromium", CHROMIUM],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for name in ("snapshot.png", "compare.png", "tree.png"):
        assert _png_size(tmp_path / name)[0] == 1280
