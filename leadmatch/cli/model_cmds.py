"""`leadmatch gallery model NAME MODEL`: switch a gallery's face model (admin, audited; issue 23)."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def gallery_model(name: str = typer.Argument(..., help="Gallery whose face model changes."),
                  model: str = typer.Argument(..., help="dlib, or dlib+faceres (dlib fused with FaceRes)."),
                  json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    """Switch a gallery's face model (admin): faces are re-embedded from the photos the workspace keeps, the index
    rebuilt and the threshold recalibrated."""
    from leadmatch.cli import app

    with Progress(TextColumn("re-embedding faces"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=app.err, transient=True, disable=json_out) as bar:
        task = bar.add_task("model", total=None)
        result = app.backend().gallery_model(name, model,
                                             lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        return app.emit_json(result)
    build = result["index"]
    app.out.print(f"gallery {result['gallery']!r} now uses the {result['model']} model (was {result['previous']}): "
                  f"{result['faces_embedded']} faces re-embedded; index {build['factory']} rebuilt on "
                  f"{build['faces']} faces" + (f", fusion scales dlib {build['scales']['dlib']}, faceres "
                                               f"{build['scales']['faceres']}" if build.get("scales") else ""))
    if result.get("calibration"):
        app.out.print(f"  {result['calibration']['text']}")


def register(gallery_app: typer.Typer) -> None:
    """Add the command to the `gallery` group."""
    gallery_app.command("model")(gallery_model)
