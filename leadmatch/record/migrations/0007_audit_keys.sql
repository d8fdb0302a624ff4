-- integrity — each audit entry's HMAC under the workspace's key (NULL for entries written before keys),
-- and each index file's content hash as written, with the file's identity (device, inode, size, mtime_ns,
-- ctime_ns) right after the write, so an unchanged file is known without hashing it again.
ALTER TABLE audit ADD COLUMN mac TEXT;
CREATE TABLE index_files (
    gallery_id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    identity TEXT NOT NULL,
    written_at TEXT NOT NULL
);
