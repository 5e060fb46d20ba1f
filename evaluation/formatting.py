"""How dashboard values print (values stay raw in tables and exports; only display rounds)."""
from __future__ import annotations

import math


def _none(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(value, kind: str) -> str:
    """``value`` as the page shows it; ``kind`` is a Column kind (pct, ci, int, num, num3, text)."""
    if kind in ("ci", "ci_num"):
        if not value or _none(value[0]) or _none(value[1]):
            return ""
        if kind == "ci":
            return f"[{100 * value[0]:.1f}, {100 * value[1]:.1f}]"
        return f"[{value[0]:.0f}, {value[1]:.0f}]"
    if _none(value) or value == "":
        return ""
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "num":
        return value if isinstance(value, str) else f"{float(value):.1f}"
    if kind == "num3":
        return f"{float(value):.3f}"
    return str(value)
