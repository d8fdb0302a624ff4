-- what each gallery's index was built as, and its last self-check.
CREATE TABLE index_builds (
    gallery_id INTEGER PRIMARY KEY REFERENCES galleries(id),
    factory TEXT NOT NULL,
    nprobe INTEGER,
    trained_on INTEGER NOT NULL,
    built_max_face_id INTEGER NOT NULL,
    built_at TEXT NOT NULL,
    build_seconds REAL NOT NULL,
    self_check TEXT NOT NULL DEFAULT '{}'
);
