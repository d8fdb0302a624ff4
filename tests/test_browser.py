"""End to end in headless Chromium (Debian's, driven by Playwright) against `leadmatch serve` on a free
localhost port: agent searches and dispositions, reviewer corroborates and closes, auditor verifies.
Screenshots of the candidate grid and the report are saved under test-artifacts/."""

from __future__ import annotations

from playwright.sync_api import expect

from .helpers import AGENT, ARTIFACTS, AUDITOR, LABEL, PROBES_DIR, REVIEWER, sign_in


def test_agent_reviewer_auditor_in_the_browser(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = sign_in(browser, server, AGENT)
    page.click("header a:has-text('New search')")
    page.set_input_files("input[name=probe]", str(PROBES_DIR / "two_people.jpg"))
    page.fill("input[name=case]", "WEB-1")
    page.select_option("select[name=purpose]", "robbery")
    page.fill("textarea[name=justification]", "Suspect seen on the store camera during the robbery.")
    page.fill("textarea[name=traditional_means]", "Canvass, witness interviews and pawn records gave no name.")
    page.fill("input[name=top_k]", "4")
    page.click("main button:has-text('Search')")
    page.check("input[name=face][value='2']")  # two faces: the picker asks; the right one is Biden
    page.click("main button:has-text('Search')")
    page.wait_for_selector("#candidates")
    cards = page.locator(".card")
    assert cards.count() == 4
    assert cards.nth(0).locator(".subject").inner_text() == "joe_biden"
    assert all(LABEL in cards.nth(i).inner_text() for i in range(4))
    assert LABEL in page.locator(".banner").inner_text()
    page.wait_for_load_state("networkidle")
    loaded = page.eval_on_selector_all("#probe-panel img, .card img.chip",
                                       "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert len(loaded) == 5 and all(loaded)  # the probe's face and every candidate's are shown
    page.screenshot(path=str(ARTIFACTS / "candidate-grid.png"), full_page=True)
    search_url = page.url
    for rank in range(1, 5):
        form = page.locator(f".card[data-rank='{rank}'] form.disposition")
        form.locator("select[name=decision]").select_option("possible-lead" if rank == 1 else "excluded")
        form.locator("input[name=note]").fill("Compared side by side with the probe.")
        form.locator("button").click()  # recorded in place: the card changes, the page stays
        expect(page.locator(f".card[data-rank='{rank}'] form.disposition")).to_have_count(0)
    assert "awaiting-review" in page.locator("h1").inner_text()
    with page.expect_download() as download:
        page.click("a:has-text('Download lead report')")
    report = ARTIFACTS / "lead-report.html"
    download.value.save_as(report)
    assert report.read_text().count(LABEL) >= 6
    shot = browser.new_page()
    shot.goto(report.as_uri())
    shot.screenshot(path=str(ARTIFACTS / "lead-report.png"), full_page=True)

    page = sign_in(browser, server, REVIEWER)
    page.click("header a:has-text('Review queue')")
    page.click(f"text={search_url.rsplit('/', 1)[1]}")
    form = page.locator(".card[data-rank='1'] form.corroborate")
    form.locator("select[name=evidence_type]").select_option("records-check")
    form.locator("input[name=evidence]").fill("DMV photo and booking record match.")
    form.locator("input[name=reference]").fill("RC-77")
    form.locator("select[name=outcome]").select_option("corroborated")
    form.locator("button").click()
    page.click("button:has-text('Yes, record the corroboration')")  # a final step, confirmed by name
    page.wait_for_load_state()
    page.select_option("#close select[name=outcome]", "identified")
    page.select_option("#close select[name=rank]", "1")
    page.fill("#close textarea[name=note]", "Corroborated by records check RC-77.")
    page.click("button:has-text('Close search')")
    page.click("button:has-text('Yes, close the search')")
    page.wait_for_load_state()
    assert "closed-identified" in page.locator("h1").inner_text()

    page = sign_in(browser, server, AUDITOR)
    page.click("header a:has-text('Audit')")
    assert page.locator("#chain").inner_text().startswith("Chain intact")
    page.goto(search_url)  # auditors may read any search
    assert "closed-identified" in page.locator("h1").inner_text()
    page.goto(server + "/search/new")
    assert "Refused" in page.locator("h1").inner_text()  # an auditor is no agent: 403, not a hidden button


def test_video_search_in_the_browser(server, browser):
    """An agent uploads the sample clip, sees the frames used and lin_manuel_miranda first (lead only),
    compares at full size, and must choose a disposition explicitly (nothing preselected)."""
    from .helpers import FACES

    ARTIFACTS.mkdir(exist_ok=True)
    page = sign_in(browser, server, AGENT)
    page.click("header a:has-text('New search')")
    page.set_input_files("input[name=probe]", str(FACES / "video" / "short_hamilton_clip.mp4"))
    page.fill("input[name=case]", "WEB-V1")
    page.select_option("select[name=purpose]", "robbery")
    page.fill("textarea[name=justification]", "Suspect filmed on the theatre's lobby camera.")
    page.fill("textarea[name=traditional_means]", "Ticket records, staff interviews and CCTV canvass gave no name.")
    page.fill("input[name=top_k]", "3")
    page.fill("input[name=best_frames]", "5")
    page.fill("input[name=track]", "largest")  # the far shot before the cut is a second, smaller track
    page.click("main button:has-text('Search')")
    page.wait_for_selector("#candidates", timeout=120_000)
    assert "short_hamilton_clip.mp4" in page.locator("#probe").inner_text()
    assert page.locator("#probe").inner_text().count(" s,") >= 4 and "sha256" in page.locator("#probe").inner_text()
    cards = page.locator("#candidates .card")
    first = cards.nth(0)
    assert first.locator(".subject").inner_text() == "lin_manuel_miranda"
    assert LABEL in first.inner_text() and all(LABEL in cards.nth(i).inner_text() for i in range(cards.count()))
    page.wait_for_load_state("networkidle")
    frames = page.eval_on_selector_all("#frames img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert len(frames) == 5 and all(frames)
    page.screenshot(path=str(ARTIFACTS / "video-search.png"), full_page=True)
    first.locator("a.compare").click()  # the compare view: the best frame and the candidate, aligned, 400 px
    page.wait_for_load_state("networkidle")
    sizes = page.locator(".pane img").evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    assert sizes == [[400, 400], [400, 400]]  # side by side, same scale
    page.screenshot(path=str(ARTIFACTS / "video-compare.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("#candidates")
    first = page.locator("#candidates .card").nth(0)
    form = first.locator("form.disposition")
    select = form.locator("select[name=decision]")
    assert select.input_value() == ""  # nothing preselected
    form.locator("input[name=note]").fill("Compared ears, hairline and jaw with all five frames.")
    form.locator("button").click()  # the browser refuses: no choice made
    assert select.evaluate("s => s.validity.valueMissing") and "/disposition" not in page.url
    assert first.locator("form.disposition").count() == 1
    select.select_option("possible-lead")
    form.locator("button").click()
    expect(page.locator("#c1 .state")).to_contain_text("possible-lead")
    decided = page.locator("#candidates .card").nth(0)
    assert "Disposition: possible-lead" in decided.inner_text()
    page.screenshot(path=str(ARTIFACTS / "video-search-dispositioned.png"), full_page=True)
