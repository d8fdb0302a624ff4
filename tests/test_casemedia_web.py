"""The browser's case pages: a case's persons with their best faces, merge/split/drop/undo and searching a person,
each a CSRF-checked form over the library; the home page shows the deployment policy."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from leadmatch.casemedia import media
from leadmatch.record.workspace import open_workspace
from leadmatch.web import create_app

from .helpers import AGENT, AGENT2, GALLERY, GALLERY_DIR, MEANS, PROBES_DIR
from .test_casemedia import CLIP, add_request
from .test_web import sign_in

CASE = "C-22"


@pytest.fixture
def client(home):
    ws = open_workspace(home)
    media.add(ws, AGENT, add_request(GALLERY_DIR / "lin_manuel_miranda", CLIP, PROBES_DIR / "two_people.jpg"))
    ws.close()
    with TestClient(create_app(home, workers=1)) as c:
        yield c


def test_persons_page_shows_best_faces_and_its_forms_change_the_grouping(client):
    csrf = sign_in(client, AGENT)
    assert "Deployment policy: video probes on" in client.get("/").text
    assert client.get(f"/cases?case={CASE}", follow_redirects=False).headers["location"] == f"/cases/{CASE}"
    case = client.get(f"/cases/{CASE}").text  # the case view counts its media and persons and links to them
    assert f'href="/cases/{CASE}/persons"' in case and "3 files added, 3 persons found" in case
    page = client.get(f"/cases/{CASE}/persons").text
    assert "P1" in page and "P2" in page and "P3" in page and "INVESTIGATIVE LEAD ONLY" in page
    face = page.split(f'/cases/{CASE}/faces/')[1].split(".png")[0]
    image = client.get(f"/cases/{CASE}/faces/{face}.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"

    merged = client.post(f"/cases/{CASE}/persons/merge", data={"csrf": csrf, "label": ["P2", "P3"],
                                                               "reason": "same man, two angles"},
                         follow_redirects=False)
    assert merged.status_code == 303
    page = client.get(f"/cases/{CASE}/persons").text
    assert "merged into P2: same man, two angles" in page
    assert client.post(f"/cases/{CASE}/persons/undo", data={"csrf": csrf, "reason": "two different men"},
                       follow_redirects=False).status_code == 303
    assert "undone" in client.get(f"/cases/{CASE}/persons").text or "by #" in client.get(f"/cases/{CASE}/persons").text
    no_csrf = client.post(f"/cases/{CASE}/persons/P2/drop", data={"reason": "a poster"}, follow_redirects=False)
    assert no_csrf.status_code == 403
    assert client.post(f"/cases/{CASE}/persons/P2/drop", data={"csrf": csrf, "reason": "a poster"},
                       follow_redirects=False).status_code == 303
    assert "Set aside by avery: a poster" in client.get(f"/cases/{CASE}/persons").text

    searched = client.post(f"/cases/{CASE}/persons/P1/search", data={
        "csrf": csrf, "gallery": GALLERY, "purpose": "robbery", "justification": "Who is the man filmed at the scene?",
        "traditional_means": MEANS, "top_k": "3"}, follow_redirects=False)
    assert searched.status_code == 303, searched.text
    result = client.get(searched.headers["location"]).text
    assert "lin_manuel_miranda" in result and "person P1 of case" in result


def test_an_agent_not_on_the_case_gets_403(client):
    sign_in(client, AGENT2)
    assert client.get(f"/cases/{CASE}/persons").status_code == 403


@pytest.fixture
def plain_client(home):
    with TestClient(create_app(home, workers=1)) as c:
        yield c


def test_an_enhanced_probe_is_searched_from_the_page_with_its_original_and_refused_without(plain_client):
    import hashlib

    csrf = sign_in(plain_client, AGENT)
    fields = {"csrf": csrf, "gallery": GALLERY, "case": "W-1", "purpose": "robbery", "top_k": "2",
              "justification": "Armed robbery suspect caught on the store camera.", "traditional_means": MEANS,
              "probe_source": "enhanced", "enhancement": "brightened the face"}
    probe = ("probe", ("obama1.jpg", (PROBES_DIR / "obama1.jpg").read_bytes(), "image/jpeg"))
    refused = plain_client.post("/search", data=fields, files=[probe], follow_redirects=False)
    assert refused.status_code == 403 and "original" in refused.text
    original = (PROBES_DIR / "obama3.jpg").read_bytes()
    done = plain_client.post("/search", data=fields, files=[probe, ("original", ("camera.jpg", original, "image/jpeg"))],
                             follow_redirects=False)
    assert done.status_code == 303, done.text
    page = plain_client.get(done.headers["location"]).text
    assert "brightened the face" in page and hashlib.sha256(original).hexdigest() in page


def test_an_agent_adds_the_case_media_from_the_page(plain_client):
    """Upload the sample clip and Lin's photo through the form: the case's persons appear, Lin's photo and both of
    his clip tracks in one of them; without the CSRF token nothing is added."""
    csrf = sign_in(plain_client, AGENT)
    assert 'href="/cases/media/new"' in plain_client.get("/").text
    form = plain_client.get("/cases/media/new?case=C-WEB").text
    assert 'value="C-WEB"' in form and 'name="file"' in form and "robbery" in form
    photo = GALLERY_DIR / "lin_manuel_miranda" / "lin-manuel-miranda.png"
    files = [("file", ("scene.mp4", CLIP.read_bytes(), "video/mp4")), ("file", (photo.name, photo.read_bytes(), "image/png"))]
    fields = {"case": "C-WEB", "purpose": "robbery", "justification": "Seized phone of the suspect holds this clip."}
    refused = plain_client.post("/cases/media", data=fields, files=files, follow_redirects=False)
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert plain_client.get("/cases/C-WEB/persons").status_code == 403  # nothing added: not the agent's case yet
    added = plain_client.post("/cases/media", data={**fields, "csrf": csrf}, files=files, follow_redirects=False)
    assert added.status_code == 303 and added.headers["location"] == "/cases/C-WEB/persons", added.text
    page = plain_client.get("/cases/C-WEB/persons").text
    lin = [card for card in page.split('<div class="card"')[1:] if "lin-manuel-miranda.png" in card]
    assert len(lin) == 1 and lin[0].count("scene.mp4") >= 2  # his photo and both clip tracks: one person
    assert 'action="/cases/media"' in page  # more media can be added from the case's page
