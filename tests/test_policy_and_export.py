"""Deployment policy (each switch refuses what it switches off, naming the policy, audited), decisions seen
before in the same case, and the case's disclosure export (hashes and chain verify; tampering is caught)."""

from __future__ import annotations

import hashlib
import json

import pytest

from leadmatch.casemedia import export, media, persons
from leadmatch.errors import InputError, Refused
from leadmatch.governance import accounts, casework, policy
from leadmatch.record import audit
from leadmatch.search.run import run, show

from .helpers import (ADMIN, AGENT, AUDITOR, GALLERY_DIR, PROBES_DIR, REVIEWER, login, run_cli,
                       search_request)
from .test_casemedia import CLIP, add_request, person_search_request

CASE = "C-22"


def last_refusal(ws) -> dict:
    return [e for e in audit.entries(ws.conn) if e["outcome"] == "refused"][-1]


def test_only_an_admin_sets_the_policy_and_the_change_is_audited_with_before_and_after(ws):
    with pytest.raises(Refused) as agent:
        policy.update(ws, AGENT, {"video_probes": False})
    assert agent.value.reason == "wrong-role"
    assert policy.get(ws).video_probes
    policy.update(ws, ADMIN, {"video_probes": False, "max_candidates": 10})
    entry = [e for e in audit.entries(ws.conn) if e["action"] == "policy.set"][-1]
    assert entry["objects"]["before"]["video_probes"] is True and entry["objects"]["after"]["video_probes"] is False
    assert "video probes off" in policy.show(ws, AGENT)["lines"]


@pytest.mark.parametrize("changes", [{"max_candidates": 51}, {"min_candidates": 1}, {"min_candidates": 30,
                                     "max_candidates": 20}, {"video_probes": "no"}, {"colour": "blue"},
                                     {"required_course": "  "}])
def test_policy_values_outside_the_rules_are_bad_input(ws, changes):
    with pytest.raises(InputError):
        policy.update(ws, ADMIN, changes)


def test_video_probes_off_refuses_clip_searches_and_clips_added_to_a_case(ws):
    policy.update(ws, ADMIN, {"video_probes": False})
    with pytest.raises(Refused) as clip:
        run(ws, AGENT, search_request(CLIP))
    assert clip.value.reason == "policy-video-probes" and "deployment policy" in clip.value.message
    assert last_refusal(ws)["reason"].startswith("policy-video-probes: deployment policy")
    with pytest.raises(Refused) as added:
        media.add(ws, AGENT, add_request(CLIP))
    assert added.value.reason == "policy-video-probes"
    assert run(ws, AGENT, search_request("obama1.jpg", top_k=2))["candidates"]  # photos still searchable


def test_case_media_off_refuses_adding_media(ws):
    policy.update(ws, ADMIN, {"case_media": False})
    with pytest.raises(Refused) as caught:
        media.add(ws, AGENT, add_request(PROBES_DIR / "obama1.jpg"))
    assert caught.value.reason == "policy-case-media"
    assert last_refusal(ws)["action"] == "media.add"


def test_candidate_list_outside_the_allowed_size_is_refused(ws):
    policy.update(ws, ADMIN, {"min_candidates": 5, "max_candidates": 10})
    for top_k in (3, 20):
        with pytest.raises(Refused) as caught:
            run(ws, AGENT, search_request("obama1.jpg", top_k=top_k))
        assert caught.value.reason == "policy-candidates" and "5–10" in caught.value.message
    assert len(run(ws, AGENT, search_request("obama1.jpg", top_k=6))["candidates"]) == 6


def test_enhanced_probes_off_is_refused_even_with_the_original(ws):
    policy.update(ws, ADMIN, {"enhanced_probes": False})
    with pytest.raises(Refused) as caught:
        run(ws, AGENT, search_request("obama1.jpg", probe_source="enhanced", original=PROBES_DIR / "obama3.jpg",
                                      enhancement="brightened the face"))
    assert caught.value.reason == "policy-enhanced-probes"


def test_the_required_course_is_the_policys(ws):
    policy.update(ws, ADMIN, {"required_course": "Face Examiner Level 2"})
    with pytest.raises(Refused) as caught:
        run(ws, AGENT, search_request("obama1.jpg"))
    assert caught.value.reason == "uncertified" and "Face Examiner Level 2" in caught.value.message
    accounts.certify(ws, ADMIN, AGENT.name, "Face Examiner Level 2", "2026-06-01", "2099-06-01")
    assert run(ws, AGENT, search_request("obama1.jpg", top_k=2))["candidates"]


def test_whoami_shows_the_policy(home):
    ws_home = home
    login(ws_home, ADMIN)
    assert run_cli("policy", "set", "--video-probes", "off", "--max-candidates", "30", home=ws_home).returncode == 0
    shown = run_cli("whoami", home=ws_home)
    assert "deployment policy: video probes off" in shown.stdout and "candidate list 2–30" in shown.stdout
    bad = run_cli("policy", "set", "--case-media", "maybe", home=ws_home)
    assert bad.returncode != 0 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    login(ws_home, AGENT)
    refused = run_cli("policy", "set", "--case-media", "off", home=ws_home)
    assert refused.returncode == 3 and "admin" in refused.stderr


def test_a_decision_from_an_earlier_search_of_the_case_is_shown_and_still_needs_one(ws):
    first = run(ws, AGENT, search_request("obama1.jpg", top_k=2, case="SB-1"))
    casework.disposition(ws, AGENT, first["search_id"], 1, "excluded", "mole on the other cheek")
    casework.disposition(ws, AGENT, first["search_id"], 2, "possible-lead", "similar jawline")
    second = run(ws, AGENT, search_request("obama3.jpg", top_k=2, case="SB-1"))
    other_case = run(ws, AGENT, search_request("obama3.jpg", top_k=2, case="SB-2"))
    by_subject = {c["subject"]: c for c in second["candidates"]}
    subject = first["candidates"][0]["subject"]
    seen = by_subject[subject]["seen_before"]
    assert seen == [{"decision": "excluded", "note": "mole on the other cheek", "decided_by": AGENT.name,
                     "decided_at": seen[0]["decided_at"], "search_id": first["search_id"], "rank": 1}]
    assert by_subject[subject]["disposition"] is None and second["status"] == casework.AWAITING_DISPOSITION
    assert all(not c["seen_before"] for c in other_case["candidates"])  # another case's decisions stay there
    assert show(ws, REVIEWER, second["search_id"])["candidates"][0]["seen_before"] or \
        show(ws, REVIEWER, second["search_id"])["candidates"][1]["seen_before"]


@pytest.fixture
def exported_case(ws, tmp_path):
    """A case with media, a person search closed as no-identification (every candidate excluded), an enhanced
    photo search, and its export."""
    media.add(ws, AGENT, add_request(GALLERY_DIR / "lin_manuel_miranda", CLIP))
    lin = persons.listing(ws, AGENT, CASE)["persons"][0]
    person_search = persons.search(ws, AGENT, CASE, lin["label"], person_search_request(top_k=2))
    for c in person_search["candidates"]:
        casework.disposition(ws, AGENT, person_search["search_id"], c["rank"], "excluded", "not our man at all")
    casework.close(ws, REVIEWER, person_search["search_id"], "no-identification", "every candidate excluded")
    run(ws, AGENT, search_request("obama1.jpg", case=CASE, top_k=2, probe_source="enhanced",
                                  original=PROBES_DIR / "obama3.jpg", enhancement="raised the contrast"))
    out = tmp_path / "export"
    return export.export(ws, AUDITOR, CASE, out), out


def test_case_export_lists_every_search_file_and_audit_entry_and_verifies(ws, exported_case):
    result, out = exported_case
    assert result["searches"] == 2 and result["chain_ok"]
    document = json.loads((out / "case.json").read_text())
    statuses = {s["status"] for s in document["searches"]}
    assert statuses == {"closed-no-identification", "awaiting-disposition"}
    excluded = [c["disposition"]["decision"] for s in document["searches"] for c in s["candidates"] if c["disposition"]]
    assert excluded and set(excluded) == {"excluded"}
    originals = [s["details"]["enhancement"]["original"]["sha256"] for s in document["searches"]
                 if s["details"].get("enhancement")]
    listed = {f["sha256"] for f in document["files"]}
    assert originals and originals[0] in listed
    assert {m["sha256"] for m in document["media"]} <= listed
    for f in document["files"]:
        assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    actions = {e["action"] for e in document["audit"]["entries"]}
    assert {"media.add", "person.group", "search", "disposition", "close"} <= actions
    html = (out / "case.html").read_text()
    assert "INVESTIGATIVE LEAD ONLY" in html and "raised the contrast" in html and "data:image/png;base64," in html
    checked = export.verify(out)
    assert checked["ok"], checked["problems"]
    assert audit.entries(ws.conn, case=CASE)[-1]["action"] == "case.export"


def test_a_tampered_export_does_not_verify(exported_case):
    _, out = exported_case
    document = json.loads((out / "case.json").read_text())
    victim = out / document["files"][0]["path"]
    victim.write_bytes(victim.read_bytes() + b"x")
    entries = document["audit"]["entries"]
    entries[1]["actor"] = "someone-else"
    (out / "case.json").write_text(json.dumps(document))
    problems = export.verify(out)["problems"]
    assert any(document["files"][0]["path"] in p for p in problems)
    assert any("case.json does not match" in p for p in problems)
    assert any(f"audit entry {entries[1]['id']} does not match its hash" in p for p in problems)


def test_only_auditors_reviewers_and_admins_export_and_never_over_a_folder(ws, exported_case, tmp_path):
    with pytest.raises(Refused) as agent:
        export.export(ws, AGENT, CASE, tmp_path / "by-agent")
    assert agent.value.reason == "wrong-role"
    with pytest.raises(InputError):
        export.export(ws, ADMIN, CASE, exported_case[1])


def test_case_export_and_verify_on_the_command_line(home, tmp_path):
    login(home, AGENT)
    added = run_cli("media", "add", CASE, str(GALLERY_DIR / "lin_manuel_miranda"), str(CLIP), "--purpose", "robbery",
                    "--justification", "Seized phone of the robbery suspect.", "--workers", "1", home=home)
    assert added.returncode == 0, added.stderr
    assert "2 files added" in added.stdout and "1 person (1 new)" in added.stdout
    listed = run_cli("media", "persons", CASE, home=home)
    assert "P1" in listed.stdout
    login(home, AUDITOR)
    done = run_cli("case", "export", CASE, "--out", str(tmp_path / "disclosure"), home=home)
    assert done.returncode == 0, done.stderr
    assert "chain verified" in done.stdout
    verified = run_cli("case", "verify", str(tmp_path / "disclosure"), home=home)
    assert verified.returncode == 0 and verified.stdout.startswith("ok")
    (tmp_path / "disclosure" / "case.html").write_text("edited")
    broken = run_cli("case", "verify", str(tmp_path / "disclosure"), home=home)
    assert broken.returncode != 0 and "case.html does not match" in broken.stdout
    assert broken.stderr.startswith("error: ") and "Traceback" not in broken.stderr


def test_video_off_searches_a_person_with_its_photos_only_and_refuses_one_seen_only_in_clips(ws):
    media.add(ws, AGENT, add_request(GALLERY_DIR / "lin_manuel_miranda", CLIP))
    media.add(ws, AGENT, add_request(PROBES_DIR / "obama1.jpg"))
    lin = next(p for p in persons.listing(ws, AGENT, CASE)["persons"] if p["tracks"] == 2)
    face = next(a["face_id"] for a in lin["appearances"] if a["kind"] == "photo")
    policy.update(ws, ADMIN, {"video_probes": False})
    result = persons.search(ws, AGENT, CASE, lin["label"], person_search_request())
    assert [f["source"] for f in result["probe"]["frames"]] == [next(a["file"] for a in lin["appearances"]
                                                                     if a["face_id"] == face)]
    assert result["candidates"][0]["subject"] == "lin_manuel_miranda"
    clip_only = persons.split(ws, AGENT, CASE, lin["label"], [a["face_id"] for a in lin["appearances"]
                                                              if a["kind"] == "video"][:1], "the tracks alone")
    with pytest.raises(Refused) as caught:
        persons.search(ws, AGENT, CASE, clip_only["new_person"], person_search_request())
    assert caught.value.reason == "policy-video-probes"


def test_the_policys_candidate_bounds_are_the_searchs():
    from leadmatch.search import leads

    assert (policy.MIN_CANDIDATES, policy.MAX_CANDIDATES) == (leads.MIN_CANDIDATES, leads.MAX_CANDIDATES)
    assert (policy.Policy().min_candidates, policy.Policy().max_candidates) == (2, 50)
