"""Reads of the labeling app, one module per concern: datasets, rating, ai."""
