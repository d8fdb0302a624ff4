"""Enrolling through a real two-node Ray cluster started on this machine (`gallery enroll --ray`).

The cluster (a head and a second node, one CPU each, token auth on, its own temp folder and ports) is started
once for this module and always stopped at the end. Every enrollment runs the real `leadmatch` command; the
result is compared with a local `--workers 2` enrollment of the same photos.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import ANALYST, FACES, GALLERY, add_people, assert_clean_error, create_gallery, login, run_cli

RAY = Path(sys.executable).parent / "ray"
PROBES = ("kit_with_rose.jpg", "two_people.jpg", "obama_small.jpg", "obama_partial_face.jpg", "32bit.png")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str, interval: float = 0.2):
    """Poll `check()` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


def stop_group(process: subprocess.Popen) -> None:
    """Stop a `ray start --block` node and every process it started (its own process group): a short grace
    period, then SIGKILL, since a throw-away node need not drain."""
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group outlived its leader
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node (one CPU each) with token auth; yields the head's HOST:PORT and the token
    environment; stops both nodes and removes the temp folder afterwards, whatever happened."""
    temp = Path(tempfile.mkdtemp(prefix="lmray-", dir="/tmp"))  # short: Ray's unix sockets live in it
    token = temp / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = open(temp / "nodes.log", "w")
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    nodes = []
    try:
        nodes.append(subprocess.Popen(
            [str(RAY), "start", "--head", "--port", str(port), "--include-dashboard", "false",
             "--temp-dir", str(temp / "t"), *common],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        wait_for(lambda: _listening(port), 60, "the Ray head")
        nodes.append(subprocess.Popen([str(RAY), "start", "--address", address, *common],
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        import ray

        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        wait_for(lambda: sum(n["Alive"] for n in ray.nodes()) == 2, 60, "the second Ray node")
        yield {"address": address, "env": env}
    finally:
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()
        for node in reversed(nodes):
            stop_group(node)
        log.close()
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        shutil.rmtree(temp, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """<subject>/<photo> folder: the sample gallery, five probes (two with several faces, one too small), three
    corrupt photos, a stray file outside any subject folder and a text file."""
    root = tmp_path_factory.mktemp("cluster") / "photos"
    shutil.copytree(FACES / "gallery", root)
    for name in PROBES:
        (root / f"probe_{Path(name).stem}").mkdir()
        shutil.copy(FACES / "probes" / name, root / f"probe_{Path(name).stem}" / name)
    bad = root / "corrupt"
    bad.mkdir()
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "truncated.jpg").write_bytes((FACES / "probes" / "obama1.jpg").read_bytes()[:3000])
    (bad / "text.jpg").write_bytes(b"this is not a photo at all\n" * 40)
    (bad / "notes.txt").write_text("case notes\n")
    (root / "stray.jpg").write_bytes((FACES / "probes" / "obama1.jpg").read_bytes())
    return root


def fresh_home(tmp_path: Path, name: str) -> Path:
    """A workspace with the cast and an empty gallery; the analyst signed in on the command line."""
    from leadmatch.workspace import init

    home = tmp_path / name
    ws, _ = init(home)
    add_people(ws)
    create_gallery(ws)
    ws.close()
    login(home, ANALYST)
    return home


def enroll_cli(home: Path, photos: Path, *extra: str, env: dict | None = None):
    return run_cli("gallery", "enroll", GALLERY, str(photos), "--json", *extra, home=home, env=env)


def record(home: Path) -> dict:
    """What an enrollment leaves in the record: subjects, photos, faces (embedding bytes), refusals."""
    conn = sqlite3.connect(home / "leadmatch.db")
    try:
        return {
            "subjects": conn.execute("SELECT id, name FROM subjects ORDER BY id").fetchall(),
            "photos": conn.execute("SELECT p.id, s.name, p.sha256, p.source_path, p.stored_path, p.metadata FROM "
                                   "photos p JOIN subjects s ON s.id = p.subject_id ORDER BY p.id").fetchall(),
            "faces": conn.execute("SELECT id, photo_id, box_top, box_right, box_bottom, box_left, size_px, "
                                  "eye_distance_px, sharpness, detector_score, embedding FROM faces ORDER BY id")
                         .fetchall(),
            "refusals": sorted(set(conn.execute("SELECT source_path, sha256, reason, detail FROM "
                                                "enrollment_refusals").fetchall()), key=repr),
        }
    finally:
        conn.close()


def count_photos(home: Path) -> int:
    try:
        conn = sqlite3.connect(home / "leadmatch.db", timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def local(photos, tmp_path_factory) -> dict:
    """The reference: the same photos enrolled locally with `--workers 2`."""
    home = fresh_home(tmp_path_factory.mktemp("local"), "home")
    result = enroll_cli(home, photos, "--workers", "2")
    assert result.returncode == 0, result.stderr
    return {"summary": json.loads(result.stdout), "record": record(home)}


def summary(result) -> dict:
    data = json.loads(result.stdout)
    data["refused"] = sorted((r["path"], r["reason"], r["detail"]) for r in data["refused"])
    return data


def test_ray_enrollment_equals_local_bit_for_bit(cluster, photos, local, tmp_path):
    home = fresh_home(tmp_path, "home")
    result = enroll_cli(home, photos, "--ray", cluster["address"])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    expected = {**local["summary"], "refused": sorted((r["path"], r["reason"], r["detail"])
                                                      for r in local["summary"]["refused"])}
    assert summary(result) == expected
    reasons = {r[1] for r in expected["refused"]}
    assert {"multiple-faces", "unreadable", "not-a-photo", "no-subject"} <= reasons, reasons
    assert expected["enrolled"] >= 11
    got = record(home)
    assert got == local["record"]  # same ids, same order, embeddings equal byte for byte
    assert len(got["faces"]) == expected["enrolled"]
    # the index was brought in step and the audit trail holds the same kind of entries as locally
    status = run_cli("index", "status", GALLERY, "--json", home=home)
    assert status.returncode == 0 and json.loads(status.stdout)["faces"] == expected["enrolled"]
    assert not json.loads(status.stdout)["repaired"]
    conn = sqlite3.connect(home / "leadmatch.db")
    actions = {row[0] for row in conn.execute("SELECT action FROM audit WHERE actor = 'ana'")}
    conn.close()
    assert {"gallery.enroll", "gallery.enroll-photos"} <= actions


def test_batches_through_auto_address_and_skips_known_photos(cluster, photos, local, tmp_path):
    home = fresh_home(tmp_path, "home")
    env = {"RAY_ADDRESS": cluster["address"]}
    first = enroll_cli(home, photos, "--ray", "auto", "--batch", "3", env=env)
    assert first.returncode == 0, first.stderr
    assert record(home) == local["record"]
    again = enroll_cli(home, photos, "--ray", "auto", "--batch", "3", env=env)
    assert again.returncode == 0, again.stderr
    data = summary(again)
    assert data["enrolled"] == 0 and data["skipped_duplicates"] == local["summary"]["enrolled"]
    assert record(home)["photos"] == local["record"]["photos"]
