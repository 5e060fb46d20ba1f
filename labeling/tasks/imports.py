"""Celery tasks: background imports."""
