"""Enrollment reads only inside its root (issue 19 item 1): the service's --enroll-root, else the folder given,
and never the workspace's own files. Links and manifest rows that lead elsewhere are refused as outside-root,
counted in the summary and audited, and no refusal tells whether a file outside the root exists."""

from __future__ import annotations

import csv
import errno
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from leadmatch.gallery import sources
from leadmatch.gallery.enrollment import enroll
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.web import create_app

from .helpers import ANALYST, GALLERY, GALLERY_DIR, PASSWORD

BIDEN = GALLERY_DIR / "joe_biden" / "biden.jpg"


def stored_probe(home, search_id: str):
    """The workspace's own copy of a search's probe photo."""
    ws = open_workspace(home)
    relative = ws.conn.execute("SELECT probe_stored_path FROM searches WHERE id = ?", (search_id,)).fetchone()[0]
    ws.close()
    return home / relative


def refused_runs(home) -> list[dict]:
    ws = open_workspace(home)
    try:
        return [e for e in audit.entries(ws.conn) if e["action"] == "gallery.enroll" and e["outcome"] == "refused"]
    finally:
        ws.close()


@pytest.fixture
def enroll_root(tmp_path):
    """An enroll root holding one subject's real photo, a link inside the root to it, and a link to a file
    outside the root."""
    root = tmp_path / "srv"
    subject = root / "trav" / "subj"
    subject.mkdir(parents=True)
    (root / "originals").mkdir()
    (root / "originals" / "biden.jpg").write_bytes(BIDEN.read_bytes())
    (subject / "inside.jpg").symlink_to(root / "originals" / "biden.jpg")
    (subject / "outside.jpg").symlink_to(GALLERY_DIR / "rose_leslie" / "img1.jpg")
    return root


def test_a_link_to_a_stored_probe_is_refused_and_audited(home, searched, tmp_path):
    """The attack: a link in an analyst's folder to another agent's probe in the workspace."""
    folder = tmp_path / "trav"
    (folder / "subj").mkdir(parents=True)
    (folder / "subj" / "probe.jpg").symlink_to(stored_probe(home, searched))
    ws = open_workspace(home)
    report = enroll(ws, ANALYST, GALLERY, folder, workers=1)
    ws.close()
    assert (report.enrolled, [r.reason for r in report.refused]) == (0, ["outside-root"])
    assert "inside the leadmatch workspace" in report.refused[0].detail
    [run] = refused_runs(home)
    assert run["reason"].startswith("outside-root") and run["objects"]["outside_root"] == 1
    assert run["objects"]["paths"] == [str(folder / "subj" / "probe.jpg")]


def test_direct_mode_folder_is_its_own_root_and_links_inside_it_still_work(home, enroll_root):
    ws = open_workspace(home)
    report = enroll(ws, ANALYST, GALLERY, enroll_root / "trav", workers=1, root=enroll_root)
    again = enroll(ws, ANALYST, GALLERY, enroll_root / "trav", workers=1)  # no root: the folder itself
    ws.close()
    # the link inside the root is followed; biden.jpg is already in the sample gallery, so it is a skip
    assert report.skipped == 1 and [(r.path, r.reason) for r in report.refused] == [
        (str(enroll_root / "trav" / "subj" / "outside.jpg"), "outside-root")]
    assert again.skipped == 0 and sorted(r.reason for r in again.refused) == ["outside-root", "outside-root"]
    assert len(refused_runs(home)) == 2


def test_a_swapped_link_is_not_followed_between_check_and_open(tmp_path):
    """O_NOFOLLOW from the root down: a folder replaced by a link after the check is refused, not read."""
    root = tmp_path / "root"
    (root / "subj").mkdir(parents=True)
    (root / "subj" / "a.jpg").write_bytes(b"photo")
    confinement = sources.Confinement.of(root, None, None)
    assert confinement.read(root / "subj" / "a.jpg") == b"photo"
    checked = sources.resolved(root / "subj" / "a.jpg").relative_to(confinement.root).parts
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.jpg").write_bytes(b"secret")
    (root / "subj").rename(root / "old")
    (root / "subj").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OSError) as caught:  # the open of the path as checked before the swap
        sources._open_below(confinement.root, checked)
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    with pytest.raises(sources.PhotoError, match="outside the enrollment root"):  # and a fresh check sees it
        confinement.read(root / "subj" / "a.jpg")


def login(api, name: str) -> dict:
    answer = api.post("/api/v1/login", json={"name": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": "Bearer " + answer.json()["token"]}


def test_service_refuses_links_and_manifest_rows_outside_the_enroll_root(home, searched, enroll_root):
    subject = enroll_root / "trav" / "subj"
    (subject / "probe.jpg").symlink_to(stored_probe(home, searched))
    (subject / "dangling.jpg").symlink_to(home / "photos" / "nonexistent.jpg")
    (subject / "gone.jpg").symlink_to(enroll_root / "originals" / "gone.jpg")
    (enroll_root.parent / "x.jpg").write_bytes(BIDEN.read_bytes())  # exists, just outside the root
    (enroll_root / "lists").mkdir()
    manifest = enroll_root / "lists" / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["path", "subject"])
        rows.writerows([["/etc/passwd", "x"], ["/etc/no-such-file", "x"], ["../../x.jpg", "x"],
                        ["../../y.jpg", "x"], ["../trav/subj/inside.jpg", "x"]])
    with TestClient(create_app(home, workers=1, enroll_root=enroll_root)) as api:
        analyst = login(api, ANALYST.name)
        folder = api.post(f"/api/v1/galleries/{GALLERY}/enroll", headers=analyst, json={"path": "trav"})
        listed = api.post(f"/api/v1/galleries/{GALLERY}/enroll", headers=analyst, json={"path": "lists/manifest.csv"})
    assert folder.status_code == 200 and listed.status_code == 200, (folder.text, listed.text)
    by_name = {r["path"].rsplit("/", 1)[1]: r for r in folder.json()["refused"]}
    assert (folder.json()["offered"], folder.json()["skipped_duplicates"]) == (5, 1)  # inside.jpg  # inside.jpg
    assert {n: r["reason"] for n, r in by_name.items()} == {
        "outside.jpg": "outside-root", "probe.jpg": "outside-root", "dangling.jpg": "outside-root",
        "gone.jpg": "broken-link"}
    assert "nonexistent" not in by_name["dangling.jpg"]["detail"]  # where a link leads is never said
    assert by_name["gone.jpg"]["detail"] == f"{subject / 'gone.jpg'} is a link to nothing"
    refused = {r["path"]: r for r in listed.json()["refused"]}
    assert listed.json()["offered"] == 5 and listed.json()["skipped_duplicates"] == 1
    assert {r["reason"] for r in refused.values()} == {"outside-root"} and len(refused) == 4
    # an existing and a missing file outside the root get the same words: no oracle
    for present, missing in (("/etc/passwd", "/etc/no-such-file"),
                             (str(manifest.parent / "../../x.jpg"), str(manifest.parent / "../../y.jpg"))):
        assert refused[present]["detail"].replace(present, "P") == refused[missing]["detail"].replace(missing, "P")
        assert "lies outside the enrollment root" in refused[present]["detail"]
    runs = refused_runs(home)
    assert [r["objects"]["outside_root"] for r in runs] == [3, 4]
    assert all(r["actor"] == ANALYST.name and r["objects"]["root"] == str(enroll_root.resolve()) for r in runs)
