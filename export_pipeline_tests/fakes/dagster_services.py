"""A real Dagster deployment for tests: `dagster-webserver` and `dagster-daemon` as subprocesses on loopback,
on the project's workspace, with a given instance folder and app database (test_dagster.py on SQLite storage,
test_dagster_postgres.py on dagster-postgres)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from export_pipeline.db import get_engine
from export_pipeline_tests.fakes.net import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


_LOCATION_STATUS = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
_DAEMON_STATUS = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"


class Deployment:
    """Webserver and daemon processes sharing one log; every wait fails fast, with the log, if one dies."""

    def __init__(self, base: Path, env: dict[str, str]):
        self.port = free_port()
        self.log_path = base / "services.log"
        self._log = open(self.log_path, "wb")
        self._env = env
        self.processes: list[subprocess.Popen] = []

    def start(self, *command: str) -> None:
        self.processes.append(subprocess.Popen([str(BIN / command[0]), *command[1:]], cwd=ROOT, env=self._env,
                                               stdout=self._log, stderr=subprocess.STDOUT))

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_until(self, predicate, *, timeout: float, what: str, interval: float = 1):
        def alive_and(predicate=predicate):
            dead = [p.args for p in self.processes if p.poll() is not None]
            assert not dead, f"{dead} exited while waiting for {what}"
            return predicate()
        try:
            return wait_until(alive_and, timeout=timeout, what=what, interval=interval)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n--- services.log ---\n{self.log_tail()}") from None

    def graphql(self, query: str, variables: dict | None = None) -> dict | None:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)["data"]
        except OSError:
            return None  # not serving yet

    def location_loaded(self) -> bool:
        data = self.graphql(_LOCATION_STATUS)
        entries = (data or {}).get("workspaceOrError", {}).get("locationEntries", [])
        for entry in entries:
            loaded = entry["locationOrLoadError"] or {}
            assert loaded.get("__typename") != "PythonError", f"code location failed to load: {loaded['message']}"
        return any(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)

    def daemons_healthy(self, *daemon_types: str) -> bool:
        data = self.graphql(_DAEMON_STATUS)
        statuses = {d["daemonType"]: d["healthy"] for d in (data or {}).get("instance", {}).get("daemonHealth", {})
                    .get("allDaemonStatuses", [])}
        return all(statuses.get(name) for name in daemon_types)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self._log.close()


@contextmanager
def running_deployment(base: Path, dagster_home: Path, database_url: str, env: dict[str, str] | None = None,
                       daemons: tuple[str, ...] = ("SENSOR", "QUEUED_RUN_COORDINATOR")) -> Iterator[Deployment]:
    """Start the services on an instance folder that holds its dagster.yaml; stop them at the end. `env` adds
    to the services' environment.

    The instance's storage and the app database's schema are created here, before either service starts: two
    processes creating the same schemas at once can fail one of them. The daemon starts once the webserver has
    loaded the code location, and this waits for the daemons the tests rely on to report healthy."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.get_runs(limit=1)
    get_engine(database_url)
    deployment = Deployment(base, {**os.environ, **(env or {}), "DAGSTER_HOME": str(dagster_home),
                                   "EXPORT_PIPELINE_DATABASE_URL": database_url})
    try:
        deployment.start("dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(deployment.port))
        deployment.wait_until(deployment.location_loaded, timeout=240, what="the webserver's code location")
        deployment.start("dagster-daemon", "run", "-w", "workspace.yaml")
        deployment.wait_until(lambda: deployment.daemons_healthy(*daemons), timeout=240,
                              what=f"the daemon's {', '.join(daemons)}")
        yield deployment
    finally:
        deployment.stop()


@contextmanager
def dagster_services(base: Path, *daemons: str, env: dict[str, str] | None = None
                     ) -> Iterator[tuple[Deployment, Path, str]]:
    """The services on the project's dagster.yaml with a SQLite app database, all under `base`; yields
    (deployment, DAGSTER_HOME, app database URL) once `daemons` (e.g. "SENSOR", "BACKFILL") report healthy."""
    dagster_home = base / "dagster"
    dagster_home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    database_url = f"sqlite:///{base / 'app.db'}"
    with running_deployment(base, dagster_home, database_url, env,
                            daemons or ("SENSOR", "QUEUED_RUN_COORDINATOR")) as deployment:
        yield deployment, dagster_home, database_url
