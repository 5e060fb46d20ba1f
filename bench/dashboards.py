"""Benchmark: evaluation dashboards at 1,000,000 human labels over 50 policies, in PostgreSQL.

Creates its own database (default ``rlaif_bench_dash`` on DATABASE_URL's server), migrates it and
fills it with COPY: 50,000 posts, 500,000 summaries, 500,000 comparisons, 2 human labels per
comparison (1,000,000) and 200,000 AI labels from two labeler configs, with preferences drawn
from a Bradley-Terry model plus a length effect; then the comparisons' stored facts (policies,
lengths, words shared with the post) are filled as an import fills them. Then, in the same run:

1. the worker's refresh of the unfiltered set (``services.refresh_dashboard``: a new label
   snapshot, 1,000 bootstrap rounds, length control, trivial judges, agreement), stored as a
   Celery worker would (``worker_refresh_s``);
2. every dashboard page through Django's test client against that database (one cold request,
   then the median of three; ``slowest_page_ms``), and the win-rate page with 1,000 labels newer
   than the stored result;
3. the first visit of each page to a filter set nobody computed yet, a new one per page
   (``uncached_first_visit_ms``, the slowest; the first of them also loads the label snapshot into
   the process, as a fresh web process would), and the worker's refresh of a filtered set;
4. the Bradley-Terry bootstrap, 1,000 rounds, our way: the pair-outcome counts come from one SQL
   GROUP BY, each round is a multinomial draw over the count table, all rounds are fitted
   together by a batched Newton solve warm-started at the full-data fit;
5. the straightforward way on the same data: each round resamples the 1,000,000 label rows and
   refits a logistic regression (scikit-learn, the FastChat ``elo_analysis`` method) on a sparse
   design matrix of the rows.  It runs ``--naive-rounds`` rounds and extrapolates to 1,000
   (stated in the output as ``naive_extrapolated``).

The last line printed is one JSON object with ``slowest_page_ms``, ``uncached_first_visit_ms``,
``worker_refresh_s``, ``bootstrap_s`` and ``naive_bootstrap_s`` plus per-page times.

    .venv/bin/python bench/dashboards.py [--rebuild] [--labels 1000000] [--policies 50] [--naive-rounds 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VOCAB = [f"w{n}" for n in range(3000)]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_database(server_url: str, name: str, rebuild: bool) -> str:
    """Create the bench database on the server of ``server_url``; returns its URL."""
    import psycopg

    parts = urlsplit(server_url)
    admin = urlunsplit((parts.scheme.replace("postgres", "postgresql", 1) if parts.scheme == "postgres" else parts.scheme,
                        parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and rebuild:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


def copy_rows(cursor, table: str, columns: list[str], lines: list[str]) -> None:
    data = ("\n".join(lines) + "\n").encode()
    cursor = getattr(cursor, "cursor", cursor)  # Django's wrapper -> the psycopg cursor
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for start in range(0, len(data), 8 << 20):
            cp.write(data[start:start + (8 << 20)])


def build(n_labels: int, n_policies: int, seed: int = 0) -> dict:
    """Generate and COPY the bench data; returns its sizes."""
    from django.db import connection

    from labeling.models import (AILabel, Comparison, Dataset, HumanLabel, LabelerConfig, Policy, Post,
                                 PolicyKind, Summary)

    rng = np.random.default_rng(seed)
    per_post = 10  # summaries per post, and comparisons per post
    n_comparisons = n_labels // 2
    n_posts = n_comparisons // per_post
    kinds = [PolicyKind.SFT, PolicyKind.RLHF, PolicyKind.RLAIF, PolicyKind.IMPORTED, PolicyKind.DIRECT_RLAIF]
    ds = Dataset.objects.create(name="bench", source="bench/dashboards.py synthetic data")
    Policy.objects.bulk_create([Policy(name=f"policy-{k:02d}", kind=kinds[k % len(kinds)]) for k in range(n_policies)])
    pol_ids = np.array(sorted(Policy.objects.values_list("id", flat=True)))
    strength = np.sort(rng.normal(0, 0.6, n_policies))
    mean_words = 14 + 4 * strength  # stronger policies write a little longer, as RL policies do
    good = LabelerConfig.objects.create(name="bench-judge", model="bench", preamble="detailed", chain_of_thought=True)
    noise = LabelerConfig.objects.create(name="bench-noise", model="bench", is_noise=True)
    now = "2026-01-01 00:00:00+00"

    t0 = time.perf_counter()
    post_words = rng.integers(0, len(VOCAB), (n_posts, 40))
    post_text = [" ".join(VOCAB[i] for i in row) for row in post_words]
    post_id0 = 1
    lines = []
    for n, text in enumerate(post_text):
        digest = hashlib.sha256("\x1f".join(["bench", f"post {n}", text]).encode()).hexdigest()
        lines.append(f"{post_id0 + n}\t{ds.pk}\tp{n}\tbench\tpost {n}\t{text}\t{digest}\t{now}")
    with connection.cursor() as cur:
        copy_rows(cur, Post._meta.db_table,
                  ["id", "dataset_id", "external_id", "subreddit", "title", "text", "content_sha256", "created_at"], lines)
    log(f"posts: {n_posts} in {time.perf_counter() - t0:.1f}s")

    # summaries: each post gets `per_post` distinct policies
    t0 = time.perf_counter()
    pol_of = np.argsort(rng.random((n_posts, n_policies)), axis=1)[:, :per_post]  # policy index per slot
    n_words = np.maximum(3, rng.poisson(mean_words[pol_of]))
    lines, lengths = [], np.zeros((n_posts, per_post))
    sid = 0
    for p in range(n_posts):
        pw = post_words[p]
        for k in range(per_post):
            m = int(n_words[p, k])
            from_post = rng.random(m) < 0.5
            idx = np.where(from_post, pw[rng.integers(0, 40, m)], rng.integers(0, len(VOCAB), m))
            text = " ".join(VOCAB[i] for i in idx) + f" s{sid}"
            lengths[p, k] = len(text)
            sid += 1
            lines.append(f"{sid}\t{post_id0 + p}\t{pol_ids[pol_of[p, k]]}\t{text}\t"
                         f"{hashlib.sha256(text.encode()).hexdigest()}\tf\t{now}")
    with connection.cursor() as cur:
        copy_rows(cur, Summary._meta.db_table,
                  ["id", "post_id", "policy_id", "text", "text_sha256", "is_reference", "created_at"], lines)
    log(f"summaries: {sid} in {time.perf_counter() - t0:.1f}s")

    # comparisons: `per_post` distinct pairs of each post's summaries
    t0 = time.perf_counter()
    pairs = np.array([(i, j) for i in range(per_post) for j in range(i + 1, per_post)])
    pick = np.argsort(rng.random((n_posts, len(pairs))), axis=1)[:, :per_post]
    ki, kj = pairs[pick][..., 0], pairs[pick][..., 1]  # (n_posts, per_post) slot indices, ki < kj
    base = (np.arange(n_posts) * per_post + 1)[:, None]
    sa, sb = (base + ki).ravel(), (base + kj).ravel()  # ids increase with the slot: canonical a < b
    post_of = np.repeat(np.arange(n_posts) + post_id0, per_post)
    rows_p = np.repeat(np.arange(n_posts), per_post)
    pa, pb = pol_of[rows_p, ki.ravel()], pol_of[rows_p, kj.ravel()]
    la, lb = lengths[rows_p, ki.ravel()], lengths[rows_p, kj.ravel()]
    nc = len(sa)
    lines = [f"{n + 1}\t{post_of[n]}\t{sa[n]}\t{sb[n]}\t\\N\t{now}" for n in range(nc)]
    with connection.cursor() as cur:
        copy_rows(cur, Comparison._meta.db_table, ["id", "post_id", "summary_a_id", "summary_b_id", "gold_choice", "created_at"], lines)
    log(f"comparisons: {nc} in {time.perf_counter() - t0:.1f}s")

    # human labels: two per comparison, Bradley-Terry plus a preference for longer summaries
    t0 = time.perf_counter()
    logit = strength[pa] - strength[pb] + 0.8 * np.tanh((la - lb) / 40)
    p_a = 1 / (1 + np.exp(-logit))
    cid = np.repeat(np.arange(nc) + 1, 2)
    choice = (rng.random(2 * nc) >= np.repeat(p_a, 2)).astype(int)  # 0 = A preferred
    conf = np.where(choice == 0, rng.integers(1, 5, 2 * nc), rng.integers(6, 10, 2 * nc))
    worker = rng.integers(0, 300, 2 * nc)
    secs = rng.integers(0, 60 * 86400, 2 * nc)
    took = rng.integers(15, 180, 2 * nc)
    day0 = np.datetime64("2026-01-01T00:00:00")
    stamps = (day0 + secs.astype("timedelta64[s]")).astype(str)
    lines = [f"{n + 1}\t{cid[n]}\t\\N\tw{worker[n]}\t\\N\t{choice[n]}\t{conf[n]}\t\\N\t{took[n]}\t\t\t\\N\t{stamps[n]}+00"
             for n in range(2 * nc)]
    with connection.cursor() as cur:
        copy_rows(cur, HumanLabel._meta.db_table,
                  ["id", "comparison_id", "annotator_id", "worker_id", "campaign_id", "choice", "confidence",
                   "a_shown_first", "time_taken_s", "note_a", "note_b", "import_key", "created_at"], lines)
    log(f"human labels: {2 * nc} in {time.perf_counter() - t0:.1f}s")

    # AI labels: two configs on 100,000 comparisons each
    t0 = time.perf_counter()
    lines, n_ai = [], 0
    for cfg, sharp in ((good, 2.0), (noise, 0.0)):
        sel = rng.choice(nc, size=min(100_000, nc), replace=False)
        z = sharp * logit[sel] + rng.normal(0, 0.7, len(sel))
        ab = 1 / (1 + np.exp(-(z + 0.3)))
        ba = 1 / (1 + np.exp(-(z - 0.3)))
        avg = (ab + ba) / 2
        for k, c in enumerate(sel):
            n_ai += 1
            cons = "t" if (ab[k] > 0.5) == (ba[k] > 0.5) else "f"
            lines.append(f"{n_ai}\t{c + 1}\t{cfg.pk}\t\\N\t{avg[k]:.6f}\t{ab[k]:.6f}\t{ba[k]:.6f}\t{cons}\t[]\t"
                         f"{400 + k % 200}\t1\tf\t\tlogits\t{now}")
    with connection.cursor() as cur:
        copy_rows(cur, AILabel._meta.db_table,
                  ["id", "comparison_id", "config_id", "job_id", "p_a", "p_a_ab", "p_a_ba", "consistent", "rationales",
                   "prompt_tokens", "completion_tokens", "truncated", "error", "score_method", "created_at"], lines)
    log(f"AI labels: {n_ai} in {time.perf_counter() - t0:.1f}s")

    with connection.cursor() as cur:
        for model in (Post, Summary, Comparison, HumanLabel, AILabel):
            t = model._meta.db_table
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM {t}))")
    # COPY went around the ORM, which stores each comparison's facts (policies, lengths, words
    # shared with the post) as an import does: fill them the way the service does for such rows
    from labeling.services.comparison_facts import comparison_facts_fill

    t0 = time.perf_counter()
    log(f"comparison facts: {comparison_facts_fill()} filled in {time.perf_counter() - t0:.1f}s")
    with connection.cursor() as cur:
        for model in (Post, Summary, Comparison, HumanLabel, AILabel):
            cur.execute(f"ANALYZE {model._meta.db_table}")
    return {"n_human": 2 * nc, "n_ai": n_ai}


def naive_bootstrap(a: np.ndarray, b: np.ndarray, s: np.ndarray, P: int, rounds: int, seed: int = 1):
    """FastChat-style: resample the label rows, refit a logistic regression on them, each round."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    N = len(a)
    thetas, times = [], []

    def fit(idx):
        aa, bb, ss = a[idx], b[idx], s[idx]
        tie = ss == 0.5
        # ties enter as one win each way with half weight
        aa = np.concatenate([aa, aa[tie]])
        bb = np.concatenate([bb, bb[tie]])
        y = np.concatenate([(ss >= 0.5).astype(int), np.zeros(tie.sum(), int)])
        w = np.concatenate([np.where(tie, 0.5, 1.0), np.full(tie.sum(), 0.5)])
        n = len(aa)
        rows = np.repeat(np.arange(n), 2)
        cols = np.stack([aa, bb], axis=1).ravel()
        vals = np.tile([1.0, -1.0], n)
        X = csr_matrix((vals, (rows, cols)), shape=(n, P))
        lr = LogisticRegression(fit_intercept=False, C=1e6, tol=1e-6, max_iter=200)
        lr.fit(X, y, sample_weight=w)
        th = lr.coef_[0]
        return th - th.mean()

    full = fit(np.arange(N))
    for _ in range(rounds):
        t0 = time.perf_counter()
        thetas.append(fit(rng.integers(0, N, N)))
        times.append(time.perf_counter() - t0)
    return full, np.array(thetas), times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=int, default=1_000_000, help="human labels")
    ap.add_argument("--policies", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--naive-rounds", type=int, default=3, help="naive rounds actually run (then extrapolated)")
    ap.add_argument("--repeats", type=int, default=3, help="timed requests per page after the cold one")
    ap.add_argument("--db-name", default="rlaif_bench_dash")
    ap.add_argument("--rebuild", action="store_true", help="drop and refill the bench database")
    args = ap.parse_args()

    server = os.environ.get("DATABASE_URL", "postgres://rlaif:rlaif@127.0.0.1:5432/rlaif")
    if not server.startswith("postgres"):
        sys.exit("bench/dashboards.py needs a PostgreSQL DATABASE_URL (its server hosts the bench database)")
    os.environ["DATABASE_URL"] = ensure_database(server, args.db_name, args.rebuild)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlaif_site.settings")
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from evaluation import metrics, selectors, services
    from labeling.models import HumanLabel, LabelerConfig

    setup_test_environment()  # lets the test client run against this database; DEBUG stays off
    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    n_human = HumanLabel.objects.count()
    if n_human != args.labels:
        if n_human:
            sys.exit(f"{args.db_name} holds {n_human} labels, not {args.labels}: rerun with --rebuild")
        build(args.labels, args.policies)
    data_s = time.perf_counter() - t0
    from labeling.models import AILabel

    n_ai = AILabel.objects.count()
    log(f"data ready in {data_s:.1f}s: {HumanLabel.objects.count()} human, {n_ai} AI labels")

    f = selectors.Filters()
    t0 = time.perf_counter()
    services.refresh_dashboard(filters=f, rounds=args.rounds)
    worker_s = time.perf_counter() - t0
    log(f"worker refresh (all judges, {args.rounds} rounds, trivial judges, agreement): {worker_s:.1f}s")

    User = get_user_model()
    user = User.objects.filter(username="bench").first() or User.objects.create_user("bench", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    judge = f"config:{LabelerConfig.objects.get(name='bench-judge').pk}"
    pages = {
        "alignment": (reverse("evaluation:alignment"), {}),
        "winrates": (reverse("evaluation:winrates"), {}),
        "winrates_ai_judge": (reverse("evaluation:winrates"), {"judge": judge}),
        "winrates_trivial_judge": (reverse("evaluation:winrates"), {"judge": "trivial:overlap"}),
        "leaderboard": (reverse("evaluation:leaderboard"), {}),
        "annotators": (reverse("evaluation:annotators"), {}),
        "winrate_cell": (reverse("evaluation:winrate_cell"), {"x": 1, "y": 2}),
        "export_winrates_csv": (reverse("evaluation:export", args=["winrates", "winrates", "csv"]), {}),
    }
    page_ms, cold_ms = {}, {}
    for name, (url, params) in pages.items():
        t0 = time.perf_counter()
        r = client.get(url, params)
        cold_ms[name] = 1000 * (time.perf_counter() - t0)
        assert r.status_code == 200, (name, r.status_code)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r = client.get(url, params)
            times.append(1000 * (time.perf_counter() - t0))
        page_ms[name] = round(statistics.median(times), 1)
        log(f"page {name}: {page_ms[name]:.0f} ms (cold {cold_ms[name]:.0f} ms)")

    # the live path: 1,000 labels written after the worker's watermark are added by a GROUP BY
    # over just those rows
    from labeling.models import HumanLabel as HL

    comp_ids = list(HL.objects.order_by("-id").values_list("comparison_id", flat=True)[:1000])
    new = HL.objects.bulk_create([HL(comparison_id=c, worker_id="bench-new", choice=n % 2, confidence=5 if n % 2 else 4)
                                  for n, c in enumerate(comp_ids)])
    try:
        client.get(reverse("evaluation:winrates"))
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r = client.get(reverse("evaluation:winrates"))
            times.append(1000 * (time.perf_counter() - t0))
        assert b"Labels changed" in r.content
        page_ms["winrates_with_1000_new_labels"] = round(statistics.median(times), 1)
        log(f"page winrates with 1,000 labels newer than the cache: {page_ms['winrates_with_1000_new_labels']:.0f} ms")
    finally:
        HL.objects.filter(pk__in=[x.pk for x in new]).delete()

    # not a steady state, reported apart: the first visit of each page to a filter set nobody
    # computed yet (a date range covering every label, a new one per page). It runs the page's
    # GROUP BYs over all rows, computes alignment, trivial judges and ratings from the label
    # snapshot, and queues the worker. The snapshot is dropped from this process first, so the
    # first of these visits also pays for loading it, as a fresh web process would.
    from evaluation import snapshot

    snapshot._LOADED[:] = [None, None]
    first_visit_ms = {}
    for n, (name, (url, params)) in enumerate(pages.items()):
        if name in ("winrate_cell", "export_winrates_csv"):
            continue
        t0 = time.perf_counter()
        r = client.get(url, {**params, "date_from": f"2025-11-{n + 1:02d}"})
        first_visit_ms[name] = round(1000 * (time.perf_counter() - t0), 1)
        assert r.status_code == 200
        assert name == "annotators" or r.context["state"].partial, name
        log(f"first visit of {name} to an uncomputed filter set: {first_visit_ms[name]:.0f} ms")
    uncached_ms = max(first_visit_ms.values())

    # the worker's refresh of a filtered set (a new snapshot too, masked: exact after deletions)
    t0 = time.perf_counter()
    services.refresh_dashboard(filters=selectors.Filters(date_from=dt.date(2026, 1, 15)), rounds=args.rounds)
    worker_filtered_s = time.perf_counter() - t0
    log(f"worker refresh of a filtered set: {worker_filtered_s:.1f}s")

    # Bradley-Terry bootstrap, ours: counts from SQL, multinomial over counts, batched Newton
    t0 = time.perf_counter()
    counts = selectors.human_pair_counts(f)
    counts_s = time.perf_counter() - t0
    pol = sorted({c[0] for c in counts} | {c[1] for c in counts})
    index = {p: n for n, p in enumerate(pol)}
    a = np.array([index[c[0]] for c in counts])
    b = np.array([index[c[1]] for c in counts])
    score = np.array([1.0 - c[2] for c in counts])
    weights = np.array([c[3] for c in counts])
    pc = metrics.PairCounts.from_outcomes(len(pol), np.repeat(a, weights), np.repeat(b, weights), np.repeat(score, weights))
    t0 = time.perf_counter()
    fast = metrics.bootstrap_bradley_terry(pc, rounds=args.rounds, prior=0.0)
    bootstrap_s = time.perf_counter() - t0
    log(f"bootstrap (ours): counts SQL {counts_s:.2f}s, {args.rounds} rounds {bootstrap_s:.2f}s")

    # naive: rows from the database, per-round refit on all rows
    t0 = time.perf_counter()
    H = selectors.human_rows(f)
    C = selectors.comparison_rows(H["cid"], with_texts=False)
    pos = np.searchsorted(C["cid"], H["cid"])
    ra = np.searchsorted(pol, C["pol_a"][pos])
    rb = np.searchsorted(pol, C["pol_b"][pos])
    rows_s = time.perf_counter() - t0
    full, boot, times = naive_bootstrap(ra, rb, 1.0 - H["choice"], len(pol), args.naive_rounds)
    per_round = float(np.mean(times))
    naive_s = per_round * args.rounds
    diff = float(np.max(np.abs(full - fast["theta"])))
    log(f"naive: rows load {rows_s:.1f}s, {per_round:.2f}s per round -> {naive_s:.0f}s per {args.rounds} "
        f"(extrapolated from {args.naive_rounds}); max |theta_naive - theta_ours| = {diff:.2e}")

    out = {
        "slowest_page_ms": round(max(page_ms.values()), 1),
        "bootstrap_s": round(bootstrap_s, 3),
        "naive_bootstrap_s": round(naive_s, 1),
        "pages_ms": page_ms,
        "cold_pages_ms": {k: round(v, 1) for k, v in cold_ms.items()},
        "uncached_first_visit_ms": round(uncached_ms, 1),
        "uncached_first_visit_pages_ms": first_visit_ms,
        "bootstrap_rounds": args.rounds,
        "bootstrap_counts_sql_s": round(counts_s, 3),
        "naive_rounds_run": args.naive_rounds,
        "naive_per_round_s": round(per_round, 3),
        "naive_extrapolated": args.naive_rounds < args.rounds,
        "naive_rows_load_s": round(rows_s, 1),
        "max_abs_theta_diff_naive_vs_ours": diff,
        "worker_refresh_s": round(worker_s, 1),
        "worker_refresh_filtered_s": round(worker_filtered_s, 1),
        "human_labels": HumanLabel.objects.count(),
        "ai_labels": n_ai,
        "policies": len(pol),
        "data_build_s": round(data_s, 1),
        "database": args.db_name,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
