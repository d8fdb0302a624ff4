"""Verifying the trail: the chain walked under the key, against a head hash or a filed checkpoint."""

from __future__ import annotations

import sqlite3

from leadmatch.record.audit.chain import GENESIS, Verification, walk
from leadmatch.record.audit.checkpoints import signature_ok
from leadmatch.record.audit.keys import key_state


def verify(conn: sqlite3.Connection, expect_head: str | None = None, checkpoint: dict | None = None) -> Verification:
    """Walk the chain in id order: ids consecutive, each entry chained to the one before, its fields giving its
    hash, and — after the entries from before the key — its HMAC matching under the workspace's key.

    `expect_head`: a head hash written down earlier must still be in the chain. `checkpoint` (from
    `read_checkpoint`): it must be signed with this workspace's key, and its entry must be in the chain
    unchanged, so nothing up to it changed and the trail was not cut back behind it.
    """
    state = key_state(conn)
    if checkpoint is not None and not signature_ok(conn, checkpoint):
        return Verification(False, 0, GENESIS, None,
                            "the checkpoint is not signed with this workspace's audit key: it was altered, or it "
                            "belongs to another workspace",
                            expected="a signature made with this workspace's key", found=checkpoint["signature"])
    return walk(conn, keyed=True, legacy=state["legacy_entries"], seal=state["seal"], expect_head=expect_head,
                 checkpoint=checkpoint)
