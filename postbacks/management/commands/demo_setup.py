from django.conf import settings
from django.core.management.base import BaseCommand

from postbacks.demo.load import DEMO_APP, DEMO_CONFIG, DEMO_KEY_FILE, DemoState, demo_load

__all__ = ["DEMO_CONFIG", "Command", "demo_curl"]


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
    help = (
        "Load the demo apps, partners, postbacks and logins into an empty database and print the new logins, "
        "API keys and a curl; a database that holds anything is left as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--api-url", default="http://127.0.0.1:8000", help="Where the printed curl sends its event."
        )

    def handle(self, *args, api_url, **options):
        state = demo_load(key_file=settings.VAR_DIR / DEMO_KEY_FILE)
        if state.created:
            self.stdout.write(self.style.SUCCESS("\nDemo data loaded into the empty database."))
        else:
            self.stdout.write(
                self.style.SUCCESS("\nThe database already holds data: nothing was created or changed.")
                + " (Demo data is loaded only into an empty database.)"
            )
        self.print_logins(state)
        self.print_keys(state)
        if state.curl_key:
            self.stdout.write(f"\nSend an install of {DEMO_APP} (its postbacks appear in the delivery log):")
            self.stdout.write(demo_curl(api_url=api_url, api_key=state.curl_key))
        elif state.apps:
            self.stdout.write(
                f"\nNo API key of {DEMO_APP} is known here (rotated since, or not the demo's database): "
                "README.md shows the curl that sends an event with an app's key."
            )

    def print_logins(self, state: DemoState) -> None:
        if state.created:
            self.stdout.write("Admin logins (new):")
            for login in state.logins:
                self.stdout.write(f"  {login.username:8} {login.password}   {login.role}")
            return
        if not state.logins:
            self.stdout.write("Admin logins: none (`python manage.py createsuperuser` makes one).")
            return
        self.stdout.write(
            "Admin logins (existing, passwords unchanged; `python manage.py changepassword <username>` sets one):"
        )
        for login in state.logins:
            self.stdout.write(f"  {login.username:8} {login.role}")
        if state.more_logins:
            self.stdout.write(f"  … and {state.more_logins} more")

    def print_keys(self, state: DemoState) -> None:
        if not state.apps:
            return
        if state.created:
            self.stdout.write("\nAPI keys (new):")
        else:
            self.stdout.write(
                "\nAPI keys (existing, unchanged; a key is shown in full only when it is made, and the app's "
                "“Rotate the API key” action in the admin makes a new one):"
            )
        for app in state.apps:
            self.stdout.write(f"  {app.label}: {app.key or app.key_prefix + '…'}")
        if state.more_apps:
            self.stdout.write(f"  … and {state.more_apps} more")
