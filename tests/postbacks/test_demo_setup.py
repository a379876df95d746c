"""`make run` is safe to run twice: the demo goes only into an empty database, so a restart
changes no API key, password or postback; what it prints says which logins and keys are new,
and its curl is a request the API accepts."""

import json
import re
import subprocess
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from events.models import App
from tests.product import import_config, manage, scratch_environment

SNAPSHOT = (
    "import json\n"
    "from django.contrib.auth import get_user_model\n"
    "from events.models import App\n"
    "from postbacks.config_io import config_export\n"
    "print(json.dumps({\n"
    "    'keys': {app.name: app.api_key_hash for app in App.objects.all()},\n"
    "    'passwords': {user.username: user.password for user in get_user_model().objects.all()},\n"
    "    'configuration': config_export(),\n"
    "}))"
)
MANAGER_EDIT = (
    "from postbacks.models import PostbackConfiguration\n"
    "edited = PostbackConfiguration.objects.filter(title='Installs to Meta')\n"
    "edited.update(title='Edited by a manager', delay_seconds=5)"
)
USER_APP_KEY = (
    "from events.models import App\n"
    "from events.services import app_issue_api_key\n"
    "print(app_issue_api_key(app=App.objects.get(name='My Game')))"
)


def curl_line(output: str) -> str:
    return next(line.strip() for line in output.splitlines() if line.strip().startswith("curl "))


def login_passwords(output: str) -> dict[str, str]:
    section = output.split("Admin logins (new):")[1].split("\n\n")[0]
    return {line.split()[0]: line.split()[1] for line in section.strip().splitlines()}


def test_a_second_run_creates_and_changes_nothing_and_says_so(tmp_path):
    with scratch_environment(tmp_path) as env:
        manage(env, "migrate", "-v0")
        first = manage(env, "demo_setup", "--api-url", "http://127.0.0.1:8000")
        assert "Demo data loaded into the empty database." in first
        passwords = login_passwords(first)
        assert set(passwords) == {"admin", "manager", "support"}
        # Between the runs a manager edits a demo postback and a user adds an app of their own.
        manage(env, "shell", "-v0", "-c", MANAGER_EDIT)
        import_config(
            env,
            {
                "version": 1,
                "apps": [
                    {
                        "name": "My Game",
                        "account": "My Studio",
                        "platform": "android",
                        "package_name": "com.mystudio.game",
                    }
                ],
            },
        )
        user_key = manage(env, "shell", "-v0", "-c", USER_APP_KEY).strip()
        before = json.loads(manage(env, "shell", "-v0", "-c", SNAPSHOT))

        second = manage(env, "demo_setup", "--api-url", "http://127.0.0.1:8000")

        assert json.loads(manage(env, "shell", "-v0", "-c", SNAPSHOT)) == before
        edited = [p for a in before["configuration"]["apps"] for p in a["postbacks"] if p.get("title")]
        assert any(p["title"] == "Edited by a manager" and p["delay_seconds"] == 5 for p in edited)
        assert "The database already holds data: nothing was created or changed." in second
        assert "(new)" not in second and "Demo data loaded" not in second
        assert not [password for password in passwords.values() if password in second]
        assert "Admin logins (existing, passwords unchanged" in second
        for username in passwords:
            assert re.search(rf"^  {username} +\S", second, flags=re.MULTILINE), second
        assert "API keys (existing, unchanged" in second
        assert f"My Studio / My Game (Android): {user_key[:12]}…" in second
        assert user_key not in second
        # The curl still carries the demo app's key, which still works (its hash is unchanged).
        assert curl_line(second) == curl_line(first)


@pytest.mark.django_db
def test_the_printed_curl_is_a_request_the_api_accepts_on_the_first_run_and_the_next(
    client, settings, tmp_path, capsys
):
    settings.VAR_DIR = tmp_path
    call_command("demo_setup", "--api-url", "http://testserver")
    first = curl_line(capsys.readouterr().out)
    call_command("demo_setup", "--api-url", "http://testserver")
    second = curl_line(capsys.readouterr().out)
    assert second == first
    # What bash hands to curl when the line is pasted: the shell does the quoting and the $(date).
    pasted = "curl() { printf '%s\\0' \"$@\"; }\n" + second
    argv = subprocess.run(["bash", "-c", pasted], capture_output=True, check=True).stdout.decode().split("\0")[:-1]
    url = next(arg for arg in argv if arg.startswith("http"))
    options = [arg for arg in argv if arg.startswith("-")]
    assert options == ["-i", "-H", "-H", "-d"], argv
    headers = dict(argv[index + 1].split(": ", 1) for index, arg in enumerate(argv) if arg == "-H")
    body = argv[argv.index("-d") + 1]
    assert json.loads(body)["event_id"].removeprefix("demo-").isdigit()
    assert url == "http://testserver/api/v1/events"
    reply = client.post(
        urlsplit(url).path,
        data=body,
        content_type=headers.pop("Content-Type"),
        headers={"Authorization": headers.pop("Authorization")},
    )
    assert reply.status_code == 202, reply.content
    assert reply.json()["postbacks_scheduled"] == 2
    assert headers == {}


@pytest.mark.django_db
def test_a_database_with_a_user_of_its_own_gets_no_demo(settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    get_user_model().objects.create_superuser("owner", "owner@example.com", "a-long-password-of-the-owner")
    call_command("demo_setup")
    out = capsys.readouterr().out
    assert not App.objects.exists()
    assert set(get_user_model().objects.values_list("username", flat=True)) == {"owner"}
    assert "nothing was created or changed" in out
    assert re.search(r"^  owner +superuser$", out, flags=re.MULTILINE), out
    assert "curl -i" not in out
    assert not (tmp_path / "demo_api_key").exists()


@pytest.mark.django_db
def test_a_rotated_demo_key_is_not_printed_again(settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("demo_setup")
    kept = (tmp_path / "demo_api_key").read_text()
    assert kept in capsys.readouterr().out
    assert (tmp_path / "demo_api_key").stat().st_mode & 0o777 == 0o600
    app = App.objects.get(name="Space Rocks Android")
    app.set_api_key("pbk_rotated-in-the-admin")
    app.save()
    call_command("demo_setup")
    out = capsys.readouterr().out
    assert kept not in out and "curl -i" not in out
    assert "No API key of Space Rocks Android is known here" in out
