"""Private files whatever the umask, in direct mode too (issue 19 item 6): under umask 022, `init`, enrollment
and a search leave every folder of the workspace 0700 and every file 0600 (database, WAL, key, photos, index),
and `serve` then starts on it without a chmod."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.request

from .helpers import FACES, MEANS, PASSWORD, free_port


def cli_022(home, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """The real `leadmatch` command run as a user with the common umask 022 would run it."""
    env = {k: v for k, v in os.environ.items() if k != "LEADMATCH_DEBUG"}
    result = subprocess.run([sys.executable, "-m", "leadmatch", "--home", str(home), *args], capture_output=True,
                            text=True, input=input, env=env, timeout=300, preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, (args, result.stderr)
    return result


def signed_in(home, name: str) -> None:
    cli_022(home, "login", name, "--password-stdin", input=PASSWORD + "\n")


def modes(home) -> dict[str, str]:
    """Every path in the workspace (the home included) → its permission bits, as octal text."""
    found = {".": oct(stat.S_IMODE(home.lstat().st_mode))}
    for folder, dirs, files in os.walk(home):
        for name in dirs + files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, home)] = oct(stat.S_IMODE(os.lstat(path).st_mode))
    return found


def test_a_workspace_made_under_umask_022_is_private_and_serve_accepts_it(tmp_path):
    home = tmp_path / "ws"
    photos = tmp_path / "photos"
    for subject in ("joe_biden", "rose_leslie"):
        shutil.copytree(FACES / "gallery" / subject, photos / subject)
    cli_022(home, "init", "--admin", "boss", "--password-stdin", input=PASSWORD + "\n")
    signed_in(home, "boss")
    for name, role in (("ana", "analyst"), ("avery", "agent")):
        cli_022(home, "user", "add", name, "--role", role, "--password-stdin", input=PASSWORD + "\n")
    cli_022(home, "user", "certify", "avery", "--completed", "2026-06-01")
    signed_in(home, "ana")
    cli_022(home, "gallery", "create", "mugshots", "--authority", "State code 12-3", "--approved-by", "Chief A",
            "--approved-on", "2026-02-01", "--source", "booking photos")
    cli_022(home, "gallery", "enroll", "mugshots", str(photos), "--workers", "1")
    signed_in(home, "avery")
    cli_022(home, "accept-rules", "--yes")
    cli_022(home, "search", str(FACES / "probes" / "obama1.jpg"), "--gallery", "mugshots", "--case", "C-7",
            "--purpose", "robbery", "--justification", "Armed robbery suspect on the store camera.",
            "--traditional-means", MEANS)

    previous = os.umask(0o022)  # a reader opening the record under 022 too: SQLite makes -wal/-shm like the db
    try:
        reader = sqlite3.connect(home / "leadmatch.db")
        reader.execute("SELECT count(*) FROM audit").fetchone()
        found = modes(home)
        reader.close()
    finally:
        os.umask(previous)
    kinds = {"leadmatch.db", "leadmatch.db-wal", "leadmatch.db-shm", os.path.join("keys", "audit.key"), "indexes", "photos"}
    assert kinds <= set(found), sorted(found)  # the database, its WAL, the key, photos and indexes are all there
    assert any(p.startswith("photos" + os.sep) and p.endswith(".jpg") for p in found)
    assert any(p.startswith("indexes" + os.sep) and not os.path.isdir(home / p) for p in found)
    wrong = {p: m for p, m in found.items() if m != (oct(0o700) if os.path.isdir(home / p) else oct(0o600))}
    assert not wrong, wrong

    port = free_port()  # as init left it: no chmod
    process = subprocess.Popen([sys.executable, "-m", "leadmatch", "--home", str(home), "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/")
    try:
        for _ in range(150):
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1).status == 200
                break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode(errors="replace")
                time.sleep(0.2)
        else:
            raise AssertionError("the service did not answer")
    finally:
        process.terminate()
        process.wait(10)
