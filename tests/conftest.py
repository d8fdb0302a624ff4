"""Shared fixtures: the real sample photos, and workspaces enrolled once and copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from leadmatch.biometrics import cnn_detector
from leadmatch.biometrics.models import registry as models
from leadmatch.record.workspace import init, open_workspace
from leadmatch.search.run import run

from .helpers import AGENT, FACES, GALLERY_DIR, add_people, enrolled_sample, search_request

#: Which test modules are slow (the real CLI, service or Ray in subprocesses, clips, kill trials), need root (OS
#: accounts for the service), or drive Chromium. `make test` runs everything; `make test-fast` leaves these out.
MARKED = {
    "root": {"test_service", "test_service_hardening"},
    "browser": {"test_browser"},
    "slow": {"test_cluster", "test_robustness", "test_races", "test_signin_throttle", "test_checkpoint_schedule",
             "test_private_files", "test_index_scale", "test_casemedia_service", "test_casemedia", "test_probes",
             "test_video", "test_parity", "test_evaluation", "test_onnx_descriptor", "test_cnn_detector",
             "test_accuracy_on_samples", "test_enroll_root", "test_cli", "test_governance", "test_faceres"},
}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        for marker, modules in MARKED.items():
            if module in modules:
                item.add_marker(marker)


if not (GALLERY_DIR.is_dir() and (FACES / "probes.csv").is_file()):
    pytest.exit(f"sample photos not found at {FACES}: put shared/ beside the project or set LEADMATCH_TEST_PHOTOS",
                returncode=2)


@pytest.fixture(scope="session")
def enrolled_template(tmp_path_factory) -> Path:
    """A workspace with the 6-person sample gallery enrolled, built once per test session."""
    return enrolled_sample(tmp_path_factory.mktemp("template") / "home")


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


