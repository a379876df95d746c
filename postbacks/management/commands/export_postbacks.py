import json

from django.core.management.base import BaseCommand, CommandError

from events.models import App
from postbacks.config_io import config_export


class Command(BaseCommand):
    help = "Print apps with their partner configurations, trackers and postbacks as JSON (docs/config-as-code.md)."

    def add_arguments(self, parser):
        parser.add_argument("--app", action="append", metavar="NAME", help="Only this app (repeatable).")
        parser.add_argument("--account", metavar="NAME", help="Only apps of this account.")

    def handle(self, *args, app=None, account=None, **options):
        queryset = App.objects.select_related("account").order_by("account__name", "name")
        if account:
            queryset = queryset.filter(account__name=account)
        if app:
            queryset = queryset.filter(name__in=app)
            missing = sorted(set(app) - set(queryset.values_list("name", flat=True)))
            if missing:
                raise CommandError(f"No app named {', '.join(missing)}.")
        self.stdout.write(json.dumps(config_export(apps=list(queryset)), indent=2, ensure_ascii=False))
