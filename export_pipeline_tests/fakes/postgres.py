"""A throwaway PostgreSQL server for the test session, and the app-database engine fixture over SQLite and it.

The server is Debian's (`make system-deps` installs `postgresql`): initdb into a temporary folder, listening on
a free loopback port with its unix socket inside that folder, durability off (nothing here must survive a
crash), its sessions in New York's time zone (so that code assuming the server hands back UTC fails here), stopped
and deleted at the end of the session. PostgreSQL refuses to run as root, so under root the
folder is handed to the `postgres` system user and every server command runs as that user.

Without the binaries the Postgres variants are skipped, except under `CI=true`, where they fail: CI must test
the production database.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.db import get_engine, metadata
from export_pipeline_tests.fakes.net import free_port

SERVER_USER = "postgres"  # created by Debian's postgresql-common
_APP_DATABASE = "export_pipeline"


def server_binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, or None."""
    found = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    version = lambda folder: [int(part) for part in re.findall(r"\d+", folder.parent.name)]  # noqa: E731
    return max(found, key=version) if found else None


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bin: Path
    user: str | None  # the system user the server runs as, when the tests run as root

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """An empty database; returns its URL."""
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # a fixed test name, never user input
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        # Immediate: nothing in a throwaway cluster needs a clean shutdown.
        self._run("pg_ctl", "stop", "-D", str(self.folder / "data"), "-m", "immediate", "-w", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / program), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if check and done.returncode != 0:
            log = self.folder / "server.log"
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                + (f"\nserver log:\n{log.read_text()}" if log.exists() else "")
            )
        return done


def start_postgres(bin_dir: Path) -> PostgresServer:
    folder = Path(tempfile.mkdtemp(prefix="export-pipeline-postgres-"))
    user = None
    if os.geteuid() == 0:
        user = SERVER_USER
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(folder=folder, port=0, bin=bin_dir, user=user)
    try:
        server._run("initdb", "-D", str(folder / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--locale=C", "--no-sync", "--no-instructions")
        for _attempt in range(3):  # the free port may be taken between probing and listening
            server.port = free_port()
            options = (f"-h 127.0.0.1 -p {server.port} -k {folder} -c fsync=off -c synchronous_commit=off "
                       "-c full_page_writes=off -c max_connections=200 -c timezone=America/New_York")
            started = server._run("pg_ctl", "start", "-D", str(folder / "data"), "-l", str(folder / "server.log"),
                                  "-w", "-t", "30", "-o", options, check=False)
            if started.returncode == 0:
                return server
        server._run("pg_ctl", "status", "-D", str(folder / "data"))  # raises with the server log
        raise RuntimeError("PostgreSQL did not start")
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = server_binaries()
    if bin_dir is None:
        why = "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb); `make system-deps` installs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why}. CI must run the Postgres tests.")
        pytest.skip(why)
    server = start_postgres(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_app_url(postgres_server: PostgresServer) -> str:
    """The app database on the session's server (schema created by the first get_engine)."""
    return postgres_server.create_database(_APP_DATABASE)


@pytest.fixture(params=["sqlite", "postgres"])
def app_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty app database, on SQLite (a fresh file) and on Postgres (the session's database, emptied)."""
    if request.param == "sqlite":
        engine = get_engine(f"sqlite:///{tmp_path / 'app.db'}")
        yield engine
        engine.dispose()
        return
    engine = get_engine(request.getfixturevalue("postgres_app_url"))
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield engine
