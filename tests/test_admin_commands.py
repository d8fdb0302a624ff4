"""The analyst's and the admin's commands of issue 21: a gallery's subjects (filtered, paged, with their flags),
role grants and revocations, and the purge preview (`purge --dry-run`) — in the library and on the command line."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from leadmatch.errors import InputError, NotFound, Refused
from leadmatch.gallery import galleries
from leadmatch.governance import accounts, casework, retention
from leadmatch.operations import galleries as gallery_ops
from leadmatch.operations import oversight, people
from leadmatch.record import audit
from leadmatch.search.run import run

from .helpers import (ADMIN, AGENT, ANALYST, AUDITOR, GALLERY, REVIEWER, assert_clean_error, cli_search, login,
                      run_cli, search_request)


def last_entry(ws) -> dict:
    return audit.entries(ws.conn)[-1]


# A gallery's subjects ------------------------------------------------------------------------------------

def test_subjects_are_listed_by_name_with_counts_filtered_and_paged(ws):
    page = gallery_ops.subjects(ws, ANALYST, GALLERY)
    assert page["total"] == 6 and [s["subject"] for s in page["subjects"]] == [
        "alex_lacamoire", "barack_obama", "joe_biden", "kit_harington", "lin_manuel_miranda", "rose_leslie"]
    obama = page["subjects"][1]
    assert (obama["photos"], obama["faces"]) == (2, 2)
    assert sum(s["faces"] for s in page["subjects"]) == 11

    assert [s["subject"] for s in gallery_ops.subjects(ws, AUDITOR, GALLERY, "OBA")["subjects"]] == ["barack_obama"]
    assert gallery_ops.subjects(ws, ADMIN, GALLERY, "%")["total"] == 0  # typed literally, not a wildcard
    second = gallery_ops.subjects(ws, ANALYST, GALLERY, offset=2, limit=2)
    assert second["total"] == 6 and [s["subject"] for s in second["subjects"]] == ["joe_biden", "kit_harington"]


def test_flagged_faces_are_listed_with_their_flags(ws):
    face = ws.conn.execute("SELECT f.id FROM faces f JOIN subjects s ON s.id = f.subject_id "
                           "WHERE s.name = 'joe_biden' ORDER BY f.id LIMIT 1").fetchone()[0]
    ws.conn.execute("UPDATE faces SET quality_flags = ? WHERE id = ?", (json.dumps(["low-quality: blurry"]), face))
    flagged = gallery_ops.flagged_faces(ws, ANALYST, GALLERY)
    assert [(f["subject"], f["flags"]) for f in flagged] == [("joe_biden", ["low-quality: blurry"])]
    page = gallery_ops.subjects(ws, ANALYST, GALLERY, flagged_only=True)
    assert page["total"] == 1 and page["subjects"][0]["flagged_faces"] == 1
    assert page["subjects"][0]["flags"] == ["low-quality: blurry"]


def test_subjects_need_a_detail_reader_and_a_real_gallery_and_page(ws):
    with pytest.raises(Refused) as caught:
        gallery_ops.subjects(ws, AGENT, GALLERY)
    assert caught.value.reason == "wrong-role" and last_entry(ws)["action"] == "gallery.subjects"
    with pytest.raises(NotFound):
        gallery_ops.subjects(ws, ANALYST, "no-such-gallery")
    with pytest.raises(InputError, match="page size"):
        gallery_ops.subjects(ws, ANALYST, GALLERY, limit=0)
    with pytest.raises(InputError, match="offset"):
        gallery_ops.subjects(ws, ANALYST, GALLERY, offset=-1)


# Roles ---------------------------------------------------------------------------------------------------

def test_a_granted_role_works_at_once_and_a_revoked_one_is_refused_at_once(ws):
    assert people.grant_role(ws, ADMIN, "riley", "auditor") == {"user": "riley", "roles": ["auditor", "reviewer"]}
    assert last_entry(ws)["action"] == "user.grant-role"
    riley = accounts.Actor("riley", frozenset({"reviewer"}))  # a session opened before the grant
    assert oversight.verify(ws, riley)["ok"]
    assert people.revoke_role(ws, ADMIN, "riley", "auditor")["roles"] == ["reviewer"]
    with pytest.raises(Refused) as caught:
        oversight.verify(ws, accounts.Actor("riley", frozenset({"reviewer", "auditor"})))
    assert caught.value.reason == "wrong-role"


@pytest.mark.parametrize("call, name, role, reason", [
    (people.grant_role, "riley", "reviewer", "already-held"),
    (people.revoke_role, "riley", "agent", "not-held"),
    (people.revoke_role, "riley", "reviewer", "last-role"),
    (people.grant_role, "riley", "superuser", "bad-input"),
])
def test_role_changes_that_make_no_sense_are_refused_and_audited(ws, call, name, role, reason):
    before = ws.conn.execute("SELECT roles FROM users WHERE name = ?", (name,)).fetchone()[0]
    with pytest.raises(Refused) as caught:
        call(ws, ADMIN, name, role)
    assert caught.value.reason == reason
    entry = last_entry(ws)
    assert entry["outcome"] == "refused" and entry["reason"].startswith(reason + ":")
    assert ws.conn.execute("SELECT roles FROM users WHERE name = ?", (name,)).fetchone()[0] == before


def test_an_admin_keeps_their_own_admin_role_and_only_admins_change_roles(ws):
    people.grant_role(ws, ADMIN, "admin", "auditor")
    with pytest.raises(Refused) as caught:
        people.revoke_role(ws, ADMIN, "admin", "admin")
    assert caught.value.reason == "self-revoke"
    with pytest.raises(Refused) as caught:
        people.grant_role(ws, ANALYST, "ana", "admin")
    assert caught.value.reason == "wrong-role" and last_entry(ws)["action"] == "user.grant-role"
    people.disable(ws, ADMIN, "audra")
    with pytest.raises(Refused) as caught:
        people.grant_role(ws, ADMIN, "audra", "agent")
    assert caught.value.reason == "account-disabled"


# Purge preview -------------------------------------------------------------------------------------------

def closed_long_ago(ws) -> str:
    """A search closed as no-identification 400 days ago (past the sample gallery's 30-day retention)."""
    sid = run(ws, AGENT, search_request("obama-720p.jpg", top_k=2, case="P-1"))["search_id"]
    for rank in (1, 2):
        casework.disposition(ws, AGENT, sid, rank, "excluded", "Different ear shape and jaw line.")
    casework.close(ws, REVIEWER, sid, "no-identification", "Every candidate excluded.")
    long_ago = (datetime.now(timezone.utc) - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ws.conn.execute("UPDATE searches SET closed_at = ? WHERE id = ?", (long_ago, sid))
    return sid


def test_the_preview_counts_what_the_purge_then_removes_and_deletes_nothing(ws):
    sid = closed_long_ago(ws)
    open_one = run(ws, AGENT, search_request("obama1.jpg", case="P-2"))["search_id"]
    probe = ws.home / ws.conn.execute("SELECT probe_stored_path FROM searches WHERE id = ?", (sid,)).fetchone()[0]
    preview = oversight.purge_preview(ws, ADMIN)
    assert [s["search_id"] for s in preview["searches"]] == [sid]
    assert preview["searches"][0]["case"] == "P-1" and preview["searches"][0]["retention_days"] == 30
    assert preview["probe_files"] == 1 and preview["cases"] == [] and preview["media_files"] == 0
    assert probe.exists() and ws.conn.execute("SELECT purged_at FROM searches WHERE id = ?", (sid,)).fetchone()[0] \
        is None
    entry = last_entry(ws)
    assert (entry["action"], entry["outcome"]) == ("purge.preview", "ok")
    assert entry["objects"]["searches"] == [sid]
    purged = oversight.purge_expired(ws, ADMIN)
    assert purged["purged_searches"] == [sid] and purged["probe_files_removed"] == preview["probe_files"]
    assert open_one not in purged["purged_searches"]
    assert oversight.purge_preview(ws, ADMIN)["searches"] == []


def test_only_an_admin_previews_a_purge(ws):
    with pytest.raises(Refused) as caught:
        oversight.purge_preview(ws, AUDITOR)
    assert caught.value.reason == "wrong-role" and last_entry(ws)["action"] == "purge.preview"
    assert retention.preview(ws) == []


# The command line ----------------------------------------------------------------------------------------

def test_gallery_subjects_and_purge_dry_run_on_the_command_line(home):
    login(home, ANALYST)
    listed = run_cli("gallery", "subjects", GALLERY, home=home)
    assert listed.returncode == 0, listed.stderr
    assert "barack_obama" in listed.stdout and "1–6 of 6 subjects" in listed.stdout
    filtered = run_cli("gallery", "subjects", GALLERY, "--filter", "rose", "--json", home=home)
    page = json.loads(filtered.stdout)
    assert page["total"] == 1 and page["subjects"][0] == {**page["subjects"][0], "subject": "rose_leslie",
                                                          "faces": 2, "flagged_faces": 0}
    paged = run_cli("gallery", "subjects", GALLERY, "--limit", "2", home=home)
    assert "1–2 of 6 subjects; the next page: --offset 2" in paged.stdout
    assert_clean_error(run_cli("gallery", "subjects", "nope", home=home), "no gallery named 'nope'")

    login(home, ADMIN)
    dry = run_cli("purge", "--dry-run", home=home)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 0 searches (0 probe files) and the media of 0 cases (0 files) would be purged; nothing was " \
           "deleted (nothing is due)" in dry.stdout
    granted = run_cli("user", "grant", "riley", "--role", "auditor", home=home)
    assert granted.stdout.strip() == "granted auditor to riley; roles now auditor, reviewer"
    assert_clean_error(run_cli("user", "revoke", "riley", "--role", "agent", home=home), "riley does not have the "
                       "agent role", code=3)
    login(home, AUDITOR)
    assert_clean_error(run_cli("purge", "--dry-run", home=home), "needs the admin role", code=3)


def test_purge_dry_run_lists_each_search_it_would_purge(ws, home):
    sid = closed_long_ago(ws)
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    login(home, ADMIN)
    dry = run_cli("purge", "--expired", "--dry-run", home=home)
    assert dry.returncode == 0, dry.stderr
    assert f"would purge search {sid} (case P-1, closed " in dry.stdout and "retention 30 days): 1 probe file" \
        in dry.stdout
    assert "dry run: 1 search (1 probe file)" in dry.stdout
    assert ws.conn.execute("SELECT purged_at FROM searches WHERE id = ?", (sid,)).fetchone()[0] is None
    assert galleries.get(ws, GALLERY).retention_days == 30


# Purposes ------------------------------------------------------------------------------------------------

def test_an_admin_retires_a_purpose_on_the_command_line_and_a_search_naming_it_is_refused(home):
    login(home, AGENT)
    agent_try = run_cli("purposes", "retire", "arson", home=home)
    assert_clean_error(agent_try, "admin", code=3)
    login(home, ADMIN)
    done = run_cli("purposes", "retire", "Arson", home=home)
    assert done.returncode == 0 and "retired purpose 'arson'" in done.stdout, done.stderr
    listed = run_cli("purposes", home=home)
    assert "arson" not in listed.stdout.split() and "robbery" in listed.stdout.split()
    gone = run_cli("purposes", "--retired", home=home)
    assert gone.stdout.startswith("arson (retired ") and f"by {ADMIN.name}" in gone.stdout
    assert json.loads(run_cli("purposes", "--retired", "--json", home=home).stdout)[0]["name"] == "arson"
    assert_clean_error(run_cli("purposes", "retire", "arson", home=home), "already retired", code=1)
    login(home, AGENT)
    search = cli_search(home, search_request("obama1.jpg").probe, "--purpose", "arson")  # the last --purpose counts
    assert_clean_error(search, "purpose 'arson' was retired on", f"by {ADMIN.name}", code=3)
