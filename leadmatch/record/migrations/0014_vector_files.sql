-- issue 23: a fused gallery searched in two stages keeps its fused vectors in a second file beside the index
-- (gallery-N.vectors, memory-mapped), recorded like the index file: content hash as written, size, identity.
CREATE TABLE vector_files (
    gallery_id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    identity TEXT NOT NULL,
    written_at TEXT NOT NULL
);
