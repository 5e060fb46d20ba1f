"""The tables every dashboard shows and exports: columns, raw rows, display cells, CSV and JSON.

Rows keep raw values (exports carry them unrounded); ``Table.display`` formats them once, in
Python, into plain strings the template prints (and escapes). A 50-policy win-rate table has
2,450 rows, and a template tag per cell would cost more than the SQL behind the page.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field

import numpy as np

from labeling.formats import SafeDictWriter

from .formatting import fmt

CI_KINDS = ("ci", "ci_num")


@dataclass
class Column:
    key: str
    label: str
    kind: str = "text"  # text, int, num, num3, pct, ci ([lo, hi] of shares), ci_num ([lo, hi] of numbers)
    secondary: bool = False  # folded into the row's expandable detail on the page; exports keep it


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)
    note: str = ""
    display_limit: int | None = None  # rows shown on the page (exports have all)
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # (badge css, badge text, meaning)

    def flat_columns(self) -> list[str]:
        out = []
        for c in self.columns:
            out += [f"{c.key}_lo", f"{c.key}_hi"] if c.kind in CI_KINDS else [c.key]
        return out

    def flat_rows(self) -> list[dict]:
        out = []
        for r in self.rows:
            d = {}
            for c in self.columns:
                v = r.get(c.key)
                if c.kind in CI_KINDS:
                    lo, hi = (v if v else (None, None))
                    d[f"{c.key}_lo"], d[f"{c.key}_hi"] = clean(lo), clean(hi)
                else:
                    d[c.key] = clean(v)
            out.append(d)
        return out

    @property
    def primary_columns(self) -> list[Column]:
        return [c for c in self.columns if not c.secondary]

    @property
    def secondary_columns(self) -> list[Column]:
        return [c for c in self.columns if c.secondary]

    def display(self) -> dict:
        """What the template prints: formatted cells (strings), row classes, and a "showing" note.

        A row may carry ``badge`` = (css, text): shown beside its first cell.
        """
        prim, sec = self.primary_columns, self.secondary_columns
        rows = self.rows if self.display_limit is None else self.rows[: self.display_limit]
        out = []
        for r in rows:
            css = ("trivial" if r.get("row_trivial") else "") + (" bad" if r.get("row_bad") else "")
            cells = [{"cls": ("num " if c.kind != "text" else "") + c.key, "text": fmt(r.get(c.key), c.kind)}
                     for c in prim]
            detail = [(c.label, fmt(r.get(c.key), c.kind)) for c in sec]
            out.append({"css": css.strip(), "cells": cells, "badge": r.get("badge"),
                        "detail": [d for d in detail if d[1] != ""]})
        more = ""
        if self.display_limit is not None and len(self.rows) > self.display_limit:
            more = (f"Showing {self.display_limit} of {len(self.rows)} rows (most labels first); "
                    "the CSV/JSON export has them all.")
        return {"rows": out, "more": more, "n_columns": len(prim) + (1 if sec else 0)}


def clean(v):
    """A JSON/CSV-ready scalar: numpy scalars as Python ones, nan as None."""
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def table_csv(table: Table) -> str:
    buf = io.StringIO()
    w = SafeDictWriter(buf, fieldnames=table.flat_columns())
    w.writeheader()
    for r in table.flat_rows():
        w.writerow(r)
    return buf.getvalue()


def table_json(table: Table, query: dict) -> str:
    return json.dumps(
        {"table": table.name, "title": table.title, "filters": query, "rows": table.flat_rows()},
        default=str, indent=1,
    )
