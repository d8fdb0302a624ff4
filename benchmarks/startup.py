"""Benchmark: CPU time (user + sys) of the commands that do no biometrics — help, version, login, whoami,
searches, show, disposition, audit log — in direct mode on a small workspace, and which heavy libraries each
one loads (none should: numpy, OpenCV, FAISS, dlib, ONNX Runtime, face_recognition, FastAPI, matplotlib,
Pillow, Jinja2 are imported on first use only). The target is under 0.3 s of CPU each.

    python benchmarks/startup.py [ROUNDS]        (median of ROUNDS runs, 1 to 5, default 5)

Bytecode is compiled first (as an installed package has it), so the numbers are those of a user's second run.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import FACES, load_note, save

from leadmatch.lazy import HEAVY

TARGET_S = 0.3
PASSWORD = "startup benchmark password"
#: Runs the real entry point, then says which heavy libraries ended up imported (on stderr, as JSON).
WATCH = ("import json, sys\nfrom leadmatch.cli.app import main\ntry:\n    main()\nfinally:\n"
         f"    sys.stderr.write('\\nHEAVY ' + json.dumps([m for m in {HEAVY!r} if m in sys.modules]) + '\\n')\n")


def leadmatch(home: Path, *args: str, stdin: str | None = None, watch: bool = False) -> tuple[float, str, list]:
    """Run `leadmatch --home HOME ARGS` in a fresh process: (its user+sys CPU seconds, stdout, heavy modules
    loaded — only with `watch`)."""
    env = {**os.environ, "LEADMATCH_CONFIG_DIR": str(home.parent / "config")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-c", WATCH] if watch else [sys.executable, "-m", "leadmatch"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([*command, "--home", str(home), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"leadmatch {' '.join(args)} failed: {done.stderr.strip()}")
    heavy = []
    for line in done.stderr.splitlines():
        if line.startswith("HEAVY "):
            heavy = json.loads(line[6:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, done.stdout, heavy


def workspace(folder: Path) -> tuple[Path, str]:
    """A workspace with an admin, an agent and an auditor, the sample gallery and one search of six
    candidates (built with the library, once); its home and the search's id."""
    from leadmatch.gallery import galleries
    from leadmatch.gallery.enrollment import enroll
    from leadmatch.governance import accounts
    from leadmatch.governance.accounts import Actor
    from leadmatch.record.workspace import init
    from leadmatch.search.run import SearchRequest, run

    ws, _ = init(folder / "home")
    accounts.create_first_admin(ws, "admin", PASSWORD)
    admin = Actor("admin", frozenset({"admin"}))
    for name, role in (("ana", "analyst"), ("avery", "agent"), ("audra", "auditor")):
        accounts.add_user(ws, admin, name, [role], PASSWORD)
    accounts.certify(ws, admin, "avery", accounts.DEFAULT_COURSE, "2026-01-01", "2099-01-01")
    agent, analyst = Actor("avery", frozenset({"agent"})), Actor("ana", frozenset({"analyst"}))
    accounts.accept_rules(ws, agent)
    galleries.create(ws, analyst, "startup", authority="Benchmark authority", approved_by="Benchmark official",
                     approved_on="2026-01-01", source="shared/data/faces/gallery", retention_days=30)
    enroll(ws, analyst, "startup", FACES / "gallery", workers=1)
    probe = sorted((FACES / "probes").glob("*.jpg"))[0]
    found = run(ws, agent, SearchRequest(probe=probe, gallery="startup", case="BENCH-1", purpose="robbery",
                                         justification="Startup benchmark search of a sample probe.",
                                         traditional_means="Canvassed the area and checked local records; no "
                                                           "name came of it.", top_k=6, face="largest"))
    ws.close()
    return folder / "home", found["search_id"]


def main(rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="leadmatch-startup-"))
    try:
        home, search_id = workspace(folder)
        signin = PASSWORD + "\n"
        commands = [
            ("--help", ("--help",), None, None), ("--version", ("--version",), None, None),
            ("login (agent)", ("login", "avery", "--password-stdin"), signin, None),
            ("whoami", ("whoami",), None, "avery"), ("searches", ("searches",), None, "avery"),
            ("show", ("show", search_id), None, "avery"),
            ("disposition", ("disposition", search_id, "--rank", "{rank}", "--decision", "excluded", "--note",
                             "Different ear shape and jaw line."), None, "avery"),
            ("audit log --page 1", ("audit", "log", "--page", "1"), None, "audra"),
        ]
        rounds = max(1, min(rounds, 5))  # one disposition a round, and one for the watched run: six candidates
        signed_in = None
        for _, args, stdin, user in commands:  # compile the bytecode, and check each command works
            if user and user != signed_in:
                leadmatch(home, "login", user, "--password-stdin", stdin=signin)
                signed_in = user
            if "disposition" not in args:
                leadmatch(home, *args, stdin=stdin)
        rows = []
        for label, args, stdin, user in commands:
            if user and user != signed_in:
                leadmatch(home, "login", user, "--password-stdin", stdin=signin)
                signed_in = user
            times = []
            for number in range(rounds):
                argv = [a.replace("{rank}", str(number + 1)) for a in args]
                times.append(leadmatch(home, *argv, stdin=stdin)[0])
            argv = [a.replace("{rank}", str(rounds + 1)) for a in args]  # the watched run: a candidate of its own
            heavy = leadmatch(home, *argv, stdin=stdin, watch=True)[2]
            median = statistics.median(times)
            rows.append({"command": f"leadmatch {label}", "CPU s (median)": f"{median:.3f}",
                         "CPU s (min)": f"{min(times):.3f}", "under 0.3 s": "yes" if median < TARGET_S else "NO",
                         "heavy libraries loaded": ", ".join(heavy) or "none"})
        notes = [f"median and minimum of {rounds} runs each, user + sys CPU of the whole process "
                 "(interpreter start included), direct mode on a 6-person workspace, bytecode compiled",
                 "disposition: each run decides another of the search's six candidates",
                 "login: includes verifying the password with argon2id (the deliberate cost of a password hash, "
                 "about 0.19 s of CPU here) on top of the start-up",
                 "heavy libraries checked: " + ", ".join(HEAVY), load_note()]
        save("startup", "CLI start-up: CPU time of the commands that do no biometrics", rows, notes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
