"""The supervisors' periodic report, as data and as CSV (cells never formulas)."""

from __future__ import annotations

import sqlite3

from leadmatch.record.audit.verification import verify
from leadmatch.record.store import utc_now


#: A search that stopped to ask which face or track: its own outcome, never counted as a refusal.
CHOICE_NEEDED = "choice-needed"
#: Entries written before that outcome existed: a search "refused" with the faces or tracks to pick from.
LEGACY_CHOICE = "(action = 'search' AND outcome = 'refused' AND coalesce(json_type(objects, '$.faces'), '') = 'array')"


def report(conn: sqlite3.Connection, start: str, end: str, stale_days: int = 30, now: str | None = None) -> dict:
    """Supervisors' periodic audit for [start, end): searches per user, refusals by reason (real refusals only:
    a face or track pick is counted apart, as `choices_asked`), closures with and without identification, and
    searches still open after `stale_days`."""
    window = (start, end)
    per_user = [dict(r) for r in conn.execute(
        "SELECT actor AS user, count(*) AS searches FROM audit WHERE action = 'search' AND outcome = 'ok' "
        "AND at >= ? AND at < ? GROUP BY actor ORDER BY actor", window)]
    refusals = [dict(r) for r in conn.execute(
        "SELECT CASE WHEN instr(reason, ':') > 0 THEN substr(reason, 1, instr(reason, ':') - 1) ELSE reason END "
        f"AS reason, action, count(*) AS count FROM audit WHERE outcome = 'refused' AND NOT {LEGACY_CHOICE} "
        "AND at >= ? AND at < ? GROUP BY 1, 2 ORDER BY 3 DESC, 1", window)]
    choices = conn.execute(f"SELECT count(*) FROM audit WHERE (outcome = ? OR {LEGACY_CHOICE}) AND at >= ? AND at < ?",
                           (CHOICE_NEEDED, *window)).fetchone()[0]
    closures = {r[0]: r[1] for r in conn.execute(
        "SELECT status, count(*) FROM searches WHERE closed_at >= ? AND closed_at < ? GROUP BY status", window)}
    cutoff = _days_before(now or utc_now(), stale_days)
    stale = [dict(r) for r in conn.execute(
        "SELECT id AS search_id, case_number AS 'case', agent, created_at, status FROM searches "
        "WHERE status NOT LIKE 'closed%' AND created_at < ? ORDER BY created_at", (cutoff,))]
    return {
        "from": start, "to": end,
        "searches_by_user": per_user,
        "refusals_by_reason": refusals,
        "choices_asked": choices,
        "closed_identified": closures.get("closed-identified", 0),
        "closed_no_identification": closures.get("closed-no-identification", 0),
        "open_older_than_days": stale_days,
        "open_searches_older": stale,
        "chain": verify(conn).__dict__,
    }


def _days_before(stamp: str, days: int) -> str:
    from datetime import datetime, timedelta

    moment = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S") - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def report_csv(data: dict) -> str:
    """The report as CSV rows: section, key, value."""
    import csv
    import io

    from leadmatch.safetext import csv_cell

    class SafeWriter:  # every cell shown safely, never a formula (user names and reasons are stored strings)
        def __init__(self, out) -> None:
            self._writer = csv.writer(out)

        def writerow(self, row) -> None:
            self._writer.writerow([csv_cell(cell) for cell in row])

    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(["section", "item", "value"])
    writer.writerow(["period", "from", data["from"]])
    writer.writerow(["period", "to", data["to"]])
    for row in data["searches_by_user"]:
        writer.writerow(["searches_by_user", row["user"], row["searches"]])
    for row in data["refusals_by_reason"]:
        writer.writerow(["refusals_by_reason", f"{row['action']}:{row['reason']}", row["count"]])
    writer.writerow(["choices_asked", "face or track picks", data.get("choices_asked", 0)])
    writer.writerow(["closures", "identified", data["closed_identified"]])
    writer.writerow(["closures", "no-identification", data["closed_no_identification"]])
    for row in data["open_searches_older"]:
        writer.writerow([f"open_older_than_{data['open_older_than_days']}_days", row["search_id"], row["created_at"]])
    writer.writerow(["chain", "ok", data["chain"]["ok"]])
    writer.writerow(["chain", "head", data["chain"]["head"]])
    return buffer.getvalue()
