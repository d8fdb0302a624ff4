"""The agent's and the reviewer's work in headless Chromium (Debian's, through Playwright) against a real
`leadmatch serve`: 20 candidates reviewed at a glance at 1400×900, the compare view, dispositions recorded in
place, refused forms that keep their fields, confirmations that name the candidate, each role's home queue and
the case view; and the same page at 900 px. Screenshots are saved under test-artifacts/ (the README's come from
there)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from leadmatch.errors import Refused
from leadmatch.gallery.enrollment import enroll
from leadmatch.governance import casework
from leadmatch.record.workspace import open_workspace
from leadmatch.search.run import run

from .helpers import AGENT, ANALYST, ARTIFACTS, AUDITOR, GALLERY, LABEL, PROBES_DIR, REVIEWER, ROOT, search_request, \
    sign_in

LFW = ROOT.parent / "shared" / "data" / "lfw-dev"
CANDIDATES = 20
NOTE = "Compared face shape, eyes, nose and ears with the probe."


@pytest.fixture
def wide_gallery(home: Path, tmp_path: Path) -> Path:
    """The sample gallery plus 20 people of lfw-dev (one photo each), so a search can list 20 candidates."""
    extra = tmp_path / "extra"
    people = sorted(p for p in LFW.iterdir() if p.is_dir())[:CANDIDATES]
    for person in people:
        shutil.copytree(person, extra / person.name)
    ws = open_workspace(home)
    report = enroll(ws, ANALYST, GALLERY, extra, workers=1)
    ws.close()
    assert report.enrolled >= CANDIDATES - 2, report  # a photo or two may be refused; the rest is enough
    return home


def new_search(page, url: str, probe: str = "obama-720p.jpg", case: str = "WEB-20") -> str:
    """Run a search from the form; the search page's URL."""
    page.goto(url + "/search/new")
    page.set_input_files("input[name=probe]", str(PROBES_DIR / probe))
    page.fill("input[name=case]", case)
    page.select_option("select[name=purpose]", "robbery")
    page.fill("textarea[name=justification]", "Suspect seen on the store camera during the robbery.")
    page.fill("textarea[name=traditional_means]", "Canvass, witness interviews and pawn records gave no name.")
    page.fill("input[name=top_k]", str(CANDIDATES))
    page.click("main button:has-text('Search')")
    page.wait_for_selector("#candidates")
    page.wait_for_load_state("networkidle")
    return page.url


def test_twenty_candidates_at_a_glance_compared_and_dispositioned_in_place(wide_gallery, server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = sign_in(browser, server, AGENT, 1400, 900)
    search_url = new_search(page, server)
    cards = page.locator("#candidates .card")
    assert cards.count() == CANDIDATES
    assert all(LABEL in cards.nth(i).inner_text() for i in range(CANDIDATES))
    # about two screens: the probe beside the grid, every chip at one size, all loaded
    page.screenshot(path=str(ARTIFACTS / "candidate-grid-full.png"), full_page=True)
    grid = page.locator("#candidates").bounding_box()
    assert grid["y"] + grid["height"] <= 2.1 * 900, grid  # the candidates end within about two screens
    sizes = page.eval_on_selector_all("#candidates img.chip", "i => i.map(x => [x.clientWidth, x.clientHeight, "
                                                              "x.complete && x.naturalWidth > 0])")
    assert len({(w, h) for w, h, _ in sizes}) == 1 and all(ok for *_, ok in sizes)
    page.mouse.wheel(0, 900)
    page.wait_for_timeout(200)
    assert page.locator("#probe-panel").bounding_box()["y"] >= 0  # the probe stays in view while scrolling
    page.evaluate("window.scrollTo(0, 0)")
    # nothing preselected: every decision starts empty
    assert set(page.eval_on_selector_all("select[name=decision]", "s => s.map(x => x.value)")) == {""}
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "candidate-grid.png"))

    # keyboard: move to the second card, open its compare view
    page.focus("#c1")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "c2"
    page.keyboard.press("c")
    page.wait_for_url("**/compare/2")
    page.wait_for_load_state("networkidle")
    zoomed = page.locator(".compare-view img[data-zoom]")
    assert zoomed.count() == 4
    page.keyboard.press("+")
    page.keyboard.press("+")
    transforms = zoomed.evaluate_all("i => i.map(x => x.style.transform)")
    assert len(set(transforms)) == 1 and "scale(1.5625)" in transforms[0]  # zoomed together
    pane = page.locator(".pane").first.bounding_box()
    page.mouse.move(pane["x"] + 200, pane["y"] + 200)
    page.mouse.down()
    page.mouse.move(pane["x"] + 150, pane["y"] + 160)
    page.mouse.up()
    moved = zoomed.evaluate_all("i => i.map(x => x.style.transform)")
    assert len(set(moved)) == 1 and moved[0] != transforms[0]  # and panned together
    page.fill("#wipe", "30")
    page.dispatch_event("#wipe", "input")
    assert "30%" in page.locator(".overlay-pane img.top").evaluate("x => x.style.clipPath")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "compare.png"))  # the wipe: probe on the left 30 %, candidate beyond
    page.select_option("#overlay-mode", "blend")
    assert page.locator(".overlay-pane img.top").evaluate("x => x.style.opacity") == "0.3"
    page.locator("h1").click()  # out of the overlay's controls, whose arrow keys are their own
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/compare/3")
    page.keyboard.press("Escape")
    page.wait_for_url(search_url + "#c3")

    # dispositions in place: no reload (a marker set on the page survives), the counter moves on
    page.wait_for_selector("#candidates")
    page.evaluate("window.__stayed = true")
    first = page.locator("#c1")
    first.locator("select[name=decision]").select_option("possible-lead")
    first.locator("input[name=note]").fill(NOTE)
    first.locator("button").click()
    expect(page.locator("#c1 .state")).to_contain_text("possible-lead")
    assert page.evaluate("window.__stayed") is True
    assert page.locator("#done").inner_text() == "1"
    assert page.evaluate("document.activeElement.id") == "c2"  # on to the next undecided candidate
    # a refused disposition keeps its choice and its note, says why in the page's words, marks the field
    second = page.locator("#c2")
    second.locator("select[name=decision]").select_option("excluded")
    second.locator("input[name=note]").fill("no")
    second.locator("button").click()
    page.wait_for_selector("#c2 .problem")
    second = page.locator("#c2")
    assert "the note is empty or too short" in second.locator(".problem").inner_text()
    assert "--note" not in page.locator("main").inner_text()
    assert second.locator("select[name=decision]").input_value() == "excluded"
    assert second.locator("input[name=note]").get_attribute("aria-invalid") == "true"
    assert page.evaluate("window.__stayed") is True
    # the rest, by keyboard only: D focuses the decision, type the note, Enter records it
    for rank in range(2, CANDIDATES + 1):
        page.focus(f"#c{rank}")
        page.keyboard.press("d")
        page.keyboard.press("ArrowDown")  # the first choice after the empty "decide…": possible-lead
        page.keyboard.press("ArrowDown")  # excluded
        page.keyboard.press("Tab")
        page.keyboard.insert_text(NOTE)
        page.keyboard.press("Enter")
        expect(page.locator(f"#c{rank} .state")).to_contain_text("excluded")
    assert page.evaluate("window.__stayed") is True
    assert page.locator("#done").inner_text() == str(CANDIDATES)
    assert "with the reviewers" in page.locator("#review-banner").inner_text()
    assert "a reviewer other than avery" in page.locator("#next").inner_text()
    page.screenshot(path=str(ARTIFACTS / "candidate-grid-dispositioned.png"))


@pytest.fixture
def dispositioned(home: Path) -> str:
    """A search of the agent's with rank 1 a possible lead and the rest excluded: waiting for review."""
    ws = open_workspace(home)
    sid = run(ws, AGENT, search_request("obama-720p.jpg", top_k=3, case="WEB-R"))["search_id"]
    for rank in (1, 2, 3):
        casework.disposition(ws, AGENT, sid, rank, "possible-lead" if rank == 1 else "excluded", NOTE)
    with pytest.raises(Refused):  # the agent may not close their own search: refused, audited
        casework.close(ws, AGENT, sid, "no-identification", "Trying to skip review.")
    ws.close()
    return sid


def test_reviewer_confirms_what_names_the_candidate_and_the_case_view_shows_what_is_left(dispositioned, server,
                                                                                          browser):
    page = sign_in(browser, server, REVIEWER, 1400, 900)
    queue = page.locator("#queue-reviewer")
    assert dispositioned in queue.inner_text() and "3 of 3" in queue.inner_text()
    queue.locator(f"a:has-text('{dispositioned}')").click()
    form = page.locator("#c1 form.corroborate")
    assert form.locator("select[name=evidence_type]").input_value() == ""  # nothing preselected
    assert form.locator("select[name=outcome]").input_value() == ""
    assert page.locator("#close select[name=outcome]").input_value() == ""
    form.locator("select[name=evidence_type]").select_option("records-check")
    form.locator("input[name=evidence]").fill("DMV photo and booking record match.")
    form.locator("input[name=reference]").fill("RC-77")
    form.locator("select[name=outcome]").select_option("corroborated")
    form.locator("button").click()
    page.wait_for_selector("#confirm")
    assert "rank 1 — barack_obama" in page.locator("#confirm").inner_text()
    page.click("button:has-text('No, change it')")  # back: the form still filled in, nothing recorded
    form = page.locator("#c1 form.corroborate")
    assert form.locator("input[name=reference]").input_value() == "RC-77"
    assert form.locator("select[name=outcome]").input_value() == "corroborated"
    assert "Corroboration:" not in page.locator("#c1").inner_text()
    form.locator("button").click()
    page.click("button:has-text('Yes, record the corroboration')")
    page.wait_for_selector("#c1 .corroboration")
    # closing as identified: the outcome must be chosen, and the confirmation names the candidate
    page.select_option("#close select[name=outcome]", "identified")
    page.select_option("#close select[name=rank]", "1")
    page.fill("#close textarea[name=note]", "Corroborated by records check RC-77.")
    page.click("button:has-text('Close search')")
    page.wait_for_selector("#confirm")
    assert "identified" in page.locator("#confirm").inner_text()
    assert "rank 1 — barack_obama" in page.locator("#confirm").inner_text()
    page.click("button:has-text('Yes, close the search')")
    page.wait_for_selector("#closed")
    assert "closed-identified" in page.locator("h1").inner_text()
    # the why, on the page: purpose, justification, traditional means, who did what when
    why = page.locator("#why").inner_text()
    assert "Armed robbery suspect caught on the store camera." in why and "pawn records" in why
    history = page.locator("#history").inner_text()
    assert all(action in history for action in ("search", "disposition", "corroborate", "close"))
    # the case view, from the case number's link
    page.click("a:has-text('WEB-R')")
    page.wait_for_url("**/cases/WEB-R")
    case = page.locator("main").inner_text()
    assert dispositioned in case and "barack_obama" in case and "corroborated (records-check, riley)" in case
    assert "avery: searched" in case and "riley: closed, corroborated" in case
    assert "Nothing is open" in page.locator("#case-next").inner_text()

    page = sign_in(browser, server, AUDITOR, 1400, 900)
    assert page.locator("#home-chain").inner_text().startswith("Chain intact")
    refusals = page.locator("#recent-refusals tr", has_text="close")
    assert refusals.count() == 1 and "avery" in refusals.inner_text() and dispositioned in refusals.inner_text()
    page = sign_in(browser, server, AGENT, 1400, 900)
    assert "Nothing waits for your disposition." in page.locator("#queue-agent").inner_text()


def test_the_search_page_at_900_px(dispositioned, server, browser):
    page = sign_in(browser, server, AGENT, 900, 900)
    page.goto(f"{server}/searches/{dispositioned}")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 900  # nothing cut off sideways
    boxes = [page.locator(f"#c{rank}").bounding_box() for rank in (1, 2, 3)]
    assert boxes[0]["y"] == boxes[1]["y"]  # still a grid, several cards a row
    assert "3 of 3 dispositioned" in page.locator("#next").inner_text()
    page.screenshot(path=str(ARTIFACTS / "search-900px.png"), full_page=True)
