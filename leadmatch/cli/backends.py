"""The CLI's two backends, with the same calls: `Direct` runs the library on a workspace this OS account
can open (a single-user workstation, `make demo`); `Remote` asks the leadmatch service over its JSON API
(/api/v1) with the user's bearer token, so the person at the keyboard never touches the record.

Both return the same data and raise the same leadmatch errors (same exit codes), so the commands print
the same output either way.
"""

from __future__ import annotations

import json
import mimetypes
import os
import secrets
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from leadmatch.biometrics.photos import read_bytes
from leadmatch.cli import credentials
from leadmatch.errors import InputError, LeadmatchError, PhotoError, Refused
from leadmatch.governance import accounts
from leadmatch.governance import oversight as governance_oversight
from leadmatch.operations import DIRECT, cases, galleries, oversight, people, searches, sessions
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.search import run as searching
from leadmatch.search import video
from leadmatch.search.video import is_video
from leadmatch.tools import evaluation
from leadmatch.wire import error_from_dict

SERVER_ENV = "LEADMATCH_SERVER"
CA_ENV = "LEADMATCH_CA_FILE"
#: The largest search upload the service takes (a clip; the library alone allows 2 GiB). Kept with the client
#: so an over-long clip is refused before it is sent; the service's own limit is `Settings.max_search_bytes`.
UPLOAD_LIMIT = 512 * 1024 * 1024
DIRECT_NOTE = ("direct mode: this account opens the workspace itself, so it protects nothing against "
               "the person at this keyboard; use a leadmatch service (--server) where that matters")


def backend(home: Path, server: str | None):
    """The backend the CLI should use: Remote when a server URL is given, else Direct."""
    return Remote(server) if server else Direct(home)


class Direct:
    """The operations in this process, on the workspace at `home` (leadmatch.operations: the same functions the
    service's API calls, so both backends give the same answers)."""

    mode = "direct"

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def _session(self):
        ws = open_workspace(self.home)
        return ws, accounts.authenticate(ws, credentials.token_for(ws.home))

    def login(self, name: str, password: str, hours: int) -> dict:
        ws = open_workspace(self.home)
        answer = sessions.login(ws, name, password, hours)
        credentials.remember(ws.home, answer.pop("token"))
        return answer

    def logout(self) -> str | None:
        ws = open_workspace(self.home)
        token = credentials.forget(ws.home)
        return sessions.logout(ws, token)["user"]

    def whoami(self) -> dict:
        ws, user = self._session()
        return {**sessions.whoami(ws, user), "mode": self.mode, "note": DIRECT_NOTE}

    def accept_rules(self) -> dict:
        return sessions.accept_rules(*self._session())

    def search(self, request: searching.SearchRequest) -> dict:
        return searches.search(*self._session(), request)

    def gallery_create(self, name, authority, approved_by, approved_on, source, retention_days,
                       model: str | None = None) -> dict:
        return galleries.create(*self._session(), name, authority, approved_by, approved_on, source, retention_days,
                                model)

    def gallery_model(self, name: str, model: str, progress=None, recompute: bool = False) -> dict:
        return galleries.switch_model(*self._session(), name, model, progress, recompute)

    def gallery_list(self) -> list[dict]:
        return galleries.list_galleries(*self._session())

    def gallery_show(self, name: str, refusals: bool) -> dict:
        return galleries.show(*self._session(), name, refusals)

    def gallery_enroll(self, name: str, path: Path, on_server: bool = False, ray: str | None = None,
                       batch: int | None = None, workers: int | None = None, progress=None) -> dict:
        """Enroll a folder or manifest of this machine (`on_server` means nothing here: the workspace is local)."""
        ws, user = self._session()
        plan = galleries.enrollment_plan(ws, user, DIRECT, name, path, ray=ray, batch=batch)
        return galleries.enroll(ws, user, name, plan, workers=workers, progress=progress)

    def evaluate(self, path: Path, enroll_first: int, holdout: float, seed: int, face: str | None = None, *,
                 labels: Path | None = None, workers: int | None = None, model: str = "dlib",
                 distractors: Path | None = None, progress=None) -> dict:
        """An evaluation in a throw-away workspace of its own: no session needed, no gallery touched."""
        return evaluation.evaluate(Path(path), enroll_first, holdout, labels, seed, progress=progress, face=face,
                                   workers=workers, model=model, distractors=distractors)

    def searches(self, case: str | None, status: str | None) -> list[dict]:
        return searches.listing(*self._session(), case, status)

    def show(self, search_id: str) -> dict:
        return searches.show(*self._session(), search_id)

    def disposition(self, search_id: str, rank: int, decision: str, note: str) -> dict:
        return searches.disposition(*self._session(), search_id, rank, decision, note)

    def corroborate(self, search_id: str, rank: int, evidence_type: str, evidence: str, reference: str,
                    outcome: str) -> dict:
        return searches.corroborate(*self._session(), search_id, rank, evidence_type, evidence, reference, outcome)

    def close(self, search_id: str, outcome: str, note: str, rank: int | None) -> dict:
        return searches.close(*self._session(), search_id, outcome, note, rank)

    def audit_verify(self, expect_head: str | None, checkpoint: Path | None = None) -> dict:
        filed = audit.read_checkpoint(checkpoint) if checkpoint is not None else None
        return oversight.verify(*self._session(), expect_head, filed)

    def audit_checkpoint(self, out: Path | None) -> dict:
        return file_checkpoint(lambda: oversight.checkpoint(*self._session()), out)

    def audit_log(self, case, user_name, since, limit, action=None, outcome=None, until=None) -> list[dict]:
        return oversight.log(*self._session(), case, user_name, since, limit, action, outcome, until)

    def audit_page(self, case, user_name, since, until, action, outcome, page: int, per_page: int) -> dict:
        return oversight.log_page(*self._session(), case, user_name, since, until, action, outcome, page, per_page)

    def audit_report(self, start: str, end: str, stale_days: int) -> dict:
        return oversight.report(*self._session(), start, end, stale_days)

    def report(self, search_id: str, target: Path) -> Path:
        return write_atomically(target, searches.report_html(*self._session(), search_id).encode("utf-8"))

    def user_add(self, name: str, roles: list[str], password: str) -> dict:
        return people.add_user(*self._session(), name, roles, password)

    def user_certify(self, name: str, course: str, completed: str, expires: str | None) -> dict:
        return people.certify(*self._session(), name, course, completed, expires)

    def user_disable(self, name: str) -> dict:
        return people.disable(*self._session(), name)

    def user_grant(self, name: str, role: str) -> dict:
        return people.grant_role(*self._session(), name, role)

    def user_revoke(self, name: str, role: str) -> dict:
        return people.revoke_role(*self._session(), name, role)

    def user_list(self) -> list[dict]:
        return people.list_users(*self._session())

    def purposes(self) -> list[str]:
        # anyone at this keyboard may read the list in direct mode, as before (no session needed)
        return people.list_purposes(open_workspace(self.home))

    def purpose_add(self, name: str) -> str:
        return people.add_purpose(*self._session(), name)["purpose"]

    def retired_purposes(self) -> list[dict]:
        return people.retired_purposes(open_workspace(self.home))

    def purpose_retire(self, name: str) -> dict:
        return people.retire_purpose(*self._session(), name)

    def gallery_remove(self, name: str, subject: str) -> dict:
        return galleries.remove_subject(*self._session(), name, subject)

    def gallery_subjects(self, name: str, contains: str = "", offset: int = 0, limit: int = 50,
                         flagged: bool = False) -> dict:
        return galleries.subjects(*self._session(), name, contains, offset, limit, flagged)

    def gallery_target_fpir(self, name: str, target: float) -> dict:
        return galleries.set_target_fpir(*self._session(), name, target)

    def index_build(self, gallery: str, factory: str | None = None) -> dict:
        return galleries.build_index(*self._session(), gallery, factory)

    def index_status(self, gallery: str) -> dict:
        return galleries.index_status(*self._session(), gallery)

    def purge_expired(self) -> dict:
        return oversight.purge_expired(*self._session())

    def purge_preview(self) -> dict:
        return oversight.purge_preview(*self._session())

    # Case media, persons, export, policy (issue 22) ------------------------------------------------------

    def media_add(self, request, progress=None) -> dict:
        return cases.add_media(*self._session(), request, progress=progress)

    def media_list(self, case: str) -> list[dict]:
        return cases.list_media(*self._session(), case)

    def persons(self, case: str, include_dropped: bool = False) -> dict:
        return cases.list_persons(*self._session(), case, include_dropped)

    def person_show(self, case: str, label: str) -> dict:
        return cases.show_person(*self._session(), case, label)

    def person_merge(self, case: str, labels: list[str], reason: str) -> dict:
        return cases.merge(*self._session(), case, labels, reason)

    def person_split(self, case: str, label: str, faces: list[int], reason: str) -> dict:
        return cases.split(*self._session(), case, label, faces, reason)

    def person_drop(self, case: str, label: str, reason: str) -> dict:
        return cases.drop(*self._session(), case, label, reason)

    def person_undo(self, case: str, reason: str) -> dict:
        return cases.undo(*self._session(), case, reason)

    def person_search(self, case: str, label: str, request: searching.SearchRequest) -> dict:
        return cases.search_person(*self._session(), case, label, request)

    def case_export(self, case: str, out: Path) -> dict:
        return cases.export_case(*self._session(), case, out)

    def policy_show(self) -> dict:
        return cases.show_policy(*self._session())

    def policy_set(self, changes: dict) -> dict:
        return cases.set_policy(*self._session(), changes)


def write_atomically(target: Path, data: bytes) -> Path:
    """Write `data` to `target` through a temp file and a rename (never a half-written file)."""
    target = Path(target)
    temp = target.with_name(f".{target.name}.tmp")
    temp.write_bytes(data)
    temp.replace(target)
    return target


def file_checkpoint(make, out: Path | None) -> dict:
    """Make a checkpoint (`make()`, on the workspace or the service) and file it at `out` on this machine: the
    file is checked first, so a checkpoint entry is not made for a file that cannot be written."""
    if out is not None:
        governance_oversight.check_checkpoint_file(out)
    made = make()
    if out is not None:
        governance_oversight.write_checkpoint(made, out)
    return made


class Remote:
    """The leadmatch service at `url`, through /api/v1 with this OS user's token for that server."""

    mode = "service"

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InputError(f"--server {url!r} is not an http(s) URL", "give e.g. https://leadmatch.example:8765")
        self.url = url.rstrip("/")
        cafile = os.environ.get(CA_ENV)
        self._tls = ssl.create_default_context(cafile=cafile) if parsed.scheme == "https" else None

    # HTTP ------------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, body: dict | None = None, query: dict | None = None,
              files: list[tuple[str, str, bytes]] | None = None, fields: dict | None = None,
              auth: bool = True, raw: bool = False):
        """One API request; returns the decoded JSON (or bytes if `raw`), raises the service's error."""
        url = f"{self.url}/api/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json"}
        data = None
        if files is not None or fields is not None:
            data, headers["Content-Type"] = _multipart(fields or {}, files or [])
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if auth:
            token = credentials.token_for(self.url)
            if not token:
                raise Refused("not signed in to this service", f"run `leadmatch --server {self.url} login NAME`",
                              "not-signed-in")
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=600, context=self._tls) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _error_of(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LeadmatchError(f"cannot reach the leadmatch service at {self.url} ({reason})",
                                 "check --server / LEADMATCH_SERVER and that the service is running") from None
        return payload if raw else json.loads(payload)

    # Calls -----------------------------------------------------------------------------------------------

    def login(self, name: str, password: str, hours: int) -> dict:
        answer = self._call("POST", "/login", body={"name": name, "password": password, "hours": hours}, auth=False)
        credentials.remember(self.url, answer.pop("token"))
        return answer

    def logout(self) -> str | None:
        if not credentials.token_for(self.url):
            return None
        try:
            return self._call("POST", "/logout")["user"]
        finally:
            credentials.forget(self.url)

    def whoami(self) -> dict:
        return {**self._call("GET", "/whoami"), "server": self.url}

    def accept_rules(self) -> dict:
        return self._call("POST", "/accept-rules")

    def gallery_create(self, name, authority, approved_by, approved_on, source, retention_days,
                       model: str | None = None) -> dict:
        return self._call("POST", "/galleries", body={
            "name": name, "authority": authority, "approved_by": approved_by, "approved_on": approved_on,
            "source": source, "retention_days": retention_days, "model": model})

    def gallery_model(self, name: str, model: str, progress=None, recompute: bool = False) -> dict:
        # the service re-embeds in one request; its progress is not streamed back
        return self._call("POST", f"/galleries/{_segment(name)}/model", body={"model": model, "recompute": recompute})

    def gallery_list(self) -> list[dict]:
        return self._call("GET", "/galleries")

    def gallery_show(self, name: str, refusals: bool) -> dict:
        return self._call("GET", f"/galleries/{_segment(name)}", query={"refusals": "true" if refusals else None})

    def search(self, request: searching.SearchRequest) -> dict:
        """Upload the probe (a photo, several stills, or one clip) with every option, as direct mode takes them."""
        files = [("probe", Path(p).name, _probe_bytes(p)) for p in (request.probe, *request.more_probes)]
        fields = {"gallery": request.gallery, "case": request.case, "purpose": request.purpose,
                  "justification": request.justification, "traditional_means": request.traditional_means,
                  "probe_source": request.probe_source, "top_k": str(request.top_k),
                  "face": "" if request.face is None else str(request.face), "detector": request.detector,
                  "track": "" if request.track is None else str(request.track), "every": repr(request.every_s),
                  "best_frames": str(request.best_frames), "fusion": request.fusion,
                  "per_photo": "true" if request.per_photo else "", "enhancement": request.enhancement}
        if request.original is not None:
            files.append(("original", Path(request.original).name, read_bytes(request.original)))
        return self._call("POST", "/searches", fields=fields, files=files)

    def searches(self, case: str | None, status: str | None) -> list[dict]:
        return self._call("GET", "/searches", query={"case": case, "status": status})

    def show(self, search_id: str) -> dict:
        return self._call("GET", f"/searches/{_segment(search_id)}")

    def disposition(self, search_id: str, rank: int, decision: str, note: str) -> dict:
        return self._call("POST", f"/searches/{_segment(search_id)}/dispositions",
                          body={"rank": rank, "decision": decision, "note": note})

    def corroborate(self, search_id: str, rank: int, evidence_type: str, evidence: str, reference: str,
                    outcome: str) -> dict:
        return self._call("POST", f"/searches/{_segment(search_id)}/corroborations", body={
            "rank": rank, "evidence_type": evidence_type, "evidence": evidence, "reference": reference,
            "outcome": outcome})

    def close(self, search_id: str, outcome: str, note: str, rank: int | None) -> dict:
        return self._call("POST", f"/searches/{_segment(search_id)}/close",
                          body={"outcome": outcome, "note": note, "rank": rank})

    def audit_verify(self, expect_head: str | None, checkpoint: Path | None = None) -> dict:
        filed = audit.read_checkpoint(checkpoint) if checkpoint is not None else None  # the file stays with the client
        return self._call("POST", "/audit/verify", body={"expect_head": expect_head, "checkpoint": filed})

    def audit_checkpoint(self, out: Path | None) -> dict:
        """The service signs the checkpoint; this client files it (the file stays outside the system)."""
        return file_checkpoint(lambda: self._call("POST", "/audit/checkpoint"), out)

    def audit_log(self, case, user_name, since, limit, action=None, outcome=None, until=None) -> list[dict]:
        return self._call("GET", "/audit/log", query={"case": case, "user": user_name, "since": since,
                                                      "limit": limit, "action": action, "outcome": outcome,
                                                      "until": until})

    def audit_page(self, case, user_name, since, until, action, outcome, page: int, per_page: int) -> dict:
        return self._call("GET", "/audit/entries", query={"case": case, "user": user_name, "since": since,
                                                          "until": until, "action": action, "outcome": outcome,
                                                          "page": page, "per_page": per_page})

    def audit_report(self, start: str, end: str, stale_days: int) -> dict:
        return self._call("GET", "/audit/report", query={"start": start, "end": end, "stale_days": stale_days,
                                                         "format": "json"})

    def report(self, search_id: str, target: Path) -> Path:
        return write_atomically(target, self._call("GET", f"/searches/{_segment(search_id)}/report", raw=True))

    def gallery_enroll(self, name: str, path: Path, on_server: bool = False, ray: str | None = None,
                       batch: int | None = None, workers: int | None = None, progress=None) -> dict:
        """Upload a folder of <subject>/<photos> (or name a path on the server with `on_server`); with `ray`
        (auto or HOST:PORT) the service analyzes them on its Ray cluster, `batch` photos a task."""
        cluster = {key: value for key, value in (("ray", ray), ("batch", batch)) if value is not None}
        if on_server:
            return self._call("POST", f"/galleries/{_segment(name)}/enroll", body={"path": str(path), **cluster})
        folder = Path(path)
        if not folder.is_dir():
            raise InputError(f"{folder} is not a folder of <subject>/<photos>",
                             "give a folder, or --on-server for a folder or manifest on the service")
        files = [("photo", f"{subject.name}/{photo.name}", photo.read_bytes())
                 for subject in sorted(folder.iterdir()) if subject.is_dir() and not subject.name.startswith(".")
                 for photo in sorted(subject.iterdir()) if photo.is_file() and not photo.name.startswith(".")]
        return self._call("POST", f"/galleries/{_segment(name)}/enroll", files=files,
                          fields={key: str(value) for key, value in cluster.items()})

    def evaluate(self, path: Path, enroll_first: int, holdout: float, seed: int, face: str | None = None, *,
                 labels: Path | None = None, workers: int | None = None, model: str = "dlib",
                 distractors: Path | None = None, progress=None) -> dict:
        if labels or distractors or model != "dlib":
            raise InputError("per-group rates (labels), distractors and other models do not go through a service "
                             "yet", "run evaluate in direct mode")
        return self._call("POST", "/evaluate", body={"path": str(path), "enroll_first": enroll_first,
                                                     "holdout_subjects": holdout, "seed": seed, "face": face})

    def user_add(self, name: str, roles: list[str], password: str) -> dict:
        return self._call("POST", "/users", body={"name": name, "roles": roles, "password": password})

    def user_certify(self, name: str, course: str, completed: str, expires: str | None) -> dict:
        return self._call("POST", f"/users/{_segment(name)}/certifications",
                          body={"course": course, "completed": completed, "expires": expires})

    def user_disable(self, name: str) -> dict:
        return self._call("POST", f"/users/{_segment(name)}/disable")

    def user_grant(self, name: str, role: str) -> dict:
        return self._call("POST", f"/users/{_segment(name)}/roles", body={"role": role})

    def user_revoke(self, name: str, role: str) -> dict:
        return self._call("DELETE", f"/users/{_segment(name)}/roles/{_segment(role)}")

    def user_list(self) -> list[dict]:
        return self._call("GET", "/users")

    def purposes(self) -> list[str]:
        return self._call("GET", "/purposes")

    def purpose_add(self, name: str) -> str:
        return self._call("POST", "/purposes", body={"name": name})["purpose"]

    def retired_purposes(self) -> list[dict]:
        return self._call("GET", "/purposes/retired")

    def purpose_retire(self, name: str) -> dict:
        return self._call("POST", f"/purposes/{_segment(name)}/retire")

    def gallery_remove(self, name: str, subject: str) -> dict:
        return self._call("DELETE", f"/galleries/{_segment(name)}/subjects/{_segment(subject)}")

    def gallery_subjects(self, name: str, contains: str = "", offset: int = 0, limit: int = 50,
                         flagged: bool = False) -> dict:
        return self._call("GET", f"/galleries/{_segment(name)}/subjects",
                          query={"contains": contains, "offset": offset, "limit": limit,
                                 "flagged": "true" if flagged else "false"})

    def gallery_target_fpir(self, name: str, target: float) -> dict:
        return self._call("POST", f"/galleries/{_segment(name)}/target-fpir", body={"target": target})

    def index_build(self, gallery: str, factory: str | None = None) -> dict:
        return self._call("POST", f"/galleries/{_segment(gallery)}/index", body={"index": factory})

    def index_status(self, gallery: str) -> dict:
        return self._call("GET", f"/galleries/{_segment(gallery)}/index")

    def purge_expired(self) -> dict:
        return self._call("POST", "/purge")

    def purge_preview(self) -> dict:
        return self._call("POST", "/purge/preview")

    # Case media, persons, export, policy (issue 22) ------------------------------------------------------

    def media_add(self, request, progress=None) -> dict:
        """Upload the files (folders walked as direct mode walks them) with the request's fields."""
        from leadmatch.casemedia import media

        found, refused = media.collect(request.paths)
        files = [("file", Path(p).name, _probe_bytes(p)) for p in found]
        if not files:
            raise InputError("no photo or clip to upload", "name photos, clips or folders holding them")
        fields = {"purpose": request.purpose, "justification": request.justification, "every": repr(request.every_s)}
        if request.ray:
            raise InputError("--ray does not go through --server for case media", "run media add without --ray")
        answer = self._call("POST", f"/cases/{_segment(request.case)}/media", fields=fields, files=files)
        answer["refused"] = refused + answer["refused"]
        return answer

    def media_list(self, case: str) -> list[dict]:
        return self._call("GET", f"/cases/{_segment(case)}/media")

    def persons(self, case: str, include_dropped: bool = False) -> dict:
        return self._call("GET", f"/cases/{_segment(case)}/persons", query={"all": "true" if include_dropped else None})

    def person_show(self, case: str, label: str) -> dict:
        return self._call("GET", f"/cases/{_segment(case)}/persons/{_segment(label)}")

    def person_merge(self, case: str, labels: list[str], reason: str) -> dict:
        return self._call("POST", f"/cases/{_segment(case)}/persons/merge", body={"labels": labels, "reason": reason})

    def person_split(self, case: str, label: str, faces: list[int], reason: str) -> dict:
        return self._call("POST", f"/cases/{_segment(case)}/persons/{_segment(label)}/split",
                          body={"faces": faces, "reason": reason})

    def person_drop(self, case: str, label: str, reason: str) -> dict:
        return self._call("POST", f"/cases/{_segment(case)}/persons/{_segment(label)}/drop", body={"reason": reason})

    def person_undo(self, case: str, reason: str) -> dict:
        return self._call("POST", f"/cases/{_segment(case)}/persons/undo", body={"reason": reason})

    def person_search(self, case: str, label: str, request: searching.SearchRequest) -> dict:
        return self._call("POST", f"/cases/{_segment(case)}/persons/{_segment(label)}/search", body={
            "gallery": request.gallery, "purpose": request.purpose, "justification": request.justification,
            "traditional_means": request.traditional_means, "top_k": request.top_k, "fusion": request.fusion})

    def case_export(self, case: str, out: Path) -> dict:
        """The service builds the export; this client writes its files into `out` (a new or empty folder)."""
        import base64

        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InputError(f"{out} exists and is not an empty folder", "give a new folder for the export")
        answer = self._call("POST", f"/cases/{_segment(case)}/export")
        for name, data in answer["files"].items():
            target = out / name
            if ".." in Path(name).parts or Path(name).is_absolute():
                raise LeadmatchError(f"the service sent an export file named {name!r}", "report it")
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.tmp")
            temp.write_bytes(base64.b64decode(data))
            temp.replace(target)
        return {**answer["result"], "out": str(out)}

    def policy_show(self) -> dict:
        return self._call("GET", "/policy")

    def policy_set(self, changes: dict) -> dict:
        return self._call("POST", "/policy", body={"changes": changes})


def _probe_bytes(path: Path) -> bytes:
    """A probe file's bytes, with direct mode's one-line errors (a clip is checked against the video limits
    before it is read, so a 3 GiB file is refused here, not uploaded)."""
    if is_video(path):
        if video.check_file(Path(path)) > UPLOAD_LIMIT:
            raise PhotoError(f"video {path} is larger than the service accepts ({UPLOAD_LIMIT >> 20} MiB)",
                             "cut the clip to the seconds that matter", "too-large")
    return read_bytes(path)


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _multipart(fields: dict, files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of text `fields` and (field, filename, bytes) `files`."""
    boundary = "leadmatch-" + secrets.token_hex(16)
    parts = []
    for key, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
                     + str(value).encode() + b"\r\n")
    for key, filename, data in files:
        kind = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        quoted = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; filename="{quoted}"\r\n'
                     f"Content-Type: {kind}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _error_of(exc: urllib.error.HTTPError) -> LeadmatchError:
    """The leadmatch error a service answer describes (same class, message, hint and exit code)."""
    try:
        return error_from_dict(json.loads(exc.read())["error"])
    except (ValueError, KeyError, TypeError):
        return LeadmatchError(f"the service answered HTTP {exc.code} {exc.reason}", "check --server")
