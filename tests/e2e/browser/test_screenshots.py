"""The README's screenshots, written from the running stack (docs/screenshots/*.png), and the
script that takes them from any running instance."""
from __future__ import annotations

import importlib.util
import os
import re
import struct
import subprocess
import sys

import pytest

from services.demo import LATE_AMENDMENT, WEEKS_OF_HISTORY
from tests.e2e.browser.conftest import CHROMIUM, DEMO_EMAIL, DEMO_PASSWORD, ROOT, new_context, poll, sign_in

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


def _demo_settled(stack) -> None:
    """The demo's events applied: its ended weeks sealed (the one just ended may wait for the seal
    grace) and its late amendment counted in a later week."""
    demo = stack.api(DEMO_EMAIL, DEMO_PASSWORD)
    workspace_id = demo.user["workspaces"][0]["id"]
    [session] = [s for s in demo.get(f"/workspaces/{workspace_id}/sessions") if re.fullmatch(r"Q[1-4] \d{4}", s["name"])]
    late_comment = LATE_AMENDMENT[-1]

    def settled():
        calendar = demo.call("GET", f"/sessions/{session['id']}/snapshots", expect=(200, 404))
        weeks = [w for m in calendar.get("months", []) for w in m["weeks"]]
        statuses = [w["status"] for w in weeks]
        if "current" not in statuses or statuses.count("sealed") < WEEKS_OF_HISTORY - 2:
            return False
        current = statuses.index("current")
        recent = [demo.get(f"/sessions/{session['id']}/snapshots/{w['week']}") for w in weeks[current - 1:current + 1]]
        return any(c["comment"] == late_comment for view in recent for c in view["check_ins"])

    poll(settled, timeout=90, interval=0.5, message="the demo's weeks sealed and its late amendment applied")


def test_screenshots_for_the_readme(browser, stack, tmp_path):
    """`make screenshots` writes them into docs/screenshots (OKRSNAP_WRITE_SCREENSHOTS=1); a plain
    test run checks them in a temporary folder and leaves the committed ones alone. The test needs
    no `world`: run alone (as `make screenshots` does) it shows the demo exactly as seeded, before
    the other tests add their own people and items."""
    _demo_settled(stack)
    script = _script()
    out = ROOT / "docs" / "screenshots" if os.environ.get("OKRSNAP_WRITE_SCREENSHOTS") == "1" else tmp_path
    context = new_context(browser, stack.web)
    try:
        page = context.new_page()
        sign_in(page, DEMO_EMAIL, DEMO_PASSWORD)
        written = script.capture(page, out)
    finally:
        context.close()
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
