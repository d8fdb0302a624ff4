-- thresholds calibrated to each gallery (issue 15): its target FPIR (NULL: 1 %), the calibration kept with
-- its index build and copied into each search, each candidate's estimated false-alarm rate, and the quality
-- flags of a gallery face enrolled below the recommended level.
ALTER TABLE galleries ADD COLUMN target_fpir REAL;
ALTER TABLE index_builds ADD COLUMN calibration TEXT;
ALTER TABLE searches ADD COLUMN calibration TEXT;
ALTER TABLE candidates ADD COLUMN false_alarm_rate REAL;
ALTER TABLE faces ADD COLUMN quality_flags TEXT NOT NULL DEFAULT '[]';
