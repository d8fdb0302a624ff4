-- each gallery's face model (issue 23: dlib, or dlib+faceres), each face's unit FaceRes descriptor
-- (1024 float32s; NULL for faces of dlib galleries), and the fusion scales an index build was made with.
ALTER TABLE galleries ADD COLUMN model TEXT NOT NULL DEFAULT 'dlib';
ALTER TABLE faces ADD COLUMN faceres BLOB;
ALTER TABLE index_builds ADD COLUMN fusion TEXT;
