-- each gallery's (face count, sum of face ids), kept by triggers in the same transaction as the change,
-- so checking an index against the record costs one row read instead of a scan of the gallery's faces.
CREATE TABLE gallery_stats (
    gallery_id INTEGER PRIMARY KEY,
    faces INTEGER NOT NULL DEFAULT 0,
    id_sum INTEGER NOT NULL DEFAULT 0
);
INSERT INTO gallery_stats (gallery_id, faces, id_sum)
    SELECT g.id, count(f.id), coalesce(sum(f.id), 0) FROM galleries g LEFT JOIN faces f ON f.gallery_id = g.id
    GROUP BY g.id;
CREATE TRIGGER faces_added AFTER INSERT ON faces BEGIN
    INSERT OR IGNORE INTO gallery_stats (gallery_id) VALUES (NEW.gallery_id);
    UPDATE gallery_stats SET faces = faces + 1, id_sum = id_sum + NEW.id WHERE gallery_id = NEW.gallery_id;
END;
CREATE TRIGGER faces_removed AFTER DELETE ON faces BEGIN
    UPDATE gallery_stats SET faces = faces - 1, id_sum = id_sum - OLD.id WHERE gallery_id = OLD.gallery_id;
END;
