"""`leadmatch case …`: a case's disclosure export and its verification. Parse, call, print."""

from __future__ import annotations

from pathlib import Path

import typer

from leadmatch.casemedia import export as exports
from leadmatch.cli.context import backend
from leadmatch.cli.options import JsonOption
from leadmatch.cli.render import emit_json, out
from leadmatch.errors import LeadmatchError

app = typer.Typer(help="A whole case: disclosure export (auditor, reviewer or admin) and its verification.",
                  no_args_is_help=True)


@app.command("export")
def export(case: str, folder: Path = typer.Option(..., "--out", help="New (or empty) folder to write the export to."),
           json_out: JsonOption = False):
    """Every search of the case (any outcome), its media and persons, the audit entries with the chain's
    verification, and every file with its sha256: case.html, case.json, files/, SHA256SUMS."""
    result = backend().case_export(case, folder)
    if json_out:
        return emit_json(result)
    out.print(f"case {result['case']}: {result['searches']} searches, {result['files']} files, "
              f"{result['audit_entries']} audit entries (chain {'verified' if result['chain_ok'] else 'BROKEN'}) "
              f"written to {result['out']}; case.json sha256 {result['case_json_sha256']}")


@app.command("verify")
def verify(folder: Path, json_out: JsonOption = False):
    """Check an export folder: every file against SHA256SUMS and case.json, every audit entry against its hash."""
    result = exports.verify(folder)
    if json_out:
        emit_json(result)
    else:
        out.print(f"{'ok' if result['ok'] else 'FAILED'}: {result['files_checked']} files, "
                  f"{result['audit_entries_checked']} audit entries checked; chain at export "
                  f"{'verified' if result['chain_at_export'] else 'not verified'}")
        for problem in result["problems"]:
            out.print(f"  {problem}")
    if not result["ok"]:
        raise LeadmatchError(f"the export in {folder} does not verify ({len(result['problems'])} problems)",
                             "obtain a fresh export from the service")
