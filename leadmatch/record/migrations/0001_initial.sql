-- galleries, enrollment, searches, audit.
CREATE TABLE galleries (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    authority TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_on TEXT NOT NULL,
    source TEXT NOT NULL,
    retention_days INTEGER NOT NULL,
    index_factory TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE subjects (
    id INTEGER PRIMARY KEY,
    gallery_id INTEGER NOT NULL REFERENCES galleries(id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (gallery_id, name)
);
CREATE TABLE photos (
    id INTEGER PRIMARY KEY,
    gallery_id INTEGER NOT NULL REFERENCES galleries(id),
    subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    source_path TEXT NOT NULL,
    stored_path TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    enrolled_at TEXT NOT NULL,
    enrolled_by TEXT NOT NULL,
    UNIQUE (gallery_id, sha256)
);
CREATE TABLE faces (
    id INTEGER PRIMARY KEY,
    gallery_id INTEGER NOT NULL REFERENCES galleries(id),
    subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    box_top INTEGER NOT NULL, box_right INTEGER NOT NULL, box_bottom INTEGER NOT NULL, box_left INTEGER NOT NULL,
    size_px INTEGER NOT NULL,
    eye_distance_px REAL NOT NULL,
    sharpness REAL NOT NULL,
    detector_score REAL,
    embedding BLOB NOT NULL
);
CREATE INDEX faces_gallery ON faces (gallery_id, id);
CREATE TABLE enrollment_refusals (
    id INTEGER PRIMARY KEY,
    gallery_id INTEGER NOT NULL REFERENCES galleries(id),
    source_path TEXT NOT NULL,
    sha256 TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    refused_at TEXT NOT NULL
);
CREATE TABLE searches (
    id TEXT PRIMARY KEY,
    case_number TEXT NOT NULL,
    gallery_id INTEGER NOT NULL REFERENCES galleries(id),
    agent TEXT NOT NULL,
    created_at TEXT NOT NULL,
    probe_sha256 TEXT NOT NULL,
    probe_name TEXT NOT NULL,
    probe_stored_path TEXT,
    faces_in_probe INTEGER NOT NULL,
    face_index INTEGER NOT NULL,
    box TEXT NOT NULL,
    quality TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '[]',
    top_k INTEGER NOT NULL,
    threshold REAL NOT NULL,
    index_type TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX searches_case ON searches (case_number);
CREATE TABLE candidates (
    search_id TEXT NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
    rank INTEGER NOT NULL,
    face_id INTEGER NOT NULL,
    subject TEXT NOT NULL,
    photo_sha256 TEXT NOT NULL,
    image TEXT NOT NULL,
    box TEXT NOT NULL,
    distance REAL NOT NULL,
    score REAL NOT NULL,
    within_threshold INTEGER NOT NULL,
    PRIMARY KEY (search_id, rank)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    case_number TEXT,
    search_id TEXT,
    objects TEXT NOT NULL,
    reason TEXT,
    photo_sha256 TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
