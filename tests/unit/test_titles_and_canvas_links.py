"""Titles and canvas links people read (issue 11): bidi overrides, invisible-only titles, and
canvas URLs with quotes, angle brackets, credentials or look-alike hosts are refused with a 422
naming the field; what is kept is normalised. Through the check-in service's HTTP API."""
import pytest

from services.checkin.domain.text import TextRefused, clean_canvas_url, clean_title
from tests.conftest import make_settings
from tests.hostile_input import CheckinClient, assert_refused


@pytest.fixture
def checkin(tmp_path):
    c = CheckinClient(make_settings(tmp_path))
    yield c
    c.close()


@pytest.mark.parametrize("title", ["\u202egnp.exe", "Grow\u2066 revenue", "\u200b\u200b", "\u3164", " \u00a0 ",
                                   "two\nlines", "bell\x07"])
def test_titles_with_bidi_controls_control_characters_or_nothing_visible_are_refused(checkin, title):
    assert_refused(checkin.post_objective({"title": title}), 422, "title")
    assert checkin.objectives() == 0


def test_titles_are_stored_normalised(checkin):
    created = checkin.post_objective({"title": "  Cafe\u0301 \U0001F44D\u200d  "})
    assert created.status_code == 201 and created.json["title"] == "Caf\u00e9 \U0001F44D\u200d"


@pytest.mark.parametrize("url", [
    'https://docs.example.com/a"onmouseover="x', "https://docs.example.com/<script>", "https://docs.example.com/a\\b",
    "https://user:secret@docs.example.com/plan", "https://admin@docs.example.com/plan",
    "https://xn--pple-43d.com/plan",  # "аpple" with a Cyrillic а
    "https://docs.example.com/\u202eplan",
])
def test_canvas_links_that_could_mislead_or_break_out_are_refused(checkin, url):
    response = checkin.client.post(f"/sessions/{checkin.session}/initiatives", headers=checkin.headers,
                                   json={"title": "Launch", "canvas": {"title": "Plan", "url": url}})
    assert_refused(response, 422, "canvas.url")


def test_canvas_titles_follow_the_title_rules_and_links_are_normalised(checkin):
    url = f"/sessions/{checkin.session}/initiatives"
    assert_refused(checkin.client.post(url, headers=checkin.headers, json={
        "title": "Launch", "canvas": {"title": "\u202eecnanif", "url": "https://x.example/"}}), 422, "canvas.title")
    created = checkin.client.post(url, headers=checkin.headers, json={
        "title": "Launch", "canvas": {"title": "Plan", "url": "HTTPS://Docs.Example.COM:8443/Plan?a=1"}})
    assert created.status_code == 201, created.json
    assert created.json["canvas"]["url"] == "https://docs.example.com:8443/Plan?a=1"


def test_scripts_that_belong_together_stay_allowed():
    assert clean_canvas_url("https://xn--wgv71a119e.jp/") == "https://xn--wgv71a119e.jp/"  # 日本語 (Han)
    assert clean_canvas_url("https://xn--bcher-kva.de/x") == "https://xn--bcher-kva.de/x"  # bücher (Latin)
    assert clean_title("Ship v2 \u2014 \u65e5\u672c") == "Ship v2 \u2014 \u65e5\u672c"
    with pytest.raises(TextRefused):
        clean_canvas_url("javascript:alert(1)")
