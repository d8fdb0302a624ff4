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
import urllib.request
import warnings
from pathlib import Path

import pytest

from .helpers import (
    ANALYST,
    FACES,
    GALLERY,
    PASSWORD,
    add_people,
    assert_clean_error,
    create_gallery,
    free_port,
    login,
    run_cli,
    start_server,
)

RAY = Path(sys.executable).parent / "ray"
PROBES = ("kit_with_rose.jpg", "two_people.jpg", "obama_small.jpg", "obama_partial_face.jpg", "32bit.png")


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
        ray_query(address, "nodes", "2")
        yield {"address": address, "env": env}
    finally:
        for node in reversed(nodes):
            stop_group(node)
        log.close()
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        shutil.rmtree(temp, ignore_errors=True)


# Asked of the cluster from a separate driver process, so this test process never joins Ray (no Ray threads
# left in it when later tests fork worker pools). `nodes N`: wait for N live nodes, print their ids;
# `kill DB`: say "ready", wait until the run has written a photo to DB while a PhotoWorker actor is alive (Ray's
# actor table in the GCS; the dashboard's state API is not running), SIGKILL that actor's process, print its pid;
# `kill-twice DB LARGE`: once the run has written a photo to DB (so only the next, large photo is in flight),
# SIGKILL the PhotoWorker actor when its resident memory is LARGE bytes over the lowest seen in that process (it
# is at work on the large photo: decoding it, or, restarted, warming its models up for it), then the restarted
# actor the same way, so that photo's analysis fails twice; print both pids.
QUERY = """
import json, os, signal, sqlite3, sys, time
import ray
address, mode, arg, *more = sys.argv[1:]
ray.init(address=address, logging_level="ERROR", log_to_driver=False)
print("ready", flush=True)
deadline = time.monotonic() + 120
killed, lowest = [], {}
while time.monotonic() < deadline:
    if mode == "nodes":
        alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        if len(alive) == int(arg):
            print(json.dumps(alive)); break
    elif mode == "kill-twice":
        if not killed:  # not before the photo ahead of the large one is written: only the large one is in flight
            conn = sqlite3.connect(arg, timeout=1)
            written = conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
            conn.close()
        for actor in ray._private.state.actors().values():
            pid = actor["Pid"]
            if actor["ActorClassName"] != "PhotoWorker" or actor["State"] != "ALIVE" or pid in killed:
                continue
            try:
                with open(f"/proc/{pid}/statm") as statm:
                    rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):  # it ended as we looked
                continue
            lowest[pid] = min(lowest.get(pid, rss), rss)
            if written and rss - lowest[pid] >= int(more[0]):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:  # it ended as we looked
                    pass
        if len(killed) >= 2:
            print(json.dumps(killed)); break
    else:
        conn = sqlite3.connect(arg, timeout=1)
        written = conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        conn.close()
        workers = [a for a in ray._private.state.actors().values()
                   if a["ActorClassName"] == "PhotoWorker" and a["State"] == "ALIVE"]
        if written and workers:
            try:
                os.kill(workers[0]["Pid"], signal.SIGKILL)
            except ProcessLookupError:  # it ended as we looked: take the next one
                continue
            print(json.dumps(workers[0]["Pid"])); break
    time.sleep(0.02 if mode == "kill-twice" else 0.2)
else:
    sys.exit("timed out")
"""


def ray_query(address: str, mode: str, arg: str):
    result = subprocess.run([sys.executable, "-c", QUERY, address, mode, arg], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, f"cluster query {mode} {arg}: {result.stderr[-2000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


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
    from leadmatch.record.workspace import init

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


def test_case_media_on_ray_equals_local_bit_for_bit(cluster, tmp_path):
    """`media add --ray`: the photos are analyzed by the same Ray workers with case media's function (every face,
    not a gallery's one), so the faces, embeddings and persons equal a local run's; the clip stays on the head."""
    from .helpers import AGENT

    got = {}
    for mode, extra in (("local", ("--workers", "1")), ("ray", ("--ray", cluster["address"]))):
        home = fresh_home(tmp_path, mode)
        login(home, AGENT)
        result = run_cli("media", "add", "RAY-1", str(FACES / "probes"), str(FACES / "video" / "short_hamilton_clip.mp4"),
                         "--purpose", "robbery", "--justification", "Seized phone of the robbery suspect.", "--json",
                         *extra, home=home)
        assert result.returncode == 0, result.stderr
        conn = sqlite3.connect(home / "leadmatch.db")
        got[mode] = conn.execute(
            "SELECT m.sha256, f.track, f.time_s, f.face_index, f.box, f.usable, f.embedding, f.person_id FROM "
            "case_faces f JOIN case_media m ON m.id = f.media_id ORDER BY f.id").fetchall()
        conn.close()
    assert got["local"] and got["ray"] == got["local"]
    assert any(row[1] is not None for row in got["ray"])  # the clip's tracks are there too


def start_enroll(home: Path, photos: Path, *extra: str) -> subprocess.Popen:
    """The real command, running in the background, so a test can act while it works."""
    env = {key: value for key, value in os.environ.items() if key != "LEADMATCH_DEBUG"}
    return subprocess.Popen([sys.executable, "-m", "leadmatch", "--home", str(home), "gallery", "enroll", GALLERY,
                             str(photos), "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_worker_killed_mid_run_loses_and_duplicates_nothing(cluster, photos, local, tmp_path):
    home = fresh_home(tmp_path, "home")
    killer = subprocess.Popen([sys.executable, "-c", QUERY, cluster["address"], "kill", str(home / "leadmatch.db")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert killer.stdout.readline().strip() == "ready", killer.stderr.read()
    run = start_enroll(home, photos, "--ray", cluster["address"], "--batch", "1")
    try:
        killed, problem = killer.communicate(timeout=180)
        killed_mid_run = run.poll() is None and count_photos(home) < local["summary"]["enrolled"]
        assert killer.returncode == 0 and json.loads(killed), problem[-2000:]
        out, errors = run.communicate(timeout=300)
    finally:
        run.kill()
    assert killed_mid_run, "the run finished before the worker was killed"
    assert run.returncode == 0, errors
    assert "Traceback" not in errors
    got = json.loads(out)
    assert got["enrolled"] == local["summary"]["enrolled"]
    assert not [r for r in got["refused"] if r["reason"] == "analysis-failed"]
    assert record(home) == local["record"]


def test_a_photo_whose_worker_dies_twice_is_refused_with_its_reason(cluster, tmp_path):
    """The one worker is killed while it analyzes a large photo, and killed again while, restarted by Ray, it
    analyzes that photo again: the photo is refused as analysis-failed with the error, never dropped; the photo
    before it is enrolled; the same command run again enrolls it."""
    from PIL import Image

    photos = tmp_path / "photos"
    (photos / "a_first").mkdir(parents=True)
    shutil.copy(FACES / "gallery" / "barack_obama" / "obama.jpg", photos / "a_first" / "obama.jpg")
    (photos / "b_large").mkdir()
    with Image.open(FACES / "probes" / "obama1.jpg") as probe:  # 8880x4992: 130 MB decoded, a second or more
        probe.convert("RGB").resize((probe.width * 6, probe.height * 6)).save(photos / "b_large" / "big.png")
    home = fresh_home(tmp_path, "home")
    killer = subprocess.Popen([sys.executable, "-c", QUERY, cluster["address"], "kill-twice",
                               str(home / "leadmatch.db"), str(150 << 20)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert killer.stdout.readline().strip() == "ready", killer.stderr.read()
    run = start_enroll(home, photos, "--ray", cluster["address"], "--batch", "1", "--workers", "1")
    try:
        killed, problem = killer.communicate(timeout=180)
        out, errors = run.communicate(timeout=300)
    finally:
        run.kill()
        killer.kill()
    assert killer.returncode == 0 and len(set(json.loads(killed))) == 2, problem[-2000:]
    assert run.returncode == 0, errors
    assert "Traceback" not in errors
    got = json.loads(out)
    assert got["enrolled"] == 1 and got["offered"] == 2, json.dumps(got)
    [refusal] = got["refused"]
    assert refusal["path"] == str(photos / "b_large" / "big.png") and refusal["reason"] == "analysis-failed"
    assert refusal["detail"].startswith("analysis failed twice on the Ray workers: "), refusal
    assert [(r[0], r[2]) for r in record(home)["refusals"]] == [(refusal["path"], "analysis-failed")]
    again = enroll_cli(home, photos, "--ray", cluster["address"])
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["enrolled"], json.loads(again.stdout)["skipped_duplicates"]) == (1, 1)


def test_interrupted_on_the_head_resumes_where_it_stopped(cluster, photos, local, tmp_path):
    home = fresh_home(tmp_path, "home")
    run = start_enroll(home, photos, "--ray", cluster["address"], "--batch", "1", "--workers", "1")
    try:
        wait_for(lambda: count_photos(home) >= 2, 120, "photos written by the run", interval=0.05)
        run.send_signal(signal.SIGINT)
        out, errors = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 130, errors
    assert "Traceback" not in errors and "interrupted" in errors and "run the same command again" in errors
    kept = count_photos(home)
    assert 2 <= kept < local["summary"]["enrolled"], "the run ended before it was interrupted"
    again = enroll_cli(home, photos, "--ray", "auto", "--batch", "3", env={"RAY_ADDRESS": cluster["address"]})
    assert again.returncode == 0, again.stderr
    data = summary(again)
    assert data["skipped_duplicates"] == kept and data["enrolled"] == local["summary"]["enrolled"] - kept
    assert record(home) == local["record"]


def test_bad_addresses_and_options_give_one_line_errors(tmp_path, photos, cluster):
    home = fresh_home(tmp_path, "home")
    nobody = f"127.0.0.1:{free_port()}"
    assert_clean_error(enroll_cli(home, photos, "--ray", nobody), "no Ray cluster answers", nobody, code=1)
    assert_clean_error(enroll_cli(home, photos, "--ray", "auto", env={"RAY_ADDRESS": nobody}),
                       "no Ray cluster answers", code=1)
    assert_clean_error(enroll_cli(home, photos, "--ray", "head-without-port"), "not auto or HOST:PORT", code=1)
    assert_clean_error(enroll_cli(home, photos, "--batch", "4"), "batch applies only with a Ray cluster", code=1)
    wrong = tmp_path / "wrong_token"
    wrong.write_text(secrets.token_hex(32))
    refused = enroll_cli(home, photos, "--ray", cluster["address"], env={"RAY_AUTH_TOKEN_PATH": str(wrong)})
    assert_clean_error(refused, "refused this head's token", code=1)
    assert count_photos(home) == 0


def test_a_local_enrollment_imports_nothing_of_ray(home):
    login(home, ANALYST)
    script = ("import sys\nfrom leadmatch.cli import app as cli\n"
              f"sys.argv = ['leadmatch', '--home', {str(home)!r}, 'gallery', 'enroll', {GALLERY!r}, "
              f"{str(FACES / 'gallery')!r}, '--workers', '1']\n"
              "try:\n    cli.main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
              "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'leadmatch.gallery.ray_cluster'))))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "11 skipped" in result.stdout  # it ran the enrollment (every photo already there)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_worker_with_other_model_weights_is_refused_naming_its_node(cluster, photos, local, tmp_path):
    """A third node whose face_recognition_models hold an altered weight file: its worker is left out, the run
    names that node, audits the refusal, and the photos are enrolled by the other two, as locally."""
    from leadmatch.biometrics.models import registry as models

    package = tmp_path / "other_models" / "face_recognition_models"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in models.expected_hashes():
        real = models.models_dir() / name
        if name == "mmod_human_face_detector.dat":
            altered = bytearray(real.read_bytes())
            altered[-1] ^= 0xFF
            (package / "models" / name).write_bytes(bytes(altered))
        else:
            (package / "models" / name).symlink_to(real)
    before = set(ray_query(cluster["address"], "nodes", "2"))
    node = subprocess.Popen([str(RAY), "start", "--block", "--address", cluster["address"], "--num-cpus", "1",
                             "--disable-usage-stats"], env={**os.environ, "PYTHONPATH": str(package.parent)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        third = (set(ray_query(cluster["address"], "nodes", "3")) - before).pop()
        home = fresh_home(tmp_path, "home")
        result = enroll_cli(home, photos, "--ray", cluster["address"])
        # the same through a service driving the cluster: the client prints the worker it left out
        served = fresh_home(tmp_path, "served")
        process, url = start_server(served, free_port(), "--enroll-root", str(photos.parent), "--ray",
                                    cluster["address"])
        try:
            assert server_cli(url, "login", ANALYST.name, "--password-stdin", input=PASSWORD + "\n").returncode == 0
            remote = server_cli(url, "gallery", "enroll", GALLERY, photos.name, "--on-server", "--ray", "auto")
        finally:
            process.terminate()
            process.wait(10)
    finally:
        stop_group(node)
    assert result.returncode == 0, result.stderr
    refused = json.loads(result.stdout)["workers_refused"]
    assert len(refused) == 1 and third[:8] in refused[0] and "mmod_human_face_detector.dat" in refused[0]
    assert record(home) == local["record"]
    conn = sqlite3.connect(home / "leadmatch.db")
    entries = conn.execute("SELECT outcome, reason FROM audit WHERE action = 'gallery.enroll-worker'").fetchall()
    conn.close()
    assert len(entries) == 1 and entries[0][0] == "refused" and third[:8] in refused[0]
    assert remote.returncode == 0, remote.stderr
    lines = [line for line in remote.stdout.splitlines() if line.startswith("  refused worker  ")]
    assert len(lines) == 1 and third[:8] in lines[0] and "mmod_human_face_detector.dat" in lines[0], remote.stdout
    assert record(served) == local["record"]


# Through a leadmatch service: the service drives its Ray cluster for the analyst ---------------------------

def server_cli(url: str, *args: str, input: str | None = None):
    """The real `leadmatch --server URL ...` command (signed in as whoever logged in to that URL last)."""
    return run_cli("--server", url, *args, input=input)


def api_get(url: str, path: str):
    """One API call with the CLI's kept token, straight from this process (milliseconds, not a CLI start)."""
    from leadmatch.cli import credentials

    request = urllib.request.Request(f"{url}/api/v1{path}",
                                     headers={"Authorization": f"Bearer {credentials.token_for(url)}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def enroll_audit(home: Path) -> list[tuple]:
    """(actor, action, outcome, reason, objects) of every enrollment entry in the audit trail, in order."""
    conn = sqlite3.connect(home / "leadmatch.db")
    try:
        return [(*row[:4], json.loads(row[4] or "{}")) for row in conn.execute(
            "SELECT actor, action, outcome, reason, objects FROM audit WHERE action LIKE 'gallery.enroll%' "
            "ORDER BY id")]
    finally:
        conn.close()


def faces_by_photo(photos: list, faces: list) -> dict:
    """sha256 of each photo → its face row without ids (box, size, quality, embedding bytes)."""
    sha = {row[0]: row[2] for row in photos}
    return {sha[face[1]]: face[2:] for face in faces}


@pytest.fixture
def ray_service(cluster, photos, tmp_path):
    """A leadmatch service owning a fresh workspace, with --enroll-root over the test photos and --ray naming
    the test cluster (its token from the service's environment, as on a real host); the analyst signed in
    through it."""
    home = fresh_home(tmp_path, "home")
    process, url = start_server(home, free_port(), "--enroll-root", str(photos.parent), "--ray", cluster["address"])
    try:
        signed_in = server_cli(url, "login", ANALYST.name, "--password-stdin", input=PASSWORD + "\n")
        assert signed_in.returncode == 0, signed_in.stderr
        yield {"home": home, "url": url}
    finally:
        process.terminate()
        process.wait(10)


def test_the_service_drives_ray_for_the_analyst(ray_service, cluster, photos, local):
    """Named under --enroll-root with --ray: the service analyzes the photos on its cluster while it answers
    other requests, the record equals a local run's bit for bit, and the audit trail names the analyst."""
    home, url = ray_service["home"], ray_service["url"]
    run = subprocess.Popen([sys.executable, "-m", "leadmatch", "--server", url, "gallery", "enroll", GALLERY,
                            photos.name, "--on-server", "--ray", cluster["address"], "--batch", "1", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: count_photos(home) >= 1 or run.poll() is not None, 120, "the run's first photo",
                 interval=0.05)
        shown = api_get(url, f"/galleries/{GALLERY}")
        answered_mid_run = run.poll() is None and count_photos(home) < local["summary"]["enrolled"]
        out, errors = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 0, errors
    assert "Traceback" not in errors
    assert answered_mid_run and shown["name"] == GALLERY, "no other request was answered while the run went on"
    expected = {**local["summary"], "refused": sorted((r["path"], r["reason"], r["detail"])
                                                      for r in local["summary"]["refused"])}
    got = json.loads(out)
    got["refused"] = sorted((r["path"], r["reason"], r["detail"]) for r in got["refused"])
    assert {**got, "index_note": None} == {**expected, "index_note": None}
    assert record(home) == local["record"]  # same ids, same order, embeddings equal byte for byte
    entries = enroll_audit(home)
    assert {"gallery.enroll", "gallery.enroll-photos"} <= {e[1] for e in entries}
    assert {e[0] for e in entries} == {ANALYST.name} and {e[2] for e in entries} == {"ok"}
    assert [e[4]["ray"] for e in entries if e[1] == "gallery.enroll"] == [cluster["address"]]  # analyzed on Ray

    # a second run in the same service: an upload, on the service's cluster by `auto`, 4 photos a task
    created = server_cli(url, "gallery", "create", "uploads", "--authority", "State Code §1", "--approved-by",
                         "Chief", "--approved-on", "2026-03-01", "--source", "booking photos")
    assert created.returncode == 0, created.stderr
    upload = server_cli(url, "gallery", "enroll", "uploads", str(FACES / "gallery"), "--ray", "auto", "--batch", "4")
    assert upload.returncode == 0, upload.stderr
    assert "gallery 'uploads': 11 enrolled, 0 skipped (already enrolled), 0 refused, 6 new subjects" in upload.stdout
    conn = sqlite3.connect(home / "leadmatch.db")
    uploaded = faces_by_photo(conn.execute("SELECT p.id, NULL, p.sha256 FROM photos p JOIN galleries g ON "
                                           "g.id = p.gallery_id WHERE g.name = 'uploads'").fetchall(),
                              conn.execute("SELECT f.id, f.photo_id, box_top, box_right, box_bottom, box_left, "
                                           "size_px, eye_distance_px, sharpness, detector_score, embedding FROM faces "
                                           "f JOIN galleries g ON g.id = f.gallery_id WHERE g.name = 'uploads'")
                              .fetchall())
    conn.close()
    reference = faces_by_photo(local["record"]["photos"], local["record"]["faces"])
    assert len(uploaded) == 11 and uploaded == {sha: reference[sha] for sha in uploaded}
    entries = enroll_audit(home)
    assert {e[0] for e in entries} == {ANALYST.name}
    assert [e[4]["ray"] for e in entries if e[1] == "gallery.enroll"] == [cluster["address"]] * 2


def test_ray_through_the_service_refuses_in_one_line_and_audits(photos, tmp_path):
    """`serve --ray` malformed; then a service whose cluster is down, an address other than the service's, a
    malformed one and --batch without --ray: one line each, non-zero exit, the refusals audited under the
    analyst, nothing written, and the service goes on serving."""
    home = fresh_home(tmp_path, "home")
    assert_clean_error(run_cli("serve", "--port", str(free_port()), "--ray", "head-without-port", home=home),
                       "--ray 'head-without-port' is not auto or HOST:PORT", code=1)
    nobody = f"127.0.0.1:{free_port()}"
    process, url = start_server(home, free_port(), "--enroll-root", str(photos.parent), "--ray", nobody)
    try:
        assert server_cli(url, "login", ANALYST.name, "--password-stdin", input=PASSWORD + "\n").returncode == 0
        named = ("gallery", "enroll", GALLERY, photos.name, "--on-server")
        assert_clean_error(server_cli(url, *named, "--ray", "auto"), f"no Ray cluster answers at {nobody}",
                           "ask the service's administrator", code=1)
        assert_clean_error(server_cli(url, *named, "--ray", "10.9.9.9:6379"), "only on its own Ray cluster",
                           code=3)
        assert_clean_error(server_cli(url, "gallery", "enroll", GALLERY, str(FACES / "gallery"), "--ray", "no-port"),
                           "not auto or HOST:PORT", code=1)
        assert_clean_error(server_cli(url, *named, "--batch", "4"), "batch applies only with a Ray cluster", code=1)
        assert server_cli(url, "gallery", "show", GALLERY).returncode == 0  # still serving
    finally:
        process.terminate()
        process.wait(10)
    assert count_photos(home) == 0
    refused = [e for e in enroll_audit(home) if e[2] == "refused"]
    assert [(e[0], e[3].split(":")[0]) for e in refused] == [(ANALYST.name, "ray-unavailable"),
                                                             (ANALYST.name, "ray-not-allowed")]
    assert nobody in refused[0][3] and "10.9.9.9:6379" in refused[1][3]


def test_the_api_takes_ray_only_with_a_cluster_and_checks_its_fields(home, tmp_path):
    """A service without --ray refuses `ray` (audited); `batch` needs `ray` and a whole number from 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from leadmatch.web import create_app

    with TestClient(create_app(home, workers=1, enroll_root=FACES)) as api:
        token = api.post("/api/v1/login", json={"name": ANALYST.name, "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        enroll = f"/api/v1/galleries/{GALLERY}/enroll"
        for body, status, message in (
                ({"path": "gallery", "ray": "auto"}, 403, "this service names no Ray cluster"),
                ({"path": "gallery", "ray": "auto", "batch": 0}, 400, "batch: Input should be greater than"),
                ({"path": "gallery", "batch": 4}, 400, "batch applies only with a Ray cluster"),
                ({"path": "gallery", "ray": "auto", "batch": "many"}, 400, "batch: Input should be a valid integer"),
                (["gallery"], 400, "the request body is not a JSON object")):
            answer = api.post(enroll, json=body, headers=headers)
            assert answer.status_code == status and message in answer.json()["error"]["message"], answer.text
        photo = (FACES / "gallery" / "barack_obama").iterdir().__next__()
        upload = api.post(enroll, data={"ray": "auto"}, files={"photo": ("barack_obama/a.jpg", photo.read_bytes())},
                          headers=headers)
        assert upload.status_code == 403 and "names no Ray cluster" in upload.json()["error"]["message"]
        bad = api.post(enroll, data={"ray": "auto", "batch": "0"}, files={"photo": ("x/a.jpg", b"")}, headers=headers)
        assert bad.status_code == 400 and "batch 0 is out of range" in bad.json()["error"]["message"]
    conn = sqlite3.connect(home / "leadmatch.db")
    refused = conn.execute("SELECT actor, reason FROM audit WHERE action = 'gallery.enroll' AND outcome = "
                           "'refused'").fetchall()
    conn.close()
    assert [(actor, reason.split(":")[0]) for actor, reason in refused] == [(ANALYST.name, "no-ray-cluster")] * 2


def fused_home(tmp_path: Path, name: str) -> Path:
    """As `fresh_home`, with the gallery on the dlib+faceres model (issue 23)."""
    from leadmatch.gallery import galleries
    from leadmatch.record.workspace import init

    home = tmp_path / name
    ws, _ = init(home)
    add_people(ws)
    galleries.create(ws, ANALYST, GALLERY, authority="Test authority §1", approved_by="Test Official",
                     approved_on="2026-01-15", source="test", retention_days=30, model="dlib+faceres")
    ws.close()
    login(home, ANALYST)
    return home


def test_ray_workers_follow_a_fused_gallerys_model(cluster, photos, tmp_path):
    """A dlib+faceres gallery enrolled on the cluster holds the same FaceRes descriptors, byte for byte, as one
    enrolled locally: the workers run the head's model, checked against the head's card (faceres.onnx too)."""
    local_home, ray_home = fused_home(tmp_path, "local"), fused_home(tmp_path, "ray")
    assert enroll_cli(local_home, photos, "--workers", "1").returncode == 0
    result = enroll_cli(ray_home, photos, "--ray", cluster["address"])
    assert result.returncode == 0, result.stderr
    assert not json.loads(result.stdout).get("workers_refused")

    def descriptors(home: Path) -> list:
        conn = sqlite3.connect(home / "leadmatch.db")
        try:
            return conn.execute("SELECT id, embedding, faceres FROM faces ORDER BY id").fetchall()
        finally:
            conn.close()

    local, remote = descriptors(local_home), descriptors(ray_home)
    assert len(local) >= 11 and all(row[2] is not None and len(row[2]) == 4096 for row in local)
    assert remote == local
