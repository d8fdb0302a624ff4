"""One rulebook: every operation gives the same answer, and leaves the same audit trail, whether the CLI runs it
in direct mode or sends it to the service's JSON API. The same scripted day of work (accounts, purposes, a
gallery, an enrollment, searches, dispositions, corroboration, closure, refusals, the audit trail) runs once
through each backend, on two copies of one workspace, and the answers are compared call by call."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from leadmatch.cli import credentials
from leadmatch.cli.backends import Direct, Remote, _error_of
from leadmatch.errors import LeadmatchError
from leadmatch.record.workspace import open_workspace
from leadmatch.search.run import SearchRequest
from leadmatch.web import create_app

from .helpers import ADMIN, AGENT, ANALYST, AUDITOR, GALLERY, GALLERY_DIR, MEANS, PASSWORD, PROBES_DIR, REVIEWER

#: Fields that differ between two runs of the same request by nature: clocks, random ids, timings, tokens.
VOLATILE = re.compile(r"(^|_)(at|expires|seconds|token|built|time_ms|elapsed|created|hash|mac)$|^(id|head)$")
SEARCH_ID = re.compile(r"S-\d{8}-[0-9a-f]{8}")


class ApiBackend(Remote):
    """The CLI's remote backend, talking to the app in this process (FastAPI's TestClient) instead of a socket:
    the same requests, the same wire format, the same error mapping."""

    def __init__(self, client: TestClient) -> None:
        super().__init__("http://testserver")
        self.client = client

    def _call(self, method, path, *, body=None, query=None, files=None, fields=None, auth=True, raw=False):
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {credentials.token_for(self.url)}"
        kwargs = {}
        if files is not None or fields is not None:
            kwargs["files"] = [(key, (name, data)) for key, name, data in files or []]
            kwargs["data"] = fields or {}
        elif body is not None:
            kwargs["json"] = body
        params = {k: v for k, v in (query or {}).items() if v is not None}
        answer = self.client.request(method, f"/api/v1{path}", headers=headers, params=params, **kwargs)
        if answer.status_code >= 400:
            raise _error_of(HttpError(answer))
        return answer.content if raw else answer.json()


class HttpError:
    """What `_error_of` reads of an HTTP error: its code, reason and body."""

    def __init__(self, answer) -> None:
        self.code, self.reason, self._body = answer.status_code, answer.reason_phrase, answer.content

    def read(self) -> bytes:
        return self._body


def normal(value, homes: tuple[Path, ...]):
    """An answer with what differs by nature taken out: times, ids, tokens, the workspace's own path, and where
    a file came from (direct mode names a folder or a probe by its path on this machine; through the API they are
    uploads, known by their file names), and the network address a service sees and direct mode has not."""
    if isinstance(value, dict):
        if isinstance(value.get("objects"), dict):
            objects = {k: v for k, v in value["objects"].items() if k not in ("source", "address", "peer")}
            if isinstance(objects.get("probe"), str):
                objects["probe"] = Path(objects["probe"]).name
            value = {**value, "objects": objects}
        return {k: normal(v, homes) for k, v in sorted(value.items()) if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [normal(v, homes) for v in value]
    if isinstance(value, str):
        for home in homes:
            value = value.replace(str(home.resolve()), "<home>").replace(str(home), "<home>")
        return SEARCH_ID.sub("<search>", value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def day_of_work(backend, enroll_folder: Path) -> list[tuple[str, object]]:
    """The same requests, in the same order, through `backend`; each answer or refusal is kept by its name."""
    log: list[tuple[str, object]] = []

    def step(name: str, call, *args, **kwargs):
        try:
            answer = call(*args, **kwargs)
        except LeadmatchError as exc:
            answer = {"refused": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                      "exit_code": exc.exit_code}
        log.append((name, answer))
        return answer

    def sign_in(actor):
        step(f"login {actor.name}", backend.login, actor.name, PASSWORD, 8)
        step(f"whoami {actor.name}", lambda: {k: v for k, v in backend.whoami().items()
                                              if k not in ("mode", "note", "server")})

    sign_in(ADMIN)
    step("user list", backend.user_list)
    step("user add", backend.user_add, "drew", ["agent"], PASSWORD)
    step("user add twice", backend.user_add, "drew", ["agent"], PASSWORD)
    step("user certify", backend.user_certify, "drew", "Use of Facial Recognition Services", "2026-06-01", None)
    step("user grant", backend.user_grant, "drew", "reviewer")
    step("user revoke", backend.user_revoke, "drew", "reviewer")
    step("user revoke the last role", backend.user_revoke, "drew", "agent")
    step("purge preview", backend.purge_preview)
    step("user disable", backend.user_disable, "drew")
    step("purposes", backend.purposes)
    step("purpose add", backend.purpose_add, "cargo-theft")
    step("target fpir", backend.gallery_target_fpir, GALLERY, 0.05)
    step("gallery create as admin", backend.gallery_create, "nope", "x", "y", "2026-01-01", "z", 30)

    sign_in(ANALYST)
    step("gallery create", backend.gallery_create, "second", "State Code §9", "Chief R.", "2026-02-01",
         "Booking photos", 90)
    step("gallery create blank authority", backend.gallery_create, "third", " ", "Chief R.", "2026-02-01", "x", 90)
    step("gallery enroll", backend.gallery_enroll, "second", enroll_folder)
    step("gallery enroll again", backend.gallery_enroll, "second", enroll_folder)
    step("gallery enroll batch without ray", backend.gallery_enroll, "second", enroll_folder, batch=4)
    step("gallery list", backend.gallery_list)
    step("gallery show", backend.gallery_show, "second", True)
    step("index status", backend.index_status, "second")
    step("gallery subjects", backend.gallery_subjects, "second", "", 0, 50, False)
    step("gallery subjects filtered", backend.gallery_subjects, "second", "KIT", 0, 1, False)
    step("gallery subjects bad page", backend.gallery_subjects, "second", "", 0, 0, False)
    step("gallery remove", backend.gallery_remove, "second", "rose_leslie")
    step("gallery remove missing", backend.gallery_remove, "second", "nobody")

    sign_in(AGENT)
    step("gallery show as agent", backend.gallery_show, GALLERY, False)
    request = dict(gallery=GALLERY, case="P-1", purpose="robbery",
                   justification="Armed robbery suspect caught on the store camera.", traditional_means=MEANS,
                   top_k=3)
    found = step("search", backend.search, SearchRequest(probe=PROBES_DIR / "obama-720p.jpg", **request))
    step("search without means", backend.search,
         SearchRequest(probe=PROBES_DIR / "obama-720p.jpg", **{**request, "traditional_means": "none"}))
    step("search sketch", backend.search,
         SearchRequest(probe=PROBES_DIR / "obama-720p.jpg", **{**request, "probe_source": "sketch"}))
    step("search two faces", backend.search, SearchRequest(probe=PROBES_DIR / "two_people.jpg", **request))
    search_id = found["search_id"]
    step("searches", backend.searches, "P-1", None)
    step("disposition", backend.disposition, search_id, 1, "possible-lead", "Same ears and hairline")
    step("disposition twice", backend.disposition, search_id, 1, "excluded", "Changed my mind")
    step("close as agent", backend.close, search_id, "identified", "Looks right to me", 1)
    step("disposition 2", backend.disposition, search_id, 2, "excluded", "Different nose shape")
    step("disposition 3", backend.disposition, search_id, 3, "excluded", "Different jaw line")
    step("show as agent", backend.show, search_id)

    sign_in(REVIEWER)
    step("close before corroboration", backend.close, search_id, "identified", "Corroborated", 1)
    step("corroborate", backend.corroborate, search_id, 1, "fingerprints", "Latent print from the counter matches",
         "LAB-2026-1", "corroborated")
    step("corroborate an excluded one", backend.corroborate, search_id, 2, "documents", "Passport", "DOC-1",
         "corroborated")
    step("close", backend.close, search_id, "identified", "Corroborated by LAB-2026-1", 1)
    step("close again", backend.close, search_id, "no-identification", "Second thoughts", None)
    step("show as reviewer", backend.show, search_id)

    sign_in(AUDITOR)
    step("audit verify", backend.audit_verify, None)
    step("audit log", backend.audit_log, None, None, None, None)
    step("audit log of the case", backend.audit_log, "P-1", None, None, 50)
    step("audit log refused", backend.audit_log, None, None, None, None, "disposition", "refused", "2099-12-31")
    step("audit page", backend.audit_page, "P-1", None, None, None, None, None, 1, 5)
    step("audit page bad dates", backend.audit_page, None, None, "2026-12-31", "2026-01-01", None, None, 1, 5)
    step("audit report", backend.audit_report, "2026-01-01", "2099-12-31", 30)
    step("audit report backwards", backend.audit_report, "2026-12-31", "2026-01-01", 30)
    step("purge as auditor", backend.purge_expired)
    step("logout", backend.logout)
    return log


@pytest.fixture
def two_homes(enrolled_template, tmp_path) -> tuple[Path, Path]:
    homes = tmp_path / "direct", tmp_path / "api"
    for home in homes:
        shutil.copytree(enrolled_template, home)
    return homes


def test_direct_mode_and_the_api_answer_every_operation_alike(two_homes, tmp_path):
    photos = tmp_path / "photos"
    for subject in ("rose_leslie", "kit_harington"):
        shutil.copytree(GALLERY_DIR / subject, photos / subject)
    direct_home, api_home = two_homes
    direct = day_of_work(Direct(direct_home), photos)
    with TestClient(create_app(api_home, workers=1)) as client:
        served = day_of_work(ApiBackend(client), photos)
    assert [name for name, _ in direct] == [name for name, _ in served]
    refused = [name for name, answer in direct if isinstance(answer, dict) and "refused" in answer]
    assert len(refused) >= 12, refused  # the script does exercise the refusals it means to
    for (name, mine), (_, theirs) in zip(direct, served):
        assert normal(mine, two_homes) == normal(theirs, two_homes), name


def test_direct_mode_and_the_api_leave_the_same_audit_trail(two_homes, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(GALLERY_DIR / "kit_harington", photos / "kit_harington")
    direct_home, api_home = two_homes
    day_of_work(Direct(direct_home), photos)
    with TestClient(create_app(api_home, workers=1)) as client:
        day_of_work(ApiBackend(client), photos)
    trails = []
    for home in two_homes:
        ws = open_workspace(home)
        trails.append([normal({k: json.loads(e[k]) if k == "objects" and e[k] else e[k]
                               for k in ("actor", "action", "outcome", "case_number", "reason", "objects")},
                              two_homes) for e in ws.conn.execute("SELECT * FROM audit ORDER BY id")])
        ws.close()
    actions = {e["action"] for e in trails[0]}
    assert {"login", "user.add", "gallery.enroll", "search", "disposition", "corroborate", "close", "audit.verify"} <= actions, actions
    assert trails[0] == trails[1]
