#!/usr/bin/env python3
"""Full-page screenshots of a running okrsnap for the README: the Snapshot view (the newest active
Session, its live week, owner filter All), Compare (start → end) and the Session's Tree, at a
1280-px-wide viewport, driven through the pages as a person would.

    python scripts/screenshots.py --url http://127.0.0.1:8080 \\
        --email demo@okrsnap.local --password okrsnap-demo-2026 --out docs/screenshots

Uses Debian's Chromium (/usr/bin/chromium, or --chromium PATH); never downloads a browser."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
NAMES = ("snapshot.png", "tree.png", "compare.png")


def sign_in(page, email: str, password: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    if page.locator("#password").count():
        raise SystemExit(f"could not sign in as {email}")


def capture(page, out: Path) -> list[Path]:
    """From a signed-in page: / opens the newest active Session's Snapshot (its live week)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def shoot(name: str) -> None:
        page.wait_for_load_state("networkidle")
        path = out / name
        page.screenshot(path=str(path), full_page=True)
        written.append(path)

    page.goto("/")
    page.wait_for_url("**/snapshot**")
    page.locator("[data-week-state]").wait_for()
    if page.locator("#owner").input_value() != "all":
        page.select_option("#owner", "all")
        page.wait_for_url(lambda url: "owner=" not in url or "owner=all" in url)
    shoot("snapshot.png")

    tabs = page.get_by_role("navigation", name="Session views")
    tabs.get_by_role("link", name="Tree", exact=True).click()
    page.locator("#tree").wait_for()
    shoot("tree.png")

    tabs.get_by_role("link", name="Compare", exact=True).click()
    page.get_by_role("link", name="start → end").click()
    page.locator("#comparison").wait_for()
    shoot("compare.png")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the gateway's web root, e.g. http://127.0.0.1:8080")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        parser.error(f"{args.chromium} is missing: install Chromium (no browser is downloaded)")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=args.url.rstrip("/"), viewport=VIEWPORT)
            context.set_default_timeout(20_000)
            page = context.new_page()
            sign_in(page, args.email, args.password)
            for path in capture(page, args.out):
                print(path)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
