-- a subject's faces are read on every search (a candidate lists all its photos) and on removal; without
-- this index each read scanned the gallery's faces (160 ms at 1M faces).
CREATE INDEX faces_subject ON faces (subject_id);
