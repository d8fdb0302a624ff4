-- hardening — one refusal row per photo and reason (re-running an enrollment used to add them again), and the exact
-- bytes of source names that are not valid UTF-8 (source_path then holds them with the odd bytes escaped).
-- A chosen index type that no build ever made was recorded by a build that failed or was killed: forget it.
UPDATE galleries SET index_factory = NULL WHERE index_factory IS NOT NULL AND index_factory IS NOT
    (SELECT factory FROM index_builds WHERE index_builds.gallery_id = galleries.id);
DELETE FROM enrollment_refusals WHERE id NOT IN (
    SELECT max(id) FROM enrollment_refusals GROUP BY gallery_id, source_path, reason);
CREATE UNIQUE INDEX enrollment_refusals_once ON enrollment_refusals (gallery_id, source_path, reason);
ALTER TABLE enrollment_refusals ADD COLUMN source_path_raw BLOB;
ALTER TABLE photos ADD COLUMN source_path_raw BLOB;
