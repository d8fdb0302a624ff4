"""The new-search form in Debian's Chromium (Playwright) against `leadmatch serve`: a refused form comes back
filled with the probe kept and the field marked, in the page's words; the purpose starts empty; a clip is
uploaded by the page's script with its analysis followed on a progress bar, and the track picker works from the
keyboard at 900 px wide; the search after the pick lists its frames in time order."""

from __future__ import annotations

import re

from .helpers import AGENT, ARTIFACTS, FACES, PROBES_DIR, sign_in

CLIP = FACES / "video" / "short_hamilton_clip.mp4"
WHY = "Suspect seen on the store camera during the robbery."
MEANS = "Canvass, witness interviews and pawn records gave no name."


def fill(page, case: str, justification: str = WHY, purpose: str | None = "robbery") -> None:
    page.fill("input[name=case]", case)
    if purpose:
        page.select_option("select[name=purpose]", purpose)
    page.fill("textarea[name=justification]", justification)
    page.fill("textarea[name=traditional_means]", MEANS)
    page.fill("input[name=top_k]", "3")


def test_a_refused_form_keeps_its_fields_and_probe_and_marks_the_field(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = sign_in(browser, server, AGENT)
    page.goto(server + "/search/new")
    purpose = page.locator("select[name=purpose]")
    assert purpose.input_value() == ""  # no purpose preselected
    page.set_input_files("input[name=probe]", str(PROBES_DIR / "obama1.jpg"))
    fill(page, "WEB-E1", justification="because", purpose=None)
    page.click("main button:has-text('Search')")
    assert purpose.evaluate("s => s.validity.valueMissing") and page.url.endswith("/search/new")  # the browser asks
    purpose.select_option("robbery")
    page.click("main button:has-text('Search')")  # a justification too short: the library refuses it
    page.wait_for_selector("#form-error")
    error = page.locator("#form-error").inner_text()
    assert error.startswith("Justification: the justification is empty or too short") and "--" not in error
    box = page.locator("textarea[name=justification]")
    assert box.get_attribute("aria-invalid") == "true" and box.input_value() == "because"
    assert page.locator("#error-justification").inner_text().startswith("the justification is empty")
    assert page.locator("input[name=case]").input_value() == "WEB-E1"
    assert page.locator("select[name=purpose]").input_value() == "robbery"
    assert page.locator("textarea[name=traditional_means]").input_value() == MEANS
    assert page.locator("input[name=top_k]").input_value() == "3"
    assert "obama1.jpg" in page.locator("#kept-upload").inner_text()  # no need to choose the photo again
    page.screenshot(path=str(ARTIFACTS / "search-form-refused.png"), full_page=True)
    box.fill(WHY)
    page.click("main button:has-text('Search')")
    page.wait_for_selector("#candidates")
    assert "obama1.jpg" in page.locator("#probe").inner_text()
    assert page.locator("#candidates .subject").first.inner_text() == "barack_obama"


def test_a_clip_with_progress_a_keyboard_pick_at_900_px_and_frames_in_time_order(server, browser, home):
    ARTIFACTS.mkdir(exist_ok=True)
    page = sign_in(browser, server, AGENT, width=900, height=900)
    page.goto(server + "/search/new")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/search/progress/" in r.url else None)
    page.set_input_files("input[name=probe]", str(CLIP))
    fill(page, "WEB-V9")
    page.fill("input[name=track]", "7")  # no such track: the form comes back, the clip kept and analysed once
    page.click("main button:has-text('Search')")
    page.wait_for_selector("#search-progress:not([hidden]) .status:has-text('analysing the clip')", timeout=60_000)
    assert page.locator("#search-progress progress").get_attribute("value") is not None
    page.wait_for_selector("#form-error", timeout=120_000)
    assert polls, "the page followed the analysis"
    assert page.locator("input[name=track]").get_attribute("aria-invalid") == "true"
    assert "track 7 does not exist" in page.locator("#error-track").inner_text()
    assert "--" not in page.locator("#form-error").inner_text()
    assert "short_hamilton_clip.mp4" in page.locator("#kept-upload").inner_text()
    upload = page.locator("input[name=upload]").input_value()
    kept = list((home / "uploads" / upload).glob(".analysis-*.json"))
    assert len(kept) == 1  # the analysis waits beside the kept clip

    page.fill("input[name=track]", "")
    page.click("main button:has-text('Search')")  # the same clip again: now the picker, from the kept analysis
    page.wait_for_selector("#track-picker", timeout=60_000)
    assert list((home / "uploads" / upload).glob(".analysis-*.json")) == kept
    cards = page.locator("#track-picker .card")
    assert cards.count() == 3
    texts = [cards.nth(i).inner_text() for i in range(3)]
    assert all(re.search(r"\d+\.\d–\d+\.\d s, \d+ frames", t) for t in texts), texts
    assert "searchable" in texts[0] and "searchable" in texts[1] and "not searchable:" in texts[2]
    assert page.locator("#track-picker input[value='3']").is_disabled()
    loaded = page.eval_on_selector_all("#track-picker img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert loaded == [True, True, True]
    assert page.evaluate("document.documentElement.scrollWidth") <= 900  # fits at 900 px
    page.screenshot(path=str(ARTIFACTS / "track-picker-900.png"), full_page=True)
    # the keyboard alone: focus the first track, arrow to the close-up (track 2), send the form
    page.locator("#track-picker input[value='1']").focus()
    page.keyboard.press("ArrowRight")
    assert page.locator("#track-picker input[value='2']").is_checked()
    page.locator("main button:has-text('Search')").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#candidates", timeout=120_000)
    assert page.locator("#candidates .subject").first.inner_text() == "lin_manuel_miranda"
    times = [float(t) for t in re.findall(r"(\d+\.\d) s", page.locator("#frames").inner_text())]
    assert len(times) == 5 and times == sorted(times)  # the frames strip in time order
    described = page.locator("#probe").inner_text()
    listed = [float(t) for t in re.findall(r"(\d+\.\d) s", described.split(" of short_hamilton_clip")[0])]
    assert listed == times
    assert not (home / "uploads" / upload).exists()  # the search done, its upload and analysis went
