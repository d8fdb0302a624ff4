"""The auditor's job in headless Chromium (Debian's, through Playwright) against `leadmatch serve`: the audit trail
paged newest first, filtered by outcome and by case, entries naming their objects with links that lead there,
the chain verified, a checkpoint filed as a download (the file `audit checkpoint --out` writes, which verifies),
and the supervisors' report as a page with its CSV and JSON downloads; the same at 900 px wide."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from leadmatch.errors import Refused
from leadmatch.governance import casework, oversight
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.search.run import run

from .helpers import AGENT, AGENT2, ARTIFACTS, AUDITOR, search_request, sign_in

CASE = "WEB-7"


@pytest.fixture
def busy_home(home):
    """The sample workspace with more than a page of trail: a search in case WEB-7, a refused disposition by an
    agent who did not run it, and the auditor's own readings."""
    ws = open_workspace(home)
    found = run(ws, AGENT, search_request("obama-720p.jpg", top_k=2, case=CASE))
    with pytest.raises(Refused):
        casework.disposition(ws, AGENT2, found["search_id"], 1, "excluded", "Not my search to decide.")
    for _ in range(60):
        oversight.log(ws, AUDITOR, limit=1)
    ws.close()
    return found["search_id"]


def rows(page) -> list[dict]:
    """The entries shown: id, outcome, user, and the objects each names (kind and link)."""
    return page.eval_on_selector_all("#entries tr[data-entry]", """trs => trs.map(tr => ({
        id: Number(tr.dataset.entry), outcome: tr.querySelector('td.outcome').innerText,
        actor: tr.querySelector('td.actor').innerText,
        about: Array.from(tr.querySelectorAll('td.objects a')).map(a => a.dataset.kind + ' ' + a.getAttribute('href'))}))""")


def test_the_auditor_pages_filters_follows_verifies_checkpoints_and_reports(busy_home, server, browser, home,
                                                                            tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    page = sign_in(browser, server, AUDITOR)
    page.click("header a:has-text('Audit')")
    assert page.locator("#chain").inner_text().startswith("Chain intact")
    first = rows(page)
    assert len(first) == 50 and [r["id"] for r in first] == sorted((r["id"] for r in first), reverse=True)
    where = page.locator("#paging-top .where").inner_text()
    assert re.fullmatch(r"Page 1 of (\d+) · (\d+) entries, newest first", where), where
    page.click("#paging-bottom a[rel=next]")
    assert page.locator("#paging-top .where").inner_text().startswith("Page 2 of")
    older = rows(page)
    assert older and max(r["id"] for r in older) < min(r["id"] for r in first)
    page.click("#paging-top a[rel=prev]")
    assert page.locator("#paging-top .where").inner_text().startswith("Page 1 of")

    page.select_option("#filters select[name=outcome]", "refused")
    page.click("#filters button")
    refused = rows(page)
    assert refused and all(r["outcome"] == "refused" for r in refused)
    assert any(f"search /searches/{busy_home}" in r["about"] for r in refused)  # the refused disposition
    assert page.locator("#filters select[name=outcome]").input_value() == "refused"  # the filter stays shown
    page.screenshot(path=str(ARTIFACTS / "audit-refused.png"), full_page=True)

    page.goto(server + "/audit")
    page.fill("#filters input[name=case]", CASE)
    page.click("#filters button")
    in_case = rows(page)
    assert in_case and all(f"case /cases/{CASE}" in r["about"] for r in in_case)
    search_entry = next(r for r in in_case if any(a.startswith("gallery ") for a in r["about"]))
    assert "gallery /galleries/test-gallery" in search_entry["about"]
    page.click(f"#entries tr[data-entry='{search_entry['id']}'] a[data-kind=search]")
    page.wait_for_url(f"{server}/searches/{busy_home}")
    assert busy_home in page.locator("main").inner_text()
    page.go_back()
    page.click(f"#entries tr[data-entry='{search_entry['id']}'] a[data-kind=gallery]")
    page.wait_for_url(f"{server}/galleries/test-gallery")
    page.go_back()
    page.click(f"#entries tr[data-entry='{search_entry['id']}'] td.actor a")  # the user: their entries
    assert page.locator("#filters input[name=user]").input_value() == AGENT.name
    assert {r["actor"] for r in rows(page)} == {AGENT.name}

    page.goto(server + "/audit")
    with page.expect_download() as download:
        page.click("#checkpoint button")
    assert re.fullmatch(r"checkpoint-\d{8}T\d{6}Z-\d+\.json", download.value.suggested_filename)
    filed = tmp_path / download.value.suggested_filename
    download.value.save_as(filed)
    made = audit.read_checkpoint(filed)  # the shape `audit checkpoint --out` writes, read back as the CLI does
    ws = open_workspace(home)
    assert audit.verify(ws.conn, None, made).ok
    assert audit.entries(ws.conn, action="audit.checkpoint")[-1]["actor"] == AUDITOR.name
    ws.close()

    page.click("#supervisors")
    assert page.locator("h1").inner_text() == "Supervisors' report"
    assert int(page.locator("#searches-total").inner_text()) >= 1
    assert int(page.locator("#refusals-total").inner_text()) >= 1
    assert "avery" in page.locator("#by-user").inner_text()
    assert "disposition" in page.locator("#refusals").inner_text()
    assert page.locator("#report-chain").inner_text().startswith("Audit chain intact")
    page.screenshot(path=str(ARTIFACTS / "audit-report.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#download-csv")
    table = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert table[0] == ["section", "item", "value"] and ["searches_by_user", "avery", "1"] in table
    with page.expect_download() as download:
        page.click("#download-json")
    data = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert {"user": "avery", "searches": 1} in data["searches_by_user"] and data["chain"]["ok"] is True
    assert any(r["action"] == "disposition" for r in data["refusals_by_reason"])


def test_the_audit_pages_fit_900_px(busy_home, server, browser):
    page = sign_in(browser, server, AUDITOR, width=900, height=900)
    for path in ("/audit", "/audit?outcome=refused", "/audit/supervisors"):
        page.goto(server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 900, (path, width)
    page.goto(server + "/audit")
    page.screenshot(path=str(ARTIFACTS / "audit-900.png"), full_page=False)
