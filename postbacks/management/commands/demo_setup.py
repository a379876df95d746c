import json
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from events.models import Account, App
from events.services import app_issue_api_key
from postbacks.config_io import config_import
from postbacks.roles import ACCOUNT_MANAGERS, SUPPORT

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "demo" / "demo_config.json"
DEMO_APP = "Space Rocks Android"


def demo_curl(*, api_url: str, api_key: str) -> str:
    """A ready-to-paste command that sends one install (a new event id each time it is run)."""
    # The event id leaves the single quotes for the shell's $(date +%s): a fresh id on every paste.
    event = (
        '{"event_id": "demo-\'"$(date +%s)"\'", "event": "install", '
        '"device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}}'
    )
    return (
        f"  curl -i {api_url.rstrip('/')}/api/v1/events -H 'Authorization: Bearer {api_key}' "
        f"-H 'Content-Type: application/json' -d '{event}'"
    )


class Command(BaseCommand):
    help = "Load demo apps, partners and postbacks, and (re)create demo logins with fresh passwords it prints."

    def add_arguments(self, parser):
        parser.add_argument(
            "--api-url", default="http://127.0.0.1:8000", help="Where the printed curl sends its event."
        )

    def handle(self, *args, api_url, **options):
        document = json.loads(DEMO_CONFIG.read_text())
        config_import(document=document)
        demo_account = Account.objects.get(name="Demo Games")
        logins = [
            self.login("admin", superuser=True),
            self.login("manager", group=ACCOUNT_MANAGERS, account=demo_account),
            self.login("support", group=SUPPORT, account=demo_account),
        ]
        self.stdout.write(self.style.SUCCESS("\nDemo data loaded. Admin logins (new passwords on every run):"))
        for username, password, role in logins:
            self.stdout.write(f"  {username:8} {password}   {role}")
        self.stdout.write("\nDemo API keys (new on every run):")
        keys = {}
        for app in App.objects.select_related("account").order_by("account__name", "name", "platform"):
            keys[app.name] = app_issue_api_key(app=app)
            self.stdout.write(f"  {app.account.name} / {app}: {keys[app.name]}")
        if DEMO_APP in keys:
            self.stdout.write(f"\nSend an install of {DEMO_APP} (its postbacks appear in the delivery log):")
            self.stdout.write(demo_curl(api_url=api_url, api_key=keys[DEMO_APP]))

    def login(self, username, *, superuser=False, group=None, account=None):
        user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": f"{username}@localhost"})
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.is_staff = True
        user.is_superuser = superuser
        user.save()
        if group:
            user.groups.set([Group.objects.get(name=group)])
        if account:
            account.members.add(user)
        role = "superuser: everything" if superuser else f"{group}, account {account.name} only"
        return username, password, role
