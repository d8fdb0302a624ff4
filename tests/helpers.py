"""Helpers the tests share: the cast, the sample photos, running the real command, starting the real service,
and generated inputs. Fixtures live in conftest.py; everything a test imports comes from here."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from leadmatch.gallery import galleries
from leadmatch.governance import accounts
from leadmatch.governance.accounts import Actor
from leadmatch.search.run import SearchRequest

ROOT = Path(__file__).resolve().parent.parent
FACES = Path(os.environ.get("LEADMATCH_TEST_PHOTOS", ROOT.parent / "shared" / "data" / "faces"))
GALLERY_DIR = FACES / "gallery"
PROBES_DIR = FACES / "probes"
GALLERY = "test-gallery"
PASSWORD = "correct horse battery staple"
ADMIN = Actor("admin", frozenset({"admin"}))
ANALYST = Actor("ana", frozenset({"analyst"}))
AGENT = Actor("avery", frozenset({"agent"}))
AGENT2 = Actor("blake", frozenset({"agent"}))
REVIEWER = Actor("riley", frozenset({"reviewer"}))
AUDITOR = Actor("audra", frozenset({"auditor"}))
ACTOR = AGENT  # the agent most tests search as
MEANS = "Canvassed the block, showed the photo to patrol officers and checked pawn records; no identification."
CHROMIUM = os.environ.get("LEADMATCH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"  # screenshots of the browser tests
LABEL = "INVESTIGATIVE LEAD ONLY — NOT A POSITIVE IDENTIFICATION"  # the words, as a reader sees them


def probe_rows() -> list[dict]:
    """probes.csv as dicts, with identities split into a list (left to right)."""
    with open(FACES / "probes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["identities"] = row["identities_left_to_right"].split(";")
        row["faces"] = int(row["faces"])
    return rows


def search_request(probe, **overrides) -> SearchRequest:
    """A search with every precondition met; tests override what they exercise."""
    fields = dict(probe=PROBES_DIR / probe if isinstance(probe, str) else probe, gallery=GALLERY, case="T-1",
                  purpose="robbery", justification="Armed robbery suspect caught on the store camera.",
                  traditional_means=MEANS)
    return SearchRequest(**{**fields, **overrides})


def add_people(ws) -> None:
    """The cast: an admin, an analyst, two certified agents, a reviewer and an auditor."""
    accounts.create_first_admin(ws, ADMIN.name, PASSWORD)
    for actor in (ANALYST, AGENT, AGENT2, REVIEWER, AUDITOR):
        accounts.add_user(ws, ADMIN, actor.name, sorted(actor.roles), PASSWORD)
    for agent in (AGENT, AGENT2):
        accounts.certify(ws, ADMIN, agent.name, accounts.DEFAULT_COURSE, "2026-06-01", "2099-06-01")
        accounts.accept_rules(ws, agent)


def create_gallery(ws, name: str = GALLERY):
    return galleries.create(ws, ANALYST, name, authority="Test authority §1", approved_by="Test Official",
                            approved_on="2026-01-15", source="shared/data/faces/gallery", retention_days=30)


def run_cli(*args: str, home: Path | None = None, input: str | None = None, env: dict | None = None):
    """Run the real `leadmatch` command in a subprocess, as a user would (signed in as whoever logged in last)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("LEADMATCH_DEBUG", None)
    prefix = ["--home", str(home)] if home else []
    return subprocess.run([sys.executable, "-m", "leadmatch", *prefix, *args], capture_output=True, text=True,
                          input=input, env=full_env, timeout=300)


def assert_clean_error(result, *fragments: str, code: int | None = None) -> None:
    """A refused command: non-zero exit, no traceback, one line naming the problem."""
    assert result.returncode != 0, result.stdout
    if code is not None:
        assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment.lower() in result.stderr.lower(), (fragment, result.stderr)


def login(home: Path, actor: Actor | str):
    """Sign in on the command line, as `leadmatch login NAME --password-stdin`."""
    name = actor.name if isinstance(actor, Actor) else actor
    result = run_cli("login", name, "--password-stdin", home=home, input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    return result


def flip_a_bit(path: Path) -> None:
    """Alter a model file as corruption or tampering would: one flipped bit in the middle (a weight)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def cli_search(home, probe, *extra):
    return run_cli("search", str(probe), "--gallery", GALLERY, "--case", "C-42", "--purpose", "robbery",
                   "--justification", "Armed robbery suspect on the store camera.", "--traditional-means", MEANS,
                   *extra, home=home)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, *extra: str, user: str | None = None, env: dict | None = None,
                 python: str = sys.executable):
    """`leadmatch serve` on `port` (as `user` if given); returns (process, url) once it answers."""
    if user is None:
        subprocess.run(["chmod", "-R", "go-rwx", str(home)], check=True)
    process = subprocess.Popen([python, "-m", "leadmatch", "--home", str(home), "serve", "--port", str(port),
                                *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, user=user,
                               env={**os.environ, **(env or {})}, cwd="/")
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url + "/login", timeout=1)
            return process, url
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    process.kill()
    pytest.fail("the service did not start: " + process.stdout.read().decode(errors="replace"))


def still_clip(path, photos, seconds_each=1.0, fps=10, size=(640, 360)):
    """A clip showing each photo (letterboxed) for `seconds_each`: a hard cut between photos."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for photo in photos:
        image = Image.open(photo).convert("RGB")
        image.thumbnail(size)
        canvas = Image.new("RGB", size)
        canvas.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
        frame = cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR)
        for _ in range(int(seconds_each * fps)):
            writer.write(frame)
    writer.release()
    return path


def enrolled_sample(home: Path, make_gallery=None) -> Path:
    """A workspace at `home` with the cast and the 6-person sample gallery enrolled (`make_gallery(ws)` creates
    the gallery; default `create_gallery`), checkpointed and closed, for fixtures to copy."""
    from leadmatch.gallery.enrollment import enroll
    from leadmatch.record.workspace import init

    ws, _ = init(home)
    add_people(ws)
    (make_gallery or create_gallery)(ws)
    report = enroll(ws, ANALYST, GALLERY, GALLERY_DIR, workers=1)
    assert report.enrolled == 11 and not report.refused
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.close()
    return home


def sign_in(browser, url: str, actor: Actor | str, width: int = 1400, height: int = 900):
    """A new browser page signed in as `actor` at `url` (a viewport of width × height); on the home page."""
    name = actor if isinstance(actor, str) else actor.name
    page = browser.new_context(accept_downloads=True, viewport={"width": width, "height": height}).new_page()
    page.goto(url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(url + "/")
    return page
