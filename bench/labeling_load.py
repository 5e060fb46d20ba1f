"""Load benchmark of the human rating queue: real HTTP against gunicorn on PostgreSQL.

    DATABASE_URL=postgres://rlaif:rlaif@127.0.0.1:5432/rlaif \\
        .venv/bin/python bench/labeling_load.py --annotators 50 --seconds 30

What it does, in order:
1. Uses its own database `rlaif_bench_load` on the server of DATABASE_URL (created if missing,
   migrated; never touches the database DATABASE_URL names), and seeds it once with the shipped
   TL;DR data: the human comparisons plus (reference TL;DR, 1.3B PPO sample) pairs, ~3,000 pairs.
2. Creates a fresh campaign over all pairs (overlap --overlap, default 3) and C fresh annotators,
   logs each in (a server-side session, as Django's test client `force_login` makes; the
   password hasher is deliberately left out of a queue benchmark) and fetches the rating page
   over HTTP to get the CSRF cookie.
3. Starts its own gunicorn (sync workers, --workers, app preloaded, CONN_MAX_AGE=60) and first
   runs the baseline in the same run: C clients hammering `/healthz` (the HTTP + Django floor,
   no database) for a few seconds.
4. C client threads each loop with no think time:
      POST /labeling/api/campaigns/<id>/next          -> {"assignment": id, ...}
      POST /labeling/api/assignments/<id>/submit      preferred=left|right, certainty=1..4
   both with the session cookie and the X-CSRFToken header, over keep-alive stdlib http.client.
5. Stops gunicorn and checks the database: every acknowledged label is stored (`lost`), no
   (pair, annotator) is stored twice (`duplicated`), no pair has more labels than its overlap
   (`over_labeled`), and each pair's n_done counter equals its label rows (`counter_mismatch`).

The last line printed is one JSON object with labels_per_s, p50_next_ms, p99_next_ms,
p50_submit_ms, p99_submit_ms, errors, lost, duplicated, over_labeled (plus context: the baseline,
server CPU ms per label, concurrency, workers). The load generator shares the machine's cores
with gunicorn and PostgreSQL, as in the issue's measurement.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
BENCH_DB = "rlaif_bench_load"
DATASET = "bench-tldr"


def _bench_database_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit(f"DATABASE_URL must be PostgreSQL, got scheme {parts.scheme!r}")
    return urlunsplit(parts._replace(path="/" + name))


def _ensure_database(url: str, name: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def _setup_django(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlaif_site.settings")
    os.environ["DEBUG"] = "0"
    os.environ.pop("TEST_DATABASE_NAME", None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _seed_dataset() -> int:
    """The shipped TL;DR pairs, inserted in bulk once (digests computed as the models' save() does)."""
    from django.db import transaction

    from labeling.models import Comparison, Dataset, Policy, Post, Summary, text_digest

    ds, created = Dataset.objects.get_or_create(name=DATASET, defaults={"source": "data/ (bench seed)"})
    if not created and Comparison.objects.filter(post__dataset=ds).exists():
        return Comparison.objects.filter(post__dataset=ds).count()
    posts: dict[str, dict] = {}
    pairs: list[tuple[str, tuple[str, str], tuple[str, str]]] = []
    for line in open(REPO / "data" / "tldr_comparisons_sample.jsonl", encoding="utf-8"):
        r = json.loads(line)
        posts.setdefault(r["post_id"], {"subreddit": r["subreddit"] or "", "title": r["title"] or "", "text": r["post"]})
        pairs.append((r["post_id"], (r["policy_a"] or "unknown-a", r["summary_a"]), (r["policy_b"] or "unknown-b", r["summary_b"])))
    for line in open(REPO / "data" / "tldr_sft_reference_summaries.jsonl", encoding="utf-8"):
        r = json.loads(line)
        key = "ref-" + r["id"]
        posts.setdefault(key, {"subreddit": r["subreddit"] or "", "title": r["title"] or "", "text": r["post"]})
        pairs.append((key, ("reference", r["summary"]), (r["policy"] or "policy", r["policy_summary"])))
    with transaction.atomic():
        policies = {}
        for _, (pa, _), (pb, _) in pairs:
            for name in (pa, pb):
                if name not in policies:
                    policies[name] = Policy.objects.get_or_create(name=f"bench:{name}")[0]
        post_objs = [
            Post(dataset=ds, external_id=k, content_sha256=Post.content_digest(v["subreddit"], v["title"], v["text"]), **v)
            for k, v in posts.items() if v["text"]
        ]
        Post.objects.bulk_create(post_objs, batch_size=1000)
        post_ids = dict(Post.objects.filter(dataset=ds).values_list("external_id", "pk"))
        summaries: dict[tuple, Summary] = {}
        for post_key, *sides in pairs:
            if post_key not in post_ids:
                continue
            for policy, text in sides:
                if text and (post_key, policy, text) not in summaries:
                    summaries[(post_key, policy, text)] = Summary(
                        post_id=post_ids[post_key], policy=policies[policy], text=text, text_sha256=text_digest(text)
                    )
        Summary.objects.bulk_create(list(summaries.values()), batch_size=1000)
        ids = {
            (pk_post, pol, sha): pk
            for pk, pk_post, pol, sha in Summary.objects.filter(post__dataset=ds).values_list("pk", "post_id", "policy_id", "text_sha256")
        }
        comps, seen = [], set()
        for post_key, (pa, ta), (pb, tb) in pairs:
            if post_key not in post_ids or not ta or not tb:
                continue
            pid = post_ids[post_key]
            a = ids[(pid, policies[pa].pk, text_digest(ta))]
            b = ids[(pid, policies[pb].pk, text_digest(tb))]
            lo, hi = min(a, b), max(a, b)
            if lo != hi and (lo, hi) not in seen:
                seen.add((lo, hi))
                comps.append(Comparison(post_id=pid, summary_a_id=lo, summary_b_id=hi))
        Comparison.objects.bulk_create(comps, batch_size=1000)
    return len(comps)


def _make_campaign_and_sessions(c: int, overlap: int, run: str):
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from labeling.services.assignments import campaign_create

    User = get_user_model()
    users = [User(username=f"bench-{run}-{i}") for i in range(c)]
    for u in users:
        u.set_unusable_password()
    User.objects.bulk_create(users)
    users = list(User.objects.filter(username__startswith=f"bench-{run}-").order_by("pk"))
    campaign = campaign_create(name=f"bench {run}", dataset=DATASET, overlap=overlap, annotators=users,
                               lease_seconds=600, seed=0)
    sessions = []
    for u in users:
        s = SessionStore()
        s[SESSION_KEY] = str(u.pk)
        s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        s[HASH_SESSION_KEY] = u.get_session_auth_hash()
        s.create()
        sessions.append(s.session_key)
    return campaign, users, sessions, settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(db_url: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "DEBUG": "0", "CONN_MAX_AGE": os.environ.get("CONN_MAX_AGE", "60"),
           "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "rlaif_site.settings"}
    env.pop("TEST_DATABASE_NAME", None)
    cmd = [sys.executable, "-m", "gunicorn", "rlaif_site.wsgi:application", "-b", f"127.0.0.1:{port}",
           "-w", str(workers), "-k", "sync", "--preload", "--backlog", "2048", "--timeout", "60",
           "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited with {proc.returncode}")
    proc.kill()
    sys.exit("gunicorn did not come up within 120 s")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _db_backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the benchmark database (same host)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database])
        pids = [r[0] for r in cur.fetchall()]
    connection.close()
    return {pid: _proc_cpu(pid) for pid in pids}


def _cpu_seconds(pid: int) -> float:
    """utime+stime of a process and its live children (gunicorn master and workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


class Client:
    """One annotator: a keep-alive HTTP connection with session cookie and CSRF token."""

    def __init__(self, port: int, session_key: str, session_cookie: str, csrf_cookie: str):
        self.port, self.conn = port, http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies = {session_cookie: session_key}
        self.csrf_cookie, self.csrf = csrf_cookie, ""

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        data = None
        if method == "POST":
            headers["X-CSRFToken"] = self.csrf
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(body or {})
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # the server closed an idle keep-alive socket: reconnect once
                if attempt:
                    raise
        for header, value in resp.getheaders():
            if header.lower() == "set-cookie":
                m = re.match(r"([^=]+)=([^;]*)", value)
                if m:
                    self.cookies[m.group(1)] = m.group(2)
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return resp.status, payload

    def login_csrf(self, page: str) -> None:
        status, _ = self.request("GET", page)
        if status != 200 or self.csrf_cookie not in self.cookies:
            raise RuntimeError(f"GET {page}: status {status}, no CSRF cookie")
        self.csrf = self.cookies[self.csrf_cookie]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _baseline(port: int, c: int, seconds: float) -> dict:
    stop, lat, errors = time.monotonic() + seconds, [], [0]
    lock = threading.Lock()

    def loop():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                conn.request("GET", "/healthz")
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    raise RuntimeError(r.status)
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
            except Exception:  # noqa: BLE001 - counted
                conn.close()
                with lock:
                    errors[0] += 1
                continue
            mine.append((time.perf_counter() - t) * 1000)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"baseline_healthz_rps": round(len(lat) / seconds, 1), "baseline_healthz_p99_ms": round(_pct(lat, 0.99), 1),
            "baseline_errors": errors[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--annotators", "-c", type=int, required=True, help="Concurrent simulated annotators C.")
    ap.add_argument("--seconds", "-s", type=float, required=True, help="Measured duration S.")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "4")), help="gunicorn sync workers.")
    ap.add_argument("--overlap", type=int, default=3)
    ap.add_argument("--baseline-seconds", type=float, default=5.0)
    ap.add_argument("--database", default=BENCH_DB, help="Benchmark database name (created if missing).")
    args = ap.parse_args()
    if not args.database.startswith("rlaif_bench"):
        sys.exit("--database must start with 'rlaif_bench' (the benchmark writes freely into it)")
    src = os.environ.get("DATABASE_URL", "")
    if not src:
        sys.exit("set DATABASE_URL to a PostgreSQL server (the benchmark uses its own database there)")
    db_url = _bench_database_url(src, args.database)
    _ensure_database(src, args.database)
    _setup_django(db_url)
    n_pairs = _seed_dataset()
    run = f"{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}"
    campaign, users, sessions, session_cookie, csrf_cookie = _make_campaign_and_sessions(args.annotators, args.overlap, run)
    from django.db import connection, connections

    with connection.cursor() as cur:  # statistics as autovacuum would keep them in a live system
        cur.execute("ANALYZE labeling_assignment; ANALYZE labeling_humanlabel; ANALYZE django_session")
    connections.close_all()

    port = _free_port()
    server = _start_gunicorn(db_url, port, args.workers)
    try:
        clients = [Client(port, key, session_cookie, csrf_cookie) for key in sessions]
        for cl in clients:
            cl.login_csrf(f"/labeling/campaigns/{campaign.pk}/")
        base = _baseline(port, args.annotators, args.baseline_seconds)

        lock = threading.Lock()
        next_ms, submit_ms, acked, errors, dry = [], [], {}, [0], [0]
        start_evt = threading.Event()
        t_end = [0.0]

        def annotate(cl: Client) -> None:
            rng = random.Random()
            my_next, my_submit, my_acked, my_err = [], [], {}, 0
            start_evt.wait()
            while time.monotonic() < t_end[0]:
                t = time.perf_counter()
                try:
                    status, body = cl.request("POST", f"/labeling/api/campaigns/{campaign.pk}/next")
                    my_next.append((time.perf_counter() - t) * 1000)
                    if status != 200:
                        my_err += 1
                        continue
                    assignment = json.loads(body)["assignment"]
                    if assignment is None:
                        with lock:
                            dry[0] += 1
                        break
                    form = {"preferred": rng.choice(("left", "right")), "certainty": rng.randint(1, 4)}
                    t = time.perf_counter()
                    status, body = cl.request("POST", f"/labeling/api/assignments/{assignment}/submit", form)
                    if time.monotonic() <= t_end[0]:
                        my_submit.append((time.perf_counter() - t) * 1000)
                    if status not in (200, 201):
                        my_err += 1
                        continue
                    my_acked[json.loads(body)["label"]] = assignment
                except Exception:  # noqa: BLE001 - counted as an error
                    my_err += 1
            with lock:
                next_ms.extend(my_next)
                submit_ms.extend(my_submit)
                acked.update(my_acked)
                errors[0] += my_err

        threads = [threading.Thread(target=annotate, args=(cl,)) for cl in clients]
        for t in threads:
            t.start()
        cpu0 = _cpu_seconds(server.pid)
        db0 = _db_backend_cpu(args.database)
        self0 = time.process_time()
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        t_end[0] = t0 + args.seconds
        start_evt.set()
        for t in threads:
            t.join()
        elapsed = max(time.monotonic() - t0, 1e-9)
        cpu1 = _cpu_seconds(server.pid)
        self1 = time.process_time()
        load1 = os.getloadavg()[0]
        db1 = _db_backend_cpu(args.database)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

    from django.db.models import Count

    from labeling.models import CampaignItem, HumanLabel

    stored = set(HumanLabel.objects.filter(campaign=campaign).values_list("pk", flat=True))
    lost = sum(1 for label_id in acked if label_id not in stored)
    groups = HumanLabel.objects.filter(campaign=campaign).values("comparison", "annotator").annotate(n=Count("pk"))
    duplicated = sum(g["n"] - 1 for g in groups if g["n"] > 1)
    per_pair = HumanLabel.objects.filter(campaign=campaign).values("comparison").annotate(n=Count("pk"))
    over = sum(1 for g in per_pair if g["n"] > campaign.overlap)
    counts = {g["comparison"]: g["n"] for g in per_pair}
    mismatch = sum(1 for c, n in CampaignItem.objects.filter(campaign=campaign).values_list("comparison", "n_done")
                   if counts.get(c, 0) != n)
    labels = len(acked)
    result = {
        "labels_per_s": round(labels / elapsed, 1),
        "p50_next_ms": round(statistics.median(next_ms), 1) if next_ms else None,
        "p99_next_ms": round(_pct(next_ms, 0.99), 1),
        "p50_submit_ms": round(statistics.median(submit_ms), 1) if submit_ms else None,
        "p99_submit_ms": round(_pct(submit_ms, 0.99), 1),
        "errors": errors[0],
        "lost": lost,
        "duplicated": duplicated,
        "over_labeled": over,
        "counter_mismatch": mismatch,
        "labels": labels,
        "annotators": args.annotators,
        "seconds": round(elapsed, 1),
        "server_cpu_ms_per_label": round(1000 * (cpu1 - cpu0) / labels, 1) if labels else None,
        "db_cpu_ms_per_label": round(1000 * sum(v - db0.get(k, 0.0) for k, v in db1.items()) / labels, 1) if labels else None,
        "loadgen_cpu_ms_per_label": round(1000 * (self1 - self0) / labels, 1) if labels else None,
        "machine_load_avg_1m": [round(load0, 2), round(load1, 2)],
        "queue_ran_dry": dry[0] > 0,
        "workers": args.workers,
        "overlap": campaign.overlap,
        "pairs": n_pairs,
        "cpus": os.cpu_count(),
        **base,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
