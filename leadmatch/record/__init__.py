"""The record: the SQLite store (source of truth) and the workspace folder that holds it, its keys, photos and indexes."""
