"""Active learning: per-pixel uncertainty (acquisition functions) and patch ordering."""
