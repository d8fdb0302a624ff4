"""Tools on this machine: the model check, speed and accuracy measurements, the demo, the service."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from leadmatch.biometrics.models import agreement
from leadmatch.biometrics.models import registry as models
from leadmatch.cli.context import State, backend, local_only
from leadmatch.cli.options import JsonOption
from leadmatch.cli.render import emit_json, err, out, print_evaluation, print_search
from leadmatch.errors import InputError, ModelError
from leadmatch.gallery import galleries as galleries
from leadmatch.record.workspace import init as init_workspace
from leadmatch.tools import bench, evaluation
from leadmatch.tools.demo import default_photos, run_demo

commands = typer.Typer()  # top-level commands, added to the app as they are

bench_app = typer.Typer(help="Speed measurements (see benchmarks/ for the full tables).", no_args_is_help=True)


@commands.command("models")
def models_check(
        photos: Optional[Path] = typer.Option(None, help="Photos for the ONNX-vs-dlib check (default: the samples)."),
        check: bool = typer.Option(True, "--check/--no-check", help="Compare ONNX and dlib embeddings.")):
    """Check the model weights and the converted ONNX model against the model card; show that they agree."""
    local_only("models", "it checks the model files installed on this machine")
    for name, digest in models.verify_all().items():
        out.print(f"ok  {name}  {digest}")
    for name, entry in models.expected_converted().items():
        if name == models.FACERES_ONNX and not models.faceres_installed():
            out.print(f"absent  {name}: the FaceRes weights are not installed (dlib+faceres galleries cannot be "
                      f"used; {models.FACERES_HINT})")
            continue
        onnx_file = models.converted_path(name)
        source = ", ".join(entry["from"]) if isinstance(entry["from"], list) else entry["from"]
        out.print(f"ok  {onnx_file.name}  {models.sha256_file(onnx_file)}  (converted from {source})")
    if not check:
        return
    faceres_models_check()
    folder = photos or default_photos()
    if not folder.is_dir():
        out.print(f"agreement: not checked (no photos at {folder}; pass --photos)")
        return
    result = agreement.check(folder)
    if not result.ok:
        raise ModelError(f"ONNX and dlib embeddings disagree: {result.line()}",
                         "use --engine dlib and report the model card mismatch")
    out.print(f"ok  agreement: {result.line()}")
    found = agreement.check_detector(folder)
    if not found.ok:
        raise ModelError(f"ONNX and dlib CNN face detectors disagree: {found.line()}",
                         "use --engine dlib with --detector cnn and report the model card mismatch")
    out.print(f"ok  detector agreement: {found.line()}")


def faceres_models_check() -> None:
    """`leadmatch models`' FaceRes line: the converted graph against TensorFlow's reference descriptors."""
    if not models.faceres_installed():
        return
    result = agreement.check_faceres()
    if result is None:
        out.print("faceres agreement: not checked (no reference crops under tests/data)")
    elif not result.ok:
        raise ModelError(f"ONNX FaceRes and TensorFlow disagree: {result.line()}",
                         "use dlib galleries and report the model card mismatch")
    else:
        out.print(f"ok  faceres agreement: {result.line()}")


@bench_app.command("search")
def bench_search(faces: int = typer.Option(100_000, "--faces", min=1000, help="Synthetic gallery size."),
                 index: Optional[str] = typer.Option(None, "--index", help="FAISS factory string (default: by size)."),
                 queries: int = typer.Option(500, "--queries", min=10),
                 model: str = typer.Option("dlib", "--model", help="dlib, or dlib+faceres (synthetic fused vectors)."),
                 json_out: JsonOption = False):
    """Search speed on a synthetic dlib-shaped gallery: leadmatch's index vs exact FAISS vs numpy."""
    local_only("bench", "it measures this machine on synthetic data and touches no workspace")
    from leadmatch.gallery import index as indexes
    from leadmatch.gallery import space as spaces

    dim = spaces.Space(spaces.validate(model)).dim
    row = bench.search_run(faces, indexes.validate_factory(index, dim) if index else None, queries, model=model)
    if json_out:
        return emit_json(row)
    for key, value in row.items():
        out.print(f"{key:>22}: {value}")


@commands.command()
def evaluate(path: Path = typer.Argument(..., help="Folder of <subject>/<photos>, or a CSV manifest (path,subject)."),
             enroll_first: int = typer.Option(1, "--enroll-first", help="Photos per subject put in the gallery."),
             holdout: float = typer.Option(0.2, "--holdout-subjects", help="Fraction of subjects kept out (non-mated)."),
             labels: Optional[Path] = typer.Option(None, "--labels", help="CSV: subject,<attribute>,… for per-group rates."),
             seed: int = typer.Option(0, "--seed", help="Which subjects are held out (deterministic per seed)."),
             plot: Optional[Path] = typer.Option(None, "--plot", help="Write the DET curve to this PNG."),
             face: Optional[str] = typer.Option(None, "--face", help="Probes with several faces: search the "
                                                "largest or the central one (default: refuse them)."),
             workers: Optional[int] = typer.Option(None, "--workers", help="Enrollment worker processes (default: all cores)."),
             model: str = typer.Option("dlib", "--model", help="Face model of the evaluation gallery: dlib or dlib+faceres."),
             distractors: Optional[Path] = typer.Option(None, "--distractors", help="Folder of people outside the "
                                                        "labeled set (one per folder or file) added to the gallery."),
             json_out: JsonOption = False):
    """Measure accuracy on your own labeled photos in a throw-away workspace: rank-k (refusals counted as misses),
    FNIR/FPIR, the gallery-calibrated threshold's measured FPIR."""
    # Through --server, PATH names labeled photos on the service's machine, under its --enroll-root.
    if State.server and plot:
        raise InputError("--plot does not go through --server yet", "run evaluate in direct mode")
    with Progress(TextColumn("searching probes"), BarColumn(), MofNCompleteColumn(), console=err, transient=True,
                  disable=json_out or bool(State.server)) as bar:
        task = bar.add_task("evaluate", total=None)
        result = backend().evaluate(path, enroll_first, holdout, seed, face, labels=labels, workers=workers,
                                    model=model, distractors=distractors,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    if plot:
        evaluation.plot_det(result, plot)
    if json_out:
        return emit_json({k: v for k, v in result.items() if k != "det"} | {"det": result["det"]})
    print_evaluation(result)
    if plot:
        out.print(f"DET curve written to {plot}")


@commands.command()
def serve(host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback unless told otherwise)."),
          port: int = typer.Option(8765, "--port"),
          certfile: Optional[Path] = typer.Option(None, "--certfile", help="TLS certificate (PEM)."),
          keyfile: Optional[Path] = typer.Option(None, "--keyfile", help="TLS private key (PEM)."),
          insecure_http: bool = typer.Option(False, "--insecure-http",
                                             help="Allow plain HTTP on a non-loopback address (behind a TLS proxy)."),
          enroll_root: Optional[Path] = typer.Option(None, "--enroll-root",
                                                     help="Folder under which analysts may name server-side paths."),
          ray: Optional[str] = typer.Option(None, "--ray", metavar="auto|HOST:PORT",
                                            help="The Ray cluster `gallery enroll --ray` runs on (the token comes "
                                                 "from this account's RAY_AUTH_TOKEN* or ~/.ray/auth_token)."),
          trusted_proxy: list[str] = typer.Option([], "--trusted-proxy", metavar="ADDRESS|NETWORK",
                                                  help="A reverse proxy whose X-Forwarded-For is believed "
                                                       "(repeatable); by default none, not even loopback."),
          checkpoint_every: Optional[str] = typer.Option(None, "--checkpoint-every", metavar="DURATION",
                                                         help="File an audit checkpoint at start and this often "
                                                              "(e.g. 1h), in --checkpoint-dir."),
          checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir",
                                                        help="Folder outside the workspace for those checkpoints.")):
    """The leadmatch service: owns the workspace; serves the web app and the JSON API (/api/v1)."""
    local_only("serve", "it is the service itself",
               "run it as the service's account on the service's machine, without --server")
    from leadmatch import web
    from leadmatch.web import preflight as service

    options = service.ServeOptions(host, port, certfile, keyfile, insecure_http, enroll_root, ray,
                                   tuple(trusted_proxy), checkpoint_every, checkpoint_dir)
    service.check_options(options)
    service.check_workspace(State.home)
    service.secure_new_files()
    scheme = "https" if options.tls else "http"
    out.print(f"leadmatch service on {scheme}://{host}:{port}/ (workspace {State.home.resolve()}"
              f"{f'; enrollments may run on Ray {ray}' if ray else ''}); Ctrl-C stops it")
    web.serve(State.home, options)


@commands.command()
def demo(photos: Optional[Path] = typer.Option(None, "--photos", help="Folder with gallery/<subject>/… and probes/…"),
         keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the demo workspace in this folder.")):
    """The whole story on sample photos, in a throw-away workspace: accounts, gallery, search, review, audit."""
    local_only("demo", "it runs in a throw-away workspace of its own on this machine")
    photos = photos or default_photos()
    with tempfile.TemporaryDirectory(prefix="leadmatch-demo-") as temp:
        home = keep or Path(temp)
        ws, _ = init_workspace(home)
        out.print(f"demo workspace: {home}  photos: {photos}")
        run_demo(ws, photos, say=out.print, show=print_search)
