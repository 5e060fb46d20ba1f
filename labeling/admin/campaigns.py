"""Admin: campaigns models."""
