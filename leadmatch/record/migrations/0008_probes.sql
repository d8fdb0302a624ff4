-- probes — a search's probe faces (photo, stills or a clip's frames) and subject-level candidate lists.
ALTER TABLE searches ADD COLUMN probe_frames TEXT;
ALTER TABLE candidates ADD COLUMN faces TEXT;
ALTER TABLE candidates ADD COLUMN probe_distances TEXT;
