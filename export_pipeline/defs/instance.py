"""The local Dagster instance outside Dagster's own processes: its home folder, whether a daemon is running,
and running one partition of a job now.

Dagster is imported inside the functions: the CLI imports this module for every command, most of them
never touch Dagster, and importing it takes most of a second."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from export_pipeline.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAEMON_HEARTBEAT_FRESH_SECONDS = 60
# The caller prints progress itself; the run's full log is in the Dagster UI.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def ensure_dagster_home(settings: Settings) -> Path:
    """Default DAGSTER_HOME to <data folder>/dagster with the project's dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and (PROJECT_ROOT / "dagster.yaml").exists():
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", config)
    return home


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    from dagster import DagsterInstance

    ensure_dagster_home(settings)
    return DagsterInstance.get()


def daemon_is_running(instance: dg.DagsterInstance) -> bool:
    """Whether a Dagster daemon (with its sensor loop) has reported in recently."""
    heartbeats = instance.get_daemon_heartbeats()
    sensor = heartbeats.get("SENSOR")
    return bool(sensor and time.time() - sensor.timestamp < DAEMON_HEARTBEAT_FRESH_SECONDS)


def add_partition(settings: Settings, partitions: dg.DynamicPartitionsDefinition, key: str) -> dg.DagsterInstance:
    """Register `key` as a partition (the daemon's sensor runs it, or `run_unless_daemon` does)."""
    instance = dagster_instance(settings)
    instance.add_dynamic_partitions(partitions.name, [key])  # type: ignore[arg-type]
    return instance


def run_unless_daemon(instance: dg.DagsterInstance, load_job: Callable[[], dg.JobDefinition], key: str, *,
                      label: str, doing: str, say: Callable[[str], None],
                      in_background: bool) -> threading.Thread | None:
    """Leave a registered partition to a running daemon (returns None), or else run it in this process,
    recorded in the same instance so the UI shows the run. Returns the thread running it: still running when
    `in_background` (for a caller that follows the progress itself), finished otherwise. A caller must join
    it before exiting: the run is a daemon thread, and a process that exits first leaves the run STARTED in
    Dagster, holding the engine's run slot. `load_job` builds the job only when it runs here: building the
    definitions reads settings and every job."""
    if daemon_is_running(instance):
        say(f"{label} queued; the Dagster daemon will run it.")
        return None
    say(f"{label}: no Dagster daemon running, {doing} in this process.")
    job = load_job()
    runner = threading.Thread(
        target=lambda: job.execute_in_process(
            instance=instance, partition_key=key, run_config=QUIET_RUN_CONFIG, raise_on_error=False
        ),
        name=job.name,
        daemon=True,
    )
    runner.start()
    if not in_background:
        runner.join()
    return runner


def terminate_run(run_id: str, log) -> None:
    """Best effort: stop the Dagster run writing a canceled export (its cleanup removes partial files)."""
    try:
        from dagster import DagsterInstance

        if DagsterInstance.get().run_launcher.terminate(run_id):
            return
        log.warning("Dagster could not terminate run %s", run_id)
    except Exception:  # the export is canceled in our state either way
        log.exception("terminating run %s failed", run_id)
