"""`leadmatch case …`: a case's disclosure export and its verification. Parse, call, print."""

from __future__ import annotations

from pathlib import Path

import typer

from leadmatch.casemedia import export as exports

app = typer.Typer(help="A whole case: disclosure export (auditor, reviewer or admin) and its verification.",
                  no_args_is_help=True)


@app.command("export")
def export(ctx: typer.Context,
           case: str, out: Path = typer.Option(..., "--out", help="New (or empty) folder to write the export to."),
           json_out: bool = typer.Option(False, "--json")):
    """Every search of the case (any outcome), its media and persons, the audit entries with the chain's
    verification, and every file with its sha256: case.html, case.json, files/, SHA256SUMS."""
    cli = ctx.obj  # the main app's backend and printers (set by its callback)
    result = cli.backend().case_export(case, out)
    if json_out:
        return cli.emit_json(result)
    cli.out.print(f"case {result['case']}: {result['searches']} searches, {result['files']} files, "
                  f"{result['audit_entries']} audit entries (chain {'verified' if result['chain_ok'] else 'BROKEN'}) "
                  f"written to {result['out']}; case.json sha256 {result['case_json_sha256']}")


@app.command("verify")
def verify(ctx: typer.Context, folder: Path, json_out: bool = typer.Option(False, "--json")):
    """Check an export folder: every file against SHA256SUMS and case.json, every audit entry against its hash."""
    from leadmatch.errors import LeadmatchError

    cli = ctx.obj
    result = exports.verify(folder)
    if json_out:
        cli.emit_json(result)
    else:
        cli.out.print(f"{'ok' if result['ok'] else 'FAILED'}: {result['files_checked']} files, "
                      f"{result['audit_entries_checked']} audit entries checked; chain at export "
                      f"{'verified' if result['chain_at_export'] else 'not verified'}")
        for problem in result["problems"]:
            cli.out.print(f"  {problem}")
    if not result["ok"]:
        raise LeadmatchError(f"the export in {folder} does not verify ({len(result['problems'])} problems)",
                             "obtain a fresh export from the service")
