"""The analyst's and the admin's pages at the HTTP level (real workspace, real app; issue 21): enrollment by a
plain form post (no script), an enrollment's progress and summary only for whoever started it, roles checked by
the library, refused forms answered with their fields filled in and no option names or internal names."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.web import create_app

from .helpers import ADMIN, AGENT, ANALYST, AUDITOR, GALLERY, GALLERY_DIR, PASSWORD
from .test_web import csrf_of, sign_in

JOB = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def client(home):
    with TestClient(create_app(home, workers=1)) as c:
        yield c


def test_a_plain_form_post_enrolls_and_only_its_analyst_sees_the_summary(client, home):
    token = sign_in(client, ANALYST)
    photos = [("photo", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted((GALLERY_DIR / "joe_biden").iterdir())]
    photos.append(("photo", ("notes.jpg", b"not a photo", "image/jpeg")))
    answer = client.post(f"/galleries/{GALLERY}/enroll", data={"csrf": token, "subject": "joe_biden", "job": JOB},
                         files=photos, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/galleries/{GALLERY}/enrollments/{JOB}"
    summary = client.get(answer.headers["location"])
    assert "3 offered: 0 enrolled, 2 skipped (already in the gallery), 1 refused" in summary.text
    assert "joe_biden/notes.jpg" in summary.text and "not an image" in summary.text
    progress = client.get(f"/galleries/{GALLERY}/enrollments/{JOB}/progress").json()
    assert progress == {"stage": "done", "done": 3, "total": 3}
    ws = open_workspace(home)
    entry = [e for e in audit.entries(ws.conn) if e["action"] == "gallery.enroll"][-1]
    ws.close()
    assert "upload of 3 photos: joe_biden/biden.jpg" in str(entry["objects"])  # as uploaded, no server folder

    client.cookies.clear()
    sign_in(client, AUDITOR)  # another user cannot read it, even knowing the id
    assert client.get(f"/galleries/{GALLERY}/enrollments/{JOB}").status_code == 404
    assert client.get(f"/galleries/{GALLERY}/enrollments/{JOB}/progress").json()["stage"] == "waiting"


def test_enrollment_problems_keep_the_page_and_a_wrong_role_is_refused_and_audited(client, home):
    token = sign_in(client, ANALYST)
    nothing = client.post(f"/galleries/{GALLERY}/enroll", data={"csrf": token, "subject": "x"})
    assert nothing.status_code == 400 and "no photos were uploaded" in nothing.text and 'value="x"' in nothing.text
    unnamed = client.post(f"/galleries/{GALLERY}/enroll", data={"csrf": token},
                          files=[("photo", ("biden.jpg", b"...", "image/jpeg"))])
    assert unnamed.status_code == 400 and "is not named &lt;subject&gt;/&lt;file&gt;" in unnamed.text
    client.cookies.clear()
    token = sign_in(client, AGENT)
    refused = client.post(f"/galleries/{GALLERY}/enroll", data={"csrf": token, "subject": "joe_biden"},
                          files=[("photo", ("biden.jpg", (GALLERY_DIR / "joe_biden" / "biden.jpg").read_bytes(),
                                            "image/jpeg"))])
    assert refused.status_code == 403 and "needs the analyst role" in refused.text
    assert "gallery.enroll" not in refused.text  # no internal names on a page
    assert client.get("/people").status_code == 403 and client.get("/purge").status_code == 403
    ws = open_workspace(home)
    actions = {e["action"] for e in audit.entries(ws.conn) if e["outcome"] == "refused"}
    ws.close()
    assert {"gallery.enroll", "user.list", "purge.preview"} <= actions


def test_a_refused_new_gallery_and_new_user_come_back_filled_in(client):
    token = sign_in(client, ANALYST)
    fields = {"csrf": token, "name": "g2", "authority": "  ", "approved_by": "Chief R.", "approved_on": "2026-01-01",
              "source": "Booking photos", "retention_days": "90", "model": "dlib"}
    blank = client.post("/galleries", data=fields)
    assert blank.status_code == 403 and "lacks its authorization: “Legal authority” is empty" in blank.text
    assert "--authority" not in blank.text and 'value="Chief R."' in blank.text
    assert 'name="authority" required aria-invalid="true"' in blank.text
    days = client.post("/galleries", data={**fields, "authority": "Code §1", "retention_days": "many"})
    assert days.status_code == 400 and "Retention (days) &#39;many&#39; is not a whole number" in days.text
    no_model = client.post("/galleries", data={**fields, "authority": "Code §1", "model": ""})
    assert no_model.status_code == 400 and "no face model was chosen" in no_model.text
    made = client.post("/galleries", data={**fields, "authority": "Code §1"}, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/galleries/g2"

    client.cookies.clear()
    token = sign_in(client, ADMIN)
    weak = client.post("/people", data={"csrf": token, "name": "dana", "role": ["agent", "reviewer"],
                                        "password": "short", "password_again": "short"})
    assert weak.status_code == 400 and "password is shorter than 12 characters" in weak.text
    assert 'value="dana"' in weak.text and 'value="short"' not in weak.text  # a password is never sent back
    assert weak.text.count("checked") == 2
    differ = client.post("/people", data={"csrf": token, "name": "dana", "role": "agent", "password": PASSWORD,
                                          "password_again": PASSWORD + "!"})
    assert differ.status_code == 400 and "the two passwords differ" in differ.text
    page = client.get("/people/riley")
    assert page.status_code == 200 and csrf_of(page.text) == token
    again = client.post("/people/riley/roles", data={"csrf": token, "role": "reviewer"})
    assert again.status_code == 403 and "riley already has the reviewer role" in again.text
    assert "user.grant-role" not in again.text
    missing = client.get("/people/nobody")
    assert missing.status_code == 404


def test_an_admin_retires_a_purpose_on_its_page_and_an_agent_cannot(client, home):
    token = sign_in(client, ADMIN)
    page = client.get("/purposes").text
    assert 'action="/purposes/arson/retire"' in page and "Retire the purpose arson?" in page  # asks first
    done = client.post("/purposes/arson/retire", data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/purposes?retired=arson"
    after = client.get(done.headers["location"]).text
    assert "Retired the purpose “arson”" in after and f"arson — retired " in after and f"by {ADMIN.name}" in after
    assert 'action="/purposes/arson/retire"' not in after
    again = client.post("/purposes/arson/retire", data={"csrf": token})
    assert again.status_code == 400 and "already retired" in again.text and "leadmatch" not in again.text.split("<main")[-1]
    client.post("/logout", data={"csrf": token})
    token = sign_in(client, AGENT)
    assert "/retire" not in client.get("/purposes").text
    refused = client.post("/purposes/burglary/retire", data={"csrf": token})
    assert refused.status_code == 403
    entries = [e for e in audit.entries(open_workspace(home).conn) if e["action"] == "purposes.retire"]
    assert [(e["actor"], e["outcome"]) for e in entries] == [(ADMIN.name, "ok"), (ADMIN.name, "refused"),
                                                            (AGENT.name, "refused")]
