-- case media (issue 22) — files added to a case, the faces found in them, the persons they are grouped
-- into and every change to that grouping (merge, split, drop, undo), kept so a change can be undone.
CREATE TABLE case_media (
    id INTEGER PRIMARY KEY,
    case_number TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    stored_path TEXT,
    bytes INTEGER NOT NULL,
    model TEXT NOT NULL,
    purpose TEXT NOT NULL,
    justification TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL,
    purged_at TEXT,
    UNIQUE (case_number, sha256)
);
CREATE TABLE case_persons (
    id INTEGER PRIMARY KEY,
    case_number TEXT NOT NULL,
    label TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    dropped_at TEXT,
    dropped_by TEXT,
    drop_reason TEXT,
    UNIQUE (case_number, label)
);
CREATE TABLE case_faces (
    id INTEGER PRIMARY KEY,
    media_id INTEGER NOT NULL REFERENCES case_media(id) ON DELETE CASCADE,
    case_number TEXT NOT NULL,
    person_id INTEGER REFERENCES case_persons(id),
    track INTEGER,
    time_s REAL,
    face_index INTEGER NOT NULL,
    box TEXT NOT NULL,
    quality TEXT NOT NULL,
    quality_score REAL NOT NULL,
    usable INTEGER NOT NULL,
    image_sha256 TEXT NOT NULL,
    image_path TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    embedding BLOB NOT NULL
);
CREATE INDEX case_faces_case ON case_faces (case_number, person_id);
CREATE TABLE case_person_changes (
    id INTEGER PRIMARY KEY,
    case_number TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    undone_by INTEGER
);
