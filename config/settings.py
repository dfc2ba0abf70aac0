"""Settings for the advance-funding engine.

Everything comes from the environment. DJANGO_ENV selects the profile:
- ``local``: `make run` on a developer's machine; DEBUG may be on, a throwaway secret key is allowed.
- ``test``: `make test`; fast password hashing, loopback webhooks allowed.
- ``production`` (the default): DEBUG off, and the secret key, allowed hosts and HTTPS settings are required.

`deploy/env.example` lists every setting production needs (docs/deployment.md section 3). DJANGO_ENV_FILE names
a KEY=VALUE file read for what the environment does not set (`manage.py` by hand on a host:
DJANGO_ENV_FILE=/etc/advance-engine/env, the file systemd gives the services); default: the untracked `.env`.
"""

import base64
import ipaddress
import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from config.env import env_bool, env_int, env_list, env_required, env_str, load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(Path(env_str("DJANGO_ENV_FILE", str(BASE_DIR / ".env"))))

DJANGO_ENV = env_str("DJANGO_ENV", "production")
LOCAL_RUN = DJANGO_ENV in ("local", "test")
if not LOCAL_RUN:
    # deploy/env.example marks every value an operator must fill in; none of them may reach production.
    _placeholders = sorted(name for name, value in os.environ.items() if "CHANGE-ME" in value)
    if _placeholders:
        raise ImproperlyConfigured(
            f"{', '.join(_placeholders)} still hold the env example's CHANGE-ME placeholder; "
            "fill in real values (secrets: `manage.py generate_secrets`)"
        )
if DJANGO_ENV == "local":
    # `make run` records the PostgreSQL and broker it uses (the embedded server when DATABASE_URL is unset):
    # `manage.py ...` in another shell then reaches the same ones. The environment and .env still win.
    load_dotenv(BASE_DIR / "var" / "services.env")

DEBUG = env_bool("DJANGO_DEBUG", default=False) and LOCAL_RUN
# Shown on every staff page with the environment (config/ops/console_context.py).
BANK_NAME = env_str("BANK_NAME", "Demo Bank" if LOCAL_RUN else "Bank")
if LOCAL_RUN:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "local-only-insecure-key-never-used-in-production")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
else:
    SECRET_KEY = env_required("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        env_required("DJANGO_ALLOWED_HOSTS")
    if "*" in ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must name the hosts; '*' is refused in production")
    if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("local-only"):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random value of at least 50 characters")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_fsm",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "config.ops",
    "ledger",
    "funding",
    "settlement",
    "funding.console",
    "funding.api",
]

# Staff logins are throttled in the database (funding.console.throttle); the API uses its own keys.
AUTHENTICATION_BACKENDS = ["funding.console.throttle.ThrottledModelBackend"]
# Per (username, client address); per address over all usernames (default: the same number). No limit per
# username alone: strangers cannot lock a staff member out (funding/console/throttle.py).
LOGIN_THROTTLE_MAX_FAILURES = int(env_str("LOGIN_THROTTLE_MAX_FAILURES", "5"))
LOGIN_THROTTLE_MAX_FAILURES_PER_ADDRESS = env_int("LOGIN_THROTTLE_MAX_FAILURES_PER_ADDRESS", 0) or None
LOGIN_THROTTLE_WINDOW_SECONDS = int(env_str("LOGIN_THROTTLE_WINDOW_SECONDS", "900"))
# Proxies (addresses or networks) whose X-Forwarded-For entry is believed: the client address is the first
# entry, read from the right, that is not one of them (config/ops/client_ip.py). Empty: REMOTE_ADDR is the
# client. Name exactly the load balancers / nginx hosts in front of gunicorn, e.g. "10.0.1.10,10.0.1.11".
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an address or network") from _exc

MIDDLEWARE = [
    # First: every log line of the request carries its id; health probes skip host checks and redirects.
    "config.ops.middleware.RequestIdMiddleware",
    "config.ops.middleware.HealthCheckMiddleware",
    # /api/ bodies must come with a Content-Length (411 length_required), checked before anything reads one.
    "funding.api.middleware.LengthRequiredMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Requests to the signed API (/api/v1/) go from here around the browser's session, language, CSRF, user, OTP
    # and message middleware (config.middleware.BROWSER_ONLY); every other middleware applies to them.
    "config.middleware.SignedApiMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.ops.console_context.console_environment",
            ],
        },
    },
]

# PostgreSQL only. `make run` / `make test` export DATABASE_URL (an embedded server when none answers);
# local runs also find the one `make run` chose through var/services.env (above).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/advance_engine")
        if LOCAL_RUN
        else env_required("DATABASE_URL"),
        conn_max_age=0,
    )
}
# Django's backend, with a health check that sends no statement on a healthy connection (config/postgresql).
DATABASES["default"]["ENGINE"] = "config.postgresql"
DATABASES["default"].setdefault("OPTIONS", {})
# Either Django's psycopg pool (one pool per process: size it per gunicorn worker / Celery child) or
# persistent connections; Django refuses both at once, so CONN_MAX_AGE stays 0 with the pool.
if env_bool("DATABASE_POOL", default=False):
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN_SIZE", 1),
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 4),
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 10),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    # Persistent connections by default: a new connection per request costs a fork on the server and
    # several round trips (issue 15: 48 -> 149 advances/s). Tests open and drop databases, so 0 there.
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0 if DJANGO_ENV == "test" else 600)
    # The health check at the start of every request on a persistent connection: Django's `SELECT 1` only when
    # the socket has something to read (a server that closed the session), else no round trip
    # (config/postgresql). Off: the first request on a connection that died (database restart or failover)
    # fails with a 5xx before Django drops it; retries are safe (idempotency).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_CONN_HEALTH_CHECKS", default=True)
# The API's hot statements as server-side prepared statements (config/db.py). Off behind PgBouncer in
# transaction pooling mode unless it has max_prepared_statements.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", default=True)
if DATABASE_PREPARED_STATEMENTS:
    # Django turns psycopg's preparation off (None). A threshold no statement reaches keeps Django's own
    # statements unprepared and lets prepared_cursor()'s explicit prepare=True through.
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 2**31 - 1
# Optional read replica for reports and exports (never for anything that moves money).
if env_str("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = dj_database_url.parse(env_str("DATABASE_REPLICA_URL"), conn_max_age=0)
    DATABASES["replica"]["ENGINE"] = "django.db.backends.postgresql"
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASES["default"]["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` writes here (each web host, at each release); outside local runs WhiteNoise
# serves it from gunicorn with compressed, content-hashed, cache-forever names.
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "var" / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if LOCAL_RUN
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
if not LOCAL_RUN:
    MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                      "whitenoise.middleware.WhiteNoiseMiddleware")

# No guessable default outside local runs; always ends with "/".
ADMIN_URL = env_str("DJANGO_ADMIN_URL", "admin/") if LOCAL_RUN else env_required("DJANGO_ADMIN_URL")
ADMIN_URL = ADMIN_URL.strip("/") + "/"

if not LOCAL_RUN:
    # TLS ends at the load balancer, which must set X-Forwarded-Proto (and strip one sent by clients).
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    if SECURE_HSTS_SECONDS < 3600:
        raise ImproperlyConfigured("DJANGO_HSTS_SECONDS must be at least 3600 in production")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", default=False)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
    # The admin posts forms from its own https origin(s); name them, e.g. https://bank.example.
    CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
    if not CSRF_TRUSTED_ORIGINS:
        env_required("DJANGO_CSRF_TRUSTED_ORIGINS")
    if any(not origin.startswith("https://") for origin in CSRF_TRUSTED_ORIGINS):
        raise ImproperlyConfigured("DJANGO_CSRF_TRUSTED_ORIGINS must list https:// origins only")
    USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST", default=False)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_AGE = int(env_str("DJANGO_SESSION_SECONDS", "1800"))
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Payment-company API: deny by default; each view names its authentication.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "funding.api.errors.api_exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "funding.api.negotiation.JsonOnlyNegotiation",
    # `?format=csv` is the statement endpoint's own parameter, not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Advance-funding API",
    "DESCRIPTION": "T+0 advance funding for payment companies. See the contract, version 1.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "funding.api.schema.add_error_responses",
        "funding.api.schema_webhooks.add_webhook_events",
    ],
}

# Payment-company API (funding.api).
# API key and webhook secrets are encrypted with these Fernet keys (the first encrypts, all decrypt).
if LOCAL_RUN:
    API_SECRET_ENCRYPTION_KEYS = env_list("API_SECRET_ENCRYPTION_KEY", [f"from-secret-key:{SECRET_KEY}"])
else:
    API_SECRET_ENCRYPTION_KEYS = env_list("API_SECRET_ENCRYPTION_KEY", [])
    if not API_SECRET_ENCRYPTION_KEYS:
        env_required("API_SECRET_ENCRYPTION_KEY")
    # Real Fernet keys only (32 random bytes, url-safe base64): anything else would be stretched into one
    # by funding/api/crypto.py, which is for local runs. The key itself is never echoed.
    for _number, _key in enumerate(API_SECRET_ENCRYPTION_KEYS, start=1):
        try:
            _raw = base64.urlsafe_b64decode(_key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            _raw = b""
        if len(_raw) != 32 or base64.urlsafe_b64encode(_raw).decode() != _key:
            raise ImproperlyConfigured(
                f"API_SECRET_ENCRYPTION_KEY: key {_number} of {len(API_SECRET_ENCRYPTION_KEYS)} is not a Fernet key "
                "(32 random bytes, url-safe base64, 44 characters). Generate one with: python -c "
                '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            )
API_SIGNATURE_MAX_SKEW_SECONDS = 300
API_NONCE_WINDOW_SECONDS = 15 * 60
# How long a process uses its copy of an API key's row and its company's (funding/api/keys.py). Decisions never
# rest on the copy: each request's nonce statement checks the row is unchanged (revocation applies at once).
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 60)
API_IDEMPOTENCY_RETENTION_DAYS = int(env_str("API_IDEMPOTENCY_RETENTION_DAYS", "8"))
# A claimed key whose request died with its process (no response stored) may be retried after this.
API_IDEMPOTENCY_LEASE_SECONDS = int(env_str("API_IDEMPOTENCY_LEASE_SECONDS", "120"))
API_MAX_ACTIVE_KEYS = 2
# Requests per API key ("N/s", "N/m", "N/h"), counted in the shared cache.
API_THROTTLE_RATE = env_str("API_THROTTLE_RATE", "50/s")
API_BASE_URL = env_str("API_BASE_URL", "http://127.0.0.1:8000")
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env_str("DATA_UPLOAD_MAX_MEMORY_SIZE", str(2 * 1024 * 1024)))
WEBHOOK_TIMEOUT_SECONDS = 10
# CA certificates webhook receivers' TLS certificates are checked against (default: certifi's bundle).
WEBHOOK_CA_BUNDLE = env_str("WEBHOOK_CA_BUNDLE", "")
# Seconds to wait after the n-th failed attempt; after the last one the event is marked failed (> 24 h).
WEBHOOK_RETRY_SCHEDULE = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
]
WEBHOOK_BATCH_SIZE = 100
# Enqueue a delivery as soon as an event commits (the beat job still catches anything missed).
WEBHOOK_ENQUEUE_ON_COMMIT = env_bool("WEBHOOK_ENQUEUE_ON_COMMIT", default=True)

# Shared across processes (throttling): Redis. Production requires it (throttle counters in a PostgreSQL
# table cost a write per API request); local runs and tests fall back to a PostgreSQL table without it.
_cache_url = env_str("CACHE_URL") if LOCAL_RUN else env_required("CACHE_URL")
if _cache_url:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url,
            # A Redis that stops answering must fail fast (throttle, /readyz), never hang a request.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "api_cache"}}

# Celery: Redis or RabbitMQ in production; the filesystem transport for `make run` without a broker.
CELERY_BROKER_URL = (
    env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0") if LOCAL_RUN else env_required("CELERY_BROKER_URL")
)
CELERY_TASK_TIME_LIMIT = 3600
CELERY_TASK_SOFT_TIME_LIMIT = 3300
# Redis redelivers a task not acked within the visibility timeout: keep it well above the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 4 * 3600}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 4 * 3600}
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= 2 * CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("The Redis visibility timeout must stay well above the longest task")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = BASE_DIR / "var" / "celery"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
        # Exchange tables (broadcast/pidbox); kombu's default is `control/` in the working directory.
        "control_folder": str(_queue_dir / "control"),
    }
    # Created here, not only in scripts/run_all.py: `migrate` and `seed_demo` already publish tasks.
    for _folder in ("queue", "processed", "control"):
        (_queue_dir / _folder).mkdir(parents=True, exist_ok=True)
# One redis client per channel instead of one per command (config/broker.py): ~0.2 ms of CPU less per publish.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Celery's defaults, read on every publish: named here, a lookup finds them in Django's settings at once,
# where an unset one first fails through every key spelling of every source (~15 us each, 5 per publish).
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_TASK_REPR_MAXLEVELS = 3
CELERY_BROKER_POOL_ACQUIRE_TIMEOUT = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE: dict = {
    # Re-enqueues every due webhook event, so a lost broker message costs latency, never an event.
    "api-webhooks-enqueue-due": {"task": "funding.api.tasks.webhooks_enqueue_due", "schedule": 10.0},
    "api-prune": {"task": "funding.api.tasks.api_prune", "schedule": 3600.0},
}
# Workers log through Django's LOGGING (JSON lines) instead of Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_SEND_TASK_EVENTS = False
# Celery's Django fix-up closes every database connection before and after each task unless this is set: a new
# PostgreSQL backend (a fork, authentication, every prepared statement prepared again) for each task, most of
# the cost of a small dispatch task. With it set the fix-up closes them every this many tasks, and
# config/celery.py applies CONN_MAX_AGE and the health checks at each task's start and end, as Django does
# around each request (so CONN_MAX_AGE=0, the tests' setting, still gives one connection per task).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)

# Separate queues so a long nightly run never delays payouts: one worker pool per queue (docs/deployment.md).
# CELERY_QUEUE_PREFIX lets several environments (or a test) share one broker vhost without sharing queues.
CELERY_QUEUE_PREFIX = env_str("CELERY_QUEUE_PREFIX", "")
ENGINE_QUEUES = ("celery", "events", "disbursement", "webhooks", "nightly")
_amqp = CELERY_BROKER_URL.startswith(("amqp://", "pyamqp://", "amqps://"))
# RabbitMQ: a topic exchange, which its native delayed delivery (countdown/ETA on quorum queues) needs.
# Redis: a direct one. kombu emulates exchanges there, and a publish to a topic exchange first reads the
# exchange's bindings from Redis (SMEMBERS) to match the routing key; Celery publishes a task for a queue of a
# direct exchange straight to that queue (one LPUSH). Redis has no delayed delivery to lose: the worker holds
# countdown/ETA tasks itself.
CELERY_TASK_DEFAULT_EXCHANGE = f"{CELERY_QUEUE_PREFIX}engine"
CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic" if _amqp else "direct"
CELERY_TASK_DEFAULT_QUEUE = f"{CELERY_QUEUE_PREFIX}celery"
CELERY_TASK_DEFAULT_ROUTING_KEY = f"{CELERY_QUEUE_PREFIX}celery"
CELERY_TASK_QUEUES = [
    Queue(
        f"{CELERY_QUEUE_PREFIX}{name}",
        Exchange(CELERY_TASK_DEFAULT_EXCHANGE, type=CELERY_TASK_DEFAULT_EXCHANGE_TYPE),
        routing_key=f"{CELERY_QUEUE_PREFIX}{name}",
        queue_arguments={"x-queue-type": "quorum"} if _amqp else None,
    )
    for name in ENGINE_QUEUES
]
# First matching pattern wins. Task names are `<module>.<function>` unless a task sets name=.
CELERY_TASK_ROUTES = {
    # Only the queue: its exchange and routing key come from CELERY_TASK_QUEUES, so apply_async(queue=...)
    # overrides a route cleanly.
    pattern: {"queue": f"{CELERY_QUEUE_PREFIX}{queue}"}
    for pattern, queue in (
        ("*webhook*", "webhooks"),
        ("*nightly*", "nightly"),
        ("*end_of_day*", "nightly"),
        ("*close_business_day*", "nightly"),
        ("*accru*", "nightly"),
        ("*repayment*", "nightly"),
        ("*statement*", "nightly"),
        ("config.ops.tasks.*", "nightly"),
        ("*dispatch*", "disbursement"),
        ("*disburse*", "disbursement"),
        ("*payout*", "disbursement"),
        ("settlement.tasks.*", "disbursement"),
        ("settlement.*", "disbursement"),
        ("funding.tasks.*", "events"),
    )
}
if _amqp:
    # RabbitMQ: replicated quorum queues, and a publish returns only once the broker has the message.
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_WORKER_DETECT_QUORUM_QUEUES = True
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {}

# D0 disbursement (settlement app).
CELERY_BEAT_SCHEDULE.update({
    "settlement-dispatch-pending": {"task": "settlement.dispatch_pending", "schedule": 30.0},
    "settlement-poll-attempts": {"task": "settlement.poll_attempts", "schedule": 10.0},
    "settlement-reconcile-statements": {
        "task": "settlement.reconcile_statements", "schedule": crontab(hour=9, minute=0),
    },
})
DISBURSEMENT_MAX_ATTEMPTS = int(env_str("DISBURSEMENT_MAX_ATTEMPTS", "3"))
# Status queries of an attempt whose outcome is not known: dense first, then every 30 minutes until cut-off.
DISBURSEMENT_QUERY_BACKOFF_SECONDS = [15, 30, 60, 120, 300, 600]
DISBURSEMENT_QUERY_INTERVAL_SECONDS = 1800
# Unresolved this long after it was sent, an attempt goes to manual review (never to failed by itself).
DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS = int(env_str("DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS", "21600"))
DISBURSEMENT_WAIT_FOR_CHANNEL_SECONDS = 60
DISBURSEMENT_SUCCESS_WINDOW_SECONDS = 3600
DISBURSEMENT_UNHEALTHY_BELOW = 0.5  # recent success rate under which routing skips a channel
DISBURSEMENT_UNHEALTHY_MIN_SAMPLES = 20
DISBURSEMENT_ROUTING_CACHE_SECONDS = 5  # per-process cache of channels, success rates, calendar
# Payouts claimed, sent and applied together (one transaction to claim, one request per batch-file channel,
# one transaction for the successes); a new advance enqueues one dispatch task per batch. 250: ~20% more payouts
# per process than 100 (docs/benchmarks.md); the price is a longer hold of the shared account rows per batch and a
# larger set left for manual review when a worker dies mid-send (docs/disbursement.md, "The price of a batch").
DISBURSEMENT_BATCH_SIZE = env_int("DISBURSEMENT_BATCH_SIZE", 250)
if DISBURSEMENT_BATCH_SIZE < 1:
    raise ImproperlyConfigured("DISBURSEMENT_BATCH_SIZE must be at least 1 (payouts claimed per transaction)")
DISBURSEMENT_DISPATCH_ON_COMMIT = env_bool("DISBURSEMENT_DISPATCH_ON_COMMIT", default=True)
# The dispatch gate (settlement/services/disbursement/scheduling.py, with a Redis cache): while a coalesced
# dispatch task is queued, new small advances publish nothing; a task lost on its way holds the gate at most
# this long (then the next advance publishes again; the beat sweep catches anything older). 0: no gate, every
# advance publishes its own task.
DISBURSEMENT_DISPATCH_GATE_SECONDS = env_int("DISBURSEMENT_DISPATCH_GATE_SECONDS", 10)
if DISBURSEMENT_DISPATCH_GATE_SECONDS < 0:
    raise ImproperlyConfigured("DISBURSEMENT_DISPATCH_GATE_SECONDS must be 0 (no gate) or more seconds")
# Threads per worker process for channel requests in flight at once (each channel's own limit is its
# adapter_settings "max_in_flight", default 1: one after the other). settlement/adapters/inflight.py.
CHANNEL_THREADS = env_int("CHANNEL_THREADS", 32)
if CHANNEL_THREADS < 1:
    raise ImproperlyConfigured("CHANNEL_THREADS must be at least 1 (threads per process for channel requests)")

CELERY_IMPORTS: list = []

# Nightly jobs (settlement.tasks_nightly): repayment collection at the given Asia/Shanghai times on business
# days, the end-of-day close at the cut-off. They run on their own `nightly` queue.
NIGHTLY_COLLECT_TIMES = env_list("NIGHTLY_COLLECT_TIMES", ["10:00", "16:00"])
NIGHTLY_CLOSE_TIME = env_str("NIGHTLY_CLOSE_TIME", "23:00")
NIGHTLY_CHUNK_COMPANIES = int(env_str("NIGHTLY_CHUNK_COMPANIES", "20"))
CELERY_IMPORTS += ["settlement.tasks_nightly"]
for _time in NIGHTLY_COLLECT_TIMES:
    _hour, _minute = _time.split(":")
    CELERY_BEAT_SCHEDULE[f"collect-repayments-{_hour}{_minute}"] = {
        "task": "settlement.tasks_nightly.collect_repayments",
        "schedule": crontab(hour=int(_hour), minute=int(_minute)),
    }
_close_hour, _close_minute = NIGHTLY_CLOSE_TIME.split(":")
CELERY_BEAT_SCHEDULE["close-business-day"] = {
    "task": "settlement.tasks_nightly.close_business_day",
    "schedule": crontab(hour=int(_close_hour), minute=int(_close_minute)),
}

# Money and business rules.
MONEY_MAX_DIGITS = 19
MONEY_DECIMAL_PLACES = 2
RATE_DECIMAL_PLACES = 6
ACCRUAL_DECIMAL_PLACES = 8
ENGINE_CURRENCY = "CNY"
# The bank's own clearing account number as the bank statement file names it (contract 2.1). Its lines are not
# booked: they are matched against the ledger movements of the bank clearing account, and what does not match
# becomes a reconciliation exception. Empty: such lines are rejected as an unknown account.
BANK_CLEARING_ACCOUNT_NO = env_str("BANK_CLEARING_ACCOUNT_NO", "")
# Local time (TIME_ZONE) after which the current business date is closed by the end-of-day job.
EOD_CUTOFF_TIME = env_str("EOD_CUTOFF_TIME", "23:00")
# How far back the console dashboard counts payout attempts for channel success rates.
CONSOLE_CHANNEL_WINDOW_DAYS = int(env_str("CONSOLE_CHANNEL_WINDOW_DAYS", "7"))
# Which calendar decides the next business day: "public" counts make-up weekend days (调休) as working days.
BUSINESS_CALENDAR = env_str("BUSINESS_CALENDAR", "public")
WEBHOOK_ALLOW_INSECURE_URLS = env_bool("WEBHOOK_ALLOW_INSECURE_URLS", default=LOCAL_RUN)

# Operations (config/ops): logs, metrics, health, retention, staff two-factor login.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DJANGO_ENV == "local" else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.ops.logs.RequestContextFilter"}},
    "formatters": {
        "json": {"()": "config.ops.logs.JsonFormatter"},
        "text": {"()": "config.ops.logs.TextFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Our request line replaces Django's own access-style warnings for 4xx/5xx.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}
# /metrics: from these addresses (REMOTE_ADDR, networks allowed) or with `Authorization: Bearer <token>`.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.1/32", "::1/128"])
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
READINESS_BROKER_TIMEOUT = float(env_str("READINESS_BROKER_TIMEOUT", "2"))
# Rows that outlive their use are archived (when a directory is set) and deleted by a nightly task.
RETENTION_ARCHIVE_DIR = env_str("RETENTION_ARCHIVE_DIR", "")
# Webhook events stay at least 30 days whatever RETENTION_WEBHOOK_DAYS says (GET /api/v1/events, contract 1.7).
if env_int("RETENTION_WEBHOOK_DAYS", 90) < 30:
    raise ImproperlyConfigured("RETENTION_WEBHOOK_DAYS must be at least 30: GET /api/v1/events serves 30 days")
RETENTION_RULES = [
    # Attempts first: they reference their event (PROTECT), so an event goes only once its attempts have.
    {
        "model": "api.WebhookDeliveryAttempt",
        "field": "event__delivered_at",
        "filter": {"event__status": "delivered"},
        "days": env_int("RETENTION_WEBHOOK_DAYS", 90),
    },
    {
        "model": "funding.WebhookEvent",
        "field": "delivered_at",
        "filter": {"status": "delivered"},
        "days": env_int("RETENTION_WEBHOOK_DAYS", 90),
    },
    # Login throttle counters whose window ended long ago (the failures themselves stay in LoginFailure).
    {"model": "console.LoginThrottle", "field": "window_started", "days": 1},
]
CELERY_BEAT_SCHEDULE["ops-retention-purge"] = {
    "task": "config.ops.tasks.retention_purge_task",
    "schedule": crontab(hour=3, minute=30),
}
# Staff two-factor login (TOTP): required for the admin everywhere except local and test runs.
STAFF_OTP_REQUIRED = env_bool("STAFF_OTP_REQUIRED", default=not LOCAL_RUN)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Advance engine")

__all__ = ["crontab"]
