"""The audit trail (auditor or admin) and retention (admin)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from leadmatch.cli.context import backend
from leadmatch.cli.options import JsonOption
from leadmatch.cli.render import emit_json, err, out, plural, when
from leadmatch.errors import InputError
from leadmatch.gallery import galleries as galleries
from leadmatch.operations import oversight as operations_oversight
from leadmatch.record import audit
from leadmatch.safetext import shown_all

commands = typer.Typer()  # top-level commands, added to the app as they are

audit_app = typer.Typer(help="The audit trail (auditor or admin): verify, checkpoint, log, report.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(expect_head: Optional[str] = typer.Option(None, "--expect-head",
                                                           help="Head hash recorded at an earlier verification."),
                 checkpoint: Optional[Path] = typer.Option(None, "--checkpoint",
                                                           help="A file written by `audit checkpoint`."),
                 json_out: JsonOption = False):
    """Walk the keyed hash chain; report the first bad entry. Exit 6 if the chain is broken."""
    result = backend().audit_verify(expect_head, checkpoint)
    if json_out:
        emit_json({k: v for k, v in result.items() if k != "description"})
    elif result["ok"]:
        out.print(f"audit chain intact: {result['entries']} entries, head {result['head']}"
                  + (f"; checkpoint entry {result['checkpoint']} unchanged" if result["checkpoint"] else ""))
    else:
        err.print(f"error: {result['description']} — restore leadmatch.db from a backup and find out who changed it")
    if not result["ok"]:
        sys.exit(6)


@audit_app.command("checkpoint")
def audit_checkpoint(out_file: Optional[Path] = typer.Option(None, "--out", help="Write the checkpoint to FILE.")):
    """Export the signed head of the trail (auditor) for filing outside the system; `verify --checkpoint` uses it."""
    made = backend().audit_checkpoint(out_file)
    if out_file is None:
        return emit_json(made)
    out.print(f"checkpoint of entry {made['entry']} (hash {made['hash']}, {when(made['at'])}) written to {out_file}; "
              "file it outside this system")


@audit_app.command("log")
def audit_log(case: Optional[str] = typer.Option(None, "--case"), user: Optional[str] = typer.Option(None, "--user"),
              action: Optional[str] = typer.Option(None, "--action", help="An action, or a group (audit: audit.*)."),
              outcome: Optional[str] = typer.Option(None, "--outcome", help="ok, refused, failed…"),
              since: Optional[str] = typer.Option(None, "--since", help="YYYY-MM-DD"),
              until: Optional[str] = typer.Option(None, "--until", help="YYYY-MM-DD (inclusive)"),
              limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Newest N entries."),
              page: Optional[int] = typer.Option(None, "--page", min=1,
                                                 help="Page N of the entries, newest first (as the web page)."),
              per_page: int = typer.Option(audit.PER_PAGE, "--per-page", min=1, max=audit.MAX_PER_PAGE,
                                           help="Entries a page, with --page."),
              json_out: JsonOption = False):
    """Audit entries, oldest first; with --page, one page of them newest first."""
    if page is not None:
        if limit is not None:
            raise InputError("--limit and --page do not go together", "give one of them")
        listing = backend().audit_page(case, user, since, until, action, outcome, page, per_page)
        if json_out:
            return emit_json(listing)
        print_entries(listing["entries"])
        out.print(f"page {listing['page']} of {listing['pages']}, {plural(listing['total'], 'entry', 'entries')}, "
                  "newest first")
        return
    rows = backend().audit_log(case, user, since, limit, action, outcome, until)
    if json_out:
        return emit_json(rows)
    print_entries(rows)
    if not rows:
        out.print("no entries match")


def print_entries(rows: list[dict]) -> None:
    """One entry a line (a stored newline must not start a forged one): id, time, user, action, outcome, its
    case and search, and the reason of a refusal."""
    for e in shown_all(rows):
        target = " ".join(x for x in (e["case_number"] and f"case={e['case_number']}",
                                      e["search_id"] and f"search={e['search_id']}") if x)
        out.print(f"{e['id']:>6} {e['at'][:19]} {e['actor']:<12} {e['action']:<22} {e['outcome']:<8} {target} "
                  f"{e['reason'] or ''}".rstrip())


@audit_app.command("report")
def audit_report(start: str = typer.Option(..., "--from", help="YYYY-MM-DD"),
                 end: str = typer.Option(..., "--to", help="YYYY-MM-DD (inclusive)"),
                 fmt: str = typer.Option("json", "--format", help="csv or json"),
                 stale_days: int = typer.Option(30, "--stale-days", help="Open searches older than this are listed.")):
    """Supervisors' report: searches per user, refusals by reason, closures, stale open searches."""
    operations_oversight.report_format(fmt)
    data = backend().audit_report(start, end, stale_days)
    sys.stdout.write(operations_oversight.report_csv(data)) if fmt == "csv" else emit_json(data)


@commands.command()
def purge(expired: bool = typer.Option(False, "--expired", help="Purge closed searches past retention."),
          dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be purged, counted; nothing "
                                                                 "is deleted (the preview is audited)."),
          json_out: JsonOption = False):
    """Delete probe photos and details of closed searches past their gallery's retention (admin)."""
    if dry_run:
        return print_purge_preview(backend().purge_preview(), json_out)
    if not expired:
        raise InputError("purge needs --expired", "run `leadmatch purge --expired`, or `--dry-run` to see what "
                                                  "it would purge")
    r = backend().purge_expired()
    if json_out:
        return emit_json(r)
    out.print(f"purged {plural(len(r['purged_searches']), 'search', 'searches')}, removed "
              f"{plural(r['probe_files_removed'], 'probe photo')}"
              + (f": {', '.join(r['purged_searches'])}" if r["purged_searches"] else ""))
    if r.get("purged_cases"):
        out.print(f"purged the media of {plural(len(r['purged_cases']), 'case')} "
                  f"({plural(r['media_files_removed'], 'file')}): "
                  f"{', '.join(r['purged_cases'])}")


def print_purge_preview(preview: dict, json_out: bool) -> None:
    """What a purge would remove, one line a search and a case, then the counts (nothing was deleted)."""
    if json_out:
        return emit_json(preview)
    shown = shown_all(preview)
    for s in shown["searches"]:
        out.print(f"would purge search {s['search_id']} (case {s['case']}, closed {s['closed_at'][:10]}, retention "
                  f"{s['retention_days']} days): {plural(s['probe_files'], 'probe file')}")
    for c in shown["cases"]:
        out.print(f"would purge the media of case {c['case']}: {plural(c['media_files'], 'file')}, "
                  f"{plural(c['faces'], 'face')}")
    out.print(f"dry run: {plural(len(shown['searches']), 'search', 'searches')} "
              f"({plural(shown['probe_files'], 'probe file')}) and the media of "
              f"{plural(len(shown['cases']), 'case')} ({plural(shown['media_files'], 'file')}) would be purged; "
              "nothing was deleted" + ("" if shown["searches"] or shown["cases"] else " (nothing is due)"))


