"""Admin: ai models."""
