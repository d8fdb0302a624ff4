-- governance — accounts, certification, purposes, the search workflow, retention.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    disabled_at TEXT,
    rules_accepted_at TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE certifications (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    course TEXT NOT NULL,
    completed_on TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE TABLE purposes (
    name TEXT PRIMARY KEY,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
ALTER TABLE searches ADD COLUMN purpose TEXT;
ALTER TABLE searches ADD COLUMN justification TEXT;
ALTER TABLE searches ADD COLUMN traditional_means TEXT;
ALTER TABLE searches ADD COLUMN probe_source TEXT NOT NULL DEFAULT 'original';
ALTER TABLE searches ADD COLUMN status TEXT NOT NULL DEFAULT 'awaiting-disposition';
ALTER TABLE searches ADD COLUMN closed_at TEXT;
ALTER TABLE searches ADD COLUMN closed_by TEXT;
ALTER TABLE searches ADD COLUMN closure_rank INTEGER;
ALTER TABLE searches ADD COLUMN closure_note TEXT;
ALTER TABLE searches ADD COLUMN purged_at TEXT;
CREATE INDEX searches_status ON searches (status);
CREATE TABLE dispositions (
    search_id TEXT NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
    rank INTEGER NOT NULL,
    decision TEXT NOT NULL,
    note TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (search_id, rank)
);
CREATE TABLE corroborations (
    id INTEGER PRIMARY KEY,
    search_id TEXT NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
    rank INTEGER NOT NULL,
    evidence_type TEXT NOT NULL,
    evidence TEXT NOT NULL,
    reference TEXT NOT NULL,
    outcome TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
