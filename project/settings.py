"""Settings for the postback server. Every value that differs between machines comes from
the environment (see the settings table in README.md); a bad value stops start-up."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from project.dev_env import var_dir
from project.env import (
    database_from_url,
    env_base_url,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_str,
    redis_url,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = var_dir(BASE_DIR)

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random value (for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`); only DEBUG=true generates one."
        )
    # Development only: keep one generated key on disk so logins survive restarts.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key_file = VAR_DIR / "dev_secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Postbacks never reach private, loopback or link-local addresses unless this is on
# (tests and the local demo turn it on to talk to a receiver on 127.0.0.1).
POSTBACK_ALLOW_PRIVATE_DESTINATIONS = env_bool("POSTBACK_ALLOW_PRIVATE_DESTINATIONS", False)
# Staging, QA and the demo: every postback goes to this scheme://host:port instead of its own,
# with its method, path, query, headers and body, and X-Postback-Original-Url (postbacks.http).
POSTBACK_CAPTURE_URL = env_base_url("POSTBACK_CAPTURE_URL")
# Per attempt: seconds to connect, and the total deadline from connecting to the last byte of
# the response, however slowly the receiver sends it. The lease of claimed deliveries derives
# from the deadline (postbacks.leases.lease_duration).
POSTBACK_CONNECT_TIMEOUT = env_int("POSTBACK_CONNECT_TIMEOUT", 5, minimum=1, maximum=60)
POSTBACK_TOTAL_TIMEOUT = env_int("POSTBACK_TOTAL_TIMEOUT", 15, minimum=1, maximum=300)
if POSTBACK_CONNECT_TIMEOUT > POSTBACK_TOTAL_TIMEOUT:
    raise ImproperlyConfigured(
        f"POSTBACK_CONNECT_TIMEOUT={POSTBACK_CONNECT_TIMEOUT} is longer than POSTBACK_TOTAL_TIMEOUT="
        f"{POSTBACK_TOTAL_TIMEOUT}: connecting is part of the total deadline."
    )
if "POSTBACK_READ_TIMEOUT" in os.environ:
    raise ImproperlyConfigured(
        "POSTBACK_READ_TIMEOUT is no longer read: a timeout per socket read let a receiver that trickles "
        "its response hold an attempt for minutes. Set POSTBACK_TOTAL_TIMEOUT (seconds from connecting to "
        "the last byte of the response, default 15) and remove POSTBACK_READ_TIMEOUT."
    )
# Sending threads per worker process, and how many of them one account's requests, and one
# destination's (host:port), may hold at once in that process. The account's share stays below
# the threads, so one account's slow partners always leave threads to the others.
POSTBACK_SEND_THREADS = env_int("POSTBACK_SEND_THREADS", 32, minimum=2, maximum=512)
POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT = env_int("POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT", 16, minimum=1)
POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION = env_int("POSTBACK_MAX_IN_FLIGHT_PER_DESTINATION", 8, minimum=1)
if POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT >= POSTBACK_SEND_THREADS:
    raise ImproperlyConfigured(
        f"POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT={POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT} must be below "
        f"POSTBACK_SEND_THREADS={POSTBACK_SEND_THREADS}: one account's slow partners could hold every sending thread."
    )
# Deliveries a worker task sends together.
POSTBACK_BATCH_SIZE = env_int("POSTBACK_BATCH_SIZE", 100, minimum=1, maximum=1000)
# Alerts (docs/alerts.md): the rules of accounts and configurations without alert rules of
# their own, and where their alerts go. The webhook URL is often a secret (Slack's are).
ALERT_CONSECUTIVE_FAILURES = env_int("ALERT_CONSECUTIVE_FAILURES", 10, minimum=0)
ALERT_FAILURE_RATE_PERCENT = env_int("ALERT_FAILURE_RATE_PERCENT", 50, minimum=0, maximum=100)
ALERT_WINDOW_MINUTES = env_int("ALERT_WINDOW_MINUTES", 15, minimum=1, maximum=1440)
ALERT_WINDOW_MIN_ATTEMPTS = env_int("ALERT_WINDOW_MIN_ATTEMPTS", 20, minimum=1)
ALERT_PAUSE = env_bool("ALERT_PAUSE", False)
ALERT_EMAIL_TO = env_list("ALERT_EMAIL_TO", [])
ALERT_WEBHOOK_URL = env_str("ALERT_WEBHOOK_URL", "").strip()
# Where links in alerts point: this server's address as its users reach it (empty: no links).
ALERT_ADMIN_BASE_URL = env_base_url("ALERT_ADMIN_BASE_URL")
# E-mail (alerts only), Django's own settings.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("ALERT_EMAIL_FROM", "postbacks@localhost")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "partners",
    "events",
    "postbacks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a refused login into the lock-out answer.
    "axes.middleware.AxesMiddleware",
]

# Login throttle: django-axes, a well-kept library made for this. After LOGIN_FAILURE_LIMIT
# failed logins for a username, or from an address, further attempts for that username (from
# anywhere) or from that address (for anyone) are refused with 429 for LOGIN_LOCKOUT_MINUTES,
# the right password included; each attempt during the lock-out starts the period again.
# Failures are kept in the database (axes' database handler), so every web process and
# machine counts the same ones, on SQLite and PostgreSQL alike; a successful login clears them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks
AXES_RESET_ON_SUCCESS = True
AXES_COOLOFF_MESSAGE = (
    f"Too many failed logins for this username or from this address: try again in {LOGIN_LOCKOUT_MINUTES} minutes."
)
# The one rule for the caller's address (TRUSTED_PROXIES, below; docs/deploy.md).
AXES_CLIENT_IP_CALLABLE = "project.client_ip.client_ip"

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
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

_database_url = env_str("DATABASE_URL").strip()
if _database_url:
    DATABASES = {"default": database_from_url(_database_url, base_dir=BASE_DIR)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": sqlite_database(VAR_DIR / "db.sqlite3")}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = redis_url("REDIS_URL")

# django-q2: Redis when REDIS_URL is set, otherwise the ORM broker in the same database.
# `timeout` must stay below `retry`, or a slow task is handed to a second worker.
Q_CLUSTER = {
    "name": env_str("Q_CLUSTER_NAME", "postbacks"),
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": 60,
    "retry": 90,
    "save_limit": -1,  # results are not stored: the delivery log is the record
    "ack_failures": True,
    "max_attempts": 1,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Dates and times in ISO 8601, UTC, wherever the admin shows one (project/formats/en/formats.py).
FORMAT_MODULE_PATH = "project.formats"

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# run_workers restarts the cluster when deliveries have been due this long with no attempt.
WORKER_STALL_SECONDS = env_int("WORKER_STALL_SECONDS", 60, minimum=5)
# Operations: /healthz answers 503 when the oldest due delivery waits longer than this.
HEALTH_MAX_BACKLOG_AGE = env_int("HEALTH_MAX_BACKLOG_AGE", 120, minimum=1)
# /metrics asks for "Authorization: Bearer <token>" when this is set.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# prometheus_client's multiprocess mode: every process of this machine writes its counters
# here and /metrics sums them. It must be set before prometheus_client is first imported.
PROMETHEUS_MULTIPROC_DIR = Path(env_str("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics")))
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Events API
EVENT_MAX_AGE_DAYS = env_int("EVENT_MAX_AGE_DAYS", 7, minimum=1, maximum=3650)
# Retention (docs/retention.md): the worker's daily schedule deletes, in short batches, what is
# older than these. Each bound below keeps a rule that relies on stored rows true:
# - events outlive EVENT_MAX_AGE_DAYS (and its 5 minutes ahead), so a replay of a deleted
#   event is refused by its age rather than stored twice (idempotency of event_id);
# - deleting a device or an event deletes its deliveries, deleting a device its events:
#   deliveries <= devices <= events.
DELIVERY_RETENTION_DAYS = env_int("DELIVERY_RETENTION_DAYS", 30, minimum=1)
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 90, minimum=2)
DEVICE_RETENTION_DAYS = env_int("DEVICE_RETENTION_DAYS", 90, minimum=1)
# Never shorter, when it runs, than the longest lookback window in use plus EVENT_MAX_AGE_DAYS.
CLICK_RETENTION_DAYS = env_int("CLICK_RETENTION_DAYS", 90, minimum=1)
for _problem in (
    EVENT_RETENTION_DAYS <= EVENT_MAX_AGE_DAYS
    and f"EVENT_RETENTION_DAYS={EVENT_RETENTION_DAYS} must be longer than EVENT_MAX_AGE_DAYS={EVENT_MAX_AGE_DAYS}: "
    "a client replaying an event deleted sooner would have it stored (and its postbacks sent) again.",
    DEVICE_RETENTION_DAYS > EVENT_RETENTION_DAYS
    and f"DEVICE_RETENTION_DAYS={DEVICE_RETENTION_DAYS} is longer than EVENT_RETENTION_DAYS="
    f"{EVENT_RETENTION_DAYS}: a device's activity is read from its events, so it cannot be kept for "
    "longer than they are.",
    DELIVERY_RETENTION_DAYS > DEVICE_RETENTION_DAYS
    and f"DELIVERY_RETENTION_DAYS={DELIVERY_RETENTION_DAYS} is longer than DEVICE_RETENTION_DAYS="
    f"{DEVICE_RETENTION_DAYS}: deleting a device deletes its deliveries.",
):
    if _problem:
        raise ImproperlyConfigured(_problem)
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 60000, minimum=0)  # events per app key; 0 = off
# Erasure requests a minute per app key (0 = off): each one is a worker's task.
ERASURE_RATE_LIMIT_PER_MINUTE = env_int("ERASURE_RATE_LIMIT_PER_MINUTE", 60, minimum=0)
# Reverse proxies (load balancers) in front of the web processes, each appending the address
# it was reached from to X-Forwarded-For: the caller's IP (events, clicks, the login throttle)
# is read from there (0: REMOTE_ADDR). project/client_ip.py.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0, maximum=10)
# Clicks recorded a minute (0 = off); past them /t/<tracker> still redirects, unrecorded.
CLICK_RATE_LIMIT_PER_IP_PER_MINUTE = env_int("CLICK_RATE_LIMIT_PER_IP_PER_MINUTE", 300, minimum=0)
CLICK_RATE_LIMIT_PER_TRACKER_PER_MINUTE = env_int("CLICK_RATE_LIMIT_PER_TRACKER_PER_MINUTE", 60000, minimum=0)
API_MAX_EVENT_BYTES = 64 * 1024
API_MAX_BATCH_BYTES = 4 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BATCH_BYTES + 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "project.api_errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Postback server API",
    "DESCRIPTION": "Client apps report installs, sessions and in-app events; the server attributes "
    "them and sends postbacks. Authenticate with `Authorization: Bearer <app API key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True)
# Quiet unless LOG_LEVEL=DEBUG: no line per django-q2 task or per static file the development
# server serves (project/logs.py), and no start-up banner of django-axes in every process.
_QUIET = LOG_LEVEL != "DEBUG"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "routine_task_lines": {"()": "project.logs.RoutineTaskLines"},
        "static_file_lines": {"()": "project.logs.StaticFileLines", "static_url": STATIC_URL},
    },
    "formatters": {
        "plain": {"()": "project.logs.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "project.logs.JsonFormatter"},
        # Django's own format for the development server's request lines.
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env_choice("LOG_FORMAT", "plain", ("plain", "json")),
        },
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["static_file_lines"] if _QUIET else [],
        },
    },
    "loggers": {
        # These log whole request URLs (a partner's token may sit in the query) and SQL parameters
        # (secret partner fields): never below WARNING, whatever LOG_LEVEL says.
        "urllib3": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
        "django-q": {"filters": ["routine_task_lines"] if _QUIET else []},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        "axes.apps": {"level": "WARNING" if _QUIET else "INFO"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
