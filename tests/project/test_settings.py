"""Settings come from the environment and refuse bad values at start-up."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.env import database_from_url, env_base_url, env_bool, env_int, redis_url

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup();"
    "db = settings.DATABASES['default'];"
    "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']), 'debug': settings.DEBUG,"
    " 'q': settings.Q_CLUSTER, 'private': settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS,"
    " 'hosts': settings.ALLOWED_HOSTS}))"
)
CONTROLLED = (
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "POSTBACK_ALLOW_PRIVATE_DESTINATIONS",
    "POSTBACK_CAPTURE_URL",
)


def start(tmp_path, **env):
    base = {key: value for key, value in os.environ.items() if key not in CONTROLLED}
    base.update(DJANGO_SETTINGS_MODULE="project.settings", VAR_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True)


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = start(tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_generates_and_keeps_a_development_secret_key(tmp_path):
    assert start(tmp_path, DEBUG="true").returncode == 0
    key = (tmp_path / "dev_secret_key").read_text()
    assert len(key) >= 40
    assert start(tmp_path, DEBUG="true").returncode == 0
    assert (tmp_path / "dev_secret_key").read_text() == key


def test_defaults_are_sqlite_orm_broker_and_no_private_destinations(tmp_path):
    result = start(tmp_path, SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"] == str(tmp_path / "db.sqlite3")
    assert loaded["q"]["orm"] == "default" and "redis" not in loaded["q"]
    assert loaded["debug"] is False
    assert loaded["private"] is False
    assert loaded["hosts"] == []
    assert loaded["q"]["timeout"] < loaded["q"]["retry"]


def test_database_and_redis_urls_switch_to_production_setup(tmp_path):
    result = start(
        tmp_path,
        SECRET_KEY="x" * 50,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        REDIS_URL="redis://127.0.0.1:6379/3",
        ALLOWED_HOSTS="postbacks.example.com,api.example.com",
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert loaded["q"]["redis"] == "redis://127.0.0.1:6379/3" and "orm" not in loaded["q"]
    assert loaded["hosts"] == ["postbacks.example.com", "api.example.com"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"DATABASE_URL": "mysql://root@localhost/db"}, "is not supported"),
        ({"DATABASE_URL": "postgres://postgres@localhost:5432"}, "names no database"),
        ({"REDIS_URL": "http://localhost:6379"}, "is not a Redis URL"),
        ({"POSTBACK_ALLOW_PRIVATE_DESTINATIONS": "sometimes"}, "is not a boolean"),
        ({"ALLOWED_HOSTS": "a.example.com,,b.example.com"}, "has an empty item"),
        ({"Q_WORKERS": "two"}, "is not a whole number"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml' is not one of: plain, json"),
        ({"LOG_LEVEL": "loud"}, "is not one of: DEBUG, INFO"),
        ({"POSTBACK_BATCH_SIZE": "0"}, "below the minimum of 1"),
        ({"POSTBACK_CAPTURE_URL": "ftp://capture.test"}, "is not an http(s) URL with a host"),
        ({"POSTBACK_CAPTURE_URL": "http://capture.test/inbox"}, "has more than a scheme, host and port"),
    ],
)
def test_bad_values_fail_loudly(tmp_path, env, message):
    result = start(tmp_path, SECRET_KEY="x" * 50, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_database_url_parsing(tmp_path):
    parsed = database_from_url("postgresql://user:p%40ss@db.internal:6543/postbacks?sslmode=require", base_dir=tmp_path)
    assert parsed["NAME"] == "postbacks"
    assert parsed["USER"] == "user"
    assert parsed["PASSWORD"] == "p@ss"
    assert parsed["HOST"] == "db.internal"
    assert parsed["PORT"] == "6543"
    assert parsed["OPTIONS"] == {"sslmode": "require", "server_side_binding": True, "prepare_threshold": 5}
    off = database_from_url("postgres://u@h/db?server_side_binding=false", base_dir=tmp_path)
    assert off["OPTIONS"] == {"server_side_binding": False}
    with pytest.raises(ImproperlyConfigured, match="server_side_binding must be true or false"):
        database_from_url("postgres://u@h/db?server_side_binding=maybe", base_dir=tmp_path)
    unprepared = database_from_url("postgres://u@h/db?prepare_threshold=None", base_dir=tmp_path)
    assert unprepared["OPTIONS"] == {"server_side_binding": True}
    assert database_from_url("postgres://u@h/db?prepare_threshold=0", base_dir=tmp_path)["OPTIONS"] == {
        "server_side_binding": True,
        "prepare_threshold": 0,
    }
    with pytest.raises(ImproperlyConfigured, match="prepare_threshold must be a whole number or none"):
        database_from_url("postgres://u@h/db?prepare_threshold=-1", base_dir=tmp_path)
    assert database_from_url("sqlite:///data/x.sqlite3", base_dir=tmp_path)["NAME"] == str(tmp_path / "data/x.sqlite3")
    assert database_from_url("sqlite:////tmp/x.sqlite3", base_dir=tmp_path)["NAME"] == "/tmp/x.sqlite3"


def test_password_is_not_echoed_in_errors(tmp_path):
    with pytest.raises(ImproperlyConfigured) as error:
        database_from_url("mysql://root:hunter2@localhost/db", base_dir=tmp_path)
    assert "hunter2" not in str(error.value)


def test_env_helpers(monkeypatch):
    monkeypatch.setenv("FLAG", "Yes")
    assert env_bool("FLAG") is True
    monkeypatch.setenv("NUMBER", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum"):
        env_int("NUMBER", 2, minimum=1)
    monkeypatch.setenv("REDIS", "rediss://cache:6380/0")
    assert redis_url("REDIS") == "rediss://cache:6380/0"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("capture.test:8080", "is not an http(s) URL with a host"),
        ("http://", "is not an http(s) URL with a host"),
        ("http://capture.test:port", "port that is not a number"),
        ("http://capture.test:0", "port that is not a number"),
        ("http://capture.test/inbox", "has more than a scheme, host and port"),
        ("http://capture.test/?to=me", "has more than a scheme, host and port"),
        ("http://user:pw@capture.test", "has more than a scheme, host and port"),
    ],
)
def test_a_capture_url_names_only_where_to_connect(monkeypatch, raw, problem):
    monkeypatch.setenv("CAPTURE", raw)
    with pytest.raises(ImproperlyConfigured, match=re.escape(problem)):
        env_base_url("CAPTURE")


def test_a_capture_url_keeps_scheme_host_and_port(monkeypatch):
    assert env_base_url("CAPTURE") == ""
    for raw, kept in [
        ("http://127.0.0.1:8025/", "http://127.0.0.1:8025"),
        (" https://capture.test ", "https://capture.test"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ]:
        monkeypatch.setenv("CAPTURE", raw)
        assert env_base_url("CAPTURE") == kept


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EVENT_RETENTION_DAYS": "7"}, "must be longer than EVENT_MAX_AGE_DAYS=7"),
        ({"DEVICE_RETENTION_DAYS": "100"}, "a device's activity is read from its events"),
        ({"DEVICE_RETENTION_DAYS": "20"}, "deleting a device deletes its deliveries"),
    ],
)
def test_retention_that_would_break_a_rule_refuses_to_start(tmp_path, env, message):
    result = start(tmp_path, SECRET_KEY="x" * 50, **env)
    assert result.returncode != 0
    assert message in result.stderr
