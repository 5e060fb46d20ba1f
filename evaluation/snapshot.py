"""The label rows the dashboards compute from, as numpy columns: loaded once, masked per filter set.

A *snapshot* holds every human and AI label up to a watermark (the highest label ids when it was
built) and every comparison:

- per human label: its comparison (as a row of the comparison columns), rater, choice,
  confidence, time (epoch seconds) and campaign;
- per usable AI label (P(A) not NULL): comparison row, labeler config, P(A) and time;
- per comparison: id, dataset, the two policies, the two lengths and the trivial judges' scores,
  from the comparison's stored facts (`labeling.models.Comparison.len_a` and so on).

The worker builds one (`snapshot_build`, three bulk queries: about 2 s at a million labels) and
stores it (`snapshot_store`, one `LabelSnapshot` row, about 50 MB at a million labels). A web process loads the newest stored one
once (`snapshot_latest`), adds the labels written since its watermark (`delta_rows`, an index
range scan) and masks the result by a filter set (`rows_for`), so that the first visit to a filter
set nobody computed yet gets alignment, the trivial judges and Bradley-Terry ratings in a few
hundred milliseconds from the worker's own numpy code (`compute.quick_result`). The same figures
from SQL take seconds at a million labels: a human majority per comparison is not a sum that a
GROUP BY over a rollup could add up. Such a page result may still count a label deleted or edited
after the newest snapshot until the worker's result, always from a new snapshot, replaces it.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from labeling.models import AILabel, Campaign, CampaignItem, Comparison, Dataset, HumanLabel, Post

from . import metrics
from .models import LabelSnapshot
from .selectors import Filters, sql_columns, watermarks

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
    pos_h: np.ndarray | None = None  # each human label's row in ``comps`` (computed when None)
    pos_a: np.ndarray | None = None

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Each label's row in ``comps`` (kept once computed)."""
        if self.pos_h is None or self.pos_a is None:
            self.pos_h = np.searchsorted(self.comps["cid"], self.humans["cid"])
            self.pos_a = np.searchsorted(self.comps["cid"], self.ai["cid"])
        return self.pos_h, self.pos_a

    @property
    def n_labels(self) -> int:
        return int(len(self.humans["cid"]) + len(self.ai["cid"]))


# Each loader's columns: (name, SQL expression never NULL, binary type). One definition, two
# transports: a bulk read on PostgreSQL aggregates each column into one bytea of big-endian
# values (`string_agg(int8send(...))`: a million rows in a fraction of a second, where COPY
# hands Python a message per row), anything else fetches rows.
_SEND = {"i8": ("int8", ">i8"), "i4": ("int4", ">i4"), "i2": ("int2", ">i2"), "f8": ("float8", ">f8")}
_HUMAN_COLUMNS = [("cid", "h.comparison_id", "i8"), ("choice", "h.choice", "i2"),
                  ("confidence", "COALESCE(h.confidence, 0)", "i2"), ("time", "date_part('epoch', h.created_at)", "f8"),
                  ("campaign", "COALESCE(h.campaign_id, 0)", "i8")]
_AI_COLUMNS = [("cid", "a.comparison_id", "i8"), ("config", "a.config_id", "i8"), ("p_a", "a.p_a", "f8"),
               ("time", "date_part('epoch', a.created_at)", "f8")]
_COMP_COLUMNS = [("cid", "c.id", "i8"), ("dataset", "p.dataset_id", "i8"), ("pol_a", "COALESCE(c.policy_a_id, 0)", "i8"),
                 ("pol_b", "COALESCE(c.policy_b_id, 0)", "i8"), ("len_a", "COALESCE(c.len_a, 0)", "i8"),
                 ("len_b", "COALESCE(c.len_b, 0)", "i8"), ("overlap_a", "COALESCE(c.overlap_a, 0)", "i8"),
                 ("overlap_b", "COALESCE(c.overlap_b, 0)", "i8")]


def _bulk_columns(columns: list[tuple[str, str, str]], rest: str, params: list) -> dict[str, np.ndarray]:
    """PostgreSQL: ``SELECT <each column as one bytea> <rest>`` through a binary cursor. The
    aggregates of one SELECT consume its rows together, so the n-th value of every column comes
    from the same row."""
    import psycopg

    select = ", ".join(f"string_agg({_SEND[kind][0]}send(({expr})::{_SEND[kind][0]}), ''::bytea)"
                       for _, expr, kind in columns)
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:  # Django's client-side cursors have no binary results
        cur.execute(f"SELECT {select} {rest}", params, binary=True)
        row = cur.fetchone()
    return {name: np.frombuffer(bytes(row[k] or b""), dtype=_SEND[kind][1]).astype(
        np.int64 if kind != "f8" else float) for k, (name, _, kind) in enumerate(columns)}


def _row_columns(columns: list[tuple[str, str, str]], rest: str, params: list, extra: str = "") -> dict[str, np.ndarray]:
    """Any database: the same columns fetched as rows (plus ``extra``, one more text column)."""
    exprs = [expr if connection.vendor == "postgresql" else
             re.sub(r"date_part\('epoch', ([\w.]+)\)", r"((julianday(\1) - 2440587.5) * 86400.0)", expr)
             for _, expr, _ in columns]  # SQLite stores UTC text
    names = [name for name, _, _ in columns] + (["extra"] if extra else [])
    cols = sql_columns(f"SELECT {', '.join(exprs + ([extra] if extra else []))} {rest}", params, names,
                       text=("extra",), small=True)
    out = {name: cols[name].astype(float if kind == "f8" else np.int64) for name, _, kind in columns}
    if extra:
        out["extra"] = cols["extra"]
    return out


def _raters_bulk(where: str, params: list) -> dict[str, np.ndarray]:
    """PostgreSQL bulk read of the human columns, the rater as a code (-user id, or the worker id's
    place among the distinct worker ids) turned into names here: no text per row."""
    h = HumanLabel._meta.db_table
    User = get_user_model()
    with connection.cursor() as cur:
        cur.execute(f"SELECT DISTINCT worker_id FROM {h} h WHERE h.annotator_id IS NULL AND {where}", params)
        workers = [r[0] for r in cur.fetchall()]
    cols = _bulk_columns(
        _HUMAN_COLUMNS + [("who", "COALESCE(-h.annotator_id, w.code)", "i4")],
        f"FROM {h} h LEFT JOIN unnest(%s::text[]) WITH ORDINALITY AS w(worker_id, code) "
        f"ON h.annotator_id IS NULL AND w.worker_id = h.worker_id WHERE {where}", [workers] + params)
    codes, inverse = np.unique(cols.pop("who"), return_inverse=True)
    users = dict(User.objects.filter(pk__in=[-c for c in codes.tolist() if c < 0]).values_list("pk", User.USERNAME_FIELD))
    names = np.array([users.get(-c, "") if c < 0 else workers[c - 1] for c in codes.tolist()], dtype=object)
    cols["who"] = names[inverse] if len(codes) else np.zeros(0, dtype=object)
    return cols


def _humans(where: str, params: list, bulk: bool = False) -> dict[str, np.ndarray]:
    """Human labels (``HUMAN``); the rater is the user name, else the external worker id."""
    h, u = HumanLabel._meta.db_table, get_user_model()._meta.db_table
    if bulk and connection.vendor == "postgresql":
        cols = _raters_bulk(where, params)
    else:
        cols = _row_columns(_HUMAN_COLUMNS, f"FROM {h} h LEFT JOIN {u} u ON u.id = h.annotator_id WHERE {where}",
                            params, extra=f"COALESCE(u.{get_user_model().USERNAME_FIELD}, h.worker_id)")
        cols["who"] = np.array([str(w) for w in cols.pop("extra")], dtype=object)
    conf = cols["confidence"].astype(float)
    return {"cid": cols["cid"], "who": cols["who"], "choice": cols["choice"].astype(float),
            "confidence": np.where(conf == 0, np.nan, conf), "time": cols["time"], "campaign": cols["campaign"]}


def _columns(columns: list[tuple[str, str, str]], rest: str, params: list, bulk: bool) -> dict[str, np.ndarray]:
    if bulk and connection.vendor == "postgresql":
        return _bulk_columns(columns, rest, params)
    return _row_columns(columns, rest, params)


def _ai(where: str, params: list, bulk: bool = False) -> dict[str, np.ndarray]:
    """Usable AI labels (P(A) not NULL): ``AI``."""
    return _columns(_AI_COLUMNS, f"FROM {AILabel._meta.db_table} a WHERE a.p_a IS NOT NULL AND {where}", params, bulk)


def _comps(where: str, params: list, bulk: bool = False) -> dict[str, np.ndarray]:
    """Comparisons (``COMPS``), sorted by id: their stored facts and the trivial judges' scores."""
    cols = _columns(_COMP_COLUMNS, f"FROM {Comparison._meta.db_table} c JOIN {Post._meta.db_table} p "
                                   f"ON p.id = c.post_id WHERE {where}", params, bulk)
    order = np.argsort(cols["cid"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    facts = {k: cols[k].astype(float) for k in ("len_a", "len_b", "overlap_a", "overlap_b")}
    return {"cid": cols["cid"], "dataset": cols["dataset"], "pol_a": cols["pol_a"], "pol_b": cols["pol_b"],
            "len_a": facts["len_a"], "len_b": facts["len_b"],
            **metrics.trivial_judges_from_facts(facts["len_a"], facts["len_b"], facts["overlap_a"], facts["overlap_b"])}


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
        wh, wa = watermarks()
        humans = _humans("h.id <= %s", [wh], bulk=True)
        ai = _ai("a.id <= %s", [wa], bulk=True)
        comps = _comps("1=1", [], bulk=True)
    return Rows(humans, ai, comps, (wh, wa))


# Stored dtypes narrower than the computing ones where every value fits exactly (choices 0/1,
# confidences 1-9, lengths, judge scores 0/0.5/1, ids below 2**31); a label's comparison is
# stored as its row in the comparison columns, its time as whole seconds after the oldest label
# (exact for filters, whose day bounds are whole seconds). A page loads them as they are.
_COMPACT = {"h_choice": np.int8, "h_confidence": np.float32, "h_campaign": np.int32, "a_config": np.int32,
            "c_dataset": np.int32, "c_pol_a": np.int32, "c_pol_b": np.int32, "c_len_a": np.float32,
            "c_len_b": np.float32, "c_longer": np.float32, "c_overlap": np.float32}


def _compact(name: str, values: np.ndarray) -> np.ndarray:
    dtype = _COMPACT.get(name)
    if dtype is None or not len(values):
        return values
    if np.issubdtype(dtype, np.integer) and (values.min() < np.iinfo(dtype).min or values.max() > np.iinfo(dtype).max):
        return values
    return values.astype(dtype)


def _encode(rows: Rows) -> dict[str, np.ndarray]:
    """``rows`` as the stored arrays (see ``_COMPACT``)."""
    raters, codes = np.unique(rows.humans["who"].astype(str), return_inverse=True)
    times = np.concatenate([rows.humans["time"], rows.ai["time"]])
    base = np.floor(times.min()) if len(times) else 0.0
    pos_h, pos_a = rows.positions()
    arrays = {f"h_{k}": v for k, v in rows.humans.items() if k not in ("who", "cid", "time")}
    arrays.update({f"a_{k}": v for k, v in rows.ai.items() if k not in ("cid", "time")})
    arrays.update({f"c_{k}": v for k, v in rows.comps.items()})
    arrays.update(h_who=codes.astype(np.int32), raters=raters, time_base=np.array(base),
                  h_time=np.floor(rows.humans["time"] - base).astype(np.int64),
                  a_time=np.floor(rows.ai["time"] - base).astype(np.int64), h_pos=pos_h, a_pos=pos_a)
    for k in ("h_time", "a_time", "h_pos", "a_pos"):
        if len(arrays[k]) and arrays[k].max() < 2**31:
            arrays[k] = arrays[k].astype(np.int32)
    return {k: _compact(k, v) for k, v in arrays.items()}


def _decode(arrays: dict[str, np.ndarray], watermark: tuple[int, int]) -> Rows:
    base, raters = float(arrays.pop("time_base")), arrays.pop("raters")
    pos_h, pos_a = arrays.pop("h_pos").astype(np.int64), arrays.pop("a_pos").astype(np.int64)
    part = {p: {k[2:]: v for k, v in arrays.items() if k.startswith(p + "_")} for p in "hac"}
    humans, ai, comps = part["h"], part["a"], part["c"]
    humans.update(cid=comps["cid"][pos_h], time=humans["time"] + base,
                  who=raters[humans["who"]] if len(raters) else np.zeros(0, dtype=str))
    ai.update(cid=comps["cid"][pos_a], time=ai["time"] + base)
    return Rows(humans, ai, comps, watermark, pos_h, pos_a)


def snapshot_store(rows: Rows) -> LabelSnapshot:
    """Store ``rows`` as the newest snapshot and delete the older ones."""
    buf = io.BytesIO()
    np.savez(buf, **_encode(rows))
    with transaction.atomic():
        snap = _snapshot_insert(rows, buf.getvalue())
        LabelSnapshot.objects.exclude(pk=snap.pk).delete()
    _LOADED[:] = [(snap.pk, snap.built_at), rows]
    return snap


def _snapshot_insert(rows: Rows, data: bytes) -> LabelSnapshot:
    fields = {"watermark_human": rows.watermark[0], "watermark_ai": rows.watermark[1],
              "n_human": len(rows.humans["cid"]), "n_ai": len(rows.ai["cid"])}
    if connection.vendor != "postgresql":
        return LabelSnapshot.objects.create(**fields, data=data)
    import psycopg

    # a binary parameter: Django's client-side binding would quote 50 MB of bytea as text
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:
        cur.execute(f"INSERT INTO {LabelSnapshot._meta.db_table} ({', '.join(fields)}, data, built_at) "
                    f"VALUES ({', '.join(['%s'] * len(fields))}, %b, now()) RETURNING id, built_at",
                    [*fields.values(), data])
        pk, built_at = cur.fetchone()
    return LabelSnapshot(pk=pk, built_at=built_at, **fields)


def _snapshot_bytes(pk: int) -> bytes | None:
    """The stored columns; on PostgreSQL fetched in binary (as text, bytea doubles in size)."""
    if connection.vendor != "postgresql":
        data = LabelSnapshot.objects.filter(pk=pk).values_list("data", flat=True).first()
        return None if data is None else bytes(data)
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:  # Django's client-side cursors have no binary results
        cur.execute(f"SELECT data FROM {LabelSnapshot._meta.db_table} WHERE id = %s", [pk], binary=True)
        row = cur.fetchone()
    return None if row is None else bytes(row[0])


# The newest snapshot this process has loaded: ((pk, built_at), Rows).
_LOADED: list = [None, None]


def snapshot_latest() -> Rows | None:
    """The newest stored snapshot (parsed once per process and kept), or None."""
    key = LabelSnapshot.objects.order_by("-pk").values_list("pk", "built_at").first()
    if key is None:
        return None
    if _LOADED[0] != key:
        row = LabelSnapshot.objects.filter(pk=key[0]).values_list("watermark_human", "watermark_ai").first()
        data = _snapshot_bytes(key[0])
        if row is None or data is None:
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            rows = _decode({k: z[k] for k in z.files}, (int(row[0]), int(row[1])))
        _LOADED[:] = [key, rows]
    return _LOADED[1]


def delta_rows(since: tuple[int, int], upto: tuple[int, int] | None = None) -> Rows:
    """The labels written after the watermark ``since`` (up to ``upto``, default now) and their
    comparisons."""
    wh, wa = upto or watermarks()
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
    if not new.any():  # the usual case: new labels on known comparisons keep every position
        pos_h, pos_a = base.positions()
        return Rows(humans, ai, base.comps, delta.watermark,
                    np.concatenate([pos_h, np.searchsorted(base.comps["cid"], delta.humans["cid"])]),
                    np.concatenate([pos_a, np.searchsorted(base.comps["cid"], delta.ai["cid"])]))
    comps = {k: np.concatenate([base.comps[k], delta.comps[k][new]]) for k in COMPS}
    order = np.argsort(comps["cid"], kind="stable")
    return Rows(humans, ai, {k: v[order] for k, v in comps.items()}, delta.watermark)


def mask(rows: Rows, f: Filters) -> Rows:
    """The labels of ``rows`` that the filter set ``f`` selects (dataset, campaign, dates; not its
    label-id windows) and only the comparisons they refer to."""
    h, a, c = rows.humans, rows.ai, rows.comps
    pos_h, pos_a = rows.positions()
    hm, am = np.ones(len(h["cid"]), bool), np.ones(len(a["cid"]), bool)
    if f.dataset:
        ds = Dataset.objects.filter(name=f.dataset).values_list("pk", flat=True).first()
        in_ds = c["dataset"] == (ds if ds is not None else -1)
        hm &= in_ds[pos_h]
        am &= in_ds[pos_a]
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
    used = np.zeros(len(c["cid"]), bool)
    used[pos_h[hm]] = True
    used[pos_a[am]] = True
    row = np.cumsum(used) - 1  # a kept comparison's row after the others are dropped
    return Rows({k: v[hm] for k, v in h.items()}, {k: v[am] for k, v in a.items()},
                {k: v[used] for k, v in c.items()}, rows.watermark, row[pos_h[hm]], row[pos_a[am]])


def rows_for(f: Filters, max_delta: int = 200_000, now: tuple[int, int] | None = None) -> Rows | None:
    """The rows of ``f`` from the newest snapshot plus the labels written since (up to the
    watermarks ``now``, default read here), or None without a snapshot or when more than
    ``max_delta`` labels were written since it (the worker's turn)."""
    snap = snapshot_latest()
    if snap is None:
        return None
    wh, wa = now or watermarks()
    if (wh - snap.watermark[0]) + (wa - snap.watermark[1]) > max_delta:
        return None
    return mask(merge(snap, delta_rows(snap.watermark, (wh, wa))), f)


def rows_for_worker(f: Filters) -> Rows:
    """The worker's rows of ``f``, exact: a new snapshot (stored for the pages), since a stored
    one may still hold labels deleted or edited after it was built."""
    snap = snapshot_build()
    snapshot_store(snap)
    return mask(snap, f)
