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


class Command(BaseCommand):
    help = "Load demo apps, partners and postbacks, and (re)create demo logins with fresh passwords it prints."

    def handle(self, *args, **options):
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
        for app in App.objects.select_related("account").order_by("account__name", "name", "platform"):
            self.stdout.write(f"  {app.account.name} / {app}: {app_issue_api_key(app=app)}")

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
