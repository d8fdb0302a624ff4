"""The web app's rules at the HTTP level (real workspace, real app): sign-in, roles, CSRF, cookies, report."""

from __future__ import annotations

import html
import re
import time
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from leadmatch.governance import casework
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.search.report import render
from leadmatch.search.run import run
from leadmatch.web import create_app

from .helpers import AGENT, ANALYST, AUDITOR, LABEL, PASSWORD, PROBES_DIR, REVIEWER, login, run_cli, search_request


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, actor) -> str:
    nonce = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"name": actor.name, "password": PASSWORD, "csrf": nonce},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


@pytest.fixture
def client(home):
    with TestClient(create_app(home)) as c:
        yield c


def test_no_page_is_reachable_without_sign_in(client, searched):
    for path in ("/", "/search/new", "/searches", "/review", f"/searches/{searched}", f"/searches/{searched}/probe.png",
                 f"/searches/{searched}/candidates/1.png", f"/searches/{searched}/report", "/galleries",
                 "/galleries/test-gallery", "/audit", "/audit/report?start=2026-01-01&end=2026-12-31"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
    for path in ("/search", f"/searches/{searched}/disposition", f"/searches/{searched}/close", "/logout"):
        assert client.post(path, data={}, follow_redirects=False).status_code == 303, path


def test_session_cookie_is_httponly_strict_and_expiring(client):
    nonce = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"name": "avery", "password": PASSWORD, "csrf": nonce},
                           follow_redirects=False)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=28800" in cookie


def test_wrong_password_and_login_without_form_token(client):
    nonce = csrf_of(client.get("/login").text)
    bad = client.post("/login", data={"name": "avery", "password": "not it at all", "csrf": nonce})
    assert bad.status_code == 401 and "wrong user name or password" in bad.text
    forged = client.post("/login", data={"name": "avery", "password": PASSWORD, "csrf": "made-up"})
    assert forged.status_code == 403


def test_wrong_role_gets_403_not_a_hidden_button(client, home, searched):
    sign_in(client, AGENT)
    for path in ("/audit", "/galleries/test-gallery", "/review", "/audit/report?start=2026-01-01&end=2026-12-31"):
        assert client.get(path).status_code == 403, path
    listing = client.get("/galleries")  # the names an agent may search, as the CLI and the API give them
    assert listing.status_code == 200 and "test-gallery" in listing.text and "Test authority" not in listing.text
    client.cookies.clear()
    sign_in(client, ANALYST)
    assert client.get("/search/new").status_code == 403
    assert client.get(f"/searches/{searched}").status_code == 403
    assert client.get("/galleries").status_code == 200
    client.cookies.clear()
    token = sign_in(client, AUDITOR)
    response = client.post(f"/searches/{searched}/disposition",
                           data={"csrf": token, "rank": "1", "decision": "excluded", "note": "Not my job."})
    assert response.status_code == 403 and "agent role" in response.text
    ws = open_workspace(home)
    refused = [e for e in audit.entries(ws.conn) if e["outcome"] == "refused"]
    assert {"search.form", "search.read", "disposition"} <= {e["action"] for e in refused}
    ws.close()


def test_form_without_csrf_token_is_refused_and_audited(client, home, searched):
    sign_in(client, AGENT)
    response = client.post(f"/searches/{searched}/disposition",
                           data={"rank": "1", "decision": "excluded", "note": "No token on this form."})
    assert response.status_code == 403 and "CSRF" in response.text
    wrong = client.post(f"/searches/{searched}/disposition",
                        data={"csrf": "0" * 64, "rank": "1", "decision": "excluded", "note": "Forged token here."})
    assert wrong.status_code == 403
    ws = open_workspace(home)
    assert casework.workflow(ws, searched)["dispositions"] == {}
    assert [e["reason"].split(":")[0] for e in audit.entries(ws.conn) if e["action"] == "web.form"] == ["csrf", "csrf"]
    ws.close()


def test_search_lists_render_for_their_readers(client, searched):
    sign_in(client, AGENT)
    assert searched in client.get("/searches").text
    assert searched in client.get("/searches?status=awaiting-disposition").text
    client.cookies.clear()
    sign_in(client, REVIEWER)
    assert client.get("/review").status_code == 200


def test_search_page_labels_every_candidate_and_serves_crops(client, searched):
    sign_in(client, AGENT)
    page = client.get(f"/searches/{searched}").text
    assert page.count(LABEL) == 1 + 3  # the banner and every card
    assert re.findall(r'class="subject">([^<]+)', page)[0] == "barack_obama"
    crop = client.get(f"/searches/{searched}/candidates/1.png")
    assert crop.status_code == 200 and crop.content.startswith(b"\x89PNG")


def test_bad_upload_is_refused_with_its_reason_and_audited(client, home):
    token = sign_in(client, AGENT)
    fields = {"csrf": token, "gallery": "test-gallery", "case": "W-9", "purpose": "robbery",
              "justification": "Suspect on the store camera.", "probe_source": "original", "top_k": "3",
              "traditional_means": "Canvass, witness interviews and records checks gave no name."}
    response = client.post("/search", data=fields, files={"probe": ("notes.jpg", b"not a photo at all", "image/jpeg")})
    assert response.status_code == 400 and "not an image" in response.text
    sketch = client.post("/search", data={**fields, "probe_source": "sketch"},
                         files={"probe": ("p.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg")})
    assert sketch.status_code == 403 and "sketch" in sketch.text
    ws = open_workspace(home)
    reasons = [e["reason"].split(":")[0] for e in audit.entries(ws.conn) if e["action"] == "search"]
    assert reasons == ["unreadable", "composite-probe"]
    # an unusable probe is let go; a refused form keeps its probe for the retry (until swept)
    assert [p.name for p in (home / "uploads").glob("*/*.jpg")] == ["p.jpg"]
    assert 'name="upload" value="' in sketch.text and "p.jpg" in sketch.text
    ws.close()


def test_report_is_self_contained_and_labelled_everywhere(home, searched, tmp_path):
    ws = open_workspace(home)
    html = render(ws, REVIEWER, searched)
    ws.close()
    assert html.count(LABEL) >= 2 + 3 + 1  # top, bottom, every candidate (and the title)
    assert html.count("data:image/png;base64,") == 3 * 2  # each card: the probe face beside the candidate face
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "Canvassed the block" in html and "sha256" in html
    login(home, AGENT)
    out = tmp_path / "r.html"
    result = run_cli("report", searched, "--out", str(out), home=home)
    assert result.returncode == 0 and out.read_text().count(LABEL) >= 6


def test_every_field_is_validated_with_a_clear_message(client, home, searched):
    token = sign_in(client, AGENT)
    fields = {"csrf": token, "gallery": "test-gallery", "case": "W-9", "purpose": "robbery", "probe_source": "original",
              "justification": "Suspect on the store camera.",
              "traditional_means": "Canvass, witness interviews and records checks gave no name."}
    photo = {"probe": ("p.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg")}
    for field, value, message in (("top_k", "abc", "candidates 'abc' is not a whole number"),
                                  ("top_k", "500", "candidates 500 is out of range"),
                                  ("face", "abc", "face 'abc' is not a whole number")):
        response = client.post("/search", data={**fields, field: value}, files=photo)
        assert response.status_code == 400 and message in html.unescape(response.text), (field, response.text)
    for path, data in ((f"/searches/{searched}/disposition", {"decision": "excluded", "note": "Different ears."}),
                       (f"/searches/{searched}/close", {"outcome": "no-identification", "note": "Nothing found."})):
        response = client.post(path, data={"csrf": token, "rank": "abc", **data})
        assert response.status_code == 400 and "rank 'abc' is not a whole number" in html.unescape(response.text)
    assert client.get(f"/searches/{searched}/candidates/abc.png").status_code == 400
    assert {p.name for p in (home / "uploads").glob("*/*.jpg")} == {"p.jpg"}  # each refused form kept its probe


def test_a_form_without_csrf_is_refused_before_its_fields_are_read(client, home, searched):
    sign_in(client, REVIEWER)
    response = client.post(f"/searches/{searched}/close", data={"rank": "abc", "outcome": "x"})
    assert response.status_code == 403 and "CSRF" in response.text
    ws = open_workspace(home)
    assert [e["reason"].split(":")[0] for e in audit.entries(ws.conn) if e["action"] == "web.form"] == ["csrf"]
    ws.close()


def test_security_headers_on_every_response(client, searched, home):
    def check(response):
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["x-frame-options"] == "DENY", response.url
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], response.url

    check(client.get("/", follow_redirects=False))             # a redirect to sign in
    check(client.get("/login"))
    sign_in(client, AGENT)
    check(client.get(f"/searches/{searched}"))
    check(client.get(f"/searches/{searched}/probe.png"))
    check(client.get(f"/searches/{searched}/candidates/1.png"))
    check(client.get(f"/searches/{searched}/report"))
    missing = client.get("/no/such/page")
    check(missing)
    assert missing.status_code == 404 and str(home) not in missing.text
    check(client.get("/api/v1/whoami"))


def test_error_pages_show_no_server_paths(client, home):
    token = sign_in(client, AGENT)
    fields = {"csrf": token, "gallery": "test-gallery", "case": "W-9", "purpose": "robbery", "probe_source": "original",
              "justification": "Suspect on the store camera.", "top_k": "3",
              "traditional_means": "Canvass, witness interviews and records checks gave no name."}
    import io

    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (400, 300), (120, 120, 120)).save(blank, "JPEG")
    response = client.post("/search", data=fields, files={"probe": ("wall.jpg", blank.getvalue(), "image/jpeg")})
    assert response.status_code == 400 and "no face found in wall.jpg" in response.text
    assert str(home) not in response.text and "/uploads/" not in response.text and "/tmp" not in response.text


def failed_upload(page: str) -> str:
    """The upload id a refused form kept its probe under."""
    return re.search(r'name="upload" value="([0-9a-f]{32})"', page).group(1)


def test_abandoned_and_failed_uploads_are_swept(client, home, tmp_path):
    """A face pick left unfinished keeps its upload only until the age limit (checked at every upload and at
    `purge --expired`); a failed search keeps nothing."""
    import os

    from leadmatch.governance import retention

    token = sign_in(client, AGENT)
    fields = {"csrf": token, "gallery": "test-gallery", "case": "W-9", "purpose": "robbery", "probe_source": "original",
              "justification": "Suspect on the store camera.", "top_k": "3",
              "traditional_means": "Canvass, witness interviews and records checks gave no name."}
    two = client.post("/search", data=fields,
                      files={"probe": ("rose.jpg", (PROBES_DIR / "kit_with_rose.jpg").read_bytes(), "image/jpeg")})
    assert two.status_code == 200 and "pick the one to search" in two.text
    kept = list((home / "uploads").glob("*"))
    assert len(kept) == 1 and [p.name for p in kept[0].glob("*.jpg")] == ["rose.jpg"]  # waiting for the pick
    old = time.time() - retention.UPLOAD_MAX_AGE_S - 60
    os.utime(kept[0], (old, old))
    failed = client.post("/search", data={**fields, "case": ""},
                         files={"probe": ("p.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg")})
    assert failed.status_code in (400, 403)
    # the abandoned one swept; the refused form's probe kept for its retry
    assert [p.name for p in (home / "uploads").glob("*/*.jpg")] == ["p.jpg"]
    retried = client.post("/search", data={**fields, "upload": failed_upload(failed.text)}, follow_redirects=False)
    assert retried.status_code == 303, retried.text
    assert not list((home / "uploads").glob("*"))  # a search done lets its upload go
    # and at purge: an abandoned upload older than the limit goes
    stale = home / "uploads" / ("a" * 32)
    stale.mkdir(parents=True)
    (stale / "left.jpg").write_bytes(b"x")
    os.utime(stale, (old, old))
    login(home, "admin")
    result = run_cli("purge", "--expired", home=home)
    assert result.returncode == 0, result.stderr
    assert not stale.exists()


# Review at a size a person can judge; video and several stills in the browser's forms -------------------

from .helpers import (
    FACES,  # noqa: E402
    still_clip,  # noqa: E402
)

CLIP = FACES / "video" / "short_hamilton_clip.mp4"
SEARCH_FORM = {"gallery": "test-gallery", "case": "W-V", "purpose": "robbery", "probe_source": "original",
               "justification": "Suspect on the store camera.", "top_k": "3",
               "traditional_means": "Canvass, witness interviews and records checks gave no name."}


def png_size(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).size


def test_disposition_starts_empty_and_needs_a_choice_and_a_note(client, home, searched):
    token = sign_in(client, AGENT)
    page = client.get(f"/searches/{searched}").text
    selects = re.findall(r'<select name="decision"[^>]*>(.*?)</select>', page, re.S)
    assert len(selects) == 3
    assert all('required' in tag for tag in re.findall(r'<select name="decision"[^>]*>', page))
    for options in selects:  # nothing preselected but the disabled, empty "choose…"
        assert re.findall(r"<option[^>]*selected[^>]*>[^<]*", options) == ['<option value="" selected disabled>decide…']
    assert len(re.findall(r'<input type="text" name="note"[^>]*required', page)) == 3
    # a form sent without a choice (a script, an old browser) is refused by the library, and nothing recorded
    empty = client.post(f"/searches/{searched}/disposition",
                        data={"csrf": token, "rank": "1", "decision": "", "note": "Looked at it."})
    assert empty.status_code == 403 and "no decision was chosen for rank 1" in html.unescape(empty.text)
    no_note = client.post(f"/searches/{searched}/disposition",
                          data={"csrf": token, "rank": "1", "decision": "excluded", "note": " "})
    # the page's words, not the CLI's (--note), beside the field, which is marked; the typed choice kept
    assert no_note.status_code == 403 and "the note is empty or too short" in html.unescape(no_note.text)
    assert "--note" not in html.unescape(no_note.text)
    card = re.search(r'<article[^>]*data-rank="1".*?</article>', no_note.text, re.S).group(0)
    assert re.search(r'<input type="text" name="note"[^>]*aria-invalid="true"', card)
    assert "<option selected>excluded</option>" in card and 'role="alert"' in card
    ws = open_workspace(home)
    assert ws.conn.execute("SELECT COUNT(*) FROM dispositions WHERE search_id = ?", (searched,)).fetchone()[0] == 0
    reasons = [e["reason"] for e in audit.entries(ws.conn) if e["action"] == "disposition"]
    assert any(r.startswith("missing-decision") for r in reasons if r)  # the refusal is audited
    with pytest.raises(Exception) as refused:
        casework.disposition(ws, AGENT, searched, 1, "  ", "Compared the ears.")
    assert "no decision was chosen" in str(refused.value)
    ws.close()
    chosen = client.post(f"/searches/{searched}/disposition", follow_redirects=False,
                         data={"csrf": token, "rank": "1", "decision": "excluded", "note": "Different jaw line."})
    assert chosen.status_code == 303


def test_faces_are_aligned_chips_at_one_scale_with_a_compare_view_and_whole_photos(client, home):
    ws = open_workspace(home)
    sid = run(ws, AGENT, search_request("johnsnow_test1.jpg", top_k=3))["search_id"]
    ws.close()
    sign_in(client, AGENT)
    page = client.get(f"/searches/{sid}").text
    chips = re.findall(rf'src="/searches/{sid}/candidates/(\d)\.png\?style=chip&amp;size=220"', page)
    assert chips == ["1", "2", "3"]  # one aligned chip a candidate, in the grid
    probe = client.get(f"/searches/{sid}/probe.png?style=chip&size=220")
    first = client.get(f"/searches/{sid}/candidates/1.png?style=chip&size=220")
    assert png_size(probe.content) == png_size(first.content) == (220, 220)  # same size, square, eyes aligned
    assert max(png_size(client.get(f"/searches/{sid}/candidates/1.png").content)) == 320  # the margin crop
    assert client.get(f"/searches/{sid}/probe.png?size=5000").status_code == 400  # bounded
    assert client.get(f"/searches/{sid}/probe.png?style=odd").status_code == 400
    whole = client.get(f"/searches/{sid}/candidates/1.png?style=photo")
    assert whole.status_code == 200 and png_size(whole.content) != (220, 220)
    compare = client.get(f"/searches/{sid}/compare/1").text
    assert compare.count(f"/searches/{sid}/probe.png?style=chip&amp;size=400") == 2  # side by side, and overlaid
    assert compare.count(f"/searches/{sid}/candidates/1.png?style=chip&amp;size=400") == 2
    assert 'id="wipe"' in compare and 'rel="next"' in compare and LABEL in html.unescape(compare)
    # kit_harington has a second enrolled photo: on the compare view with its distance, served by face id
    others = re.findall(rf'src="/searches/{sid}/candidates/1.png\?face=(\d+)&amp;style=chip&amp;size=160"', compare)
    assert len(others) == 1 and "distance " in compare.split("Other matched photos")[1]
    assert client.get(f"/searches/{sid}/candidates/1.png?face={others[0]}").status_code == 200
    assert client.get(f"/searches/{sid}/candidates/1.png?face=999999").status_code == 404
    assert client.get(f"/searches/{sid}/compare/9").status_code == 400


def test_video_search_in_the_form_shows_its_frames(client, home):
    token = sign_in(client, AGENT)
    form = client.get("/search/new").text
    assert re.search(r'<input type="file" name="probe" accept="image/\*,video/\*" multiple required>', form)
    assert 'name="track"' in form and 'name="every"' in form and 'name="best_frames"' in form
    done = client.post("/search", data={**SEARCH_FORM, "csrf": token, "track": "largest"}, follow_redirects=False,
                       files={"probe": ("short_hamilton_clip.mp4", CLIP.read_bytes(), "video/mp4")})
    assert done.status_code == 303, done.text
    page = html.unescape(client.get(done.headers["location"]).text)
    sid = done.headers["location"].rsplit("/", 1)[1]
    assert re.search(r"frames \d+\.\d s, .* of short_hamilton_clip\.mp4 \(track \d+, sha256 [0-9a-f]{16}…\)", page)
    assert re.findall(r'class="subject">([^<]+)', page)[0] == "lin_manuel_miranda"
    frames = re.findall(rf'src="/searches/{sid}/frames/(\d)\.png\?size=160"', page)
    assert frames == ["1", "2", "3", "4", "5"]
    assert all(client.get(f"/searches/{sid}/frames/{n}.png").content.startswith(b"\x89PNG") for n in frames)
    assert client.get(f"/searches/{sid}/frames/6.png").status_code == 404


def test_clip_with_two_people_shows_a_track_picker(client, home, tmp_path):
    clip = still_clip(tmp_path / "two.mp4", [PROBES_DIR / "johnsnow_test1.jpg", PROBES_DIR / "obama1.jpg"])
    token = sign_in(client, AGENT)
    asked = client.post("/search", data={**SEARCH_FORM, "csrf": token},
                        files={"probe": ("two.mp4", clip.read_bytes(), "video/mp4")})
    assert asked.status_code == 200 and 'id="track-picker"' in asked.text and "2 face tracks" in asked.text
    thumbs = re.findall(r'<img src="data:image/png;base64,[^"]+" alt="track (\d)"', asked.text)
    assert thumbs == ["1", "2"]
    upload = re.search(r'name="upload" value="([0-9a-f]{32})"', asked.text).group(1)
    picked = client.post("/search", data={**SEARCH_FORM, "csrf": token, "upload": upload, "track": "2"},
                         follow_redirects=False)
    assert picked.status_code == 303, picked.text
    page = client.get(picked.headers["location"]).text
    assert re.findall(r'class="subject">([^<]+)', page)[0] == "barack_obama"
    assert not list((home / "uploads").glob("*"))


def test_several_stills_in_one_form(client):
    token = sign_in(client, AGENT)
    done = client.post("/search", data={**SEARCH_FORM, "csrf": token}, follow_redirects=False, files=[
        ("probe", ("obama1.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg")),
        ("probe", ("obama3.jpg", (PROBES_DIR / "obama3.jpg").read_bytes(), "image/jpeg"))])
    assert done.status_code == 303, done.text
    page = html.unescape(client.get(done.headers["location"]).text)
    assert "2 stills of one person: obama1.jpg, obama3.jpg" in page and "Flag: several stills" in page


def test_a_bad_audit_filter_comes_back_as_typed_with_the_field_marked(client):
    sign_in(client, AUDITOR)
    response = client.get("/audit?since=2026-13-45&case=T-1")
    page = html.unescape(response.text)
    assert response.status_code == 400 and "since '2026-13-45' is not a date — write it as YYYY-MM-DD" in page
    assert re.search(r'<input type="date" name="since" value="2026-13-45" aria-invalid="true"', page)
    assert 'name="case" value="T-1"' in page
    assert client.get("/audit?since=2026-01-01").status_code == 200
