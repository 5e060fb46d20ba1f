"""Settings, read from environment variables (django-environ).

Documented variables (see README):
  SECRET_KEY, DEBUG, ALLOWED_HOSTS, DATABASE_URL, CELERY_BROKER_URL, ARTIFACT_ROOT, HTTPS,
  CSRF_TRUSTED_ORIGINS, TEST_DATABASE_NAME, DATABASE_WORK_MEM, TRAINING_MAX_PROCESSES, TRAINING_TRACKERS, TRAINING_TRACKER_DIR,
  LABELER_API_KEY_ENV_ALLOWED,
  AXES_FAILURE_LIMIT, AXES_COOLOFF_MINUTES.

With nothing set the app runs on a SQLite file and a file-system Celery broker (no servers needed);
this is for the one-command demo. Production sets DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL
(Redis), DEBUG=0, a real SECRET_KEY, ALLOWED_HOSTS and HTTPS=1.
"""
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(str(BASE_DIR / ".env"))

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))

# The key this project once shipped as its default: public, so never accepted with DEBUG=0.
PUBLISHED_SECRET_KEYS = {"django-insecure-demo-only-key-set-SECRET_KEY-in-production-0123456789"}


def _local_secret_key(path: Path) -> str:
    """A random key kept in `path` (mode 0600), created on first start; shared by every process
    that uses this VAR_DIR (the demo's web server and worker, the test suite). Creation is atomic
    (a hard link that fails if another process won the race), so all of them read the same key."""
    import os
    import secrets

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY and not DEBUG and env.bool("HTTPS", default=False):
    raise ImproperlyConfigured("SECRET_KEY is not set: production (HTTPS=1, DEBUG=0) needs SECRET_KEY, one long "
                               "random string shared by every web host")
if not SECRET_KEY:
    # No SECRET_KEY: this machine's own random key under VAR_DIR (what `make demo` uses). Several
    # web hosts must share one key, so production sets SECRET_KEY (see README).
    try:
        SECRET_KEY = _local_secret_key(VAR_DIR / "secret_key")
    except OSError as exc:
        raise ImproperlyConfigured(f"SECRET_KEY is not set and {VAR_DIR / 'secret_key'} cannot be written "
                                   f"({exc.strerror}); set SECRET_KEY to a long random string") from exc
if not DEBUG and (SECRET_KEY in PUBLISHED_SECRET_KEYS or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured("SECRET_KEY is the published demo key or shorter than 32 characters; with DEBUG=0 "
                               "set SECRET_KEY to a long random string (or unset it to use var/secret_key)")
ARTIFACT_ROOT = Path(env("ARTIFACT_ROOT", default=str(VAR_DIR / "artifacts")))
DEFAULT_LABELER_CONFIG = env("DEFAULT_LABELER_CONFIG", default="smollm2-base-0shot")
"""The labeler config preselected on the launch pages (a real model: `manage.py install_models`)."""
DATA_DIR = BASE_DIR / "data"
# The most processes (GPUs) one training run may ask for: the GPUs of one worker machine.
TRAINING_MAX_PROCESSES = env.int("TRAINING_MAX_PROCESSES", default=8)
# Experiment trackers a training run also logs to, through accelerate (off when empty): any of
# "tensorboard", "wandb", "mlflow" that is installed on the worker; files under TRAINING_TRACKER_DIR.
TRAINING_TRACKERS = env.list("TRAINING_TRACKERS", default=[])
TRAINING_TRACKER_DIR = Path(env("TRAINING_TRACKER_DIR", default=str(ARTIFACT_ROOT / "trackers")))
# Environment variables a labeler config may name as its API key (sent as a Bearer token to the
# config's base_url); an entry ending in `*` is a prefix. Never DATABASE_URL, SECRET_KEY, ...
LABELER_API_KEY_ENV_ALLOWED = env.list(
    "LABELER_API_KEY_ENV_ALLOWED", default=["RLAIF_LABELER_*", "OPENAI_API_KEY", "VLLM_API_KEY", "OLLAMA_API_KEY"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "labeling",
    "training",
    "evaluation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its 429 page
]

ROOT_URLCONF = "rlaif_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "rlaif_site.wsgi.application"
ASGI_APPLICATION = "rlaif_site.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # BEGIN IMMEDIATE makes every transaction take SQLite's write lock up front, so the
    # queue's read-then-write pick cannot interleave between processes; a busy timeout
    # makes a waiting writer block instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    # On: a request that reuses a connection first checks it (`SELECT 1`) and reconnects when the
    # server dropped it, instead of failing with a 500 on the dead connection.
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=True))
    # The dashboards' GROUP BYs hash a million label rows against the comparisons; at the server's
    # default 4 MB they spill to disk in batches and take twice as long.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "options", f"-c work_mem={env('DATABASE_WORK_MEM', default='64MB')}"
    )
if env("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A shared cache (CACHE_URL=redis://host:6379/1 in production) also fronts the session table, which
# every request reads. Without one, sessions stay in the database only: a per-process memory cache
# would keep a logged-out session alive in the other web processes.
if env("CACHE_URL", default=""):
    CACHES = {"default": env.cache("CACHE_URL")}
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one user from one
# IP address, that pair is locked out for AXES_COOLOFF_MINUTES (429 page); a success resets it.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # keep failed attempts only: no row per successful login
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "rlaif_site.security.client_ip"
# Reverse proxies in front of the app that append to X-Forwarded-For (HTTPS=1: one, e.g. nginx).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if env.bool("HTTPS", default=False) else 0)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# HTTPS=1 in production turns on every transport-security setting that `check --deploy` asks for.
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Celery -----------------------------------------------------------------------------------
# No CELERY_BROKER_URL: kombu's file-system transport, which needs no server, so the demo runs a
# real worker process with nothing else installed. Production and CI: Redis.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Tasks ack late; Redis hands an unacknowledged task to another worker after this long. A dead
    # worker is found by the job sweeper (below) within about a minute, so this only has to exceed
    # the longest task: an AI labeling task hands its job on after AI_LABELING_TASK_MAX_S. A training
    # task outliving it is redelivered; the copy sees the run's heartbeat move and drops out.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * 3600)}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Long jobs: heartbeats and the sweeper (rlaif_site/jobs.py) ---------------------------------
# Every worker runs the sweeper on a timer; a job whose heartbeat is older than JOB_STALE_S is
# marked lost and queued again from its last chunk or checkpoint, at most JOB_MAX_RECOVERIES
# times, then failed with the reason.
JOB_HEARTBEAT_S = env.float("JOB_HEARTBEAT_S", default=5.0)
JOB_STALE_S = env.float("JOB_STALE_S", default=30.0)
JOB_SWEEP_EVERY_S = env.float("JOB_SWEEP_EVERY_S", default=10.0)
JOB_MAX_RECOVERIES = env.int("JOB_MAX_RECOVERIES", default=3)
JOB_SWEEPERS = [
    "labeling.services.ai_labeling.ai_labeling_jobs_recover_stale",
    "training.services.training_runs_recover_stale",
    "evaluation.refresh_jobs.refreshes_recover_stale",
    "evaluation.experiments.experiments_recover_stale",
    "labeling.services.import_jobs.import_jobs_recover_stale",
]
# A dataset holding more rows than this (posts, summaries, comparisons, labels) is not deleted from
# the admin (a request that deletes 100k rows times out); a dataset with human labels never is:
# archive it instead.
DATASET_DELETE_MAX_ROWS = env.int("DATASET_DELETE_MAX_ROWS", default=5000)
# An AI labeling job is split into chunks that any gpu worker leases; this many tasks are queued
# per job (the most workers that can share it), and a task hands the job on after this long.
AI_LABELING_PARALLEL = env.int("AI_LABELING_PARALLEL", default=8)
AI_LABELING_TASK_MAX_S = env.float("AI_LABELING_TASK_MAX_S", default=1800.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}, "axes": {"level": "WARNING"}},
}
