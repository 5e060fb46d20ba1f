"""Cached results of expensive evaluations (bootstrap intervals), computed by a worker."""
from django.db import models


class CachedResult(models.Model):
    key = models.CharField(max_length=300, unique=True)
    value = models.JSONField()
    computed_at = models.DateTimeField(auto_now=True)
    n_labels = models.PositiveIntegerField(default=0, help_text="Label count the result was computed on.")

    def __str__(self) -> str:
        return self.key
