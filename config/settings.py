"""Settings for the advance-funding engine.

Everything comes from the environment. DJANGO_ENV selects the profile:
- ``local``: `make run` on a developer's machine; DEBUG may be on, a throwaway secret key is allowed.
- ``test``: `make test`; fast password hashing, loopback webhooks allowed.
- ``production`` (the default): DEBUG off, and the secret key, allowed hosts and HTTPS settings are required.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from config.env import env_bool, env_list, env_required, env_str, load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")

DJANGO_ENV = env_str("DJANGO_ENV", "production")
LOCAL_RUN = DJANGO_ENV in ("local", "test")

DEBUG = env_bool("DJANGO_DEBUG", default=False) and LOCAL_RUN
if LOCAL_RUN:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "local-only-insecure-key-never-used-in-production")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
else:
    SECRET_KEY = env_required("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        env_required("DJANGO_ALLOWED_HOSTS")

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
    "django_celery_beat",
    "django_fsm",
    "ledger",
    "funding",
    "settlement",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
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
            ],
        },
    },
]

# PostgreSQL only. `make run` / `make test` export DATABASE_URL (an embedded server when none answers).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/advance_engine"),
        conn_max_age=0,
    )
}
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
DATABASES["default"].setdefault("OPTIONS", {})
if env_bool("DATABASE_POOL", default=False):
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 2, "max_size": 20, "timeout": 10}
DATABASES["default"]["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if DJANGO_ENV == "test":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

ADMIN_URL = env_str("DJANGO_ADMIN_URL", "admin/")

if not LOCAL_RUN:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(env_str("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
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
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Advance-funding API",
    "DESCRIPTION": "T+0 advance funding for payment companies. See the contract, version 1.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Celery: Redis or RabbitMQ in production; the filesystem transport for `make run` without a broker.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 4 * 3600}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = BASE_DIR / "var" / "celery"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 3600
CELERY_TASK_SOFT_TIME_LIMIT = 3300
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE: dict = {}
CELERY_TASK_ROUTES: dict = {}
CELERY_IMPORTS: list = []

# Nightly jobs (settlement.tasks_nightly): repayment collection at the given Asia/Shanghai times on business
# days, the end-of-day close at the cut-off. They run on their own `nightly` queue.
NIGHTLY_COLLECT_TIMES = env_list("NIGHTLY_COLLECT_TIMES", ["10:00", "16:00"])
NIGHTLY_CLOSE_TIME = env_str("NIGHTLY_CLOSE_TIME", "23:00")
NIGHTLY_CHUNK_COMPANIES = int(env_str("NIGHTLY_CHUNK_COMPANIES", "20"))
CELERY_IMPORTS += ["settlement.tasks_nightly"]
CELERY_TASK_ROUTES["settlement.tasks_nightly.*"] = {"queue": "nightly"}
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
# Which calendar decides the next business day: "public" counts make-up weekend days (调休) as working days.
BUSINESS_CALENDAR = env_str("BUSINESS_CALENDAR", "public")
WEBHOOK_ALLOW_INSECURE_URLS = env_bool("WEBHOOK_ALLOW_INSECURE_URLS", default=LOCAL_RUN)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

__all__ = ["crontab"]
