-- A purpose an admin retires stays in the record (the searches that named it keep it) but can no longer be
-- named by a new search; who retired it and when are kept beside it (and in the audit trail).
ALTER TABLE purposes ADD COLUMN retired_at TEXT;
ALTER TABLE purposes ADD COLUMN retired_by TEXT;
