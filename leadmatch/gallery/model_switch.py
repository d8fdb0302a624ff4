"""Switching an existing gallery's face model (admin, audited): dlib ⇄ dlib+faceres.

To dlib+faceres, every face without a FaceRes descriptor gets one, computed from the photo the workspace keeps
(`photos.stored_path`) and the face's recorded box: no original file is needed again and no face is detected
anew, so the gallery keeps exactly its faces. Descriptors are written a photo batch per transaction (a crash
loses at most one batch, and a rerun carries on). Then the model is set and the index rebuilt, with fusion
scales fitted to the gallery and a fresh calibration; if the build fails the model is set back. To dlib the
FaceRes descriptors are kept (switching back is then quick) and the index is rebuilt on dlib's vectors.

`recompute` re-embeds every face of a dlib+faceres gallery, not only those lacking a descriptor: after a change
to how FaceRes is fed (the bicubic crop of 2026-12-02), so that gallery and probes are cropped alike.
"""

from __future__ import annotations

from typing import Callable

from leadmatch.biometrics import faceres
from leadmatch.biometrics.models import registry as models
from leadmatch.biometrics.photos import decode
from leadmatch.errors import InputError, LeadmatchError, PhotoError
from leadmatch.gallery import index, space as spaces
from leadmatch.gallery.galleries import get as get_gallery
from leadmatch.record import audit
from leadmatch.governance.accounts import Actor, require
from leadmatch.record.store import embedding_to_blob, transaction
from leadmatch.record.workspace import Workspace

#: Faces re-embedded per transaction.
BATCH = 64


def missing_faceres(ws: Workspace, gallery_id: int, every: bool = False) -> list:
    """The gallery's faces that have no FaceRes descriptor yet (`every`: all its faces), with their box and
    stored photo, by photo."""
    return ws.conn.execute(
        "SELECT f.id, f.box_top, f.box_right, f.box_bottom, f.box_left, p.stored_path, p.source_path "
        "FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.gallery_id = ? "
        + ("" if every else "AND f.faceres IS NULL ") + "ORDER BY p.id, f.id", (gallery_id,)).fetchall()


def reembed(ws: Workspace, gallery_id: int, progress: Callable[[int, int], None] | None = None,
            every: bool = False) -> int:
    """Give every face of the gallery that lacks one (`every`: every face) its FaceRes descriptor, from the kept
    photo and its box. Returns how many faces were embedded; `progress(done, total)` is called after each batch."""
    rows = missing_faceres(ws, gallery_id, every)
    total = len(rows)
    if progress:
        progress(0, total)
    decoded: tuple[str | None, object] = (None, None)
    for start in range(0, total, BATCH):
        batch = rows[start:start + BATCH]
        updates = []
        for row in batch:
            if decoded[0] != row["stored_path"]:
                decoded = (row["stored_path"], _kept_pixels(ws, row))
            box = (row["box_top"], row["box_right"], row["box_bottom"], row["box_left"])
            updates.append((embedding_to_blob(faceres.describe(decoded[1], [box])[0]), row["id"]))
        with transaction(ws.conn):
            ws.conn.executemany("UPDATE faces SET faceres = ? WHERE id = ?" + ("" if every else " AND faceres IS NULL"),
                                updates)
        if progress:
            progress(min(start + BATCH, total), total)
    return total


def _kept_pixels(ws: Workspace, row):
    """The pixels of the photo the workspace keeps for `row`; InputError naming it when it is gone or unreadable."""
    path = ws.home / row["stored_path"]
    try:
        return decode(path.read_bytes(), name=row["source_path"]).pixels
    except (OSError, PhotoError):
        raise InputError(f"the kept copy of {row['source_path']} ({path}) is missing or unreadable",
                         "restore the workspace's photos/ folder from backup, or remove that subject") from None


def switch(ws: Workspace, actor: Actor, name: str, model: str,
           progress: Callable[[int, int], None] | None = None, recompute: bool = False) -> dict:
    """Admin: make the gallery use face model `model`, re-embedding what it needs (`recompute`: every face's
    FaceRes descriptor, also for a gallery already on dlib+faceres) and rebuilding the index. Returns what
    changed: previous and new model, faces embedded, the new index build and its calibration."""
    objects = {"gallery": name, "model": model, **({"recompute": True} if recompute else {})}
    require(ws, actor, "admin", "gallery.model", objects=objects)
    try:
        gallery = get_gallery(ws, name)
        model = spaces.validate(model)
        if recompute and model != spaces.FUSED:
            raise InputError("--recompute re-embeds FaceRes descriptors: it needs the dlib+faceres model",
                             "give dlib+faceres, or leave --recompute out")
        if gallery.model == model and not recompute:
            raise InputError(f"gallery {name!r} already uses the {model} model",
                             "nothing to change" if model != spaces.FUSED else
                             "nothing to change; --recompute re-embeds every face's FaceRes descriptor")
        if model == spaces.FUSED:
            models.faceres_onnx_path()  # absent or altered FaceRes weights: one line, exit 5
            embedded = reembed(ws, gallery.id, progress, every=recompute)
        else:
            embedded = 0
        with transaction(ws.conn):
            ws.conn.execute("UPDATE galleries SET model = ? WHERE id = ?", (model, gallery.id))
        try:
            faces = index.record_fingerprint(ws.conn, gallery.id)[0]
            chosen = gallery.index_factory or index.choose_factory(faces, spaces.Space(model).dim)
            build = index.build_gallery(ws.conn, ws.indexes, gallery.id,
                                        index.factory_for_model(ws.conn, gallery.id, chosen))
        except BaseException:
            with transaction(ws.conn):
                ws.conn.execute("UPDATE galleries SET model = ? WHERE id = ?", (gallery.model, gallery.id))
            raise
    except LeadmatchError as exc:
        audit.record(ws.conn, actor.name, "gallery.model", "refused", objects=objects,
                     reason=f"{getattr(exc, 'reason', 'bad-input')}: {exc.message}")
        raise
    from leadmatch.gallery import calibration

    calibrated = calibration.load(ws.conn, gallery.id)
    result = {"gallery": gallery.name, "previous": gallery.model, "model": model, "faces_embedded": embedded,
              "index": build, "calibration": calibrated.summary() if calibrated else None}
    audit.record(ws.conn, actor.name, "gallery.model", objects={
        "gallery": gallery.name, "previous": gallery.model, "model": model, "faces_embedded": embedded,
        **({"recompute": True} if recompute else {}),
        "faces": build["faces"], "index": build["factory"], **({"scales": build["scales"]} if "scales" in build else {})})
    return result
