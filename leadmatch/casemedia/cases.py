"""What every part of case media shares: the case's embedding model and who may read a case's media.

Kept apart from media.py and persons.py so that each imports it and neither imports the other's internals.
"""

from __future__ import annotations

from leadmatch.governance.accounts import Actor, refuse, require
from leadmatch.record.workspace import Workspace

#: The embedding model of every case today: dlib's ResNet (run on ONNX Runtime or dlib, same numbers). The one
#: place a case's model is chosen: a per-gallery model (another branch) plugs in here.
DEFAULT_MODEL = "dlib-resnet-v1"


def case_model(ws: Workspace, case: str) -> str:
    """The embedding model the case's faces are compared with (the one place it is chosen)."""
    return DEFAULT_MODEL


def may_read(ws: Workspace, actor: Actor, case: str, action: str) -> Actor:
    """Reviewers, auditors and admins read every case's media; an agent only a case they added media to or
    searched in (need to know). Refusals audited."""
    held = require(ws, actor, ("agent", "reviewer", "auditor", "admin"), action, case=case).roles
    if held.intersection({"reviewer", "auditor", "admin"}):
        return actor
    if not ws.conn.execute("SELECT 1 FROM case_media WHERE case_number = ? AND added_by = ? UNION ALL "
                           "SELECT 1 FROM searches WHERE case_number = ? AND agent = ? LIMIT 1",
                           (case, actor.name, case, actor.name)).fetchone():
        raise refuse(ws, actor, action, "need-to-know", f"{actor.name} has not worked on case {case}",
                     "ask an agent on the case or a reviewer", case=case)
    return actor
