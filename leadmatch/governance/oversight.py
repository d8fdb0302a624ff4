"""Supervision: the audit trail for auditors and admins — verify the chain, read the log, run the report.
Reading the trail is itself audited."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from leadmatch.record import audit
from leadmatch.governance.accounts import Actor, require
from leadmatch.errors import InputError
from leadmatch.record.dates import parse_date
from leadmatch.record.workspace import Workspace

OVERSEERS = ("auditor", "admin")
MAX_LOG_ENTRIES = 1_000_000  # one answer of `log`: more is an export, not a read
MAX_STALE_DAYS = 36_500      # a hundred years


def verify(ws: Workspace, actor: Actor, expect_head: str | None = None,
           checkpoint: dict | None = None) -> audit.Verification:
    """Auditor or admin: walk the keyed chain; with `expect_head` (a head hash written down earlier) or
    `checkpoint` (as `checkpoint` made it, read back with `audit.read_checkpoint`), also prove the trail was not
    changed or cut back behind them."""
    require(ws, actor, OVERSEERS, "audit.verify")
    filed = audit.checked_checkpoint(checkpoint) if checkpoint is not None else None
    result = audit.verify(ws.conn, expect_head, filed)
    audit.record(ws.conn, actor.name, "audit.verify", "ok" if result.ok else "failed",
                 objects={"entries": result.entries, "head": result.head, "bad_entry": result.bad_entry,
                          **({"checkpoint_entry": filed["entry"]} if filed else {})},
                 reason=None if result.ok else f"chain-broken: {result.describe()}")
    return result


def checkpoint(ws: Workspace, actor: Actor, out: Path | None = None) -> dict:
    """Auditor: append a checkpoint entry and return the signed head (entry, hash, HMAC, time) for filing
    outside the system; with `out`, also write it there (never over an existing file)."""
    require(ws, actor, "auditor", "audit.checkpoint")
    if out is not None:
        check_checkpoint_file(out)
    made = audit.checkpoint(ws.conn, actor.name)
    if out is not None:
        write_checkpoint(made, out)
    return made


def check_checkpoint_file(out: Path) -> None:
    """Refuse (InputError) a checkpoint file that exists already or whose folder does not: checked before the
    checkpoint entry is made, here or on the client of a service."""
    out = Path(out)
    if out.exists():
        raise InputError(f"{out} already exists", "choose a new file name; filed checkpoints are never replaced")
    if not out.parent.is_dir():
        raise InputError(f"no folder {out.parent} to write the checkpoint in", "create it or choose another path")


def checkpoint_text(made: dict) -> str:
    """A checkpoint as its file holds it (JSON, indented): what `--out` writes and the web page downloads."""
    return json.dumps(made, indent=2) + "\n"


def checkpoint_file_name(made: dict) -> str:
    """checkpoint-<UTC time>Z-<entry>.json: the name a checkpoint is filed under."""
    stamp = made["at"][:19].replace(":", "").replace("-", "")
    return f"checkpoint-{stamp}Z-{made['entry']}.json"


def write_checkpoint(made: dict, out: Path) -> Path:
    """Write a checkpoint (as `checkpoint` returned it) to `out` through a temp file; never over an existing
    file (the rename is a hard link, which fails if `out` appeared meanwhile; where a file system has no hard
    links, a check and a rename)."""
    out = Path(out)
    temp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(checkpoint_text(made), encoding="utf-8")
        try:
            os.link(temp, out)
        except (FileExistsError, FileNotFoundError):
            raise
        except OSError:  # no hard links on this file system (FAT removable media): check, then rename
            if out.exists():
                raise FileExistsError(out) from None
            os.replace(temp, out)
    except FileExistsError:
        raise InputError(f"{out} already exists", "choose a new file name; filed checkpoints are never "
                         "replaced (the checkpoint entry is in the trail; run it again)") from None
    except OSError as exc:
        raise InputError(f"cannot write the checkpoint to {out}: {exc.strerror}",
                         "choose a writable path (the checkpoint entry is in the trail; run it again)") from None
    finally:
        temp.unlink(missing_ok=True)
    return out


#: Who files the service's scheduled checkpoints (serve --checkpoint-every) in the trail.
SCHEDULE_ACTOR = "leadmatch-schedule"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str = "--checkpoint-every") -> float:
    """'90s', '15m', '1h', '1d' (or a number of seconds) → seconds, at least 1; an InputError otherwise."""
    value = (text or "").strip().lower()
    number, unit = (value[:-1], value[-1]) if value[-1:] in _UNITS else (value, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = float("nan")
    if not seconds >= 1 or seconds == float("inf"):
        raise InputError(f"{option} {text!r} is not a duration of at least 1 s", "give e.g. 15m, 1h or 1d")
    return seconds


def check_checkpoint_folder(folder: Path, home: Path) -> Path:
    """The folder scheduled checkpoints are filed in: an existing, writable folder outside the workspace
    (a checkpoint kept beside the trail it vouches for proves nothing once both are cut back)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--checkpoint-dir {folder} is not a folder", "create it, or name another")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"--checkpoint-dir {folder} is not writable by this account", "give the service's account "
                         "write access to it, or name another")
    real, workspace = folder.resolve(), Path(home).resolve()
    if real == workspace or workspace in real.parents:
        raise InputError(f"--checkpoint-dir {folder} is inside the workspace", "file checkpoints outside it, "
                         "ideally where they are copied off this machine")
    return real


def file_scheduled_checkpoint(ws: Workspace, folder: Path) -> Path:
    """The service's scheduled checkpoint: append a checkpoint entry (by SCHEDULE_ACTOR) and file it in
    `folder` as checkpoint-<UTC time>-<entry>.json, never over a file. Returns the file."""
    made = audit.checkpoint(ws.conn, SCHEDULE_ACTOR)
    return write_checkpoint(made, Path(folder) / checkpoint_file_name(made))


def log(ws: Workspace, actor: Actor, case: str | None = None, user: str | None = None, since: str | None = None,
        limit: int | None = None, *, action: str | None = None, outcome: str | None = None,
        until: str | None = None) -> list[dict]:
    """Auditor or admin: the entries matching the filters, oldest first (with `limit`, the newest `limit`);
    `since` and `until` are dates, both inclusive. Reading is audited, with the filters."""
    require(ws, actor, OVERSEERS, "audit.log")
    if limit is not None and not 1 <= limit <= MAX_LOG_ENTRIES:
        raise InputError(f"--limit {limit} is out of range", f"give a number from 1 to {MAX_LOG_ENTRIES:,}")
    filters = log_filters(case, user, since, until, action, outcome)
    rows = audit.entries(ws.conn, case=filters.case, actor=filters.actor, since=filters.since, until=filters.until,
                         action=filters.action, outcome=filters.outcome, limit=limit)
    audit.record(ws.conn, actor.name, "audit.log", objects={"case": case, "user": user, "since": filters.since,
                                                            **read_filters(filters)})
    return rows


def log_page(ws: Workspace, actor: Actor, case: str | None = None, user: str | None = None,
             since: str | None = None, until: str | None = None, action: str | None = None,
             outcome: str | None = None, page: int = 1, per_page: int = audit.PER_PAGE,
             upto: int | None = None) -> dict:
    """Auditor or admin: one page of the entries matching the filters, newest first — {entries (each with the
    objects it names: `names`, a list of [kind, name]), total, page, pages, per_page, upto (the newest entry
    id these pages hold: pass it back for the next page, so entries written meanwhile do not shift it), newer
    (entries written since), filters (as given, dates normalised), choices (the trail's actions and outcomes)}.
    Reading is audited, with the filters and page."""
    require(ws, actor, OVERSEERS, "audit.log")
    if not 1 <= page <= MAX_LOG_ENTRIES:
        raise InputError(f"page {page} is out of range", "give a page number from 1")
    if not 1 <= per_page <= audit.MAX_PER_PAGE:
        raise InputError(f"{per_page} entries a page is out of range",
                         f"give a number from 1 to {audit.MAX_PER_PAGE}")
    if upto is not None and upto < 0:
        raise InputError(f"entry {upto} is not an entry of the trail", "page from the newest entries")
    filters = replace(log_filters(case, user, since, until, action, outcome), upto=upto)
    answer = audit.page(ws.conn, filters, page, per_page)
    for entry in answer["entries"]:
        entry["names"] = [list(named) for named in audit.named_objects(entry)]
    shown = {"case": case or "", "user": user or "", "since": filters.since or "", "until": until or "",
             "action": action or "", "outcome": outcome or ""}
    audit.record(ws.conn, actor.name, "audit.log", objects={"case": case, "user": user, "since": filters.since,
                                                            **read_filters(filters), "page": page})
    return {**answer, "filters": shown, "choices": audit.choices(ws.conn)}


def log_filters(case: str | None, user: str | None, since: str | None, until: str | None, action: str | None,
                outcome: str | None) -> audit.Filters:
    """The filters of a log reading, dates checked (YYYY-MM-DD) and `until` made the bound after its day."""
    first = parse_date(since, "since") if since else None
    last = parse_date(until, "until") if until else None
    if first and last and last < first:
        raise InputError(f"until {last} is before since {first}", "swap the two dates")
    bound = (date.fromisoformat(last) + timedelta(days=1)).isoformat() if last else None
    return audit.Filters(case=case or None, actor=user or None, action=action or None, outcome=outcome or None,
                         since=first, until=bound)


def read_filters(filters: audit.Filters) -> dict:
    """The filters of a reading as its audit entry records them (the filters given; `until` as the open bound)."""
    return {"action": filters.action, "outcome": filters.outcome, "until": filters.until} \
        if (filters.action or filters.outcome or filters.until) else {}


def report(ws: Workspace, actor: Actor, start: str, end: str, stale_days: int = 30) -> dict:
    require(ws, actor, OVERSEERS, "audit.report")
    first, last = parse_date(start, "--from"), parse_date(end, "--to")
    if last < first:
        raise InputError(f"--to {last} is before --from {first}", "swap them")
    if not 1 <= stale_days <= MAX_STALE_DAYS:
        raise InputError(f"--stale-days {stale_days} is out of range", f"give a number of days from 1 to "
                         f"{MAX_STALE_DAYS:,}")
    # --to is inclusive for people; the query takes the day after as an open bound
    end_bound = (date.fromisoformat(last) + timedelta(days=1)).isoformat()
    data = audit.report(ws.conn, first, end_bound, stale_days)
    data["to"] = last
    audit.record(ws.conn, actor.name, "audit.report", objects={"from": first, "to": last})
    return data
