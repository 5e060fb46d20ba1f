"""Reads of the labeling app, one module per concern: datasets, rating, ai, trust, exports (preference files)."""
