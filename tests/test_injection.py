"""Terminal and log injection (security round 3, issue 19 item 4): names that hold control or direction
characters are refused where they are entered (and audited escaped), and every stored string comes out
escaped on the terminal, in CSV and in JSON."""

from __future__ import annotations

import json
import shutil

import pytest

from leadmatch.errors import InputError, Refused
from leadmatch.gallery.enrollment import enroll
from leadmatch.governance import accounts, casework, purposes
from leadmatch.record import audit
from leadmatch.search.run import run
from leadmatch.record.workspace import open_workspace

from .helpers import (ADMIN, ANALYST, AGENT, AUDITOR, GALLERY, GALLERY_DIR, assert_clean_error, login, run_cli,
                       search_request)

FORGED = "chief\n2026-12-01T00:00:00Z chief user.disable ok"
ESCAPES = "\u001b[2J\u001b[31mhacked"
WIDE = {"COLUMNS": "250"}


def test_forged_audit_line_and_escape_codes_come_out_escaped_in_audit_log(home):
    ws = open_workspace(home)
    for name in (FORGED, ESCAPES):
        with pytest.raises(Refused):
            accounts.login(ws, name, "whatever it is")
    actors = [e["actor"] for e in audit.entries(ws.conn, limit=2)]
    ws.close()
    assert actors == ["chief\\n2026-12-01T00:00:00Z chief user.disable ok", "\\x1b[2J\\x1b[31mhacked"]
    login(home, AUDITOR)
    shown = run_cli("audit", "log", "--limit", "3", home=home, env=WIDE)
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout
    assert "\\x1b[2J\\x1b[31mhacked" in shown.stdout and "chief\\n2026-12-01T00:00:00Z" in shown.stdout
    lines = shown.stdout.splitlines()
    assert len(lines) == 3 and all(line.split()[0].isdigit() for line in lines), lines  # no forged line
    assert all("unsafe-name" in line for line in lines[:2])


def test_login_through_the_api_with_a_control_character_is_refused_and_audited_escaped(home):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from leadmatch.web import create_app

    with TestClient(create_app(home, workers=1)) as api:
        answer = api.post("/api/v1/login", json={"name": ESCAPES, "password": "x" * 12})
    assert answer.status_code == 401 and "\\x1b" in answer.json()["error"]["message"]
    ws = open_workspace(home)
    last = audit.entries(ws.conn, limit=1)[0]
    ws.close()
    assert (last["action"], last["outcome"], last["actor"]) == ("login", "refused", "\\x1b[2J\\x1b[31mhacked")


def test_case_number_with_escape_codes_is_refused_audited_and_never_printed_raw(home):
    login(home, AGENT)
    args = ["search", str(search_request("obama-720p.jpg").probe), "--gallery", GALLERY, "--purpose", "robbery",
            "--justification", "Armed robbery suspect caught on the store camera.",
            "--traditional-means", search_request("x").traditional_means]
    refused = run_cli(*args, "--case", "\u001b[31mC-1\u001b[0m", home=home)
    assert_clean_error(refused, "case number", "control")
    assert "\x1b" not in refused.stderr and "\\x1b[31mC-1" in refused.stderr
    ws = open_workspace(home)
    last = audit.entries(ws.conn, limit=1)[0]
    ws.close()
    assert (last["action"], last["outcome"], last["case_number"]) == ("search", "refused", "\\x1b[31mC-1\\x1b[0m")


def test_rich_markup_in_a_stored_name_does_not_style_the_terminal(home):
    login(home, AGENT)
    args = ["search", str(search_request("obama-720p.jpg").probe), "--gallery", GALLERY, "--purpose", "robbery",
            "--justification", "Armed robbery suspect caught on the store camera.",
            "--traditional-means", search_request("x").traditional_means, "--top-k", "2"]
    done = run_cli(*args, "--case", "[red]C-2[/red]", home=home, env=WIDE)
    assert done.returncode == 0, done.stderr
    assert "case [red]C-2[/red]" in done.stdout
    listed = run_cli("searches", home=home, env={**WIDE, "FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert "[red]C-2[/red]" in listed.stdout and "\x1b[31m" not in listed.stdout


def test_subject_folder_with_a_direction_override_is_refused_at_enrollment_and_counted(ws, tmp_path):
    source = tmp_path / "photos"
    shutil.copytree(GALLERY_DIR / "barack_obama", source / "barack obama")
    shutil.copytree(GALLERY_DIR / "joe_biden", source / "\u202enedib eoj")
    photos = len(list((source / "\u202enedib eoj").iterdir()))
    report = enroll(ws, ANALYST, GALLERY, source, workers=1)
    unsafe = [r for r in report.refused if r.reason == "unsafe-name"]
    assert len(unsafe) == photos and "\\u202e" in unsafe[0].detail
    assert report.offered == report.enrolled + report.skipped + len(report.refused)
    assert ws.conn.execute("SELECT count(*) FROM subjects WHERE name LIKE ?", ("\u202e%",)).fetchone()[0] == 0
    counted = ws.conn.execute("SELECT count(*) FROM enrollment_refusals WHERE reason = 'unsafe-name'").fetchone()[0]
    assert counted == photos


def test_manifest_subject_with_a_control_character_is_refused_and_counted(ws, tmp_path):
    photo = next((GALLERY_DIR / "barack_obama").iterdir())
    manifest = tmp_path / "photos.csv"
    manifest.write_text(f"path,subject\n{photo},\"obama\x1b[8m\"\n", encoding="utf-8")
    report = enroll(ws, ANALYST, GALLERY, manifest, workers=1)
    assert [r.reason for r in report.refused] == ["unsafe-name"] and report.enrolled == 0


@pytest.mark.parametrize("field", ["note", "reference"])
def test_notes_keep_line_breaks_but_refuse_escape_codes(ws, field):
    result = run(ws, AGENT, search_request("obama-720p.jpg", top_k=2))
    sid = result["search_id"]
    casework.disposition(ws, AGENT, sid, 1, "excluded", "Different ear shape.\nChecked twice.")  # allowed
    if field == "note":
        with pytest.raises(Refused, match="control"):
            casework.disposition(ws, AGENT, sid, 2, "excluded", "ok\u001b[2Jgone")
    else:
        casework.disposition(ws, AGENT, sid, 2, "possible-lead", "Similar nose and ears.")
    last = audit.entries(ws.conn, limit=1)[0]
    assert last["outcome"] == ("refused" if field == "note" else "ok")


def test_purposes_galleries_and_courses_refuse_control_characters(ws):
    with pytest.raises(InputError, match="purpose"):
        purposes.add(ws, ADMIN, "fraud\u202e")
    with pytest.raises(InputError, match="approved-by"):
        from leadmatch.gallery import galleries

        galleries.create(ws, ANALYST, "other", "Authority §2", "Chief\u001b[8m", "2026-01-01", "files")
    assert audit.entries(ws.conn, limit=1)[0]["outcome"] == "refused"
    with pytest.raises(InputError, match="course"):
        accounts.certify(ws, ADMIN, AGENT.name, "Course\u2066x", "2026-01-01")


def test_csv_cells_are_never_formulas_or_escape_codes():
    data = {"from": "2026-01-01", "to": "2026-12-31", "searches_by_user": [{"user": "=HYPERLINK(\"x\")",
                                                                           "searches": 2}],
            "refusals_by_reason": [{"action": "login", "reason": "@cmd\u001b", "count": 1}],
            "closed_identified": 0, "closed_no_identification": 0, "open_searches_older": [],
            "open_older_than_days": 30, "chain": {"ok": True, "head": "-1+1"}}
    text = audit.report_csv(data)
    assert "'=HYPERLINK" in text and "login:'@cmd" not in text and "login:@cmd\\x1b" in text
    assert ",'-1+1" in text and "\x1b" not in text


def test_json_output_writes_invisible_characters_as_escapes_and_keeps_the_data(home):
    login(home, AGENT)
    why = "Armed robbery suspect caught on the store\u200dcamera."  # a joiner: allowed in free text
    args = ["search", str(search_request("obama-720p.jpg").probe), "--gallery", GALLERY, "--purpose", "robbery",
            "--case", "J-1", "--justification", why, "--traditional-means", search_request("x").traditional_means,
            "--top-k", "2", "--json"]
    done = run_cli(*args, home=home)
    assert done.returncode == 0, done.stderr
    assert "\u200d" not in done.stdout and "\\u200d" in done.stdout
    assert json.loads(done.stdout)["justification"] == why
