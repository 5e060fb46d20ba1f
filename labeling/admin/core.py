"""Admin: core models."""
