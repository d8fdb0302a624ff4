"""Shared fixtures: the real sample photos, and workspaces enrolled once and copied per test."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leadmatch.governance import accounts
from leadmatch.biometrics import cnn_detector
from leadmatch.gallery import galleries as galleries
from leadmatch.biometrics.models import registry as models
from leadmatch.governance.accounts import Actor
from leadmatch.gallery.enrollment import enroll
from leadmatch.search.run import SearchRequest, run
from leadmatch.record.workspace import init, open_workspace

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

if not (GALLERY_DIR.is_dir() and (FACES / "probes.csv").is_file()):
    pytest.exit(f"sample photos not found at {FACES}: put shared/ beside the project or set LEADMATCH_TEST_PHOTOS",
                returncode=2)


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


@pytest.fixture(scope="session")
def enrolled_template(tmp_path_factory) -> Path:
    """A workspace with the 6-person sample gallery enrolled, built once per test session."""
    home = tmp_path_factory.mktemp("template") / "home"
    ws, _ = init(home)
    add_people(ws)
    create_gallery(ws)
    report = enroll(ws, ANALYST, GALLERY, GALLERY_DIR, workers=1)
    assert report.enrolled == 11 and not report.refused
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.close()
    return home


@pytest.fixture
def home(enrolled_template, tmp_path) -> Path:
    """A private copy of the enrolled workspace."""
    target = tmp_path / "home"
    shutil.copytree(enrolled_template, target)
    return target


@pytest.fixture
def searched(home) -> str:
    """The id of one search of the agent's, on a copy of the enrolled workspace."""
    ws = open_workspace(home)
    result = run(ws, AGENT, search_request("obama-720p.jpg", top_k=3))
    ws.close()
    return result["search_id"]


@pytest.fixture
def ws(home):
    workspace = open_workspace(home)
    yield workspace
    workspace.close()


@pytest.fixture
def empty_ws(tmp_path):
    """A workspace with accounts but no gallery."""
    workspace, _ = init(tmp_path / "empty")
    add_people(workspace)
    yield workspace
    workspace.close()


@pytest.fixture(autouse=True)
def private_credentials(tmp_path, monkeypatch):
    """Session tokens go to a per-test folder, never the real ~/.config."""
    monkeypatch.setenv("LEADMATCH_CONFIG_DIR", str(tmp_path / "config"))


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


@pytest.fixture
def own_models(tmp_path, monkeypatch):
    """Converted models go to a private folder for the test; cached paths and sessions are forgotten around it."""
    folder = tmp_path / "models"
    monkeypatch.setenv("LEADMATCH_MODELS_DIR", str(folder))

    def forget():
        models.onnx_path.cache_clear()
        models.mmod_onnx_path.cache_clear()
        models.faceres_onnx_path.cache_clear()
        models.faceres_source.cache_clear()
        models._SESSIONS.clear()
        models._MMOD_SESSIONS.clear()
        models._FACERES_SESSIONS.clear()
        cnn_detector.settings.cache_clear()

    forget()
    yield folder
    forget()


def flip_a_bit(path: Path) -> None:
    """Alter a model file as corruption or tampering would: one flipped bit in the middle (a weight)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
