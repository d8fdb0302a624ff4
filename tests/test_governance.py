"""POLICY.md's rules, each one tried and refused, with an audit entry; and the full path to closed-identified."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import date, timedelta

import pytest

from leadmatch.errors import InputError, Refused
from leadmatch.governance import accounts, casework, oversight, purposes, retention
from leadmatch.governance.accounts import Actor
from leadmatch.record import audit
from leadmatch.search.run import run, show

from .helpers import (ADMIN, AGENT, AGENT2, ANALYST, AUDITOR, GALLERY_DIR, PASSWORD, PROBES_DIR, REVIEWER,
                      assert_clean_error, login, run_cli, search_request)


def last_refusal(ws) -> dict:
    return [e for e in audit.entries(ws.conn) if e["outcome"] == "refused"][-1]


def refused(ws, reason: str, call, *args, **kwargs) -> Refused:
    """Call, expect a Refused with `reason`, and check the refusal was audited."""
    with pytest.raises(Refused) as caught:
        call(*args, **kwargs)
    assert caught.value.reason == reason, caught.value
    entry = last_refusal(ws)
    assert entry["reason"].startswith(reason + ":"), entry
    return caught.value


@pytest.fixture
def searched(ws):
    """A search by AGENT on a probe whose true subject is enrolled."""
    return run(ws, AGENT, search_request("obama-720p.jpg", top_k=3))


def disposition_all(ws, result, lead_rank: int | None = 1):
    for c in result["candidates"]:
        decision = "possible-lead" if c["rank"] == lead_rank else "excluded"
        casework.disposition(ws, AGENT, result["search_id"], c["rank"], decision, "Compared side by side.")


# People ---------------------------------------------------------------------------------------------------

def test_uncertified_agent_is_refused(ws):
    accounts.add_user(ws, ADMIN, "newbie", ["agent"], PASSWORD)
    newbie = Actor("newbie", frozenset({"agent"}))
    accounts.accept_rules(ws, newbie)
    refused(ws, "uncertified", run, ws, newbie, search_request("obama1.jpg"))


def test_expired_certification_is_refused(ws):
    accounts.add_user(ws, ADMIN, "lapsed", ["agent"], PASSWORD)
    lapsed = Actor("lapsed", frozenset({"agent"}))
    accounts.accept_rules(ws, lapsed)
    accounts.certify(ws, ADMIN, "lapsed", accounts.DEFAULT_COURSE, "2024-01-10", "2025-01-10")
    error = refused(ws, "certification-expired", run, ws, lapsed, search_request("obama1.jpg"))
    assert "2025-01-10" in str(error)


def test_default_certification_lasts_one_year(ws):
    done = (date.today() - timedelta(days=10)).isoformat()
    cert = accounts.certify(ws, ADMIN, "blake", accounts.DEFAULT_COURSE, done)
    assert cert["expires"] == date.fromisoformat(done).replace(year=date.fromisoformat(done).year + 1).isoformat()


def test_rules_of_behavior_must_be_accepted_first(ws):
    accounts.add_user(ws, ADMIN, "fresh", ["agent"], PASSWORD)
    fresh = Actor("fresh", frozenset({"agent"}))
    accounts.certify(ws, ADMIN, "fresh", accounts.DEFAULT_COURSE, "2026-06-01", "2099-01-01")
    refused(ws, "rules-not-accepted", run, ws, fresh, search_request("obama1.jpg"))
    accounts.accept_rules(ws, fresh)
    assert run(ws, fresh, search_request("obama1.jpg"))["candidates"]


def test_disabled_user_is_refused_at_once(ws):
    token, _, _ = accounts.login(ws, AGENT2.name, PASSWORD)
    accounts.disable(ws, ADMIN, AGENT2.name)
    refused(ws, "disabled", run, ws, AGENT2, search_request("obama1.jpg"))
    with pytest.raises(Refused, match="ended"):
        accounts.authenticate(ws, token)
    refused(ws, "disabled", accounts.login, ws, AGENT2.name, PASSWORD)


def test_wrong_role_is_refused_everywhere(ws, searched):
    refused(ws, "wrong-role", run, ws, ANALYST, search_request("obama1.jpg"))
    refused(ws, "wrong-role", accounts.add_user, ws, AGENT, "sneaky", ["admin"], PASSWORD)
    refused(ws, "wrong-role", oversight.log, ws, AGENT)
    refused(ws, "wrong-role", casework.corroborate, ws, AGENT2, searched["search_id"], 1, "documents",
            "Some documents", "REF-1", "corroborated")
    refused(ws, "wrong-role", retention.purge_expired, ws, REVIEWER)
    from leadmatch.gallery.enrollment import enroll

    refused(ws, "wrong-role", enroll, ws, AGENT, "test-gallery", GALLERY_DIR)


def test_bad_password_and_expired_session(ws):
    refused(ws, "bad-credentials", accounts.login, ws, AGENT.name, "not the password at all")
    refused(ws, "bad-credentials", accounts.login, ws, "nobody", "not the password at all")
    token, _, _ = accounts.login(ws, AGENT.name, PASSWORD)
    ws.conn.execute("UPDATE sessions SET expires_at = '2000-01-01T00:00:00.000000Z'")
    refused(ws, "session-expired", accounts.authenticate, ws, token)


def test_passwords_are_stored_as_argon2id(ws):
    stored = ws.conn.execute("SELECT password_hash FROM users WHERE name = 'avery'").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


# Search preconditions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, reason", [
    ("case", "  ", "missing-case"),
    ("purpose", "", "missing-purpose"),
    ("purpose", "curiosity", "unauthorized-purpose"),
    ("justification", "", "missing-justification"),
    ("justification", "needed", "missing-justification"),
    ("traditional_means", "", "missing-traditional-means"),
    ("traditional_means", "none tried", "missing-traditional-means"),
    ("probe_source", "composite", "composite-probe"),
    ("probe_source", "sketch", "composite-probe"),
])
def test_missing_or_bad_search_preconditions_are_refused(ws, field, value, reason):
    refused(ws, reason, run, ws, AGENT, search_request("obama1.jpg", **{field: value}))
    assert ws.conn.execute("SELECT count(*) FROM searches").fetchone()[0] == 0


def test_enhanced_probe_is_flagged_on_every_output_with_its_original(ws):
    result = run(ws, AGENT, search_request("obama1.jpg", probe_source="enhanced", original=PROBES_DIR / "obama3.jpg",
                                           enhancement="brightened and sharpened the face"))
    assert any(f.startswith("enhanced") and "brightened and sharpened" in f for f in result["flags"])
    shown = show(ws, REVIEWER, result["search_id"])
    assert any(f.startswith("enhanced") for f in shown["flags"])
    original = shown["details"]["enhancement"]["original"]
    assert original["sha256"] == hashlib.sha256((PROBES_DIR / "obama3.jpg").read_bytes()).hexdigest()
    assert (ws.home / original["stored_path"]).read_bytes() == (PROBES_DIR / "obama3.jpg").read_bytes()
    entry = [e for e in audit.entries(ws.conn, search_id=result["search_id"]) if e["action"] == "search"][0]
    assert original["sha256"] in entry["photo_sha256"] and result["probe"]["sha256"] in entry["photo_sha256"]


def test_enhanced_probe_without_its_original_or_description_is_refused(ws):
    refused(ws, "enhanced-without-original", run, ws, AGENT, search_request("obama1.jpg", probe_source="enhanced"))
    refused(ws, "enhanced-without-original", run, ws, AGENT,
            search_request("obama1.jpg", probe_source="enhanced", original=PROBES_DIR / "obama3.jpg"))
    with pytest.raises(InputError):
        run(ws, AGENT, search_request("obama1.jpg", original=PROBES_DIR / "obama3.jpg"))


def test_admin_adds_a_purpose(ws):
    refused(ws, "unauthorized-purpose", run, ws, AGENT, search_request("obama1.jpg", purpose="cargo-theft"))
    purposes.add(ws, ADMIN, "Cargo-Theft")
    assert "cargo-theft" in purposes.list_all(ws)
    assert run(ws, AGENT, search_request("obama1.jpg", purpose="cargo-theft"))["purpose"] == "cargo-theft"


def test_a_retired_purpose_cannot_be_named_by_a_new_search_and_old_searches_keep_it(ws, searched):
    with pytest.raises(Refused):  # only an admin retires, and the refusal is audited
        purposes.retire(ws, AGENT, "robbery")
    assert last_refusal(ws)["action"] == "purposes.retire"
    done = purposes.retire(ws, ADMIN, " Robbery ")
    assert (done["name"], done["retired_by"]) == ("robbery", ADMIN.name)
    assert "robbery" not in purposes.list_all(ws)
    assert [p["name"] for p in purposes.retired(ws)] == ["robbery"]
    entry = [e for e in audit.entries(ws.conn) if e["action"] == "purposes.retire"][-1]
    assert entry["outcome"] == "ok" and entry["objects"]["purpose"] == "robbery"
    error = refused(ws, "retired-purpose", run, ws, AGENT, search_request("obama1.jpg", purpose="robbery"))
    assert f"was retired on {done['retired_at'][:10]} by {ADMIN.name}" in error.message
    assert show(ws, AGENT, searched["search_id"])["purpose"] == "robbery"  # the search that named it keeps it
    for name, message in (("robbery", "already retired"), ("no-such-crime", "no purpose named")):
        with pytest.raises(InputError, match=message):
            purposes.retire(ws, ADMIN, name)
        assert last_refusal(ws)["reason"].startswith("bad-input:")


def test_the_last_purpose_a_search_could_name_cannot_be_retired(ws):
    for name in purposes.list_all(ws)[:-1]:
        purposes.retire(ws, ADMIN, name)
    last = purposes.list_all(ws)
    assert len(last) == 1
    with pytest.raises(InputError, match="the last one a search could name"):
        purposes.retire(ws, ADMIN, last[0])
    assert purposes.list_all(ws) == last


def test_search_record_keeps_who_why_and_a_copy_of_the_probe(ws, searched):
    row = ws.conn.execute("SELECT * FROM searches WHERE id = ?", (searched["search_id"],)).fetchone()
    assert (row["agent"], row["purpose"], row["status"]) == ("avery", "robbery", "awaiting-disposition")
    assert "pawn records" in row["traditional_means"]
    stored = ws.home / row["probe_stored_path"]
    assert stored.is_file() and row["probe_sha256"] in stored.name


# After the search ----------------------------------------------------------------------------------------

def test_full_path_to_closed_identified(ws, searched):
    sid = searched["search_id"]
    disposition_all(ws, searched)
    assert show(ws, AGENT, sid)["status"] == "awaiting-review"
    casework.corroborate(ws, REVIEWER, sid, 1, "fingerprints", "Latent print from the counter matches the subject.",
                         "LAB-2026-88", "corroborated")
    closed = casework.close(ws, REVIEWER, sid, "identified", "Corroborated by fingerprints LAB-2026-88.", rank=1)
    assert closed["status"] == "closed-identified"
    record = show(ws, AUDITOR, sid)
    assert record["closure"]["rank"] == 1 and record["closure"]["closed_by"] == "riley"
    assert record["candidates"][0]["corroboration"][0]["reference"] == "LAB-2026-88"
    assert all(c["label"].startswith("INVESTIGATIVE LEAD ONLY") for c in record["candidates"])
    actions = [h["action"] for h in record["history"] if h["outcome"] == "ok"]
    assert actions[0] == "search" and "corroborate" in actions and "close" in actions


def test_only_the_searching_agent_dispositions(ws, searched):
    refused(ws, "not-searching-agent", casework.disposition, ws, AGENT2, searched["search_id"], 1, "excluded",
            "Not them at all.")


def test_disposition_is_final_and_rank_must_exist(ws, searched):
    casework.disposition(ws, AGENT, searched["search_id"], 1, "possible-lead", "Worth checking.")
    refused(ws, "already-dispositioned", casework.disposition, ws, AGENT, searched["search_id"], 1, "excluded",
            "Changed my mind.")
    refused(ws, "no-such-candidate", casework.disposition, ws, AGENT, searched["search_id"], 9, "excluded",
            "Not them at all.")
    refused(ws, "missing-note", casework.disposition, ws, AGENT, searched["search_id"], 2, "excluded", " ")


def test_review_waits_for_every_disposition(ws, searched):
    casework.disposition(ws, AGENT, searched["search_id"], 1, "possible-lead", "Worth checking.")
    refused(ws, "not-dispositioned", casework.corroborate, ws, REVIEWER, searched["search_id"], 1, "documents",
            "Passport photo compared.", "DOC-1", "corroborated")
    refused(ws, "not-dispositioned", casework.close, ws, REVIEWER, searched["search_id"], "no-identification",
            "Nothing found.")


def test_searching_agent_cannot_corroborate_or_close_their_own_search(ws, searched):
    accounts.add_user(ws, ADMIN, "dual", ["agent", "reviewer"], PASSWORD)
    dual = Actor("dual", frozenset({"agent", "reviewer"}))
    accounts.certify(ws, ADMIN, "dual", accounts.DEFAULT_COURSE, "2026-06-01", "2099-01-01")
    accounts.accept_rules(ws, dual)
    own = run(ws, dual, search_request("obama1.jpg", top_k=2))
    for c in own["candidates"]:
        casework.disposition(ws, dual, own["search_id"], c["rank"], "possible-lead", "Worth checking.")
    refused(ws, "separation-of-duties", casework.corroborate, ws, dual, own["search_id"], 1, "documents",
            "Passport photo compared.", "DOC-1", "corroborated")
    refused(ws, "separation-of-duties", casework.close, ws, dual, own["search_id"], "no-identification",
            "Nothing found here.")


def test_identified_closure_without_corroboration_is_refused(ws, searched):
    sid = searched["search_id"]
    disposition_all(ws, searched)
    refused(ws, "uncorroborated", casework.close, ws, REVIEWER, sid, "identified", "Looks like them.", rank=1)
    refused(ws, "not-a-possible-lead", casework.corroborate, ws, REVIEWER, sid, 2, "documents",
            "Passport photo compared.", "DOC-1", "corroborated")
    casework.corroborate(ws, REVIEWER, sid, 1, "witness", "Witness could not confirm.", "W-3", "refuted")
    refused(ws, "uncorroborated", casework.close, ws, REVIEWER, sid, "identified", "Looks like them.", rank=1)
    casework.corroborate(ws, REVIEWER, sid, 1, "documents", "ID card photo matches.", "DOC-9", "corroborated")
    refused(ws, "refuted", casework.close, ws, REVIEWER, sid, "identified", "Looks like them.", rank=1)
    assert casework.close(ws, REVIEWER, sid, "no-identification", "Conflicting evidence.")["status"] == \
        "closed-no-identification"


def test_closed_search_is_read_only(ws, searched):
    sid = searched["search_id"]
    disposition_all(ws, searched, lead_rank=None)
    casework.close(ws, REVIEWER, sid, "no-identification", "Every candidate excluded.")
    refused(ws, "closed", casework.disposition, ws, AGENT, sid, 1, "possible-lead", "Second look.")
    refused(ws, "closed", casework.corroborate, ws, REVIEWER, sid, 1, "documents", "Passport.", "D-1", "corroborated")
    refused(ws, "closed", casework.close, ws, REVIEWER, sid, "identified", "Reopen.", rank=1)


def test_agents_see_only_their_own_searches(ws, searched):
    refused(ws, "need-to-know", show, ws, AGENT2, searched["search_id"])
    assert casework.listing(ws, AGENT2) == []
    assert [r["search_id"] for r in casework.listing(ws, REVIEWER)] == [searched["search_id"]]


# Audit ---------------------------------------------------------------------------------------------------

def test_audit_entries_name_who_what_case_and_photos(ws, searched):
    entry = next(e for e in audit.entries(ws.conn) if e["action"] == "search" and e["outcome"] == "ok")
    assert entry["actor"] == "avery" and entry["case_number"] == "T-1" and entry["search_id"] == searched["search_id"]
    assert searched["probe"]["sha256"] in entry["photo_sha256"]
    assert entry["at"].endswith("Z")


def tamper(ws, sql: str, *params) -> None:
    ws.conn.execute(sql, params)


@pytest.mark.parametrize("how", ["edit", "delete", "insert", "reorder"])
def test_audit_verify_detects_each_kind_of_tampering(ws, searched, how):
    assert oversight.verify(ws, AUDITOR).ok
    n = ws.conn.execute("SELECT max(id) FROM audit").fetchone()[0]
    assert n > 10
    if how == "edit":
        tamper(ws, "UPDATE audit SET actor = 'someone-else' WHERE id = 5")
        expected = 5
    elif how == "delete":
        tamper(ws, "DELETE FROM audit WHERE id = 6")
        expected = 7
    elif how == "insert":
        # shift entries up to make room, as a forger would, and insert a made-up one
        tamper(ws, "UPDATE audit SET id = id + 1000 WHERE id >= 8")
        tamper(ws, "UPDATE audit SET id = id - 999 WHERE id >= 1008")
        row = dict(ws.conn.execute("SELECT * FROM audit WHERE id = 7").fetchone())
        row.update(id=8, action="forged", hash="0" * 64)
        ws.conn.execute(f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        expected = 8
    else:
        a, b = (dict(ws.conn.execute("SELECT * FROM audit WHERE id = ?", (i,)).fetchone()) for i in (3, 4))
        for target, source in ((3, b), (4, a)):
            cols = [c for c in source if c != "id"]
            ws.conn.execute(f"UPDATE audit SET {', '.join(c + ' = ?' for c in cols)} WHERE id = ?",
                            [source[c] for c in cols] + [target])
        expected = 3
    result = audit.verify(ws.conn)
    assert not result.ok and result.bad_entry == expected, result


def test_audit_verify_detects_removed_newest_entries_with_recorded_head(ws, searched):
    head = oversight.verify(ws, AUDITOR).head  # the supervisor writes this down
    run(ws, AGENT, search_request("obama1.jpg", case="T-3"))
    assert oversight.verify(ws, AUDITOR, expect_head=head).ok  # later entries are fine
    head_id = ws.conn.execute("SELECT id FROM audit WHERE hash = ?", (head,)).fetchone()[0]
    ws.conn.execute("DELETE FROM audit WHERE id >= ?", (head_id - 1,))
    assert audit.verify(ws.conn).ok  # a shorter chain is still a chain…
    result = audit.verify(ws.conn, expect_head=head)
    assert not result.ok and "no longer in the chain" in result.problem  # …but not the one recorded


def test_audit_report_counts(ws, searched):
    refused(ws, "missing-traditional-means", run, ws, AGENT, search_request("obama1.jpg", traditional_means=""))
    disposition_all(ws, searched, lead_rank=None)
    casework.close(ws, REVIEWER, searched["search_id"], "no-identification", "All excluded.")
    other = run(ws, AGENT2, search_request("obama1.jpg", case="T-2"))
    ws.conn.execute("UPDATE searches SET created_at = '2026-01-01T00:00:00.000000Z' WHERE id = ?", (other["search_id"],))
    today = date.today().isoformat()
    data = oversight.report(ws, AUDITOR, today, today, stale_days=30)
    assert {r["user"]: r["searches"] for r in data["searches_by_user"]} == {"avery": 1, "blake": 1}
    reasons = {(r["action"], r["reason"]): r["count"] for r in data["refusals_by_reason"]}
    assert reasons[("search", "missing-traditional-means")] == 1
    assert (data["closed_identified"], data["closed_no_identification"]) == (0, 1)
    assert [s["search_id"] for s in data["open_searches_older"]] == [other["search_id"]]
    assert data["chain"]["ok"]
    with pytest.raises(InputError):
        oversight.report(ws, AUDITOR, today, "2000-01-01")


# Retention -----------------------------------------------------------------------------------------------

def test_purge_removes_expired_probe_and_details_but_keeps_audit(ws, searched):
    sid = searched["search_id"]
    disposition_all(ws, searched, lead_rank=None)
    casework.close(ws, REVIEWER, sid, "no-identification", "All excluded.")
    fresh = run(ws, AGENT, search_request("obama1.jpg", case="T-9"))
    probe = ws.home / ws.conn.execute("SELECT probe_stored_path FROM searches WHERE id = ?", (sid,)).fetchone()[0]
    assert probe.exists()
    assert retention.purge_expired(ws, ADMIN)["purged_searches"] == []  # retention (30 days) not yet over
    ws.conn.execute("UPDATE searches SET closed_at = '2025-01-01T00:00:00.000000Z' WHERE id = ?", (sid,))
    audit_before = ws.conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    result = retention.purge_expired(ws, ADMIN)
    assert result == {"purged_searches": [sid], "probe_files_removed": 1}
    assert not probe.exists()
    record = show(ws, AUDITOR, sid)
    assert record["purged_at"] and record["candidates"] == [] and record["justification"] is None
    assert record["status"] == "closed-no-identification"
    assert ws.conn.execute("SELECT count(*) FROM audit").fetchone()[0] > audit_before
    assert audit.entries(ws.conn)[-2]["action"] == "purge"  # the purge, then the auditor's read
    assert audit.verify(ws.conn).ok
    assert show(ws, AGENT, fresh["search_id"])["candidates"]  # open searches are untouched


# Command line --------------------------------------------------------------------------------------------

def test_cli_refuses_without_sign_in_and_after_logout(home):
    result = run_cli("searches", home=home)
    assert_clean_error(result, "not signed in", "login", code=3)
    login(home, AGENT)
    assert "avery (agent)" in run_cli("whoami", home=home).stdout
    assert run_cli("logout", home=home).returncode == 0
    assert_clean_error(run_cli("searches", home=home), "not signed in", code=3)
    bad = run_cli("login", "avery", "--password-stdin", home=home, input="wrong password here\n")
    assert_clean_error(bad, "wrong user name or password", code=3)


def test_cli_full_workflow_and_audit(home):
    login(home, AGENT)
    out = run_cli("search", str(GALLERY_DIR.parent / "probes" / "obama1.jpg"), "--gallery", "test-gallery",
                  "--case", "K-7", "--purpose", "homicide", "--justification", "Suspect seen leaving the scene.",
                  "--traditional-means", "Door-to-door canvass, phone records and witness interviews gave no name.",
                  "--top-k", "2", "--json", home=home)
    import json

    sid = json.loads(out.stdout)["search_id"]
    for rank, decision in ((1, "possible-lead"), (2, "excluded")):
        r = run_cli("disposition", sid, "--rank", str(rank), "--decision", decision, "--note", "Compared.", home=home)
        assert r.returncode == 0, r.stderr
    assert_clean_error(run_cli("close", sid, "--outcome", "identified", "--rank", "1", "--note", "Done here.",
                               home=home), "reviewer role", code=3)
    login(home, REVIEWER)
    assert_clean_error(run_cli("close", sid, "--outcome", "identified", "--rank", "1", "--note", "Looks right.",
                               home=home), "no corroborating evidence", code=3)
    assert run_cli("corroborate", sid, "--rank", "1", "--evidence-type", "records-check", "--evidence",
                   "DMV record photo and address match.", "--reference", "RC-1", "--outcome", "corroborated",
                   home=home).returncode == 0
    closed = run_cli("close", sid, "--outcome", "identified", "--rank", "1", "--note", "Corroborated RC-1.", home=home)
    assert "closed-identified" in closed.stdout
    shown = run_cli("show", sid, home=home)
    assert "closed closed-identified by riley" in shown.stdout
    login(home, AUDITOR)
    verified = run_cli("audit", "verify", home=home)
    assert verified.returncode == 0 and "intact" in verified.stdout
    csv_report = run_cli("audit", "report", "--from", "2026-01-01", "--to", date.today().isoformat(),
                         "--format", "csv", home=home)
    assert "closures,identified,1" in csv_report.stdout and "searches_by_user,avery,1" in csv_report.stdout
    log = run_cli("audit", "log", "--case", "K-7", home=home)
    assert "close" in log.stdout and "refused" in log.stdout
    with sqlite3.connect(home / "leadmatch.db") as conn:
        conn.execute("UPDATE audit SET reason = 'nothing to see' WHERE id = 3")
    broken = run_cli("audit", "verify", home=home)
    assert broken.returncode == 6 and "entry 3" in broken.stderr
