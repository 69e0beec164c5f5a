"""A throw-away PostgreSQL server for tests: Debian's PostgreSQL 15 (`scripts/install-postgres.sh`) initialised in
a temporary directory, listening on a free loopback port, removed when stopped.

initdb and postgres refuse to run as root: as root the server runs as the system user `USER` (created on first
use, no login shell, no home), otherwise as the current user. Authentication is `trust`, which is safe only
because the server listens on 127.0.0.1 alone and lives as long as the test run.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness.server import free_port

USER = "dancesync-test"
VERSIONS = ("15",)
START_TIMEOUT_S = 60.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed (run scripts/install-postgres.sh)."""


def postgres_bin() -> Path:
    for version in VERSIONS:
        folder = Path("/usr/lib/postgresql") / version / "bin"
        if (folder / "initdb").is_file():
            return folder
    raise PostgresUnavailable("PostgreSQL 15 is not installed: bash scripts/install-postgres.sh")


class Postgres:
    """`Postgres.start()` → a running server; `url` is its database's SQLAlchemy URL; `stop()` removes it all."""

    def __init__(self, folder: Path, port: int, user: str | None) -> None:
        self.folder = folder
        self.port = port
        self.user = user  # the system user it runs as (None: this process's)
        self.database = "dancesync"
        self.url = f"postgresql+psycopg://dancesync@127.0.0.1:{port}/{self.database}"

    @classmethod
    def start(cls) -> Postgres:
        bin_dir = postgres_bin()
        user = _run_as_user() if os.geteuid() == 0 else None
        folder = Path(tempfile.mkdtemp(prefix="dancesync-postgres-"))
        if user is not None:
            os.chown(folder, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        server = cls(folder, free_port(), user)
        try:
            server._run(bin_dir / "initdb", "-D", str(server.data), "-U", "dancesync", "--auth=trust", "-E", "UTF8")
            options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {folder} -c fsync=off"
            server._run(bin_dir / "pg_ctl", "-D", str(server.data), "-o", options, "-l", str(server.log), "-w", "start")
            server._create_database()
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        if (self.data / "postmaster.pid").exists():
            self._run(postgres_bin() / "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_database(self, name: str) -> str:
        """Create an empty database `name` (letters, digits, _); its SQLAlchemy URL."""
        import psycopg

        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain database name: {name!r}")
        admin = f"postgresql://dancesync@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://dancesync@127.0.0.1:{self.port}/{name}"

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.new_database(self.database)
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _run(self, *command: str | Path, check: bool = True) -> None:
        args = [str(c) for c in command]
        if self.user is not None:
            args = ["runuser", "-u", self.user, "--", *args]
        done = subprocess.run(args, capture_output=True, text=True, timeout=START_TIMEOUT_S, cwd=self.folder)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run_as_user() -> str:
    """The unprivileged system user the server runs as when we are root (created if missing)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
    return USER
