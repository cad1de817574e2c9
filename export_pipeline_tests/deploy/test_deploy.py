"""Deployment files are checked by parsing (no container engine here): they must agree with the code."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from export_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def env_example() -> dict[str, str]:
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.mark.parametrize("config", [ROOT / "dagster.yaml", DEPLOY / "dagster.yaml"])
def test_instance_configs_are_valid_dagster_instance_config(config, tmp_path, monkeypatch):
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    shutil.copyfile(config, tmp_path / "dagster.yaml")
    validated, _ = dagster_instance_config(str(tmp_path))
    limits = validated["concurrency"]["runs"]["tag_concurrency_limits"]
    assert any(limit["key"] == "export-pipeline/clickhouse" for limit in limits)


def test_local_instance_never_runs_two_exports_on_the_embedded_engine():
    limits = yaml.safe_load((ROOT / "dagster.yaml").read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "export-pipeline/clickhouse", "value": "embedded", "limit": 1} in limits


def test_every_variable_the_stack_uses_is_in_the_env_example():
    documented = set(env_example())
    compose_text = (DEPLOY / "docker-compose.yaml").read_text()
    used = set(re.findall(r"\$\{(\w+)\}", compose_text)) | set(re.findall(r"env: (\w+)", (DEPLOY / "dagster.yaml").read_text()))
    launcher_env = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_launcher"]["config"]["env_vars"]
    assert used - documented == set()
    assert set(launcher_env) - documented - {"AWS_ENDPOINT_URL"} == set()


def test_env_example_configures_a_server_s3_and_postgres(monkeypatch):
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.clickhouse_url.startswith("https://") and not settings.clickhouse_is_embedded
    assert settings.storage_url.startswith("s3://") and settings.database_url.startswith("postgresql://")


def test_compose_services_build_from_existing_files():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    for name, service in compose["services"].items():
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), (name, source)
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["host"] in compose["services"]


def test_dockerfile_copies_existing_paths():
    copies = re.findall(r"^COPY (.+?) (\S+)$", (DEPLOY / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert copies
    for sources, _destination in copies:
        for source in sources.split():
            assert (ROOT / source).exists(), source
