"""Faces: loading photos, detecting and embedding faces, quality gates. Knows nothing of users, cases or the record."""
