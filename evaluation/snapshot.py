"""The label rows the dashboards compute from, as numpy columns: loaded once, masked per filter set.

A *snapshot* holds every human and AI label up to a watermark (the highest label ids when it was
built) and every comparison they refer to:

- per human label: its comparison (as a row of the comparison columns), rater, choice,
  confidence, time (epoch seconds) and campaign;
- per usable AI label (P(A) not NULL): comparison row, labeler config, P(A) and time;
- per comparison: id, dataset, the two policies, the two lengths and the trivial judges' scores,
  from the comparison's stored facts (`labeling.models.Comparison.len_a` and so on).

The worker builds one (`snapshot_build`, three COPY queries: about 3 s at a million labels) and
stores it (`snapshot_store`, one `LabelSnapshot` row). A web process loads the newest stored one
once (`snapshot_latest`), adds the labels written since its watermark (`delta_rows`, an index
range scan) and masks the result by a filter set (`rows_for`), so that the first visit to a filter
set nobody computed yet gets alignment, the trivial judges and Bradley-Terry ratings in a few
hundred milliseconds from the worker's own numpy code (`compute.quick_result`). The same figures
from SQL take seconds at a million labels: a human majority per comparison is not a sum that a
GROUP BY over a rollup could add up.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from labeling.models import AILabel, Campaign, CampaignItem, Comparison, Dataset, HumanLabel, Post

from . import metrics
from .models import LabelSnapshot
from .selectors import Filters, float_column, sql_columns

HUMAN = ("cid", "who", "choice", "confidence", "time", "campaign")
AI = ("cid", "config", "p_a", "time")
COMPS = ("cid", "dataset", "pol_a", "pol_b", "len_a", "len_b", "longer", "overlap")


@dataclass
class Rows:
    """Label rows as columns: ``humans`` (``HUMAN``), ``ai`` (``AI``), ``comps`` (``COMPS``),
    comparisons sorted by id; a label's ``cid`` is its comparison's id."""

    humans: dict[str, np.ndarray]
    ai: dict[str, np.ndarray]
    comps: dict[str, np.ndarray]
    watermark: tuple[int, int] = (0, 0)

    @property
    def n_labels(self) -> int:
        return int(len(self.humans["cid"]) + len(self.ai["cid"]))


def _epoch(column: str) -> str:
    """SQL for a timestamp column as epoch seconds (SQLite stores UTC text)."""
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM {column})::float8"
    return f"(julianday({column}) - 2440587.5) * 86400.0"


def _humans(where: str, params: list) -> dict[str, np.ndarray]:
    h, u = HumanLabel._meta.db_table, get_user_model()._meta.db_table
    uname = get_user_model().USERNAME_FIELD
    cols = sql_columns(
        f"SELECT h.comparison_id, COALESCE(u.{uname}, h.worker_id), h.choice, h.confidence, {_epoch('h.created_at')}, "
        f"COALESCE(h.campaign_id, 0) FROM {h} h LEFT JOIN {u} u ON u.id = h.annotator_id WHERE {where}",
        params, list(HUMAN), text=("who",))
    return {"cid": cols["cid"].astype(np.int64), "who": np.array([str(w) for w in cols["who"]], dtype=object),
            "choice": cols["choice"].astype(float), "confidence": float_column(cols["confidence"]),
            "time": float_column(cols["time"]), "campaign": cols["campaign"].astype(np.int64)}


def _ai(where: str, params: list) -> dict[str, np.ndarray]:
    a = AILabel._meta.db_table
    cols = sql_columns(f"SELECT a.comparison_id, a.config_id, a.p_a, {_epoch('a.created_at')} FROM {a} a "
                       f"WHERE a.p_a IS NOT NULL AND {where}", params, list(AI))
    return {"cid": cols["cid"].astype(np.int64), "config": cols["config"].astype(np.int64),
            "p_a": float_column(cols["p_a"]), "time": float_column(cols["time"])}


def _comps(where: str, params: list) -> dict[str, np.ndarray]:
    c, p = Comparison._meta.db_table, Post._meta.db_table
    cols = sql_columns(
        f"SELECT c.id, p.dataset_id, c.policy_a_id, c.policy_b_id, c.len_a, c.len_b, c.overlap_a, c.overlap_b "
        f"FROM {c} c JOIN {p} p ON p.id = c.post_id WHERE {where} ORDER BY c.id",
        params, ["cid", "dataset", "pol_a", "pol_b", "len_a", "len_b", "overlap_a", "overlap_b"])
    facts = {k: float_column(cols[k]) for k in ("len_a", "len_b", "overlap_a", "overlap_b")}
    return {"cid": cols["cid"].astype(np.int64), "dataset": cols["dataset"].astype(np.int64),
            "pol_a": float_column(cols["pol_a"]).astype(np.int64), "pol_b": float_column(cols["pol_b"]).astype(np.int64),
            "len_a": facts["len_a"], "len_b": facts["len_b"],
            **metrics.trivial_judges_from_facts(facts["len_a"], facts["len_b"], facts["overlap_a"], facts["overlap_b"])}


def _watermarks() -> tuple[int, int]:
    from .selectors import watermarks

    return watermarks()


def snapshot_build() -> Rows:
    """Every label up to the current watermarks and every comparison (read in one transaction,
    so the three queries see the same rows)."""
    from labeling.services.comparison_facts import comparison_facts_fill

    comparison_facts_fill()  # rows written around the ORM (COPY, raw SQL) get their facts first
    outer = connection.in_atomic_block  # then that transaction's view it is
    with transaction.atomic():
        if connection.vendor == "postgresql" and not outer:
            with connection.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        wh, wa = _watermarks()
        humans = _humans("h.id <= %s", [wh])
        ai = _ai("a.id <= %s", [wa])
        comps = _comps("1=1", [])
    return Rows(humans, ai, comps, (wh, wa))


def snapshot_store(rows: Rows) -> LabelSnapshot:
    """Store ``rows`` as the newest snapshot (rater names as codes) and delete the older ones."""
    raters, codes = np.unique(rows.humans["who"].astype(str), return_inverse=True)
    arrays = {f"h_{k}": v for k, v in rows.humans.items() if k != "who"}
    arrays["h_who"] = codes.astype(np.int32)
    arrays["raters"] = raters.astype(str)
    arrays.update({f"a_{k}": v for k, v in rows.ai.items()})
    arrays.update({f"c_{k}": v for k, v in rows.comps.items()})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with transaction.atomic():
        snap = LabelSnapshot.objects.create(watermark_human=rows.watermark[0], watermark_ai=rows.watermark[1],
                                            n_human=len(rows.humans["cid"]), n_ai=len(rows.ai["cid"]),
                                            data=buf.getvalue())
        LabelSnapshot.objects.exclude(pk=snap.pk).delete()
    _LOADED[:] = [(snap.pk, snap.built_at), rows]
    return snap


# The newest snapshot this process has loaded: ((pk, built_at), Rows).
_LOADED: list = [None, None]


def snapshot_latest() -> Rows | None:
    """The newest stored snapshot (parsed once per process and kept), or None."""
    key = LabelSnapshot.objects.order_by("-pk").values_list("pk", "built_at").first()
    if key is None:
        return None
    if _LOADED[0] != key:
        row = LabelSnapshot.objects.filter(pk=key[0]).values_list("watermark_human", "watermark_ai", "data").first()
        if row is None:
            return None
        with np.load(io.BytesIO(bytes(row[2])), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        raters = arrays.pop("raters")
        humans = {k[2:]: v for k, v in arrays.items() if k.startswith("h_")}
        humans["who"] = raters[humans["who"]].astype(object) if len(raters) else np.zeros(0, dtype=object)
        _LOADED[:] = [key, Rows(humans, {k[2:]: v for k, v in arrays.items() if k.startswith("a_")},
                               {k[2:]: v for k, v in arrays.items() if k.startswith("c_")}, (int(row[0]), int(row[1])))]
    return _LOADED[1]


def delta_rows(since: tuple[int, int]) -> Rows:
    """The labels written after the watermark ``since`` and their comparisons."""
    wh, wa = _watermarks()
    humans = _humans("h.id > %s AND h.id <= %s", [since[0], wh])
    ai = _ai("a.id > %s AND a.id <= %s", [since[1], wa])
    cids = np.union1d(humans["cid"], ai["cid"])
    comps = _comps("c.id = ANY(%s)" if connection.vendor == "postgresql" else
                   f"c.id IN ({','.join(['%s'] * len(cids)) or 'NULL'})",
                   [cids.tolist()] if connection.vendor == "postgresql" else cids.tolist())
    return Rows(humans, ai, comps, (wh, wa))


def merge(base: Rows, delta: Rows) -> Rows:
    """``base`` plus the newer labels of ``delta`` (a comparison in both keeps base's facts)."""
    if not delta.n_labels:
        return base
    humans = {k: np.concatenate([base.humans[k], delta.humans[k]]) for k in HUMAN}
    ai = {k: np.concatenate([base.ai[k], delta.ai[k]]) for k in AI}
    new = ~np.isin(delta.comps["cid"], base.comps["cid"])
    comps = {k: np.concatenate([base.comps[k], delta.comps[k][new]]) for k in COMPS}
    order = np.argsort(comps["cid"], kind="stable")
    return Rows(humans, ai, {k: v[order] for k, v in comps.items()}, delta.watermark)


def mask(rows: Rows, f: Filters) -> Rows:
    """The labels of ``rows`` that the filter set ``f`` selects (dataset, campaign, dates; not its
    label-id windows) and only the comparisons they refer to."""
    h, a, c = rows.humans, rows.ai, rows.comps
    hm, am = np.ones(len(h["cid"]), bool), np.ones(len(a["cid"]), bool)
    if f.dataset:
        ds = Dataset.objects.filter(name=f.dataset).values_list("pk", flat=True).first()
        in_ds = c["cid"][c["dataset"] == (ds if ds is not None else -1)]
        hm &= np.isin(h["cid"], in_ds)
        am &= np.isin(a["cid"], in_ds)
    if f.campaign:
        camp = Campaign.objects.filter(name=f.campaign).values_list("pk", flat=True).first()
        hm &= h["campaign"] == (camp if camp is not None else -1)
        items = CampaignItem.objects.filter(campaign_id=camp).values_list("comparison_id", flat=True)
        am &= np.isin(a["cid"], np.fromiter(items, np.int64))
    lo, hi = f._bounds()
    if lo:
        hm &= h["time"] >= lo.timestamp()
        am &= a["time"] >= lo.timestamp()
    if hi:
        hm &= h["time"] < hi.timestamp()
        am &= a["time"] < hi.timestamp()
    humans = {k: v[hm] for k, v in h.items()}
    ai = {k: v[am] for k, v in a.items()}
    keep = np.isin(c["cid"], np.union1d(humans["cid"], ai["cid"]))
    return Rows(humans, ai, {k: v[keep] for k, v in c.items()}, rows.watermark)


def rows_for(f: Filters, max_delta: int = 200_000) -> Rows | None:
    """The rows of ``f`` from the newest snapshot plus the labels written since, or None without a
    snapshot or when more than ``max_delta`` labels were written since it (the worker's turn)."""
    snap = snapshot_latest()
    if snap is None:
        return None
    wh, wa = _watermarks()
    if (wh - snap.watermark[0]) + (wa - snap.watermark[1]) > max_delta:
        return None
    return mask(merge(snap, delta_rows(snap.watermark)), f)


def rows_for_worker(f: Filters) -> Rows:
    """The worker's rows of ``f``: a new snapshot, stored, for the unfiltered set (which also
    drops deleted labels) or when none is usable; else the newest one plus the labels since."""
    rows = None if f.key() == Filters().key() else rows_for(f)
    if rows is None:
        snap = snapshot_build()
        snapshot_store(snap)
        rows = mask(snap, f)
    return rows
