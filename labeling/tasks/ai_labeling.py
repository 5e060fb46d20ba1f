"""Celery tasks: AI labeling jobs (queue gpu)."""
