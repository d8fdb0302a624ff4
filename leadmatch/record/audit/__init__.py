"""The audit trail: one chained, keyed entry per action, refusals included.

Each entry's `hash` is the sha256 of its own fields plus the previous entry's hash, and its `mac` is an
HMAC-SHA256 of that hash under the workspace's audit key (`keys/audit.key`, created at `init`, held by whoever
owns the workspace, never in the database and never printed). Editing, deleting, inserting or reordering
entries breaks the hash chain; recomputing the hashes after an edit leaves entries whose HMAC does not match,
which only the key holder could fix. `verify` reports the first entry that does not fit, with what it expected
and what it found.

Truncating the newest entries leaves a valid shorter chain. Two answers: a head hash written down earlier
(`expect_head`), or a signed checkpoint (`checkpoint`: the head entry's id, hash, HMAC and time, signed with
the key) filed outside the system and passed back to `verify`.

Workspaces from before the key: the first open creates the key, verifies the old entries once with the old
(unkeyed) rule and appends a keyed `audit.checkpoint` entry that seals them; the key file records how many
entries were old and the seal's hash, so they cannot be rewritten and sealed again.

    keys.py          the key file and the HMAC bound to a connection
    chain.py         appending, walking and reading entries; attaching the key
    checkpoints.py   signed checkpoints of the head
    verification.py  verifying the chain against the key, a head hash or a checkpoint
    reading.py       reading entries: filters, pages newest first, the objects an entry names
    report.py        the supervisors' report
"""

from __future__ import annotations

from leadmatch.record.audit.chain import (
    FIELDS,
    GENESIS,
    SYSTEM_ACTOR,
    Broken,
    Verification,
    attach_key,
    check_entry,
    entries,
    entry_hash,
    record,
    seal_legacy,
    walk,
)
from leadmatch.record.audit.checkpoints import (
    CHECKPOINT_FIELDS,
    CHECKPOINT_FORMAT,
    CHECKPOINT_HINT,
    checked_checkpoint,
    checkpoint,
    read_checkpoint,
    signature_ok,
)
from leadmatch.record.audit.keys import (
    KEY_FORMAT,
    MAC_FUNCTION,
    STATE_FUNCTION,
    AuditKey,
    bind,
    canonical,
    key_state,
    mac,
    read_key,
    write_key,
)
from leadmatch.record.audit.reading import MAX_PER_PAGE, PER_PAGE, Filters, choices, named_objects, page
from leadmatch.record.audit.report import report, report_csv
from leadmatch.record.audit.verification import verify

__all__ = [
    "AuditKey", "Broken", "CHECKPOINT_FIELDS", "Filters", "MAX_PER_PAGE", "PER_PAGE", "choices", "named_objects",
    "page", "CHECKPOINT_FORMAT", "CHECKPOINT_HINT", "FIELDS", "GENESIS",
    "KEY_FORMAT", "MAC_FUNCTION", "STATE_FUNCTION", "SYSTEM_ACTOR", "Verification", "attach_key", "bind",
    "canonical", "check_entry", "checked_checkpoint", "checkpoint", "entries", "entry_hash", "key_state", "mac",
    "read_checkpoint", "read_key", "record", "report", "report_csv", "seal_legacy", "signature_ok", "verify",
    "walk", "write_key",
]
