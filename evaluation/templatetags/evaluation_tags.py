"""Template filters of the dashboards; the formatting rules live in ``evaluation.formatting``."""
from __future__ import annotations

from django import template

from ..formatting import fmt

register = template.Library()


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
