"""Batch scoring: load a deployed SavedModel and score feature chunks."""
