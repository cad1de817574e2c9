"""The embedded engine lease across processes, and secrets kept out of messages."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.errors import EngineBusy
from export_pipeline.settings import redact_url, scrub_secret


def hold_engine(settings, *, seconds: float, checkpoint_every: float | None = None) -> subprocess.Popen:
    """Another process that holds the embedded engine (optionally reaching checkpoints as an export does)."""
    code = textwrap.dedent(f"""
        import sys, time
        from export_pipeline.clickhouse.connection import ClickHouse
        from export_pipeline.settings import Settings
        ch = ClickHouse.from_settings(Settings())
        with ch.session("holder test") as session:
            session.client.command("SELECT 1")
            print("holding", flush=True)
            deadline = time.monotonic() + {seconds}
            while time.monotonic() < deadline:
                time.sleep({checkpoint_every or 0.05})
                if {checkpoint_every is not None}:
                    session.checkpoint()
                    session.client.command("SELECT 1")
        print("released", flush=True)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_a_second_process_waits_for_the_engine_then_gets_it(settings, clickhouse):
    holder = hold_engine(settings, seconds=1.5)
    started = time.monotonic()
    with clickhouse.session("waiter") as session:
        assert session.client.command("SELECT 42") == 42
    waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert 0.8 < waited < 15


def test_busy_engine_gives_a_clear_error_naming_the_holder(settings):
    holder = hold_engine(settings, seconds=4)
    impatient = ClickHouse(settings.clickhouse_url, lock_dir=settings.lock_dir, busy_timeout=0.5)
    try:
        with pytest.raises(EngineBusy) as busy:
            with impatient.session("impatient") as session:
                session.client.command("SELECT 1")
    finally:
        holder.wait(timeout=30)
    message = str(busy.value)
    assert "stayed busy for 0.5 s, held by pid" in message and "holder test" in message
    assert f"holder test (lock {settings.lock_dir / 'clickhouse.engine.lock'})." in message
    assert "CLICKHOUSE_URL" in message
    assert busy.value.retryable is True  # a later try may find the engine free


def test_an_engine_held_without_the_lease_is_busy_naming_the_lock_and_its_holder(settings, clickhouse):
    """A bare chDB process on the same data folder: not "Cannot reach ClickHouse", but who holds which lock."""
    code = textwrap.dedent(f"""
        # foreign-holder-marker
        import time, clickhouse_connect
        client = clickhouse_connect.get_client(dsn={settings.clickhouse_url!r})
        client.command("SELECT 1")
        print("holding", flush=True)
        time.sleep(60)
    """)
    foreign = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert foreign.stdout.readline().strip() == "holding"
        with pytest.raises(EngineBusy) as busy:
            with clickhouse.session("blocked") as session:
                session.client.command("SELECT 1")
    finally:
        foreign.kill()
        foreign.wait(timeout=30)
    message = str(busy.value)
    assert f"held by pid {foreign.pid} (" in message and "foreign-holder-marker" in message
    assert "/status)" in message and "Cannot reach" not in message
    assert busy.value.details["lock"].endswith("/status")
    assert busy.value.retryable is True
    with clickhouse.session("after") as session:  # the folder is free again once the holder is gone
        assert session.client.command("SELECT 3") == 3


def test_a_long_reader_hands_the_engine_over_at_its_next_checkpoint(settings, clickhouse):
    holder = hold_engine(settings, seconds=6, checkpoint_every=0.1)
    started = time.monotonic()
    with clickhouse.session("interrupting query") as session:
        assert session.client.command("SELECT 7") == 7
    waited = time.monotonic() - started
    assert waited < 3  # not the holder's 6 s
    assert holder.stdout.readline().strip() == "released"  # and the holder resumed and finished
    assert holder.wait(timeout=60) == 0


def test_urls_are_redacted_and_passwords_scrubbed():
    assert redact_url("https://exporter:pa%40ss@ch.example.com:8443/analytics") == "https://exporter:***@ch.example.com:8443/analytics"
    assert redact_url("chdb:///data/clickhouse") == "chdb:///data/clickhouse"
    assert scrub_secret("failed for exporter:hunter2@host", "http://exporter:hunter2@host:8123") == "failed for exporter:***@host"


def test_a_kept_session_serves_many_blocks_and_hands_the_engine_over_while_idle(settings):
    """The API's kept session: one engine open across blocks (the lock names it between them), handed to a
    process that queues even while no request comes, and reopened behind it."""
    lock = settings.lock_dir / "clickhouse.engine.lock"
    kept = ClickHouse.from_settings(settings)
    kept.keep_open("kept test")
    try:
        for value in (1, 2):
            with kept.session("ignored: the kept session's name is used") as session:
                assert session.client.command(f"SELECT {value}") == value
        assert lock.read_text().endswith(": kept test")  # still held between blocks

        code = textwrap.dedent("""
            import time
            from export_pipeline.clickhouse.connection import ClickHouse
            from export_pipeline.settings import Settings
            started = time.monotonic()
            with ClickHouse.from_settings(Settings()).session("queued run") as session:
                session.client.command("SELECT 1")
            print(round(time.monotonic() - started, 3), flush=True)
        """)
        waited = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                      check=True).stdout)
        assert waited < 5  # the watcher handed it over; the default busy timeout is 60 s

        with kept.session("again") as session:
            assert session.client.command("SELECT 3") == 3
        assert lock.read_text().endswith(": kept test")
    finally:
        kept.close()


INSERTS = 12  # parts of one row each: enough for ClickHouse's merge selector to merge them at once


def _parts(session, table: str, *, fewer_than: int, within: float) -> int:
    """The table's active parts as soon as they are fewer than `fewer_than`, or after `within` seconds."""
    sql = "SELECT count() FROM system.parts WHERE active AND database = 'default' AND table = {t:String}"
    deadline = time.monotonic() + within
    while (count := session.client.command(sql, parameters={"t": table})) >= fewer_than and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


def _insert_parts(session, table: str, first: int) -> None:
    for value in range(first, first + INSERTS):
        session.client.command(f"INSERT INTO default.{table} VALUES ({value})")


def test_only_bulk_loads_and_the_kept_session_merge_in_the_background(settings):
    """Merges run inside the process holding the embedded engine: a short session (a run, the CLI) starts it
    with no background merges, which it would abandon unfinished; a bulk load (`merges=True`) and the API's
    kept session merge. Twelve one-row parts merge within a second when merges may run."""
    table = "merges_test"
    short = ClickHouse.from_settings(settings)
    with short.session("short test") as session:
        session.client.command(f"CREATE TABLE default.{table} (n UInt64) ENGINE = MergeTree ORDER BY n")
        _insert_parts(session, table, 0)
        assert _parts(session, table, fewer_than=INSERTS, within=5) == INSERTS
        assert session.client.command("SELECT count() FROM system.merges") == 0
    with short.session("bulk load", merges=True) as session:
        assert _parts(session, table, fewer_than=INSERTS, within=30) < INSERTS
    with short.session("short test") as session:
        _insert_parts(session, table, INSERTS)
        assert _parts(session, table, fewer_than=INSERTS, within=1) >= INSERTS

    kept = ClickHouse.from_settings(settings)
    kept.keep_open("kept test")
    try:
        with kept.session("kept") as session:
            assert _parts(session, table, fewer_than=INSERTS, within=30) < INSERTS
            values = session.client.query(f"SELECT n FROM default.{table} ORDER BY n").result_columns[0]
            assert values == list(range(2 * INSERTS))
            session.client.command(f"DROP TABLE default.{table} SYNC")
    finally:
        kept.close()


def _rss_mb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 >> 20


def test_the_embedded_engine_hands_freed_memory_back(clickhouse):
    """A query's memory, freed when it ends, stays with the engine's allocator until purged: what lets a
    windowed read peak at one window, not at the sum of what each window left behind."""
    with clickhouse.session("purge test") as session:
        session.client.command("SELECT length(groupArray(toString(number))) FROM numbers(8000000)")
        held = _rss_mb()
        session.release_freed_memory()
        assert _rss_mb() < held - 100
