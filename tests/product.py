"""Running the product's own processes in tests: a scratch database they can all see (pytest's
test database is invisible to a separately started process), free ports, starting, killing
and waiting, and finding which process holds a given TCP connection."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, *, timeout: float, interval: float = 0.2, message: str | Callable[[], str] = "") -> None:
    """Wait for `check()`; `message` may be a function, to describe the state at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {message() if callable(message) else message}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except OSError:
        return False


def process_environment(var_dir: Path) -> dict[str, str]:
    """This environment without its database and Redis, set up for the product's processes:
    development mode in `var_dir`, private destinations allowed, a cluster name of its own."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DEBUG="true",
        VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="project.settings",
        POSTBACK_ALLOW_PRIVATE_DESTINATIONS="true",
        Q_CLUSTER_NAME=f"t{uuid.uuid4().hex[:8]}",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


@contextlib.contextmanager
def scratch_environment(var_dir: Path, *, redis: bool = False) -> Iterator[dict[str, str]]:
    """Environment for the product's processes, with a database of their own: a SQLite file in
    `var_dir`, or a new PostgreSQL database when DATABASE_URL points to a server."""
    env = process_environment(var_dir)
    if redis:
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    database_url = os.environ.get("DATABASE_URL", "")
    scratch = None
    if database_url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(database_url)
        scratch = f"postbacks_t_{uuid.uuid4().hex[:8]}"
        with _postgres_admin(parts) as admin:
            admin.execute(f'CREATE DATABASE "{scratch}"')
        env["DATABASE_URL"] = parts._replace(path=f"/{scratch}").geturl()
    try:
        yield env
    finally:
        if scratch:
            with contextlib.suppress(psycopg.OperationalError), _postgres_admin(urlsplit(database_url)) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def _postgres_admin(parts):
    return psycopg.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, dbname="postgres", autocommit=True
    )


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def import_config(env: dict[str, str], config: dict) -> None:
    manage(env, "import_postbacks", "-", stdin=json.dumps(config))


class Processes:
    """Processes started in their own sessions, their output kept in files; all stopped at exit."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        output = open(self.log_dir / f"{name}.log", "a")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.close()
        self.running[name] = process
        return process

    def output(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group: the command and every child it started."""
        process = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.running):
            process = self.running[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            # The group may outlive its leader (django-q2's workers): make sure none is left.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            self.running.pop(name)


def add_manager(env: dict[str, str], *, account: str, app: str, password: str) -> str:
    """An "Account managers" user `manager` with `password`, member of `account`; returns `app`'s pk."""
    return manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import Group; from django.contrib.auth import get_user_model;"
        "from events.models import Account, App;"
        f"user = get_user_model().objects.create_user('manager', password={password!r}, is_staff=True);"
        "user.groups.add(Group.objects.get(name='Account managers'));"
        f"Account.objects.get(name={account!r}).members.add(user);"
        f"print(App.objects.get(name={app!r}).pk)",
    ).split()[-1]


def children_of(pid: int) -> list[int]:
    """The direct child processes of `pid` (Linux)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children


def pid_holding_connection(*, local_port: int, remote_port: int) -> int | None:
    """The process whose socket is connected from 127.0.0.1:local_port to 127.0.0.1:remote_port
    (the receiver sees the sender's port; Linux's /proc says whose socket that is)."""
    wanted = f"0100007F:{local_port:04X} 0100007F:{remote_port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if f"{fields[1]} {fields[2]}" == wanted:
            inode = fields[9]
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (pid_dir / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return int(pid_dir.name)
    return None


class OwnPostgres:
    """A PostgreSQL server of the test's own (initdb into a temporary folder, run as the
    postgres user), which a drill may stop and start: never the machine's shared server."""

    def __init__(self, folder: Path):
        self.bin = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
        self.folder = folder
        self.port = free_port()

    @property
    def available(self) -> bool:
        return self.bin is not None and os.geteuid() == 0 and shutil.which("runuser") is not None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.folder, "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.folder / "data"),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
