"""Settings from the environment: every helper fails loudly on a value it cannot use."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use one of true/false, 1/0, yes/no, on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum of {maximum}.")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().upper() if upper else raw.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r} is not one of: {', '.join(choices)}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    items = [item.strip() for item in raw.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(f"{name}={raw!r} has an empty item: give a comma-separated list.")
    return items


def env_base_url(name: str) -> str:
    """An http(s) URL naming only where to connect (scheme, host, optional port), returned as
    scheme://host[:port]; empty when unset. Anything else (a path, query, credentials) is refused:
    it would be dropped silently where only the address is used."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    try:
        no_port = parts.port == 0
    except ValueError:
        no_port = True
    if no_port:
        raise ImproperlyConfigured(f"{name}={raw!r} has a port that is not a number from 1 to 65535.")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an http(s) URL with a host: use http://host:port.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ImproperlyConfigured(
            f"{name}={raw!r} has more than a scheme, host and port: only those are used, so give only those."
        )
    return f"{parts.scheme}://{parts.netloc}"


def database_from_url(url: str, *, base_dir: Path) -> dict:
    """Translate DATABASE_URL into a Django DATABASES entry (read by dj-database-url).

    Accepted forms: postgres://user:password@host:port/name?option=value (postgresql:// too)
    and sqlite:///relative/path.sqlite3 or sqlite:////absolute/path.sqlite3. Options are
    psycopg's, and two of ours (PostgreSQL): server_side_binding (true or false, default true)
    and prepare_threshold (a whole number or none, default 5).
    """
    scheme = urlsplit(url).scheme
    if scheme not in ("postgres", "postgresql", "sqlite"):
        raise ImproperlyConfigured(
            f"DATABASE_URL={_redact(url)!r} is not supported: use postgres://user@host:5432/name or sqlite:///file.sqlite3."
        )
    if scheme == "sqlite" and urlsplit(url).path in ("", "/"):
        raise ImproperlyConfigured("DATABASE_URL=sqlite:// names no file: use sqlite:///db.sqlite3.")
    try:
        parsed = dj_database_url.parse(url)
    except ValueError:
        raise ImproperlyConfigured(f"DATABASE_URL={_redact(url)!r} has a port that is not a number.") from None
    if scheme == "sqlite":
        return sqlite_database(base_dir / parsed["NAME"])  # an absolute path stays as it is
    if not parsed["NAME"]:
        raise ImproperlyConfigured(f"DATABASE_URL={_redact(url)!r} names no database: add /<name> after the host.")
    options = parsed.setdefault("OPTIONS", {})
    # Server-side binding lets psycopg prepare the statements a connection repeats (from the
    # 5th use), so the hot queries of ingestion are planned once, not on every request. Django
    # turns preparing off unless told (for poolers in transaction mode: add
    # ?prepare_threshold=none behind an older PgBouncer).
    binding = options.pop("server_side_binding", True)
    if not isinstance(binding, bool):
        raise ImproperlyConfigured("DATABASE_URL option server_side_binding must be true or false.")
    options["server_side_binding"] = binding
    threshold = options.pop("prepare_threshold", 5)
    if str(threshold).lower() != "none" and not isinstance(threshold, int):
        raise ImproperlyConfigured("DATABASE_URL option prepare_threshold must be a whole number or none.")
    if binding and isinstance(threshold, int):
        options["prepare_threshold"] = threshold
    return {
        **{key: parsed[key] for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST")},
        "PORT": str(parsed["PORT"]),
        "OPTIONS": options,
    }


def sqlite_database(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # The web server and the django-q2 cluster write at the same time: WAL lets readers
        # go on during a write, IMMEDIATE takes the write lock up front instead of failing
        # mid-transaction, and the timeout waits for it rather than raising "locked".
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def redis_url(name: str) -> str:
    raw = os.environ.get(name, "").strip()
    if raw and urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(f"{name}={_redact(raw)!r} is not a Redis URL: use redis://host:6379/0.")
    return raw


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
