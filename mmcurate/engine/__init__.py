"""Execution engines past one process: Ray Data for embedding (and distributed scoring)."""
