"""Template filters of the labeling pages."""
from __future__ import annotations

from pathlib import PurePath

from django import template

register = template.Library()


@register.filter
def model_name(value: str) -> str:
    """A model as a page may show it: a Hugging Face name as is, a local folder by its last part
    only (no server path reaches a page)."""
    value = str(value or "")
    if value.startswith(("/", "./", "../", "~")) or "\\" in value:
        return PurePath(value.replace("\\", "/")).name or value
    return value
