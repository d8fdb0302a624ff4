"""Authorized galleries: create, list, show, remove a subject, the calibration target, enrollment and the index.

Enrollment is two steps so a service can check the request where it arrives and run the work in a worker
process: `enrollment_plan` (the deployment's confinement of paths and Ray clusters, refused and audited) and
`enroll` (the library's enrollment; every entry counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from leadmatch.gallery import enrollment, galleries, model_switch, sources
from leadmatch.governance import accounts
from leadmatch.governance.accounts import Actor
from leadmatch.errors import InputError
from leadmatch.operations import Deployment
from leadmatch.record.workspace import Workspace


def list_galleries(ws: Workspace, actor: Actor) -> list[dict]:
    return galleries.list_all(ws, actor)


def create(ws: Workspace, actor: Actor, name: str, authority: str, approved_by: str, approved_on: str, source: str,
           retention_days: int = galleries.DEFAULT_RETENTION_DAYS, model: str | None = None) -> dict:
    """Analyst: record a new authorized gallery, searched with face `model` (None: the workspace's default);
    answers it as `show` does."""
    created = galleries.create(ws, actor, name, authority, approved_by, approved_on, source, retention_days,
                               model=model)
    return galleries.show(ws, actor, created.name)


def switch_model(ws: Workspace, actor: Actor, name: str, model: str,
                 progress: Callable[[int, int], None] | None = None, recompute: bool = False) -> dict:
    """Admin: make the gallery use face `model`, re-embedding from the photos the workspace keeps (`recompute`:
    every face's FaceRes descriptor anew; audited)."""
    return model_switch.switch(ws, actor, name, model, progress, recompute)


def show(ws: Workspace, actor: Actor, name: str, refusals: bool = False) -> dict:
    return galleries.show(ws, actor, name, with_refusals=refusals)


def remove_subject(ws: Workspace, actor: Actor, name: str, subject: str) -> dict:
    """Analyst: a subject's photos and faces out of the record and the index at once."""
    return galleries.remove_subject(ws, actor, name, subject)


def subjects(ws: Workspace, actor: Actor, name: str, contains: str = "", offset: int = 0,
             limit: int = galleries.SUBJECTS_PAGE, flagged_only: bool = False) -> dict:
    """Analyst, auditor or admin: a page of the gallery's subjects (name filter) with face counts and flags."""
    return galleries.subjects(ws, actor, name, contains, offset, limit, flagged_only)


def flagged_faces(ws: Workspace, actor: Actor, name: str) -> list[dict]:
    """Analyst, auditor or admin: every face of the gallery enrolled with a quality flag."""
    return galleries.flagged(ws, actor, name)


def set_target_fpir(ws: Workspace, actor: Actor, name: str, target: float) -> dict:
    """Admin: the false-alarm rate the gallery's threshold is calibrated for (recalibrates; audited)."""
    return galleries.set_target_fpir(ws, actor, name, target)


def index_status(ws: Workspace, actor: Actor, name: str) -> dict:
    return galleries.index_status(ws, actor, name)


def build_index(ws: Workspace, actor: Actor, name: str, factory: str | None = None) -> dict:
    """Analyst: retrain the gallery's index (as `factory`, which then sticks; None keeps its type)."""
    return galleries.build_index(ws, actor, name, factory)


@dataclass(frozen=True)
class EnrollmentPlan:
    """What an enrollment request may do here: the folder or manifest to read, the folder nothing may be read
    outside of (`root`: a service's enroll root; None: the source itself), the Ray cluster (or None), and for an
    upload what the audit calls it (`uploaded_as`: its file names, not the folder they wait in)."""

    source: Path
    ray: str | None
    batch: int | None
    root: Path | None = None
    uploaded_as: str | None = None


def enrollment_plan(ws: Workspace, actor: Actor, deployment: Deployment, name: str, path: Path | str | None, *,
                    ray: str | None = None, batch: int | None = None, uploaded: Path | None = None,
                    uploaded_as: str | None = None) -> EnrollmentPlan:
    """Check an enrollment request before any photo is read: the analyst role, the source (`uploaded`, a folder
    the service wrote itself, or `path`, confined to a service's enroll root) and the Ray cluster."""
    may_enroll(ws, actor, name)
    cluster = ray_cluster(ws, actor, deployment, name, ray, batch)
    if uploaded is not None:
        return EnrollmentPlan(Path(uploaded), cluster, batch, uploaded_as=uploaded_as)
    source = server_path(ws, actor, deployment, str(path), "gallery.enroll")
    return EnrollmentPlan(source, cluster, batch, deployment.enroll_root if deployment.service else None)


def may_enroll(ws: Workspace, actor: Actor, name: str) -> None:
    """Refuse (and audit) an enrollment by anyone but an analyst, before any upload is read."""
    accounts.require(ws, actor, "analyst", "gallery.enroll", objects={"gallery": name})


def enroll(ws: Workspace, actor: Actor, name: str, plan: EnrollmentPlan, *, workers: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> dict:
    """Enroll what `plan` names; answers the summary (every entry enrolled, skipped or refused with a reason)."""
    report = enrollment.enroll(ws, actor, name, plan.source, workers=workers, ray=plan.ray, batch=plan.batch,
                               progress=progress, root=plan.root, source_name=plan.uploaded_as)
    return {**report.to_dict(), "index_note": report.index_note}


def ray_cluster(ws: Workspace, actor: Actor, deployment: Deployment, gallery: str, ray: str | None,
                batch: int | None) -> str | None:
    """The Ray cluster an enrollment may run on: None without `ray`. Direct mode takes any address; a service
    only its own (`serve --ray`), asked for as `auto` or by its address. Any other is refused and audited: the
    service would show its cluster token, and send the photos, to whatever listens there."""
    if not ray:
        if batch is not None:
            raise InputError("batch applies only with a Ray cluster", "name the cluster (ray: auto or HOST:PORT), "
                             "or drop batch")
        return None
    from leadmatch.gallery.ray_cluster import check_address  # only with Ray: a local enrollment loads none of it

    wanted = check_address(ray)
    if not deployment.service:
        return ray
    objects = {"gallery": gallery, "ray": ray}
    if deployment.ray is None:
        raise accounts.refuse(ws, actor, "gallery.enroll", "no-ray-cluster", "this service names no Ray cluster",
                              "enroll without Ray, or ask its administrator to start it with a Ray cluster",
                              objects=objects)
    if wanted is not None and wanted != check_address(deployment.ray):
        raise accounts.refuse(ws, actor, "gallery.enroll", "ray-not-allowed", f"this service enrolls only on its own "
                              f"Ray cluster, not at {ray}", "ask for ray auto to use the service's cluster",
                              objects=objects)
    return deployment.ray


def server_path(ws: Workspace, actor: Actor, deployment: Deployment, path: str, action: str) -> Path:
    """A path the caller names for the service to read: in direct mode as given; on a service, under its enroll
    root and outside the workspace (`sources.server_path`: refused and audited otherwise)."""
    if not deployment.service:
        return Path(path)
    return sources.server_path(ws, actor, deployment.enroll_root, path, action)


def evaluation_source(ws: Workspace, actor: Actor, deployment: Deployment, path: str) -> Path:
    """Labeled photos an evaluation may read: anywhere in direct mode (it runs in a throw-away workspace and
    touches no gallery); on a service, an analyst's or admin's request under the enroll root."""
    if not deployment.service:
        return Path(path)
    accounts.require(ws, actor, ("analyst", "admin"), "evaluate")
    return server_path(ws, actor, deployment, path, "evaluate")
