"""The service owns the workspace: started as its own OS account, the CLI as a client under another
account. Each insider attack from issue 9 is replayed and must fail."""

from __future__ import annotations

# The separate OS accounts ----------------------------------------------------------------------------------
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest

from leadmatch.governance import accounts as library_accounts
from leadmatch.record.workspace import open_workspace

from .helpers import (
    ADMIN,
    AGENT,
    AGENT2,
    ANALYST,
    AUDITOR,
    FACES,
    GALLERY,
    GALLERY_DIR,
    LABEL,
    MEANS,
    PASSWORD,
    PROBES_DIR,
    REVIEWER,
    ROOT,
    free_port,
    start_server,
)

SERVICE_USER, CLIENT_USER = "leadmatch-svc", "leadmatch-cli"
LATE_AGENT = "casey"  # certified, but the certification ran out a month ago
# Dates relative to today, so the backdated clock (a year back) always falls inside casey's certification:
# a fixed date would let the clock-back test pass whatever the service trusts once that date is a year old.
LATE_COMPLETED = (date.today() - timedelta(days=400)).isoformat()
LATE_EXPIRED = (date.today() - timedelta(days=30)).isoformat()


def os_account(name: str) -> pwd.struct_passwd:
    """The system account `name`, created with useradd if missing (root only)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name)


def python_for(account: str, base: Path) -> tuple[str, dict]:
    """An interpreter `account` may run, with this project's packages: this one, or the system's python of the
    same version with the venv's site-packages on PYTHONPATH, or — when the project itself lives where other
    accounts cannot reach (a clone in a private 0700 folder, pyenv under /root) — that python over a copy of the
    project and of site-packages in `base` (hard links: instant, no extra disk). A failure, never a skip, when none
    runs: these tests are the proof that the rules bind insiders."""
    import sysconfig

    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    system = [f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    tried = [(sys.executable, lambda: {})] + [(python, lambda: {"PYTHONPATH": os.pathsep.join([str(ROOT), *site])})
                                              for python in system]
    tried += [(python, lambda: reachable_copy(base, site)) for python in system]
    for python, packages in tried:
        env = packages()
        try:
            probe = subprocess.run([python, "-c", "import leadmatch.cli.app, faiss, dlib"], capture_output=True,
                                   env={**os.environ, **env}, user=account, cwd="/", timeout=120)
        except OSError:
            continue
        if probe.returncode == 0:
            return python, env
    pytest.fail(f"no Python interpreter with this project's packages can be run by the OS account {account}: "
                f"install Python {version} system-wide (apt-get install {version})", pytrace=False)


def photos_for_the_client(base: Path) -> None:
    """The sample photos where the client's OS account can read them: where they are, or (a clone in a private
    folder) a hard-linked copy in `base`, which this module's FACES, GALLERY_DIR and PROBES_DIR then name."""
    global FACES, GALLERY_DIR, PROBES_DIR
    probe = subprocess.run(["test", "-r", str(PROBES_DIR / "obama1.jpg")], user=CLIENT_USER)
    if probe.returncode == 0:
        return
    copy_tree(FACES, base / "faces")
    for folder in [base / "faces", *(path for path in (base / "faces").rglob("*") if path.is_dir())]:
        folder.chmod(0o755)
    FACES, GALLERY_DIR, PROBES_DIR = base / "faces", base / "faces" / "gallery", base / "faces" / "probes"


def reachable_copy(base: Path, site: list[str]) -> dict:
    """The project (package and model files) and the venv's site-packages under `base`, readable by any
    account; returns the PYTHONPATH that puts them first."""
    runtime = base / "runtime"
    if not runtime.exists():
        for name in ("leadmatch", "models"):
            copy_tree(ROOT / name, runtime / "project" / name)
        for number, folder in enumerate(dict.fromkeys(site)):
            copy_tree(Path(folder), runtime / f"site-{number}")
        for folder in [runtime, *(path for path in runtime.rglob("*") if path.is_dir() and not path.is_symlink())]:
            folder.chmod(0o755)  # folders only: the linked files are the originals, left as they are
    return {"PYTHONPATH": os.pathsep.join([str(runtime / "project"),
                                           *(str(runtime / f"site-{n}") for n in range(len(dict.fromkeys(site))))])}


def copy_tree(source: Path, target: Path) -> None:
    """Hard-link `source` into `target` (a real copy where links cannot cross file systems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["cp", "-al", str(source), str(target)], capture_output=True).returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)


@pytest.fixture(scope="module")
def service(enrolled_template):
    """The enrolled sample workspace, owned by its own OS account (0700), served by that account; the
    client's OS account gets a folder of its own for its token and output files."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create the service's and the client's OS accounts with useradd (CI runs as "
                    "root); run `sudo .venv/bin/python -m pytest tests/test_service.py` to include it")
    if not shutil.which("useradd"):
        pytest.fail("useradd is not installed: apt-get install passwd", pytrace=False)
    svc, cli = os_account(SERVICE_USER), os_account(CLIENT_USER)
    base = Path(tempfile.mkdtemp(prefix="leadmatch-service-", dir="/tmp"))
    base.chmod(0o755)
    home, client_dir, photos = base / "home", base / "client", base / "enroll-root"
    shutil.copytree(enrolled_template, home)
    ws = open_workspace(home)
    library_accounts.add_user(ws, ADMIN, LATE_AGENT, ["agent"], PASSWORD)
    library_accounts.certify(ws, ADMIN, LATE_AGENT, library_accounts.DEFAULT_COURSE, LATE_COMPLETED, LATE_EXPIRED)
    library_accounts.accept_rules(ws, library_accounts.Actor(LATE_AGENT, frozenset({"agent"})))
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.close()
    shutil.copytree(GALLERY_DIR, photos / "gallery")
    subprocess.run(["chown", "-R", f"{svc.pw_uid}:{svc.pw_gid}", str(home), str(photos)], check=True)
    subprocess.run(["chmod", "-R", "go-rwx", str(home)], check=True)
    client_dir.mkdir(mode=0o700)
    os.chown(client_dir, cli.pw_uid, cli.pw_gid)
    python, packages = python_for(SERVICE_USER, base)
    photos_for_the_client(base)
    process, url = start_server(home, free_port(), "--enroll-root", str(photos), user=SERVICE_USER,
                                env={"HOME": str(base), **packages}, python=python)
    yield {"home": home, "url": url, "client_dir": client_dir, "base": base, "python": python, "packages": packages}
    process.terminate()
    process.wait(10)
    shutil.rmtree(base, ignore_errors=True)


def as_client(service, *args: str, input: str | None = None, env: dict | None = None, server: bool = True):
    """Run `leadmatch` as the client's OS account (never the service's), through --server unless told not to."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEADMATCH_")}
    full_env.update({"HOME": str(service["client_dir"]), "COLUMNS": "200",
                     "LEADMATCH_CONFIG_DIR": str(service["client_dir"] / "config"),
                     **service["packages"], **(env or {})})
    if "PYTHONPATH" in (env or {}) and "PYTHONPATH" in service["packages"]:
        full_env["PYTHONPATH"] = env["PYTHONPATH"] + os.pathsep + service["packages"]["PYTHONPATH"]
    prefix = ["--server", service["url"]] if server else []
    return subprocess.run([service["python"], "-m", "leadmatch", *prefix, *args], capture_output=True, text=True,
                          input=input, env=full_env, user=CLIENT_USER, group=CLIENT_USER, extra_groups=[],
                          cwd=service["client_dir"], timeout=300)


def client_login(service, name: str):
    result = as_client(service, "login", name, "--password-stdin", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    return result


def client_sql(service, statement: str):
    """The client account trying the database directly, as the insider of issue 9 did."""
    code = ("import sqlite3, sys\n"
            f"conn = sqlite3.connect({str(service['home'] / 'leadmatch.db')!r}, isolation_level=None)\n"
            f"conn.execute({statement!r})\n")
    return subprocess.run([service["python"], "-c", code], capture_output=True, text=True, user=CLIENT_USER,
                          group=CLIENT_USER, extra_groups=[], cwd="/", timeout=60)


def search_args(probe: str, case: str = "SVC-1", *extra: str) -> list[str]:
    return ["search", str(PROBES_DIR / probe), "--gallery", GALLERY, "--case", case, "--purpose", "robbery",
            "--justification", "Armed robbery suspect caught on the store camera.", "--traditional-means", MEANS,
            *extra]


def test_workspace_is_private_to_the_service_account(service):
    home = service["home"]
    assert home.stat().st_uid == pwd.getpwnam(SERVICE_USER).pw_uid
    assert (home.stat().st_mode & 0o777) == 0o700
    assert ((home / "leadmatch.db").stat().st_mode & 0o077) == 0
    denied = client_sql(service, "SELECT COUNT(*) FROM searches")
    assert denied.returncode != 0 and "unable to open database" in denied.stderr
    direct = as_client(service, "--home", str(home), "searches", server=False)
    assert direct.returncode != 0 and "Traceback" not in direct.stderr and "not readable" in direct.stderr


def test_cli_through_the_service_end_to_end(service):
    client_login(service, AGENT.name)
    who = as_client(service, "whoami")
    assert who.returncode == 0 and "avery (agent)" in who.stdout and f"service: {service['url']}" in who.stdout
    found = as_client(service, *search_args("obama-720p.jpg", "SVC-1", "--top-k", "3", "--json"))
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout)
    sid = result["search_id"]
    assert result["candidates"][0]["subject"] == "barack_obama" and result["probe"]["name"] == "obama-720p.jpg"
    assert all(c["label"] == LABEL for c in result["candidates"])
    table = as_client(service, "show", sid)
    assert table.returncode == 0 and table.stdout.count(LABEL) >= 2 + 3
    assert sid in as_client(service, "searches").stdout
    several = as_client(service, *search_args("kit_with_rose.jpg", "SVC-2"))
    assert several.returncode == 4 and "face 2:" in several.stderr
    sketch = as_client(service, *search_args("obama1.jpg", "SVC-3", "--probe-source", "sketch"))
    assert sketch.returncode == 3 and sketch.stderr.startswith("error: ") and "sketch" in sketch.stderr
    missing = as_client(service, *search_args("no-such.jpg", "SVC-4"))
    assert missing.returncode == 1 and "photo not found" in missing.stderr
    for c in result["candidates"]:
        decided = as_client(service, "disposition", sid, "--rank", str(c["rank"]), "--decision",
                            "possible-lead" if c["rank"] == 1 else "excluded", "--note", "Compared ears and jaw.")
        assert decided.returncode == 0, decided.stderr
    assert "awaiting-review" in decided.stdout
    refused = as_client(service, "close", sid, "--outcome", "identified", "--rank", "1", "--note", "Mine, trust me.")
    assert refused.returncode == 3  # the searching agent may not close
    assert as_client(service, "logout").returncode == 0
    client_login(service, REVIEWER.name)
    assert as_client(service, "corroborate", sid, "--rank", "1", "--evidence-type", "fingerprints", "--evidence",
                     "Latent from the counter matches.", "--reference", "LAB-9", "--outcome",
                     "corroborated").returncode == 0
    closed = as_client(service, "close", sid, "--outcome", "identified", "--rank", "1", "--note", "LAB-9 matches.")
    assert closed.returncode == 0 and "closed-identified" in closed.stdout
    report = as_client(service, "report", sid, "--out", "lead.html")
    assert report.returncode == 0 and (service["client_dir"] / "lead.html").read_text().count(LABEL) >= 4
    client_login(service, AUDITOR.name)
    verify = as_client(service, "audit", "verify")
    assert verify.returncode == 0 and "audit chain intact" in verify.stdout
    log = as_client(service, "audit", "log", "--case", "SVC-1")
    assert log.returncode == 0 and "close" in log.stdout and "avery" in log.stdout
    summary = as_client(service, "audit", "report", "--from", "2026-01-01", "--to", "2099-12-31")
    assert summary.returncode == 0 and json.loads(summary.stdout)["searches_by_user"]
    client_login(service, ANALYST.name)
    upload = as_client(service, "gallery", "enroll", GALLERY, str(GALLERY_DIR))
    assert upload.returncode == 0 and "0 enrolled, 11 skipped" in upload.stdout, upload.stderr
    named = as_client(service, "gallery", "enroll", GALLERY, "gallery", "--on-server")
    assert named.returncode == 0 and "0 enrolled, 11 skipped" in named.stdout, named.stderr
    outside = as_client(service, "gallery", "enroll", GALLERY, "/etc", "--on-server")
    assert outside.returncode == 3 and "outside the enroll root" in outside.stderr
    created = as_client(service, "gallery", "create", "svc-gallery", "--authority", "State Code §1", "--approved-by",
                        "Chief", "--approved-on", "2026-03-01", "--source", "booking photos")
    assert created.returncode == 0 and "created gallery 'svc-gallery'" in created.stdout, created.stderr
    assert "svc-gallery" in as_client(service, "gallery", "list").stdout
    shown = as_client(service, "gallery", "show", GALLERY)
    assert shown.returncode == 0 and "subjects 6, photos 11" in shown.stdout, shown.stdout
    client_login(service, AGENT2.name)
    accepted = as_client(service, "accept-rules", "--yes")
    assert accepted.returncode == 0 and "accepted by blake at 20" in accepted.stdout
    client_login(service, ANALYST.name)
    assessed = as_client(service, "evaluate", "gallery", "--json")
    assert assessed.returncode == 0, assessed.stderr
    assert json.loads(assessed.stdout)["mated_probes"] >= 4


def test_admin_and_analyst_manage_through_the_service(service):
    """An admin adds, certifies and disables an account and authorizes a purpose; the new agent searches with it;
    an analyst removes a subject from a gallery and checks and retrains its index — all as the client account,
    through --server, with direct mode's output and exit codes."""
    client_login(service, ADMIN.name)
    added = as_client(service, "user", "add", "dana", "--role", "agent", "--password-stdin", input=PASSWORD + "\n")
    assert added.returncode == 0 and "added dana (agent)" in added.stdout, added.stderr
    twice = as_client(service, "user", "add", "dana", "--role", "agent", "--password-stdin", input=PASSWORD + "\n")
    assert twice.returncode == 1 and twice.stderr.startswith("error: ") and "already" in twice.stderr
    certified = as_client(service, "user", "certify", "dana", "--completed", "2026-01-05")
    assert certified.returncode == 0 and "certified dana:" in certified.stdout and "expires 2027-01-05" in \
        certified.stdout, certified.stderr
    listed = as_client(service, "user", "list", "--json")
    dana = {u["name"]: u for u in json.loads(listed.stdout)}["dana"]
    assert dana["roles"] == ["agent"] and dana["certification"]["expires"] == "2027-01-05"
    assert "dana" in as_client(service, "user", "list").stdout
    purpose = as_client(service, "purposes", "add", "Wildlife Trafficking")
    assert purpose.returncode == 0 and "added purpose 'wildlife trafficking'" in purpose.stdout, purpose.stderr
    assert "wildlife trafficking" in as_client(service, "purposes").stdout.splitlines()

    client_login(service, "dana")
    assert as_client(service, "accept-rules", "--yes").returncode == 0
    found = as_client(service, "search", str(PROBES_DIR / "obama1.jpg"), "--gallery", GALLERY, "--case", "SVC-ADM",
                      "--purpose", "wildlife trafficking", "--justification", "Seller seen on the market camera.",
                      "--traditional-means", MEANS, "--json")
    assert found.returncode == 0 and json.loads(found.stdout)["purpose"] == "wildlife trafficking", found.stderr

    client_login(service, ANALYST.name)
    assert as_client(service, "gallery", "create", "svc-removal", "--authority", "State Code §1", "--approved-by",
                     "Chief", "--approved-on", "2026-03-01", "--source", "booking photos").returncode == 0
    enrolled = as_client(service, "gallery", "enroll", "svc-removal", "gallery", "--on-server")
    assert enrolled.returncode == 0 and "11 enrolled" in enrolled.stdout, enrolled.stderr
    status = as_client(service, "index", "status", "svc-removal", "--json")
    assert status.returncode == 0, status.stderr
    faces = json.loads(status.stdout)["faces"]
    removed = as_client(service, "gallery", "remove", "svc-removal", "--subject", "joe_biden")
    assert removed.returncode == 0 and "removed subject 'joe_biden' from 'svc-removal': 2 faces, 2 photos" in \
        removed.stdout, removed.stderr
    gone = as_client(service, "gallery", "remove", "svc-removal", "--subject", "joe_biden")
    assert gone.returncode != 0 and gone.stderr.startswith("error: no subject 'joe_biden'")
    built = as_client(service, "index", "build", "svc-removal", "--index", "Flat")
    assert built.returncode == 0 and f"built Flat over {faces - 2} faces" in built.stdout, built.stderr
    rebuilt = as_client(service, "index", "rebuild", "svc-removal")
    assert rebuilt.returncode == 0 and "built Flat over" in rebuilt.stdout and "self-check: recall" in rebuilt.stdout
    text = as_client(service, "index", "status", "svc-removal")
    assert text.returncode == 0 and f"index of svc-removal: Flat (chosen by user), {faces - 2} faces" in text.stdout
    refused = as_client(service, "user", "disable", "dana")
    assert refused.returncode == 3 and "user.disable needs the admin role" in refused.stderr

    client_login(service, ADMIN.name)
    target = as_client(service, "gallery", "target-fpir", "svc-removal", "0.05")
    assert target.returncode == 0 and target.stdout.startswith("gallery svc-removal: "), target.stderr
    assert as_client(service, "user", "disable", "dana").stdout.strip() == "disabled dana"
    purged = as_client(service, "purge", "--expired")
    assert purged.returncode == 0 and purged.stdout.startswith("purged 0 searches"), purged.stderr
    local = as_client(service, "init", "--admin", "root")
    assert local.returncode == 1 and "init does not go through --server" in local.stderr
    client_login(service, AUDITOR.name)
    log = json.loads(as_client(service, "audit", "log", "--user", "admin", "--json").stdout)
    assert {"user.add", "user.certify", "purposes.add", "gallery.target-fpir", "user.disable", "purge"} <= \
        {e["action"] for e in log}
    log = json.loads(as_client(service, "audit", "log", "--user", ANALYST.name, "--json").stdout)
    assert {"gallery.remove-subject", "index.build"} <= {e["action"] for e in log}

def test_video_stills_and_checkpoint_through_the_service_as_in_direct_mode(service):
    """A clip, several stills and a two-person clip searched by the client account through --server print what
    direct mode prints; an auditor's checkpoint is signed by the service and filed by the client."""
    from .helpers import still_clip

    clip = FACES / "video" / "short_hamilton_clip.mp4"
    two = still_clip(service["client_dir"] / "two.mp4", [PROBES_DIR / "johnsnow_test1.jpg", PROBES_DIR / "obama1.jpg"])
    os.chown(two, pwd.getpwnam(CLIENT_USER).pw_uid, pwd.getpwnam(CLIENT_USER).pw_gid)
    client_login(service, AGENT.name)
    found = as_client(service, *video_args(str(clip), "SVC-V1", "--best-frames", "4", "--track", "largest",
                                                 "--json"))
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout)
    top = result["candidates"][0]
    assert top["subject"] == "lin_manuel_miranda" and top["label"] == LABEL and top["within_threshold"]
    assert result["probe"]["kind"] == "video" and len(result["probe"]["frames"]) == 4
    assert result["probe"]["name"] == "short_hamilton_clip.mp4"
    text = as_client(service, *video_args(str(clip), "SVC-V2", "--track", "largest"))
    assert text.returncode == 0 and "probe: frames" in text.stdout and "short_hamilton_clip.mp4" in text.stdout
    asked = as_client(service, *video_args(str(two), "SVC-V3"))
    assert asked.returncode == 4 and asked.stderr.startswith("error: ") and "2 face tracks" in asked.stderr
    assert "track 1: 0.0" in asked.stderr and "track 2: 1.0" in asked.stderr and "--track" in asked.stderr
    picked = as_client(service, *video_args(str(two), "SVC-V3", "--track", "2", "--json"))
    assert picked.returncode == 0 and json.loads(picked.stdout)["candidates"][0]["subject"] == "barack_obama"
    stills = as_client(service, *video_args(str(PROBES_DIR / "obama1.jpg"), "SVC-V4", "--json"),
                       str(PROBES_DIR / "obama3.jpg"))
    assert stills.returncode == 0, stills.stderr
    assert json.loads(stills.stdout)["probe"]["kind"] == "stills"
    missing = as_client(service, *video_args(str(service["client_dir"] / "gone.mp4"), "SVC-V5"))
    assert missing.returncode != 0 and "cannot read video" in missing.stderr and "Traceback" not in missing.stderr
    client_login(service, AUDITOR.name)
    filed = as_client(service, "audit", "checkpoint", "--out", "checkpoint.json")
    assert filed.returncode == 0 and "written to checkpoint.json" in filed.stdout, filed.stderr
    written = service["client_dir"] / "checkpoint.json"
    assert written.stat().st_uid == pwd.getpwnam(CLIENT_USER).pw_uid  # the client's file, not the service's
    assert json.loads(written.read_text())["entry"] > 0
    again = as_client(service, "audit", "checkpoint", "--out", "checkpoint.json")
    assert again.returncode == 1 and "already exists" in again.stderr
    verified = as_client(service, "audit", "verify", "--checkpoint", "checkpoint.json")
    assert verified.returncode == 0 and "unchanged" in verified.stdout, verified.stderr


def video_args(probe: str, case: str, *extra: str) -> list[str]:
    return ["search", probe, "--gallery", GALLERY, "--case", case, "--purpose", "robbery",
            "--justification", "Armed robbery suspect caught on the store camera.", "--traditional-means", MEANS,
            *extra]


def test_attack_edited_status_is_impossible(service):
    attempt = client_sql(service, "UPDATE searches SET status = 'closed-identified'")
    assert attempt.returncode != 0 and "unable to open database" in attempt.stderr


def test_attack_edited_roles_is_impossible(service):
    attempt = client_sql(service, "UPDATE users SET roles = '[\"admin\",\"agent\"]' WHERE name = 'avery'")
    assert attempt.returncode != 0 and "unable to open database" in attempt.stderr
    client_login(service, AGENT.name)
    assert "avery (agent);" in as_client(service, "whoami").stdout


def test_attack_inserted_session_is_impossible(service):
    attempt = client_sql(service, "INSERT INTO sessions (token_sha256, user_id, created_at, expires_at) "
                                  "VALUES ('x', 1, '2026-01-01', '2099-01-01')")
    assert attempt.returncode != 0 and "unable to open database" in attempt.stderr
    forged = service["client_dir"] / "config"
    token_file = forged / "sessions.json"
    token_file.write_text(json.dumps({service["url"]: "a-token-the-client-made-up"}))
    assert as_client(service, "whoami").returncode == 3


def test_attack_backdated_client_clock_has_no_effect(service, tmp_path):
    """The client's clock is set back a year (to when casey was still certified): the service's clock decides."""
    fake = service["client_dir"] / "fakeclock"
    fake.mkdir(exist_ok=True)
    (fake / "sitecustomize.py").write_text(
        "import datetime as _dt, time as _time\n"
        "_real, _shift = _time.time, 365 * 86400\n"
        "_time.time = lambda: _real() - _shift\n"
        "class _Date(_dt.date):\n"
        "    @classmethod\n"
        "    def today(cls): return _dt.date.fromtimestamp(_time.time())\n"
        "class _DateTime(_dt.datetime):\n"
        "    @classmethod\n"
        "    def now(cls, tz=None): return _dt.datetime.fromtimestamp(_time.time(), tz)\n"
        "_dt.date, _dt.datetime = _Date, _DateTime\n")
    shutil.chown(fake, CLIENT_USER, CLIENT_USER)
    shutil.chown(fake / "sitecustomize.py", CLIENT_USER, CLIENT_USER)
    backdated = {"PYTHONPATH": str(fake)}
    probe = subprocess.run([sys.executable, "-c", "import datetime; print(datetime.date.today())"],
                           capture_output=True, text=True, env={**os.environ, **backdated})
    client_today = date.fromisoformat(probe.stdout.strip())
    assert client_today == date.today() - timedelta(days=365), probe  # the fake clock works on the client
    assert LATE_COMPLETED <= client_today.isoformat() <= LATE_EXPIRED  # by the client's clock casey is certified
    login = as_client(service, "login", LATE_AGENT, "--password-stdin", input=PASSWORD + "\n", env=backdated)
    assert login.returncode == 0, login.stderr
    attempt = as_client(service, *search_args("obama1.jpg", "SVC-LATE"), env=backdated)
    assert attempt.returncode == 3 and f"expired on {LATE_EXPIRED}" in attempt.stderr
    client_login(service, AUDITOR.name)
    entries = json.loads(as_client(service, "audit", "log", "--case", "SVC-LATE", "--json").stdout)
    assert entries and all(e["at"][:10] == date.today().isoformat() for e in entries)  # the service's clock


def test_serve_refuses_a_workspace_open_to_others(home):
    home.chmod(0o755)  # as a chmod after init, or an old leadmatch, would leave it
    result = subprocess.run([sys.executable, "-m", "leadmatch", "--home", str(home), "serve", "--port", str(free_port())],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "open to group or others" in result.stderr
    assert f"chmod -R go-rwx {home.resolve()}" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_the_network_without_tls(home):
    subprocess.run(["chmod", "-R", "go-rwx", str(home)], check=True)
    for extra, message in ((["--host", "0.0.0.0"], "without TLS"), (["--certfile", str(home / "leadmatch.db")],
                                                                      "needs both --certfile and --keyfile")):
        result = subprocess.run([sys.executable, "-m", "leadmatch", "--home", str(home), "serve", *extra],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and message in result.stderr and result.stderr.startswith("error: ")


def test_tls_service_sets_secure_cookies_and_the_client_follows(home, tmp_path):
    import ssl

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    subprocess.run(["chmod", "-R", "go-rwx", str(home)], check=True)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "leadmatch", "--home", str(home), "serve", "--port", str(port),
                                "--certfile", str(cert), "--keyfile", str(key)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(cert))
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(url + "/login", timeout=1, context=context) as r:
                    cookie = r.headers["set-cookie"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the TLS service did not start: " + process.stdout.read().decode(errors="replace"))
        assert "secure" in cookie.lower()
        env = {**os.environ, "LEADMATCH_CA_FILE": str(cert)}
        env.pop("LEADMATCH_HOME", None)
        login = subprocess.run([sys.executable, "-m", "leadmatch", "--server", url, "login", AGENT.name,
                                "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True, env=env,
                               timeout=60)
        assert login.returncode == 0 and "signed in as avery" in login.stdout, login.stderr
    finally:
        process.terminate()
        process.wait(10)


def test_direct_mode_whoami_says_it_protects_nothing(home):
    from .helpers import login, run_cli

    login(home, AGENT)
    who = run_cli("whoami", home=home)
    assert who.returncode == 0 and "protects nothing against the person at this keyboard" in who.stdout
    remote = run_cli("--server", "http://127.0.0.1:9", "whoami", home=home)
    assert remote.returncode == 3 and "not signed in to this service" in remote.stderr
    other = run_cli("--server", "http://127.0.0.1:9", "user", "list", home=home)
    assert other.returncode == 3 and "not signed in to this service" in other.stderr
    for command, why in ((["init"], "it creates the service's own workspace"), (["demo"], "throw-away workspace"),
                         (["serve"], "it is the service itself"), (["bench", "search"], "synthetic data"),
                         (["models"], "model files")):
        local = run_cli("--server", "http://127.0.0.1:9", *command, home=home)
        assert local.returncode == 1 and local.stderr.startswith(f"error: {command[0]} does not go through --server: ")
        assert why in local.stderr and "Traceback" not in local.stderr
