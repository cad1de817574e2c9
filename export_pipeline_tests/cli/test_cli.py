"""The `export-pipeline` command as a user runs it: a separate process, JSON out, meaningful exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from export_pipeline_tests.fakes.exportdata import insert_events, known_events

PROJECT = 9201
CLI = [str(Path(sys.executable).parent / "export-pipeline")]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module", autouse=True)
def known_data(clickhouse, events_table):
    insert_events(clickhouse, events_table, known_events(PROJECT))
    assert run_cli("members", "add", "--project-id", str(PROJECT), "--user", "maria", "--role", "maintainer").returncode == 0
    assert run_cli("members", "add", "--project-id", str(PROJECT), "--user", "dave", "--role", "developer").returncode == 0


def test_members_list_shows_roles_by_level():
    listed = run_cli("members", "list", "--project-id", str(PROJECT))
    assert listed.stdout.splitlines() == ["maria\tmaintainer\t40", "dave\tdeveloper\t30"]


def test_export_wait_prints_the_result_and_exits_zero(session_home):
    done = run_cli("export", "--project-id", str(PROJECT), "--user", "maria", "--format", "json",
                   "--event", "signed_up", "--wait")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["row_count"], result["format"]) == ("succeeded", 750, "json")
    manifest_path = Path(result["manifest"].removeprefix("file://"))
    assert manifest_path == session_home / "exports" / str(PROJECT) / result["export_id"] / "manifest.json"
    assert json.loads(manifest_path.read_text())["row_count"] == 750
    assert [f["name"] for f in result["files"]] == ["part-00000.json.gz"]
    assert "succeeded: 750 rows" in done.stderr  # progress shown while waiting
    # The run, not only the request, has ended: a run left STARTED would hold the engine's run slot.
    import dagster as dg

    with dg.DagsterInstance.from_config(os.environ["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": result["export_id"]}))
    assert [(run.status, run.tags.get("export-pipeline/clickhouse")) for run in runs] == [
        (dg.DagsterRunStatus.SUCCESS, "embedded")]  # and it held the engine's run slot like any other run

    status = run_cli("status", result["export_id"])
    assert json.loads(status.stdout)["status"] == "succeeded"
    preview = run_cli("preview", result["export_id"], "--lines", "1")
    assert preview.returncode == 0 and preview.stdout.startswith("[")


def test_export_below_maintainer_is_refused_with_exit_2():
    refused = run_cli("export", "--project-id", str(PROJECT), "--requested-by", "dave", "--wait")
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["status"] == "refused"
    assert "'dave' is Developer (30) on project 9201; exporting events needs Maintainer (40) or higher." in refused.stderr
    assert "Traceback" not in refused.stderr


def test_invalid_fields_are_all_reported_with_exit_2():
    invalid = run_cli("export", "--project-id", "abc", "--requested-by", "maria", "--format", "png",
                      "--date-from", "yesterday", "--wait")
    assert invalid.returncode == 2
    assert "project_id: must be a positive integer, got 'abc'" in invalid.stderr
    assert "format: events exports come as ndjson, json, csv, parquet, not png" in invalid.stderr
    assert "date_from: must be an ISO 8601 date or datetime" in invalid.stderr
    assert "Traceback" not in invalid.stderr


def test_the_export_options_are_the_request_model_fields():
    from export_pipeline.cli.exports import export
    from export_pipeline.engine.request import REQUEST_FIELDS

    options = export.params[:len(REQUEST_FIELDS)]
    assert [o.name for o in options] == [f.name for f in REQUEST_FIELDS]
    assert [o.opts[0] for o in options] == [
        "--project-id", "--user", "--resource", "--target-id", "--format", "--width", "--compression",
        "--date-from", "--date-to", "--event", "--property", "--cohort-id", "--group-type", "--distinct-id",
        "--person-id", "--min-duration", "--notify-email"]
    assert [o.opts[0] for o in options if o.multiple] == ["--event", "--property"]
    assert [o.opts for o in options if o.name == "requested_by"] == [["--user", "--requested-by"]]  # old scripts
    assert [o.name for o in options if o.required] == ["project_id", "requested_by"]
    assert all(o.help.startswith(f.description) for f, o in zip(REQUEST_FIELDS, options, strict=True))
    fmt = next(o for o in options if o.name == "format")
    assert (fmt.type.choices, fmt.default, fmt.type.convert("CSV", fmt, None)) == (
        ("ndjson", "json", "csv", "parquet", "xlsx", "png"), "ndjson", "csv")  # any case, as before


def test_user_names_who_acts_in_every_command_and_requested_by_is_a_hidden_alias():
    shown = run_cli("export", "--help", env={"COLUMNS": "200"})
    assert shown.returncode == 0 and "  --user TEXT " in shown.stdout and "--requested-by" not in shown.stdout
    missing = run_cli("export", "--project-id", str(PROJECT))
    assert missing.returncode == 2 and missing.stderr.splitlines()[-1] == "Error: Missing option '--user'."
    from export_pipeline.cli import main

    def acting(command: click.Command) -> list[click.Command]:
        if isinstance(command, click.Group):
            return [c for sub in command.commands.values() for c in acting(sub)]
        return [command] if any(p.name in ("user", "requested_by") for p in command.params) else []

    spellings = {p.opts[0] for c in acting(main) for p in c.params if p.name in ("user", "requested_by")}
    assert spellings == {"--user"}


def test_unreachable_clickhouse_fails_with_exit_1_and_names_the_cluster():
    from export_pipeline_tests.fakes.net import free_port

    port = free_port()
    failed = run_cli("export", "--project-id", str(PROJECT), "--requested-by", "maria", "--wait",
                     env={"CLICKHOUSE_URL": f"http://default:hunter2@127.0.0.1:{port}/analytics"})
    assert failed.returncode == 1
    result = json.loads(failed.stdout)
    assert result["status"] == "failed" and result["error"]["code"] == "analytics_cluster_unavailable"
    assert f"127.0.0.1:{port}" in result["error"]["message"]
    assert "hunter2" not in failed.stdout + failed.stderr


def test_demo_dashboard_is_created_once_and_its_insights_compute():
    first = run_cli("dashboards", "demo", "--project-id", str(PROJECT), "--user", "maria")
    assert first.returncode == 0 and first.stderr.startswith("Created 'Demo dashboard'")
    dashboard_id = json.loads(first.stdout)["dashboard_id"]
    again = run_cli("dashboards", "demo", "--project-id", str(PROJECT), "--user", "maria")
    assert again.stderr.startswith("'Demo dashboard' exists") and json.loads(again.stdout) == {"dashboard_id": dashboard_id}
    listed = run_cli("insights", "list", "--project-id", str(PROJECT)).stdout.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["trends", "trends", "funnel", "table", "number"]
    table = run_cli("insights", "show", "--project-id", str(PROJECT), listed[3].split("\t")[0])
    assert table.returncode == 0 and table.stdout.splitlines()[0] == "value\tcount"


def test_the_demo_dashboard_as_png_and_a_subscription_delivered_to_the_outbox(settings):
    dashboard_id = json.loads(run_cli("dashboards", "demo", "--project-id", str(PROJECT), "--user", "maria").stdout)[
        "dashboard_id"]
    png = run_cli("export", "--project-id", str(PROJECT), "--requested-by", "maria", "--resource", "dashboard",
                  "--target-id", dashboard_id, "--format", "png", "--width", "1200", "--wait")
    assert png.returncode == 0, png.stderr
    [image] = json.loads(png.stdout)["files"]
    assert image["name"] == "dashboard.png" and image["bytes"] > 10_000

    created = run_cli("subscriptions", "demo", "--project-id", str(PROJECT), "--user", "maria",
                      "--dashboard-id", dashboard_id)
    subscription = json.loads(created.stdout)
    assert subscription["description"] == "Every week on Monday at 09:00 (Europe/Berlin)"
    again = json.loads(run_cli("subscriptions", "demo", "--project-id", str(PROJECT), "--user", "maria",
                               "--dashboard-id", dashboard_id).stdout)
    assert again["id"] == subscription["id"]  # once

    sent = run_cli("subscriptions", "send-now", "--project-id", str(PROJECT), subscription["id"])
    assert sent.returncode == 0, sent.stderr
    delivery = json.loads(sent.stdout)
    assert delivery["state"] == "succeeded"
    assert sorted((d["destination"]["kind"], d["state"]) for d in delivery["destinations"]) == [
        ("email", "succeeded"), ("slack", "succeeded")]
    slack_folder = settings.outbox_dir / "slack"
    [folder] = [f for f in slack_folder.iterdir() if f.name.startswith(delivery["id"])]
    assert sorted(p.name for p in folder.iterdir())[:2] == ["message.json", "tile-01-weekly-pageviews-and-sign-ups.png"]
    assert len(list(folder.glob("tile-*.png"))) == 5
    mails = [json.loads(p.read_text()) for p in settings.outbox_dir.glob(f"*{delivery['id']}*.json")]
    assert [m["personalizations"][0]["to"][0]["email"] for m in mails] == ["team@example.com"]
    assert len(mails[0]["attachments"]) == 5


def test_insight_changes_need_maintainer_and_valid_json():
    refused = run_cli("dashboards", "demo", "--project-id", str(PROJECT), "--user", "dave")
    assert refused.returncode == 2 and "needs Maintainer (40) or higher" in refused.stderr
    invalid = run_cli("insights", "create", "--project-id", str(PROJECT), "--user", "maria", "--name", "x",
                      "--query", "{not json")
    assert invalid.returncode == 2 and "--query is not valid JSON" in invalid.stderr


def test_enumerated_options_are_choices_checked_before_anything_runs():
    unknown_format = run_cli("export", "--project-id", str(PROJECT), "--requested-by", "maria", "--format", "xml")
    assert unknown_format.returncode == 2 and unknown_format.stdout == ""
    assert unknown_format.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--format': 'xml' is not one of 'ndjson', 'json', 'csv', 'parquet', 'xlsx', 'png'.")
    unknown_compression = run_cli("export", "--project-id", str(PROJECT), "--requested-by", "maria",
                                  "--compression", "bzip2")
    assert unknown_compression.returncode == 2
    assert unknown_compression.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--compression': 'bzip2' is not one of 'gzip', 'zstd', 'none'.")
    unknown_resource = run_cli("export", "--project-id", str(PROJECT), "--requested-by", "maria",
                               "--resource", "sessions")
    assert unknown_resource.returncode == 2
    assert unknown_resource.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--resource': 'sessions' is not one of "
        "'events', 'persons', 'groups', 'cohort', 'recordings', 'insight', 'dashboard'.")
    unknown_role = run_cli("members", "add", "--project-id", str(PROJECT), "--user", "x", "--role", "boss")
    assert unknown_role.returncode == 2
    assert unknown_role.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--role': 'boss' is not one of "
        "'guest', 'planner', 'reporter', 'developer', 'maintainer', 'owner'.")
    shown = run_cli("export", "--help", env={"COLUMNS": "200"}).stdout
    assert "--format [ndjson|json|csv|parquet|xlsx|png]" in shown
    assert "--compression [gzip|zstd|none]" in shown
    assert "--resource [events|persons|groups|cohort|recordings|insight|dashboard]" in shown


def test_an_event_name_the_project_never_saw_is_warned_about_and_the_export_still_runs():
    done = run_cli("export", "--project-id", str(PROJECT), "--requested-by", "maria", "--format", "CSV",
                   "--compression", "NONE", "--event", "signed_up", "--event", "signed_upp", "--event", "Signed_Up",
                   "--wait")
    assert done.returncode == 0, done.stderr
    assert ("warning: project 9201 has no events named 'signed_upp', 'Signed_Up'; the export matches none of them"
            " (names are case-sensitive).") in done.stderr.splitlines()
    result = json.loads(done.stdout)
    assert (result["status"], result["row_count"], result["format"], result["compression"]) == (
        "succeeded", 750, "csv", "none")  # choices are case-insensitive


def test_an_unknown_export_id_exits_2_as_invalid_input():
    for command in ("status", "preview"):
        missing = run_cli(command, "no-such-export")
        assert missing.returncode == 2 and missing.stdout == ""
        assert missing.stderr.splitlines() == [
            "error: No export request 'no-such-export'.",
            "hint: Use an export_id printed by `export-pipeline export`.",
        ]


def test_every_unknown_id_exits_2_with_an_error_and_a_hint():
    runs = run_cli("batch-exports", "runs", "--project-id", str(PROJECT), "--user", "maria", "bex_missing")
    assert runs.returncode == 2 and runs.stdout == ""
    assert runs.stderr.splitlines() == [
        f"error: There is no batch export 'bex_missing' in project {PROJECT}.",
        "hint: List them with `export-pipeline batch-exports list --project-id …`.",
    ]
    shown = run_cli("subscriptions", "show", "--project-id", str(PROJECT), "sub_missing")
    assert shown.returncode == 2 and shown.stdout == ""
    assert shown.stderr.splitlines() == [f"error: Subscription 'sub_missing' not found in project {PROJECT}."]


def _help_rows(*group: str) -> dict[str, str]:
    shown = run_cli(*group, "--help", env={"COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    listing = shown.stdout.split("\nCommands:\n", 1)[1]
    return dict(line.strip().split(maxsplit=1) if " " in line.strip() else (line.strip(), "")
                for line in listing.splitlines() if line.startswith("  ") and not line.startswith("   "))


def test_every_command_and_group_has_a_help_line_that_fits():
    top = _help_rows()
    groups = ["exports", "members", "users", "tokens", "insights", "dashboards", "share-links", "subscriptions",
              "batch-exports"]
    assert set(groups) < set(top) and {"export", "status", "preview", "init", "seed", "sweep", "api"} < set(top)
    rows = {**top, **{f"{group} {name}": line for group in groups for name, line in _help_rows(group).items()}}
    assert len(rows) == 50
    incomplete = {name: line for name, line in rows.items() if not line or line.endswith("...")}
    assert incomplete == {}


def test_export_wait_on_a_terminal_draws_a_bar_that_ends_at_the_counted_total():
    import pty
    import re

    controller, terminal = pty.openpty()
    done = subprocess.run(CLI + ["export", "--project-id", str(PROJECT), "--requested-by", "maria", "--format", "csv",
                                 "--event", "signed_up", "--wait"], stdout=subprocess.PIPE, stderr=terminal,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other end is closed: all was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert done.returncode == 0, shown
    result = json.loads(done.stdout)
    frames = shown.decode().replace("\r\n", "\n").split("\r\x1b[2K")
    # The bar is redrawn in place (no line per poll); what else is written meanwhile (notes, the run's warnings)
    # clears the bar's line and stands on whole lines of its own; the last frame is the whole bar at the total
    # the run counted.
    bars = [frame for frame in frames[1:] if re.match(r"(queued|running|succeeded) ", frame)]
    assert bars and bars[-1] == frames[-1] and all("\n" not in bar for bar in bars[:-1]), frames
    assert all(frame.endswith("\n") for frame in frames if frame not in bars and frame), frames
    assert re.fullmatch(r"succeeded \[#{24}\] 100%  750/750 rows  \d+\.\d MB\n", frames[-1]), frames[-1]

    from export_pipeline.db import get_engine
    from export_pipeline.exports.store import ExportStore
    from export_pipeline.settings import Settings

    stored = ExportStore(get_engine(Settings().database_url)).require(result["export_id"])
    assert (stored.row_count, stored.row_total) == (750, 750)


def test_without_export_pipeline_home_the_data_folder_is_dot_data_in_the_working_directory(tmp_path):
    """`$HOME` must not decide the data folder (environment names match case-insensitively)."""
    home, workdir = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    workdir.mkdir()
    env = {name: value for name, value in os.environ.items() if name != "EXPORT_PIPELINE_HOME"} | {"HOME": str(home)}
    for args in (["members", "add", "--project-id", "1", "--user", "ana", "--role", "owner"],
                 ["members", "list", "--project-id", "1"]):
        done = subprocess.run(CLI + args, capture_output=True, text=True, timeout=300, env=env, cwd=workdir)
        assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ana\towner\t50"]
    assert (workdir / ".data" / "app.db").is_file()
    assert list(home.iterdir()) == []


def test_version_and_exports_list_and_cancel(session_home):
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("export-pipeline, version ")
    done = run_cli("export", "--project-id", str(PROJECT), "--requested-by", "maria", "--format", "csv",
                   "--event", "signed_up", "--wait")
    assert done.returncode == 0, done.stderr
    export_id = json.loads(done.stdout)["export_id"]
    folder = session_home / "exports" / str(PROJECT) / export_id
    assert (folder / "manifest.json").is_file()

    listed = run_cli("exports", "list", "--project-id", str(PROJECT), "--limit", "1")
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert line.split("\t")[:5] == [export_id, "succeeded", "events", "csv", "750"]

    canceled = run_cli("exports", "cancel", export_id)
    assert canceled.returncode == 0, canceled.stderr
    assert json.loads(canceled.stdout)["status"] == "expired"  # a finished export's files are deleted now
    assert not folder.exists() or list(folder.iterdir()) == []
    unknown = run_cli("exports", "cancel", "exp_unknown")
    assert unknown.returncode == 2 and "No export request 'exp_unknown'." in unknown.stderr


def test_preview_of_a_parquet_export_shows_uuids_as_text():
    done = run_cli("export", "--project-id", str(PROJECT), "--user", "maria", "--format", "parquet",
                   "--event", "signed_up", "--wait")
    assert done.returncode == 0, done.stderr
    preview = run_cli("preview", json.loads(done.stdout)["export_id"], "--lines", "1")
    assert preview.returncode == 0, preview.stderr
    lines = preview.stdout.splitlines()
    first_row = lines[lines.index(next(line for line in lines if line.startswith("╞"))) + 1]
    # The earliest signed_up event (its timestamp is unique), whose uuid and person_id are UUIDs in Parquet.
    project_id, event_uuid, event, moment, distinct_id, person_id, _ = min(
        (row for row in known_events(PROJECT) if row[2] == "signed_up"), key=lambda row: row[3])
    assert [cell.strip(" │") for cell in first_row.split("┆")[:6]] == [
        str(project_id), str(event_uuid), event, f"{moment:%Y-%m-%d %H:%M:%S.%f} UTC", distinct_id, str(person_id)]
