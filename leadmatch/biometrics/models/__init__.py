"""The model files leadmatch runs: the registry that checks their sha256, one converter module per model format, and the agreement check."""
