"""Reads for the evaluation dashboards.

Everything a page needs per request is aggregated in the database (GROUP BY policy pair, labeler
config or annotator), so a page costs a handful of queries whatever the label count.  The row
loaders at the bottom (``*_rows``) fetch per-label arrays of one filter set (the routing page,
benchmarks); the dashboards' worker reads every label at once through ``snapshot.py``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Case, Count, F, FloatField, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Length
from django.utils import timezone

from labeling import formats
from labeling.models import (
    AILabel, Campaign, CampaignItem, Comparison, Dataset, HarmlessnessLabel, HumanLabel, LabelerConfig, Policy, Post,
)

from . import metrics


@dataclass(frozen=True)
class Filters:
    """Dataset (name), campaign (name) and an inclusive label-date range; None = no filter."""

    dataset: str | None = None
    campaign: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    # Label id windows (lo exclusive, hi inclusive; None = open), not part of the key: the worker
    # aggregates labels up to a watermark and a page adds only the labels written since.
    human_ids: tuple[int | None, int | None] = (None, None)
    ai_ids: tuple[int | None, int | None] = (None, None)

    def upto(self, human_max: int, ai_max: int) -> Filters:
        return replace(self, human_ids=(None, human_max), ai_ids=(None, ai_max))

    def since(self, human_max: int, ai_max: int) -> Filters:
        return replace(self, human_ids=(human_max, None), ai_ids=(ai_max, None))

    def key(self) -> str:
        return "|".join(str(x or "") for x in (self.dataset, self.campaign, self.date_from, self.date_to))

    def query(self) -> dict[str, str]:
        """As GET parameters (for links and export URLs)."""
        out = {"dataset": self.dataset, "campaign": self.campaign, "date_from": self.date_from, "date_to": self.date_to}
        return {k: str(v) for k, v in out.items() if v}

    def _bounds(self):
        tz = timezone.get_current_timezone()
        lo = dt.datetime.combine(self.date_from, dt.time.min, tzinfo=tz) if self.date_from else None
        hi = dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz) if self.date_to else None
        return lo, hi

    def human_q(self, prefix: str = "") -> Q:
        q = Q()
        if self.dataset:
            q &= Q(**{f"{prefix}comparison__post__dataset__name": self.dataset})
        if self.campaign:
            q &= Q(**{f"{prefix}campaign__name": self.campaign})
        lo, hi = self._bounds()
        if lo:
            q &= Q(**{f"{prefix}created_at__gte": lo})
        if hi:
            q &= Q(**{f"{prefix}created_at__lt": hi})
        return q & _id_q(self.human_ids, prefix)

    def ai_q(self) -> Q:
        q = Q()
        if self.dataset:
            q &= Q(comparison__post__dataset__name=self.dataset)
        if self.campaign:
            q &= Q(comparison__campaign_items__campaign__name=self.campaign)
        lo, hi = self._bounds()
        if lo:
            q &= Q(created_at__gte=lo)
        if hi:
            q &= Q(created_at__lt=hi)
        return q & _id_q(self.ai_ids)


def _id_q(window, prefix: str = "") -> Q:
    q = Q()
    if window[0] is not None:
        q &= Q(**{f"{prefix}id__gt": window[0]})
    if window[1] is not None:
        q &= Q(**{f"{prefix}id__lte": window[1]})
    return q


def _id_sql(window, alias: str) -> tuple[list[str], list]:
    parts, params = [], []
    if window[0] is not None:
        parts.append(f"{alias}.id > %s")
        params.append(window[0])
    if window[1] is not None:
        parts.append(f"{alias}.id <= %s")
        params.append(window[1])
    return parts, params


def watermarks() -> tuple[int, int]:
    """The highest human and AI label ids now (primary-key index look-ups)."""
    from django.db.models import Max

    return (HumanLabel.objects.aggregate(m=Max("id"))["m"] or 0, AILabel.objects.aggregate(m=Max("id"))["m"] or 0)


def human_labels(f: Filters) -> QuerySet[HumanLabel]:
    return HumanLabel.objects.filter(f.human_q())


def ai_labels(f: Filters) -> QuerySet[AILabel]:
    return AILabel.objects.filter(f.ai_q())


def _verdict_case(field: str = "p_a"):
    """0 = A preferred, 1 = B preferred, 2 = tie (the human choice convention plus ties)."""
    return Case(
        When(**{f"{field}__gt": 0.5}, then=Value(0)),
        When(**{f"{field}__lt": 0.5}, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )


# --- per-request aggregates -------------------------------------------------------------------


def _fetch(qs: QuerySet) -> list[tuple]:
    """Run a values_list query on a plain cursor: thousands of aggregate rows without converters."""
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return [tuple(r) for r in cur.fetchall()]


def human_pair_counts(f: Filters) -> list[tuple[int, int, int, int]]:
    """(policy of A, policy of B, choice 0/1, count), grouped in SQL (the policies are the
    comparison's stored copies, ``Comparison.policy_a``/``policy_b``: one join, not three)."""
    qs = (
        human_labels(f)
        .values_list("comparison__policy_a_id", "comparison__policy_b_id", "choice")
        .annotate(n=Count("id"))
        .order_by()
    )
    return _fetch(qs)


def ai_pair_counts(f: Filters) -> list[tuple[int, int, int, int, int]]:
    """(config, policy of A, policy of B, verdict 0 A / 1 B / 2 tie, count) over usable AI labels."""
    qs = (
        ai_labels(f)
        .filter(p_a__isnull=False)
        .annotate(v=_verdict_case())
        .values_list("config_id", "comparison__policy_a_id", "comparison__policy_b_id", "v")
        .annotate(n=Count("id"))
        .order_by()
    )
    return _fetch(qs)


def labeler_stats(f: Filters) -> list[dict]:
    """Per labeler config: label counts, errors, position bias counts and tokens per label."""
    qs = (
        ai_labels(f)
        .values("config_id")
        .annotate(
            n=Count("id"),
            n_usable=Count("id", filter=Q(p_a__isnull=False)),
            n_error=Count("id", filter=~Q(error="")),
            n_both=Count("id", filter=Q(p_a_ab__isnull=False, p_a_ba__isnull=False)),
            n_first=Count("id", filter=Q(p_a_ab__gt=0.5, p_a_ba__lt=0.5)),
            n_second=Count("id", filter=Q(p_a_ab__lt=0.5, p_a_ba__gt=0.5)),
            tokens_sum=Sum(F("prompt_tokens") + F("completion_tokens"), output_field=FloatField()),
        )
        .order_by()
    )
    return list(qs)


def _capped_seconds():
    """A label's recorded time as ``formats.TIME_PER_LABEL`` counts it (NULL stays NULL)."""
    cap = formats.LABEL_SECONDS_CAP
    return Case(When(time_taken_s__gt=cap, then=Value(cap)), default=F("time_taken_s"), output_field=FloatField())


def human_cost(f: Filters) -> dict:
    """Labels, and the capped seconds and count of those with a recorded time."""
    return human_labels(f).aggregate(n=Count("id"), seconds_sum=Sum(_capped_seconds()), n_timed=Count("time_taken_s"))


def _human_where(f: Filters, alias: str = "h") -> tuple[str, list]:
    """SQL WHERE fragment (and params) for human labels aliased ``alias`` joined to c and p."""
    parts, params = ["1=1"], []
    if f.dataset:
        parts.append("p.dataset_id = (SELECT id FROM %s WHERE name = %%s)" % Dataset._meta.db_table)
        params.append(f.dataset)
    if f.campaign:
        parts.append(f"{alias}.campaign_id = (SELECT id FROM %s WHERE name = %%s)" % Campaign._meta.db_table)
        params.append(f.campaign)
    lo, hi = f._bounds()
    if lo:
        parts.append(f"{alias}.created_at >= %s")
        params.append(lo)
    if hi:
        parts.append(f"{alias}.created_at < %s")
        params.append(hi)
    id_parts, id_params = _id_sql(f.human_ids, alias)
    return " AND ".join(parts + id_parts), params + id_params


def _tables() -> dict[str, str]:
    return {
        "h": HumanLabel._meta.db_table, "c": Comparison._meta.db_table, "p": Post._meta.db_table,
        "a": AILabel._meta.db_table, "ci": CampaignItem._meta.db_table, "u": get_user_model()._meta.db_table,
    }


def _post_join(f: Filters, t: dict) -> str:
    """Joins to comparison and post, only when a dataset filter needs them."""
    if not f.dataset:
        return ""
    return f"JOIN {t['c']} c ON c.id = h.comparison_id JOIN {t['p']} p ON p.id = c.post_id"


def alignment_counts(f: Filters) -> dict[int, dict]:
    """Per labeler config: agreement of its verdict with the human majority, in one SQL query.

    The human side is one row per comparison (majority share of A, mean confidence); split votes
    are left out.  High confidence = mean confidence <= 2 or >= 8 (the paper's 1, 2, 8, 9).
    """
    t = _tables()
    where, params = _human_where(f)
    ai_where, ai_params = ["a.p_a IS NOT NULL"], []
    lo, hi = f._bounds()
    if lo:
        ai_where.append("a.created_at >= %s")
        ai_params.append(lo)
    if hi:
        ai_where.append("a.created_at < %s")
        ai_params.append(hi)
    id_parts, id_params = _id_sql(f.ai_ids, "a")
    ai_where += id_parts
    ai_params += id_params
    agree = (
        "CASE WHEN a.p_a = 0.5 THEN 0.5 WHEN (a.p_a > 0.5 AND hv.a_share > 0.5) "
        "OR (a.p_a < 0.5 AND hv.a_share < 0.5) THEN 1.0 ELSE 0.0 END"
    )
    hc = formats.high_confidence_sql("hv.conf")
    sql = f"""
        WITH hv AS (
            SELECT h.comparison_id AS cid, AVG(1.0 - h.choice) AS a_share, AVG(1.0 * h.confidence) AS conf
            FROM {t['h']} h {_post_join(f, t)}
            WHERE {where}
            GROUP BY h.comparison_id
        )
        SELECT a.config_id, COUNT(*), SUM({agree}),
               SUM(CASE WHEN {hc} THEN 1 ELSE 0 END), SUM(CASE WHEN {hc} THEN {agree} ELSE 0 END)
        FROM {t['a']} a JOIN hv ON hv.cid = a.comparison_id
        WHERE {' AND '.join(ai_where)} AND hv.a_share <> 0.5
        GROUP BY a.config_id
    """
    with connection.cursor() as cur:
        cur.execute(sql, params + ai_params)
        rows = cur.fetchall()
    return {
        r[0]: {"n": int(r[1]), "agree": float(r[2] or 0), "n_hc": int(r[3] or 0), "agree_hc": float(r[4] or 0)}
        for r in rows
    }


def annotator_stats(f: Filters) -> list[dict]:
    """Per annotator (user name, or external worker id): labels, timed labels and their capped
    seconds (``formats.TIME_PER_LABEL``), gold labels and gold answers right."""
    t = _tables()
    where, params = _human_where(f)
    uname = get_user_model().USERNAME_FIELD
    sql = f"""
        SELECT COALESCE(u.{uname}, h.worker_id) AS who, COUNT(*), COUNT(h.time_taken_s),
               SUM(CASE WHEN h.time_taken_s > {formats.LABEL_SECONDS_CAP} THEN {formats.LABEL_SECONDS_CAP}
                   ELSE h.time_taken_s END),
               SUM(CASE WHEN ci.is_gold AND c.gold_choice IS NOT NULL THEN 1 ELSE 0 END),
               SUM(CASE WHEN ci.is_gold AND c.gold_choice = h.choice THEN 1 ELSE 0 END)
        FROM {t['h']} h JOIN {t['c']} c ON c.id = h.comparison_id
        {f"JOIN {t['p']} p ON p.id = c.post_id" if f.dataset else ""}
        LEFT JOIN {t['u']} u ON u.id = h.annotator_id
        LEFT JOIN {t['ci']} ci ON ci.campaign_id = h.campaign_id AND ci.comparison_id = h.comparison_id
        WHERE {where}
        GROUP BY COALESCE(u.{uname}, h.worker_id)
        ORDER BY COUNT(*) DESC
    """
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    keys = ["who", "n", "n_timed", "total_s", "n_gold", "gold_ok"]
    return [dict(zip(keys, r)) for r in rows]


def policies(ids) -> dict[int, Policy]:
    return {p.pk: p for p in Policy.objects.filter(pk__in=list(ids))}


def labeler_configs(ids=None) -> dict[int, LabelerConfig]:
    qs = LabelerConfig.objects.all() if ids is None else LabelerConfig.objects.filter(pk__in=list(ids))
    return {c.pk: c for c in qs}


def policy_by_name(name: str) -> Policy | None:
    return Policy.objects.filter(name=name).first()


def cell_comparisons(f: Filters, policy_x: int, policy_y: int, judge: str, limit: int = 50) -> list[dict]:
    """The comparisons behind one win-rate cell (x vs y, either canonical order), newest first."""
    pair = Q(summary_a__policy_id=policy_x, summary_b__policy_id=policy_y) | Q(
        summary_a__policy_id=policy_y, summary_b__policy_id=policy_x
    )
    qs = Comparison.objects.filter(pair)
    if f.dataset:
        qs = qs.filter(post__dataset__name=f.dataset)
    if judge.startswith("config:"):
        ids = ai_labels(f).filter(config_id=int(judge.split(":", 1)[1]), p_a__isnull=False).values("comparison_id")
    else:
        ids = human_labels(f).values("comparison_id")
    qs = (
        qs.filter(pk__in=ids)
        .select_related("post", "summary_a", "summary_b")
        .order_by("-pk")[:limit]
    )
    comps = list(qs)
    cids = [c.pk for c in comps]
    humans: dict[int, list] = {}
    for cid, choice, conf in human_labels(f).filter(comparison_id__in=cids).values_list("comparison_id", "choice", "confidence"):
        humans.setdefault(cid, []).append((choice, conf))
    ais: dict[int, list] = {}
    labels = ai_labels(f).filter(comparison_id__in=cids).order_by("config__name", "pk")
    for cid, cfg_id, cfg, p_a in labels.values_list("comparison_id", "config_id", "config__name", "p_a"):
        ais.setdefault(cid, []).append((cfg_id, cfg, p_a))
    judge_cfg = int(judge.split(":", 1)[1]) if judge.startswith("config:") else None
    out = []
    for c in comps:
        x_is_a = c.summary_a.policy_id == policy_x
        out.append({
            "comparison": c, "post": c.post, "a_is": "x" if x_is_a else "y",
            "text_x": c.summary_a.text if x_is_a else c.summary_b.text,
            "text_y": c.summary_b.text if x_is_a else c.summary_a.text,
            "humans": [("x" if (ch == 0) == x_is_a else "y", conf) for ch, conf in humans.get(c.pk, [])],
            "ai": [_ai_side(name, p_a, x_is_a, cfg_id == judge_cfg) for cfg_id, name, p_a in ais.get(c.pk, [])],
        })
    return out


def _ai_side(name: str, p_a: float | None, x_is_a: bool, selected: bool) -> dict:
    """One AI label of a drill-down row: its stored P(A), and the side its verdict took."""
    if p_a is None:
        side = None
    elif p_a == 0.5:
        side = "tie"
    else:
        side = "x" if (p_a > 0.5) == x_is_a else "y"
    return {"name": name, "p_a": p_a, "side": side, "selected": selected}


# --- row loaders (per-label arrays of one filter set: the routing page, benchmarks) -----------


def sql_columns(sql: str, params, names: list[str], text: tuple[str, ...] = (), small: bool = False) -> dict[str, np.ndarray]:
    """The rows of a query as one numpy array per column (numbers as pandas infers them, NULL as
    nan; the caller sets dtypes; columns named in ``text`` stay strings). On PostgreSQL the rows
    come as CSV through COPY and pandas' C parser: a million rows in about a second, where
    fetching Python tuples takes four. ``small`` results skip that (and pandas' import)."""
    if connection.vendor == "postgresql" and not small:
        import io

        import pandas as pd

        buf = io.BytesIO()
        with connection.cursor() as cur, cur.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
            for block in copy:
                buf.write(block)
        if buf.tell():
            buf.seek(0)
            frame = pd.read_csv(buf, header=None, names=names, keep_default_na=False, na_values={n: [""] for n in names},
                                dtype={n: object for n in text})
            return {n: frame[n].to_numpy(dtype=object if n in text else None) for n in names}
        return {n: np.zeros(0, dtype=object if n in text else float) for n in names}
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    return {n: np.array([r[k] for r in rows], dtype=object) for k, n in enumerate(names)}


def _columns(qs: QuerySet, names: list[str], text: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """``sql_columns`` of a values_list query."""
    sql, params = qs.query.sql_with_params()
    return sql_columns(sql, params, names, text)


def int_column(col: np.ndarray) -> np.ndarray:
    return col.astype(np.int64) if col.dtype != object else np.array([int(v) for v in col], dtype=np.int64)


def float_column(col: np.ndarray) -> np.ndarray:
    """Floats, NULL (None, or NaN from the CSV path) as nan."""
    if col.dtype != object:
        return col.astype(float)
    return np.array([np.nan if v is None or v != v else float(v) for v in col], dtype=float)


def human_rows(f: Filters) -> dict[str, np.ndarray]:
    """One entry per human label: comparison, rater key, choice, confidence (nan if unknown)."""
    from django.db.models.functions import Coalesce

    uname = get_user_model().USERNAME_FIELD
    qs = human_labels(f).values_list("comparison_id", Coalesce(f"annotator__{uname}", "worker_id"), "choice", "confidence")
    cols = _columns(qs, ["cid", "who", "choice", "confidence"], text=("who",))
    return {"cid": int_column(cols["cid"]), "who": np.array([str(w) for w in cols["who"]], dtype=object),
            "choice": int_column(cols["choice"]).astype(float), "confidence": float_column(cols["confidence"])}


def ai_rows(f: Filters) -> dict[str, np.ndarray]:
    qs = ai_labels(f).filter(p_a__isnull=False).values_list("config_id", "comparison_id", "p_a")
    cols = _columns(qs, ["config", "cid", "p_a"])
    return {"config": int_column(cols["config"]), "cid": int_column(cols["cid"]), "p_a": float_column(cols["p_a"])}


def harmlessness_rows(f: Filters) -> dict[str, np.ndarray]:
    """One row per harmlessness judgment under the filters (dataset, dates; none belongs to a
    campaign): policy of the response, harmless (1.0 / 0.0), response length in characters."""
    if f.campaign:
        return {"policy": np.zeros(0, np.int64), "harmless": np.zeros(0), "length": np.zeros(0)}
    qs = HarmlessnessLabel.objects.all()
    if f.dataset:
        qs = qs.filter(summary__post__dataset__name=f.dataset)
    lo, hi = f._bounds()
    if lo:
        qs = qs.filter(created_at__gte=lo)
    if hi:
        qs = qs.filter(created_at__lt=hi)
    rows = list(qs.annotate(n=Length("summary__text")).values_list("summary__policy_id", "harmless", "n"))
    return {"policy": np.array([r[0] for r in rows], dtype=np.int64),
            "harmless": np.array([float(r[1]) for r in rows]), "length": np.array([float(r[2]) for r in rows])}


def comparison_rows(comparison_ids, with_texts: bool = True) -> dict[str, np.ndarray]:
    """Policies, lengths (characters), the two trivial judges' scores and optionally the texts of
    the given comparisons, in id order; `source` is what the overlap judge reads
    (`formats.overlap_source`: title and post).

    Policies, lengths and shared-word counts are the comparison's stored facts (`Comparison.len_a`
    and so on), so the worker reads no text: the trivial judges come from them
    (`metrics.trivial_judges_from_facts`). Each post's text, when asked for, is fetched once, not
    once per comparison of it.
    """
    ids = np.unique(np.asarray(comparison_ids, dtype=np.int64))
    names = ["cid", "pol_a", "pol_b", "len_a", "len_b", "overlap_a", "overlap_b"]
    qs = (Comparison.objects.filter(pk__in=_id_subquery(ids)).order_by("pk")
          .values_list("id", "policy_a_id", "policy_b_id", "len_a", "len_b", "overlap_a", "overlap_b"))
    cols = _columns(qs, names)
    res = {n: int_column(cols[n]) for n in ("cid", "pol_a", "pol_b")}
    facts = {n: float_column(cols[n]) for n in ("len_a", "len_b", "overlap_a", "overlap_b")}
    res.update(len_a=facts["len_a"], len_b=facts["len_b"])
    res.update(metrics.trivial_judges_from_facts(facts["len_a"], facts["len_b"], facts["overlap_a"], facts["overlap_b"]))
    if with_texts:
        texts = {pk: (post_id, a, b) for pk, post_id, a, b in _fetch(
            Comparison.objects.filter(pk__in=ids.tolist()).values_list("id", "post_id", "summary_a__text", "summary_b__text"))}
        rows = [texts[int(pk)] for pk in res["cid"]]
        posts = _post_texts({r[0] for r in rows})
        res.update(post=[posts[r[0]][1] for r in rows], text_a=[r[1] for r in rows], text_b=[r[2] for r in rows],
                   source=[posts[r[0]][2] for r in rows])
    return res


def _id_subquery(ids: np.ndarray):
    """`pk__in` for many ids: on PostgreSQL one array parameter (`= ANY(%s)`), not 500,000
    placeholders for the driver to split and bind."""
    if connection.vendor == "postgresql" and len(ids) > 1000:
        from django.db.models.expressions import RawSQL

        return RawSQL("SELECT unnest(%s::bigint[])", (ids.tolist(),))
    return ids.tolist()


def _post_texts(post_ids) -> dict[int, tuple[str, str, str]]:
    """{post id: (title, text, overlap source)}, one query per 20,000 posts."""
    ids, out = sorted(post_ids), {}
    for start in range(0, len(ids), 20000):
        for pk, title, text in _fetch(Post.objects.filter(pk__in=ids[start:start + 20000]).values_list("id", "title", "text")):
            out[pk] = (title, text, formats.overlap_source(title, text))
    return out


def dataset_task(f: Filters) -> str:
    if f.dataset:
        ds = Dataset.objects.filter(name=f.dataset).first()
        if ds is not None:
            return ds.task
    return "summarization"


def model_display_names(models) -> dict[str, str]:
    """What a page shows for each labeler model: an artifact's name, never a server path.

    A Hugging Face id or served model name shows as it is; a file path shows as the name of the
    registered artifact at that path (absolute or relative to ARTIFACT_ROOT), else its last part.
    """
    from pathlib import PurePath

    from django.conf import settings

    from training.models import ModelArtifact

    root = str(getattr(settings, "ARTIFACT_ROOT", "")).rstrip("/")
    paths = {m for m in models if m and (m.startswith(("/", "~", ".")) or "\\" in m)}
    wanted = paths | {m[len(root) + 1:] for m in paths if root and m.startswith(root + "/")}
    by_path = {a.path.rstrip("/"): a.name for a in ModelArtifact.objects.filter(path__in=wanted)}
    out = {}
    for m in models:
        if m not in paths:
            out[m] = m
            continue
        rel = m[len(root) + 1:] if root and m.startswith(root + "/") else m
        out[m] = by_path.get(m.rstrip("/")) or by_path.get(rel.rstrip("/")) or PurePath(m.rstrip("/")).name
    return out
