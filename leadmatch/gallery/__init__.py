"""Authorized galleries: creating them, enrolling photos (locally or on Ray), their FAISS indexes and calibrated thresholds."""
