"""The analyst's and the admin's whole job in headless Chromium against `leadmatch serve` (issue 21): a gallery
created with its authority record, photos enrolled by upload while the page shows how far it is, the refusals
after it, subjects filtered and one removed after a confirmation naming it; accounts, roles, certification and
disabling, a purpose added by keyboard alone, a gallery's target FPIR, and a purge previewed then confirmed —
at 900 px wide. Refused forms come back filled in, in the page's words."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

from leadmatch.governance import casework
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.search.run import run

from .helpers import ADMIN, AGENT, ANALYST, ARTIFACTS, GALLERY, GALLERY_DIR, REVIEWER, search_request, sign_in

WATCH_STAGES = """() => {
  window.stages = [];
  const stage = document.getElementById("enroll-stage");
  new MutationObserver(() => window.stages.push(stage.textContent)).observe(stage, {childList: true});
}"""


def accept_dialogs(page) -> list[str]:
    """Accept every confirmation the page asks; the messages it asked, in order."""
    asked: list[str] = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    return asked


def test_analyst_creates_a_gallery_enrolls_by_upload_and_removes_a_subject(server, browser, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    photos = tmp_path / "to-enroll"
    shutil.copytree(GALLERY_DIR, photos)
    (photos / "kit_harington" / "notes.jpg").write_text("not a photo at all")  # a bad file among them
    page = sign_in(browser, server, ANALYST)
    page.click("header a:has-text('Galleries')")
    page.click("text=New gallery")
    assert page.locator("select[name=model]").input_value() == ""  # the model starts empty
    page.fill("input[name=name]", "web-gallery")
    page.fill("textarea[name=authority]", "State Code §12-345; MOU 2026-07")
    page.fill("input[name=approved_by]", "Chief J. Rivera")
    page.fill("input[name=approved_on]", "2099-03-01")  # in the future: the library refuses
    page.fill("textarea[name=source]", "County booking photos 2019-2026")
    page.select_option("select[name=model]", "dlib")
    page.click("main button:has-text('Create the gallery')")
    problem = page.locator("#problem").inner_text()
    assert "“Approval date” 2099-03-01 is in the future" in problem and "--" not in problem
    assert page.get_attribute("input[name=approved_on]", "aria-invalid") == "true"
    assert page.input_value("textarea[name=authority]") == "State Code §12-345; MOU 2026-07"  # the work is kept
    assert page.input_value("select[name=model]") == "dlib"
    page.fill("input[name=approved_on]", "2026-03-01")
    page.click("main button:has-text('Create the gallery')")
    page.wait_for_url(server + "/galleries/web-gallery")
    assert "State Code §12-345" in page.inner_text("main")

    page.click("text=Enroll photos")
    page.set_input_files("input[name=folder]", str(photos))
    page.evaluate(WATCH_STAGES)
    page.click("main button:has-text('Upload and enroll')")
    page.wait_for_selector("#enroll-summary", timeout=120_000)
    stages = page.evaluate("window.stages")
    assert any(s.startswith("Uploading") for s in stages), stages
    assert any(s.startswith("Analysing: ") and " of 12 photos" in s for s in stages), stages  # 11 photos + 1 bad
    assert "12 offered: 11 enrolled, 0 skipped" in page.inner_text("#enroll-summary")
    refused = page.locator("#refusals tr").all_inner_texts()
    assert len(refused) == 2 and "kit_harington/notes.jpg" in refused[1]
    assert "corrupt" in refused[1] or "unreadable" in refused[1]
    page.screenshot(path=str(ARTIFACTS / "gallery-enrolled.png"), full_page=True)

    page.click("text=Enroll more")  # photos of one subject, by the plain file input and a subject name
    page.set_input_files("input[name=photo]", [str(p) for p in sorted((GALLERY_DIR / "rose_leslie").iterdir())])
    page.fill("input[name=subject]", "rose_leslie")
    page.click("main button:has-text('Upload and enroll')")
    page.wait_for_selector("#enroll-summary", timeout=120_000)
    assert "2 offered: 0 enrolled, 2 skipped" in page.inner_text("#enroll-summary")

    page.click("main a:has-text('Subjects')")
    assert page.inner_text("#subject-count") == "1–6 of 6 subjects"
    page.fill("input[name=contains]", "OBAMA")
    page.click("main button:has-text('Filter')")
    rows = page.locator("#subjects tr").all_inner_texts()
    assert len(rows) == 2 and rows[1].startswith("barack_obama\t2\t2")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("button[aria-label='Remove barack_obama']")
    assert asked and "barack_obama" in asked[0] and "web-gallery" in asked[0]
    assert page.locator("#subjects tr").count() == 2  # dismissed: nothing removed
    asked = accept_dialogs(page)
    page.click("button[aria-label='Remove barack_obama']")
    page.wait_for_selector("#removed")
    assert "Remove barack_obama from web-gallery? Their 2 photos and 2 faces leave the record" in asked[0]
    assert "barack_obama (2 faces, 2 photos)" in page.inner_text("#removed")
    assert page.inner_text("#subject-count") == "1–5 of 5 subjects"
    page.screenshot(path=str(ARTIFACTS / "gallery-subjects.png"), full_page=True)
    page.goto(server + "/galleries/web-gallery/flagged")
    assert page.locator("#flagged tr").count() >= 2  # a header and at least the "none" row


def closed_long_ago(home) -> str:
    """A search of the agent's, dispositioned and closed 400 days ago (past the sample gallery's 30 days)."""
    ws = open_workspace(home)
    sid = run(ws, AGENT, search_request("obama-720p.jpg", top_k=2, case="OLD-1"))["search_id"]
    for rank in (1, 2):
        casework.disposition(ws, AGENT, sid, rank, "excluded", "Different ear shape and jaw line.")
    casework.close(ws, REVIEWER, sid, "no-identification", "Every candidate excluded.")
    long_ago = (datetime.now(timezone.utc) - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ws.conn.execute("UPDATE searches SET closed_at = ? WHERE id = ?", (long_ago, sid))
    ws.close()
    return sid


def test_admin_people_purposes_target_fpir_and_purge_at_900_px(home, server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    expired = closed_long_ago(home)
    page = sign_in(browser, server, ADMIN, width=900, height=900)
    asked = accept_dialogs(page)
    page.click("header a:has-text('People')")
    page.fill("input[name=name]", "dana")
    page.fill("input[name=password]", "a long enough passphrase")
    page.fill("input[name=password_again]", "a long enough passphrase")
    page.click("main button:has-text('Add the user')")  # no role ticked: refused, the form kept
    problem = page.locator("#problem").inner_text()
    assert "no role given" in problem and "--role" not in problem and "“Roles”" in problem
    assert page.input_value("input[name=name]") == "dana" and page.input_value("input[name=password]") == ""
    page.check("input[name=role][value=agent]")
    page.fill("input[name=password]", "a long enough passphrase")
    page.fill("input[name=password_again]", "a long enough passphrase")
    page.click("main button:has-text('Add the user')")
    page.wait_for_url(server + "/people/dana")
    assert "Roles: agent" in page.inner_text("#person-state")
    assert page.input_value("#f-grant-role") == ""  # the role to grant starts empty
    page.select_option("#f-grant-role", "reviewer")
    page.click("#grant button")
    page.wait_for_selector("#person-state:has-text('agent, reviewer')")
    page.fill("#certify input[name=completed]", "2026-06-01")
    page.click("#certify button")
    page.wait_for_selector("#person-state:has-text('expires 2027-06-01')")
    page.fill("#certify input[name=completed]", "2026-06-01")
    page.fill("#certify input[name=expires]", "2026-01-01")  # before completion: refused, kept, in words
    page.click("#certify button")
    problem = page.locator("#problem").inner_text()
    assert "“Expires on” 2026-01-01 is not after “Completed on” 2026-06-01" in problem
    assert page.input_value("#certify input[name=expires]") == "2026-01-01"
    page.select_option("#f-revoke-role", "reviewer")
    page.click("#revoke button")
    page.wait_for_selector("#person-state:has-text('Roles: agent ·')")
    assert "Take a role away from dana?" in asked[-1]
    assert page.evaluate("document.documentElement.scrollWidth") <= 900  # nothing wider than the window
    page.screenshot(path=str(ARTIFACTS / "admin-person-900.png"), full_page=True)
    page.click("#disable button")
    page.wait_for_selector("#person-state:has-text('disabled')")
    assert "Disable the account dana?" in asked[-1]

    page.click("header a:has-text('Purposes')")  # keyboard only: Tab to the field, type, Enter
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "name":
            break
    page.keyboard.type("cargo-theft")
    page.keyboard.press("Enter")
    page.wait_for_selector("#added")
    assert "cargo-theft" in page.locator("#purposes .purpose-name").all_inner_texts()
    page.click("#purposes li:has-text('cargo-theft') button:has-text('Retire')")  # asks first, then retires
    page.wait_for_selector("#retired-note")
    assert "Retire the purpose cargo-theft? New searches can no longer name it" in asked[-1]
    assert "cargo-theft" not in page.locator("#purposes .purpose-name").all_inner_texts()
    assert page.inner_text("#retired").startswith("cargo-theft — retired ")

    page.goto(f"{server}/galleries/{GALLERY}")
    page.fill("#fpir-form input[name=target]", "0.5")
    page.click("#fpir-form button")
    problem = page.locator("#problem").inner_text()
    assert "“Target false-alarm rate” 0.5 is out of range" in problem and "--" not in problem
    assert page.input_value("#fpir-form input[name=target]") == "0.5"
    page.fill("#fpir-form input[name=target]", "0.05")
    page.click("#fpir-form button")
    page.wait_for_url(f"{server}/galleries/{GALLERY}")
    assert "for 5 % false alarms" in page.inner_text("main")

    page.click("header a:has-text('Retention')")
    assert "1 search (1 probe file) and the media of 0 cases (0 files) are due" in page.inner_text("#purge-counts")
    assert expired in page.inner_text("#purge-searches")
    assert page.evaluate("document.documentElement.scrollWidth") <= 900
    page.screenshot(path=str(ARTIFACTS / "admin-purge-preview-900.png"), full_page=True)
    page.click("#purge-form button")
    page.wait_for_selector("#purged")
    assert f"Purge 1 search ({expired}) and the media of 0 cases now?" in asked[-1]
    assert f"1 search purged, 1 probe file removed: {expired}" in page.inner_text("#purged")

    ws = open_workspace(home)
    actions = [e["action"] for e in audit.entries(ws.conn) if e["actor"] == "admin"]
    ws.close()
    for action in ("user.add", "user.grant-role", "user.certify", "user.revoke-role", "user.disable",
                   "purposes.add", "purposes.retire", "gallery.target-fpir", "purge.preview", "purge"):
        assert action in actions, action
