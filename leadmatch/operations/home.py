"""Each role's queue: what is waiting for the signed-in user, for their home page (or `leadmatch home`).

    agent     my searches awaiting disposition (newest first), my certification
    reviewer  searches awaiting review, oldest first
    analyst   galleries and their health (index, calibration, refusals, flagged faces)
    auditor   the chain's state and the latest refusals
    admin     agents whose certification lapses within 30 days
"""

from __future__ import annotations

from leadmatch.gallery import galleries
from leadmatch.governance import accounts, casework, oversight
from leadmatch.governance.accounts import Actor
from leadmatch.record.workspace import Workspace
from leadmatch.safetext import plural

#: How many recent refusals the auditor's queue shows (newest first).
RECENT_REFUSALS = 10
CERTIFICATION_DAYS = 30


def queues(ws: Workspace, actor: Actor) -> dict:
    """{role: its queue} for every role `actor` holds (reading each part is audited as its own read)."""
    out: dict = {}
    if actor.has("agent"):
        out["agent"] = {"awaiting_disposition": casework.listing(ws, actor, None, casework.AWAITING_DISPOSITION),
                        "certification": accounts.current_certification(ws, actor.name)}
    if actor.has("reviewer"):
        waiting = casework.listing(ws, actor, None, casework.AWAITING_REVIEW, oldest_first=True)
        out["reviewer"] = {"awaiting_review": [s for s in waiting if s["agent"] != actor.name],
                           "own_waiting": sum(1 for s in waiting if s["agent"] == actor.name)}
    if actor.has("analyst"):
        out["analyst"] = {"galleries": [gallery_health(g) for g in galleries.list_all(ws, actor)]}
    if actor.has("auditor"):
        check = oversight.verify(ws, actor)
        refusals = oversight.log_page(ws, actor, outcome="refused", per_page=RECENT_REFUSALS)["entries"]
        out["auditor"] = {"chain": {"ok": check.ok, "entries": check.entries,
                                    "description": None if check.ok else check.describe()},
                          "recent_refusals": refusals}
    if actor.has("admin"):
        out["admin"] = {"certifications": accounts.expiring_certifications(ws, actor, CERTIFICATION_DAYS),
                        "within_days": CERTIFICATION_DAYS}
    return out


def gallery_health(g: dict) -> dict:
    """A gallery's state in a few words for its keeper: empty, no index, calibrated or not, refusals, flags."""
    problems = []
    if not g["faces"]:
        problems.append("nothing enrolled yet")
    elif not g["index"]["bytes"]:
        problems.append("no index built")
    if g["faces"] and not g["calibration"]:
        problems.append("threshold not calibrated")
    if g["refused_photos"]:
        problems.append(f"{plural(g['refused_photos'], 'refused photo')}")
    if g["flagged_faces"]:
        problems.append(f"{plural(g['flagged_faces'], 'quality-flagged face')}")
    return {"name": g["name"], "model": g["model"], "subjects": g["subjects"], "faces": g["faces"],
            "calibration": (g["calibration"] or {}).get("text"), "problems": problems}
