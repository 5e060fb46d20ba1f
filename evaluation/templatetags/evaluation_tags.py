"""Template tags of the dashboards; the formatting rules live in ``evaluation.formatting``.

``{% fast_rows "name.jinja" key=value ... %}`` renders the big repeated parts (the win-rate
matrix, table bodies) from Jinja2 templates next to the Django ones, autoescaped: Jinja2 compiles
a template to Python, and 2,500 matrix cells cost milliseconds instead of most of a second.
"""
from __future__ import annotations

from functools import cache

import jinja2
from django import template
from django.conf import settings
from django.utils.safestring import mark_safe

from ..formatting import fmt

register = template.Library()


@cache
def _jinja() -> jinja2.Environment:
    dirs = [str(d) + "/evaluation" for d in settings.TEMPLATES[0]["DIRS"]]
    return jinja2.Environment(loader=jinja2.FileSystemLoader(dirs), autoescape=True, undefined=jinja2.StrictUndefined,
                              auto_reload=settings.DEBUG, trim_blocks=False)


@register.simple_tag
def fast_rows(name: str, **context) -> str:
    """The Jinja2 template ``templates/evaluation/<name>`` rendered with ``context`` (escaped there)."""
    return mark_safe(_jinja().get_template(name).render(**context))  # Jinja2 escaped every value


@register.simple_tag
def cell(row: dict, column) -> str:
    return fmt(row.get(column.key), column.kind)


@register.filter
def pct(value) -> str:
    return fmt(value, "pct")


@register.filter
def ci(value) -> str:
    return fmt(value, "ci")


@register.filter
def prob(value) -> str:
    """A probability with enough digits to tell 0.4996 from 0.5004 (the verdict's side)."""
    return "" if value is None else f"{float(value):.4f}"
