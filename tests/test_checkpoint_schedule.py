"""`serve --checkpoint-every DURATION --checkpoint-dir DIR` files signed audit checkpoints on a schedule
(issue 19): each one verifies, and a trail cut back behind one of them fails verification."""

from __future__ import annotations

import time
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from leadmatch.errors import InputError
from leadmatch.governance import oversight
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace
from leadmatch.web import create_app

from .helpers import AUDITOR, assert_clean_error, run_cli


def test_the_service_files_checkpoints_on_schedule_and_each_verifies(home, tmp_path):
    filed = tmp_path / "checkpoints"
    filed.mkdir()
    with TestClient(create_app(home, workers=1, checkpoint_every=1.0, checkpoint_dir=filed)):
        deadline = time.monotonic() + 30
        while len(list(filed.glob("checkpoint-*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    files = sorted(filed.glob("checkpoint-*.json"))
    assert len(files) >= 2, files  # one at start, then one a second
    ws = open_workspace(home)
    for path in files:
        made = audit.read_checkpoint(path)
        assert made["made_by"] == oversight.SCHEDULE_ACTOR
        assert oversight.verify(ws, AUDITOR, checkpoint=made).ok
    last = audit.read_checkpoint(files[-1])
    ws.conn.execute("DELETE FROM audit WHERE id >= ?", (last["entry"],))  # cut back behind the last one
    assert not oversight.verify(ws, AUDITOR, checkpoint=last).ok
    ws.close()


def test_checkpoint_options_are_checked_before_the_service_starts(home, tmp_path):
    for extra, words in ((["--checkpoint-every", "1h"], "go together"),
                         (["--checkpoint-every", "soon", "--checkpoint-dir", str(tmp_path)], "not a duration"),
                         (["--checkpoint-every", "0s", "--checkpoint-dir", str(tmp_path)], "at least 1 s")):
        assert_clean_error(run_cli("serve", "--port", "1", *extra, home=home), words, code=1)
    with pytest.raises(InputError, match="inside the workspace"):
        create_app(home, checkpoint_every=60, checkpoint_dir=home / "indexes")
    assert oversight.parse_duration("15m") == 900 and oversight.parse_duration("1d") == 86400
