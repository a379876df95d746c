"""Loading the demo into an empty database, and saying what an existing one already holds.

`make run` calls this on every start. Demo data goes only into an empty database (no account,
app or user): a database that holds anything is left exactly as it is, so a restart neither
rotates an API key nor resets a postback a manager edited, nor changes a password.

Only the hash of an API key is stored, so the key of the app the printed curl uses is also
kept in a file of VAR_DIR (mode 600, git-ignored like all of var/); a later run shows that key
again only while it is still the app's key.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from events.models import Account, App, hash_api_key
from events.services import app_issue_api_key
from postbacks.config_io import config_import
from postbacks.roles import ACCOUNT_MANAGERS, SUPPORT

DEMO_CONFIG = Path(__file__).resolve().with_name("demo_config.json")
DEMO_ACCOUNT = "Demo Games"
DEMO_APP = "Space Rocks Android"
DEMO_KEY_FILE = "demo_api_key"
LISTED = 10  # logins and apps an existing database lists


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    password: str | None  # None: an existing login, its password unchanged


@dataclass(frozen=True)
class DemoApp:
    label: str
    key: str | None  # the whole key when it is known here: new, or the demo app's kept key
    key_prefix: str


@dataclass(frozen=True)
class DemoState:
    created: bool
    logins: list[DemoLogin]
    more_logins: int
    apps: list[DemoApp]
    more_apps: int
    curl_key: str | None  # the demo app's key, when it is known and still valid


def database_is_empty() -> bool:
    return not (Account.objects.exists() or App.objects.exists() or get_user_model().objects.exists())


@transaction.atomic
def demo_load(*, key_file: Path) -> DemoState:
    """Load the demo if the database is empty; otherwise change nothing and describe what is there."""
    if not database_is_empty():
        return _existing_state(key_file=key_file)
    config_import(document=json.loads(DEMO_CONFIG.read_text()))
    account = Account.objects.get(name=DEMO_ACCOUNT)
    logins = [
        _new_login("admin", role="superuser: everything", superuser=True),
        _new_login("manager", role=f"{ACCOUNT_MANAGERS}, account {account.name} only", group=ACCOUNT_MANAGERS),
        _new_login("support", role=f"{SUPPORT}, account {account.name} only", group=SUPPORT),
    ]
    account.members.add(*get_user_model().objects.filter(username__in=("manager", "support")))
    apps, curl_key, demo_app = [], None, _demo_app()
    for app in _apps():
        key = app_issue_api_key(app=app)
        apps.append(DemoApp(label=_label(app), key=key, key_prefix=app.api_key_prefix))
        if app == demo_app:
            curl_key = key
    if curl_key:
        _keep_key(key_file=key_file, key=curl_key)
    return DemoState(created=True, logins=logins, more_logins=0, apps=apps, more_apps=0, curl_key=curl_key)


def _existing_state(*, key_file: Path) -> DemoState:
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
    logins = [
        DemoLogin(username=user.username, role=_role(user), password=None)
        for user in staff.prefetch_related("groups", "postback_accounts")[:LISTED]
    ]
    demo_app = _demo_app()
    curl_key = _kept_key(key_file=key_file, app=demo_app) if demo_app else None
    apps = [
        DemoApp(label=_label(app), key=curl_key if app == demo_app else None, key_prefix=app.api_key_prefix)
        for app in _apps()[:LISTED]
    ]
    return DemoState(
        created=False,
        logins=logins,
        more_logins=max(0, staff.count() - LISTED),
        apps=apps,
        more_apps=max(0, App.objects.count() - LISTED),
        curl_key=curl_key,
    )


def _apps():
    return App.objects.select_related("account").order_by("account__name", "name", "platform")


def _demo_app() -> App | None:
    """The app the printed curl sends an install for."""
    return App.objects.filter(account__name=DEMO_ACCOUNT, name=DEMO_APP, is_active=True).first()


def _label(app: App) -> str:
    return f"{app.account.name} / {app}"


def _role(user) -> str:
    if user.is_superuser:
        return "superuser"
    groups = ", ".join(group.name for group in user.groups.all()) or "staff, no role group"
    accounts = ", ".join(account.name for account in user.postback_accounts.all()) or "none"
    return f"{groups}, accounts: {accounts}"


def _new_login(username: str, *, role: str, superuser: bool = False, group: str | None = None) -> DemoLogin:
    password = secrets.token_urlsafe(12)
    user = get_user_model().objects.create_user(
        username=username, email=f"{username}@localhost", password=password, is_staff=True, is_superuser=superuser
    )
    if group:
        user.groups.set([Group.objects.get(name=group)])
    return DemoLogin(username=username, role=role, password=password)


def _keep_key(*, key_file: Path, key: str) -> None:
    key_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file was there before
    with os.fdopen(descriptor, "w") as kept:
        kept.write(key)


def _kept_key(*, key_file: Path, app: App) -> str | None:
    """The kept key, if it is still this app's key (not rotated since, and of this database)."""
    try:
        key = key_file.read_text().strip()
    except OSError:
        return None
    return key if key and hash_api_key(key) == app.api_key_hash else None
