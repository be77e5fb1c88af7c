"""The weekly review as a person does it in the browser: sign in, move between weeks, filter by
owner, a week without a Snapshot, a Check-in, compare and trend, export."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.browser.conftest import DEMO_EMAIL, DEMO_PASSWORD, MEMBER_NAME, poll, week_of
from tests.export_files import read_csv_zip

pytestmark = pytest.mark.e2e


def test_sign_in_through_the_form_leads_to_the_demo_snapshot(open_page, world):
    page = open_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))

    page.fill("#email", DEMO_EMAIL)
    page.fill("#password", "not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Email or password is wrong")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("#email")).to_have_value(DEMO_EMAIL)

    page.fill("#password", DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(rf"/sessions/{world.session_id}/snapshot"))
    expect(page.locator("[data-week-state=live]")).to_be_visible()
    # How recent the reading is (a replica may lag): the newest change the view reflects.
    expect(page.locator("[data-week-state=live] .applied-through")).to_contain_text("Shown up to the change of")
    expect(page.locator(".weeks a.week[aria-current=page]")).to_contain_text(world.current_week)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def _calendar(world, session_id=None) -> list[dict]:
    return world.demo_api.get(f"/sessions/{session_id or world.session_id}/snapshots")["months"]


SAVED = ("sealed", "past", "current")


def test_month_week_and_keyboard_controls_move_between_weeks(demo_page, world):
    page = demo_page
    months = _calendar(world)
    weeks = [w for m in months for w in m["weeks"]]
    labels = [w["week"] for w in weeks]
    page.goto(world.snapshot())
    expect(page.locator(".weeks a.week[aria-current=page]")).to_contain_text(world.current_week)

    # The month control opens the month's live week, else its last saved week, else its first.
    index = 1 if len(months) > 2 else 0
    month = months[index]
    saved = [w for w in month["weeks"] if w["status"] in SAVED]
    live = [w for w in month["weeks"] if w["status"] == "current"]
    target = (live or saved[-1:] or month["weeks"][:1])[0]["week"]
    page.locator(".months a").nth(index).click()
    expect(page).to_have_url(re.compile(rf"week={target}"))
    expect(page.locator(".months a").nth(index)).to_have_attribute("aria-current", "true")
    expect(page.locator(".weeks a.week[aria-current=page]")).to_contain_text(target)
    expect(page.locator(".weeks a.week")).to_have_count(len(month["weeks"]))

    # A week control of that month: a sealed week other than the one shown.
    sealed = [w["week"] for w in month["weeks"] if w["status"] == "sealed" and w["week"] != target
              and labels.index(w["week"]) > 0]
    assert sealed, f"no other sealed week in {month['month']}: {month['weeks']}"
    chosen = sealed[0]
    page.locator(".weeks a.week", has_text=chosen).click()
    expect(page).to_have_url(re.compile(rf"week={chosen}"))
    expect(page.locator(".weeks a.week[aria-current=page]")).to_contain_text(chosen)

    # The keyboard: ← is the previous week, → the next one.
    previous = labels[labels.index(chosen) - 1]
    page.locator("h1").click()  # focus on the page, not on a control
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(re.compile(rf"week={previous}"))
    expect(page.locator(".weeks a.week[aria-current=page]")).to_contain_text(previous)
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(re.compile(rf"week={chosen}"))

    # A sealed week is read-only: its seal, the verification, no Check-in form.
    seal = world.demo_api.get(f"/sessions/{world.session_id}/snapshots/{chosen}")["seal"]
    state = page.locator("[data-week-state]")
    expect(state).to_have_attribute("data-week-state", "sealed")
    expect(state.locator("code").first).to_have_text(seal["content_hash"][:12])
    expect(page.locator("#verify-result [data-verified]")).to_have_attribute("data-verified", "true")
    expect(page.locator("#hierarchy article.kr").first).to_be_visible()
    expect(page.locator("details.check-in-form")).to_have_count(0)
    expect(page.locator("form[action*='/check-ins']")).to_have_count(0)


def test_owner_filter_shows_the_members_key_results_with_their_context(demo_page, world):
    page = demo_page
    page.goto(world.snapshot())
    page.select_option("#owner", label=MEMBER_NAME)  # submits by itself (data-autosubmit)
    expect(page).to_have_url(re.compile(rf"owner={world.member_id}"))
    expect(page.locator("#owner")).to_have_value(world.member_id)

    expect(page.locator("article.kr h3 a")).to_have_text([world.member_kr])
    hierarchy = page.locator("#hierarchy")
    for title in ("Net promoter score", "Median first reply time", "Annual recurring revenue"):
        expect(hierarchy).not_to_contain_text(title)
    parent = page.locator("details.objective", has_text=world.member_objective)
    expect(parent).to_have_count(1)
    expect(parent).to_have_class(re.compile(r"\bcontext\b"))
    expect(parent.locator("summary .badge-context")).to_be_visible()
    # The week controls keep the filter.
    expect(page.locator(".weeks a.week").first).to_have_attribute("href", re.compile(rf"owner={world.member_id}"))


def test_a_week_without_a_snapshot_points_to_the_nearest_saved_weeks(demo_page, world):
    page = demo_page
    weeks = [w for m in _calendar(world, world.import_session_id) for w in m["weeks"]]
    empty = world.empty_weeks[0]
    index = [w["week"] for w in weeks].index(empty)
    before = [w["week"] for w in weeks[:index] if w["status"] in SAVED]
    after = [w["week"] for w in weeks[index + 1:] if w["status"] in SAVED]
    assert after, weeks

    page.goto(world.snapshot(empty, session_id=world.import_session_id))
    box = page.locator("#no-snapshot")
    expect(box).to_be_visible()
    expect(box.get_by_role("heading")).to_contain_text(empty)
    expect(page.locator("details.objective")).to_have_count(0)
    if before:
        expect(box.get_by_role("link", name=re.compile("before"))).to_have_attribute(
            "href", re.compile(rf"week={before[-1]}"))
    box.get_by_role("link", name=re.compile("after")).click()
    expect(page).to_have_url(re.compile(rf"week={after[0]}"))
    expect(page.locator("#no-snapshot")).to_have_count(0)
    expect(page.locator("[data-week-state]")).to_have_attribute("data-week-state", re.compile("sealed|past|live"))
    expect(page.locator("#hierarchy article.kr").first).to_be_visible()


def test_a_check_in_through_the_form_appears_in_the_snapshot(demo_page, world):
    page = demo_page
    kr_id = world.key_results["Net promoter score"]
    comment = "Survey after the release: promoters up"
    page.goto(world.snapshot())
    article = page.locator(f"article#kr-{kr_id}")
    form = article.locator("details.check-in-form")
    form.locator("summary").click()
    form.get_by_label(re.compile(r"^Value")).fill("42")
    form.get_by_label("Comment").fill(comment)
    form.get_by_role("button", name="Save Check-in").click()
    expect(page).to_have_url(re.compile(r"done=checked_in"))
    after_redirect = urlsplit(page.url)
    notice = page.get_by_role("status").filter(has_text="Check-in saved").count()

    def shown():  # the pipeline is asynchronous: reload until the Snapshot has it
        page.reload()
        value = article.locator(".kr-value strong").inner_text()
        return value == "42 pts" and article.locator("q.comment", has_text=comment).count() == 1

    poll(shown, timeout=30, interval=0.5, message="the Check-in in the live week's Snapshot")
    expect(page.locator("[data-week-state]")).to_have_attribute("data-week-state", "live")
    # Back on the same week, at the Key Result, with the confirmation.
    assert week_of("?" + after_redirect.query) == world.current_week, after_redirect
    assert "done=checked_in" in after_redirect.query and after_redirect.fragment == f"kr-{kr_id}", (
        f"the redirect after a Check-in puts done=checked_in into the fragment: {after_redirect.geturl()}")
    assert notice == 1, "no 'Check-in saved' notice after the redirect"


def test_compare_start_to_end(demo_page, world):
    page = demo_page
    page.goto(world.snapshot())
    tabs = page.get_by_role("navigation", name="Session views")
    tabs.get_by_role("link", name="Compare", exact=True).click()
    expect(page.locator("h1"), "the Compare page renders (not an error page)").to_have_text("Compare two weeks")
    page.get_by_role("link", name="start → end").click()
    saved = [w["week"] for m in _calendar(world) for w in m["weeks"] if w["status"] in SAVED]
    expect(page).to_have_url(re.compile(rf"from={saved[0]}&to={saved[-1]}"))
    table = page.locator("#comparison")
    expect(table).to_be_visible()
    titles = table.locator("tbody th[scope=row]").all_inner_texts()
    demo = {"Net promoter score", "Median first reply time", "Annual recurring revenue",
            "Enterprise pilots signed", "Teams reviewing weekly"}
    assert demo <= set(titles), titles
    for title in demo:  # in both weeks: a signed change in points
        change = table.locator("tbody tr", has_text=title).locator(".delta-points").inner_text()
        assert re.fullmatch(r"[+−±]\d+(\.\d)? pts", change), (title, change)
    new_row = table.locator("tbody tr", has_text=world.member_kr)  # created in the last week: marked new
    expect(new_row.locator(".badge-new")).to_be_visible()
    row = table.locator("tbody tr", has_text="Net promoter score")
    expect(row.locator(".delta-points")).to_have_class(re.compile(r"\bup\b"))


def test_trend_draws_charts_with_names_and_data_tables(demo_page, world):
    page = demo_page
    saved = [w["week"] for m in _calendar(world) for w in m["weeks"] if w["status"] in SAVED]
    page.goto(world.snapshot())
    page.get_by_role("navigation", name="Session views").get_by_role("link", name="Trend", exact=True).click()
    expect(page).to_have_url(re.compile(r"/trend$"))
    chart = page.locator(".chart svg").first
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("role", "img")
    expect(chart).to_have_accessible_name(re.compile(r"Progress of \S"))
    expect(page.get_by_role("img", name=re.compile("Progress of Delight our customers"))).to_be_visible()
    card = page.locator("section.chart").first
    card.get_by_text("Data table").click()
    table = card.locator("table")
    expect(table).to_be_visible()
    expect(table.locator("tbody th[scope=row]").first).to_have_text(saved[0])
    assert table.locator("tbody tr").count() >= len(saved) - 1


def test_export_of_the_filtered_week_holds_what_the_page_shows(demo_page, world, stack):
    import os
    import signal

    page = demo_page
    page.goto(world.snapshot())
    page.select_option("#owner", label=MEMBER_NAME)
    expect(page).to_have_url(re.compile(rf"owner={world.member_id}"))
    on_screen = page.locator("article.kr h3 a").all_inner_texts()
    assert on_screen == [world.member_kr]

    # The export worker is paused while the page opens, so the page shows the job waiting and must
    # update by itself (no reload) once the worker runs again.
    worker = stack.child_pid("services.export.entrypoints.worker")
    os.kill(worker, signal.SIGSTOP)
    navigations: list[str] = []
    try:
        page.select_option("#format", "csv")  # the ZIP of CSV tables, read back below
        page.locator("#export").get_by_role("button", name=re.compile(r"^Export ")).click()
        expect(page).to_have_url(re.compile(r"/exports/[0-9a-f-]{36}$"))
        status = page.locator("#export-status [data-job-status]")
        expect(status).to_have_attribute("data-job-status", re.compile(r"^(queued|running)$"))
        expect(page.locator("#download-link")).to_have_count(0)
        page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    finally:
        os.kill(worker, signal.SIGCONT)
    expect(status).to_have_attribute("data-job-status", "done", timeout=30_000)
    assert navigations == [], f"the page reloaded instead of updating in place: {navigations}"
    expect(page.locator("#export-status")).to_contain_text(MEMBER_NAME)
    expect(page.locator("#export-status .warning")).to_contain_text("strategy and owner context")

    link = page.locator("#download-link")
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    exported = read_csv_zip(open(download.path(), "rb").read())
    rows = [r for r in exported["items"] if r["kind"] == "Key Result"]
    assert sorted(r["title"] for r in rows) == sorted(on_screen), exported
    assert exported["metadata"]["Week"] == world.current_week, exported
    assert exported["metadata"]["Owner filter"].startswith(MEMBER_NAME), exported


def test_an_export_can_be_cancelled_and_every_export_is_listed(demo_page, world, stack):
    import os
    import signal

    page = demo_page
    worker = stack.child_pid("services.export.entrypoints.worker")
    os.kill(worker, signal.SIGSTOP)  # the job waits, so there is something to cancel
    try:
        page.goto(world.snapshot())
        page.select_option("#format", "json")
        page.locator("#export").get_by_role("button", name=re.compile(r"^Export ")).click()
        expect(page).to_have_url(re.compile(r"/exports/[0-9a-f-]{36}$"))
        job_url = page.url
        page.get_by_role("button", name="Cancel this export").click()
        expect(page.get_by_role("status")).to_have_text("The export is cancelled.")
        expect(page.locator("#export-status [data-job-status]")).to_have_attribute("data-job-status", "cancelled")
        expect(page.get_by_role("button", name="Cancel this export")).to_have_count(0)
    finally:
        os.kill(worker, signal.SIGCONT)

    page.get_by_role("link", name="Exports", exact=True).click()
    expect(page.get_by_role("heading", name="Your exports")).to_be_visible()
    newest = page.locator("table.exports tbody tr").first
    expect(newest).to_have_attribute("data-job-status", "cancelled")
    expect(newest).to_contain_text("JSON")
    expect(newest).to_contain_text(world.current_week)
    newest.get_by_role("link").click()
    expect(page).to_have_url(job_url)
