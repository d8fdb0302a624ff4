"""The operations: one function per thing a user can do, workspace + actor + request → answer (plain data, the
same JSON the API sends). The CLI's direct mode, the JSON API and the browser's pages all call these, so a request
gets the same answer and the same audit entry whichever front end sends it; the rules themselves live in the
library beneath (governance/, gallery/, search/), and what a deployment adds to them is `Deployment`.

    sessions    sign in and out, who am I, the rules of behavior
    people      accounts and certifications (admin)
    galleries   authorized galleries, enrollment, their indexes
    searches    search, list, show, report; dispositions, corroboration, closure
    oversight   the audit trail (verify, checkpoint, log, supervisors' report) and retention
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Deployment:
    """Who is asking through what. Direct mode (this OS account opens its own workspace) may name any local path
    and any Ray cluster: it protects nothing against the person at the keyboard anyway. A service confines
    server-side paths to its `enroll_root` and enrollments to its own Ray cluster (`ray`), because it would
    otherwise read whatever the analyst names and send the photos, and its cluster token, wherever asked."""

    service: bool = False
    enroll_root: Path | None = None
    ray: str | None = None

    @property
    def mode(self) -> str:
        return "service" if self.service else "direct"


DIRECT = Deployment()
